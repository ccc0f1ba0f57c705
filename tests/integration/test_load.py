"""Many front-ends at once, against a manager and two agents holding 8 kernels: no
reply lost, none delivered to another request, no kernel lost. CI runs LOAD_CLIENTS x
LOAD_REQUESTS (50 x 20); bench/load.py runs the full 200 x 50."""

import os
import statistics

from twisted.python import log

from sorna.testing.load import run_load
from tests.integration import ClusterTestCase

CLIENTS = int(os.environ.get("SORNA_LOAD_CLIENTS", 50))
REQUESTS = int(os.environ.get("SORNA_LOAD_REQUESTS", 20))


class LoadTests(ClusterTestCase):
    def test_concurrent_clients_lose_no_reply_and_no_kernel(self):
        manager = self.start_manager()
        agents = [self.start_agent(manager, max_kernels=4) for _ in range(2)]
        client = self.client(manager)
        sessions = {}
        for n in range(8):
            kernel = client.get_or_create(f"load-{n}", "e", "python3")
            self.destroy_later(client, kernel["kernel_id"])
            sessions[(f"load-{n}", "e")] = (kernel["kernel_id"], kernel["kernel_addr"])
        self.assertEqual({addr for _, addr in sessions.values()}, {a.addr for a in agents})
        stats = run_load(manager.addr, sessions, clients=CLIENTS, requests=REQUESTS)
        log.msg(f"measured: load {CLIENTS} x {REQUESTS}: {stats['answered']} answered, "
                f"{stats['busy']} executes refused as queued past the limit, median "
                f"{statistics.median(stats['latencies']) * 1000:.1f} ms, by kind "
                f"{stats['by_kind']}")
        self.assertEqual(stats["sent"], CLIENTS * REQUESTS)
        self.assertEqual((stats["lost"], stats["foreign"], stats["wrong"]), (0, 0, []))
        self.assertEqual(stats["answered"], CLIENTS * REQUESTS)
        # No kernel lost: every session still has its own kernel, alive and answering.
        self.assertEqual(client.status()["kernels"], 8)
        for (user_id, entry_id), (kernel_id, _) in sessions.items():
            self.assertEqual(client.get_or_create(user_id, entry_id, "python3")["kernel_id"],
                             kernel_id)
            self.assertEqual(client.execute(kernel_id, "1+1")["stdout"], "2\n")
