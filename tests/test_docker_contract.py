"""One suite for the fake Docker client and the real engine: the agent's container driver
(and the docker-py calls under it) must behave the same on both."""

import os
import shutil
import tempfile
import uuid

from docker.errors import APIError, ImageNotFound, NotFound
from twisted.trial.unittest import SynchronousTestCase

from sorna.agent.docker import Containers
from sorna.testing.processes import remove_agent_containers
from sorna.agent.sandbox import SandboxPolicy
from sorna.ids import new_kernel_id
from sorna.testing.docker import FakeDockerClient
from sorna.threadpool import WorkerPool
from tests.support import require_docker, require_image

IMAGE = "sorna/kernel-python3:latest"


class DockerContractTests:
    def make_client(self):
        raise NotImplementedError

    def setUp(self):
        self.client = self.make_client()
        self.agent_id = f"contract-{uuid.uuid4().hex[:8]}"
        self.containers = Containers(WorkerPool("test", inline=True), lambda: self.client,
                                     self.agent_id)
        self.ipc_root = tempfile.mkdtemp(prefix="sorna-contract-")
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        remove_agent_containers(self.client, self.agent_id)
        shutil.rmtree(self.ipc_root)

    def start(self):
        kernel_id = new_kernel_id()
        ipc_dir = os.path.join(self.ipc_root, kernel_id)
        policy = SandboxPolicy()
        args = policy.container_args(self.agent_id, kernel_id, "python3", IMAGE, ipc_dir,
                                     policy.limits_for({}, None))
        container_id = self.successResultOf(self.containers.start_kernel(ipc_dir, args))
        return kernel_id, container_id, ipc_dir, args

    def test_start_list_remove(self):
        kernel_id, container_id, ipc_dir, _ = self.start()
        self.assertTrue(os.path.isdir(ipc_dir))
        self.assertEqual(os.stat(ipc_dir).st_uid, 1000)
        listed = self.successResultOf(self.containers.list_kernels())
        self.assertEqual([(c, k) for c, k, status in listed], [(container_id, kernel_id)])
        self.successResultOf(self.containers.remove_kernel(container_id, ipc_dir))
        self.assertEqual(self.successResultOf(self.containers.list_kernels()), [])
        self.assertFalse(os.path.exists(ipc_dir))
        # Removing again is not an error: the container is already gone.
        self.successResultOf(self.containers.remove_kernel(container_id, ipc_dir))

    def test_labels_select_this_agents_containers_only(self):
        kernel_id, container_id, ipc_dir, args = self.start()
        found = self.client.containers.list(
            all=True, filters={"label": "io.sorna.agent=someone-else"})
        self.assertEqual(found, [])
        got = self.client.containers.get(container_id)
        self.assertEqual(got.labels["io.sorna.kernel"], kernel_id)
        self.assertEqual(self.client.containers.get(args["name"]).id, container_id)
        self.successResultOf(self.containers.remove_kernel(container_id, ipc_dir))

    def test_name_conflicts_and_failed_starts_leave_nothing(self):
        kernel_id, container_id, ipc_dir, args = self.start()
        other_dir = ipc_dir + "-again"
        failure = self.failureResultOf(self.containers.start_kernel(other_dir, args))
        self.assertIsInstance(failure.value, APIError)
        self.assertFalse(os.path.exists(other_dir))
        self.successResultOf(self.containers.remove_kernel(container_id, ipc_dir))

    def test_missing_image_and_container(self):
        self.assertRaises(ImageNotFound, self.client.images.get, "sorna/kernel-nope")
        self.assertRaises(NotFound, self.client.containers.get, "0" * 64)

    def test_kernel_images(self):
        images = self.successResultOf(self.containers.kernel_images())
        tag, labels, image_id = images["python3"]
        self.assertEqual(tag, IMAGE)
        self.assertEqual(labels["io.sorna.lang"], "python3")
        self.assertEqual(image_id, self.client.images.get(IMAGE).id)

    def test_memory_limit_of_a_running_kernel_is_lowered(self):
        kernel_id, container_id, ipc_dir, args = self.start()
        self.successResultOf(self.containers.limit_memory(container_id, 64))
        config = self.client.containers.get(container_id).attrs["HostConfig"]
        self.assertEqual((config["Memory"], config["MemorySwap"]), (64 << 20, 64 << 20))
        self.successResultOf(self.containers.remove_kernel(container_id, ipc_dir))
        self.failureResultOf(self.containers.limit_memory(container_id, 64), NotFound)


class FakeDockerTests(DockerContractTests, SynchronousTestCase):
    def make_client(self):
        client = FakeDockerClient()
        client.add_image(IMAGE, {"io.sorna.lang": "python3", "io.sorna.memory": "256m"})
        return client


class RealDockerTests(DockerContractTests, SynchronousTestCase):
    def make_client(self):
        client = require_docker()
        require_image(client, IMAGE)
        return client
