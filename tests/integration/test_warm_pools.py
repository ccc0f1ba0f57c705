"""Warm pools with real processes and the real Docker engine: a create is a hand-out of
a kernel started ahead, its limits applied to the running container, and every warm
kernel is gone when the agent stops."""

import time

from tests.integration import ClusterTestCase
from tests.integration.test_cli import sorna

WHO_AM_I = "import socket; print(socket.gethostname())"  # the container's short id


class WarmPoolTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster(
            max_kernels=3, agent_kw={"warm_pool": "python3=2"})
        self.client = self.client(self.manager)

    def warm_in_status(self, count, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            [agent] = self.client.status()["agents"]
            if agent["warm"].get("python3", 0) == count:
                return agent
            if time.monotonic() > deadline:
                self.fail(f"status never showed {count} warm python3 kernels: {agent}")
            time.sleep(0.1)

    def short_ids(self):
        return {c.id[:12] for c in self.containers_of(self.agent)}

    def test_a_create_is_handed_a_warm_kernel_with_its_limits(self):
        self.warm_in_status(2)
        done = sorna("status", manager=self.manager.addr)
        self.assertIn("python3=2", done.stdout)
        warm = self.short_ids()
        self.assertEqual(len(warm), 2)

        kernel = self.client.create("python3", limits={"memory_mb": 64})
        self.destroy_later(self.client, kernel["kernel_id"])
        host = self.client.execute(kernel["kernel_id"], WHO_AM_I)["stdout"].strip()
        self.assertIn(host, warm, "the kernel is not one of the warm ones")
        [container] = [c for c in self.containers_of(self.agent) if c.id.startswith(host)]
        config = container.attrs["HostConfig"]
        self.assertEqual((config["Memory"], config["MemorySwap"]), (64 << 20, 64 << 20))
        # The pool refills to two, within the agent's third slot only.
        self.warm_in_status(2)
        self.assertEqual(len(self.containers_of(self.agent)), 3)

        # A used kernel never goes back: destroyed, its container is gone.
        self.client.destroy(kernel["kernel_id"])
        self.assertNotIn(host, self.short_ids())

    def test_pooled_kernels_never_make_a_create_fail(self):
        self.warm_in_status(2)
        kernels = [self.client.create("python3") for _ in range(3)]
        for kernel in kernels:
            self.destroy_later(self.client, kernel["kernel_id"])
            self.assertEqual(self.client.execute(kernel["kernel_id"], "1+1")["stdout"],
                             "2\n")
        hosts = {self.client.execute(k["kernel_id"], WHO_AM_I)["stdout"].strip()
                 for k in kernels}
        self.assertEqual(hosts, self.short_ids())  # three kernels, no warm one left
