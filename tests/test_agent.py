"""The agent, with the in-memory cluster: fake Docker engine, real REPL executor, Clock."""

import json
import os

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError
from sorna.testing.cluster import FakeCluster
from sorna.testing.keys import client_curve


class AgentTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock, max_kernels=3)
        self.cluster.start()
        self.agent = self.cluster.agents[0]
        self.host = self.cluster.hosts[0]
        self.client = self.cluster.client(timeout=10)

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())
        self.assertEqual(self.host.running(), [])

    def create(self):
        return self.successResultOf(self.client.create("python3"))

    def error(self, d):
        return self.failureResultOf(d, SornaError).value

    def raw(self, addr="tcp://127.0.0.1:6001", curve="agent"):
        replies = []
        sock = self.cluster.network.dealer(
            addr, lambda frames: replies.append(frames[-1]),
            curve=client_curve(curve) if curve else None)
        return sock, replies

    def test_the_agent_allows_the_clusters_client_keys_only(self):
        sock, replies = self.raw(curve="agent")
        sock.send([b"", encode({"action": "ping", "body": 1})])
        self.assertEqual(decode(replies[-1])[0]["body"], 1)
        handshakes = []
        stranger = self.cluster.network.dealer(
            "tcp://127.0.0.1:6001", replies.append, on_handshake=handshakes.append,
            curve=client_curve("agent", "agents/agent"))  # an agent's key is no client's
        stranger.send([b"", encode({"action": "ping", "body": 2})])
        plain = self.cluster.network.dealer("tcp://127.0.0.1:6001", replies.append,
                                            on_handshake=handshakes.append)
        plain.send([b"", encode({"action": "ping", "body": 3})])
        self.assertEqual((handshakes, len(replies)), (["refused", "failed"], 1))

    def test_kernels_run_locked_down(self):
        kernel = self.create()
        [container] = self.host.running()
        args = container.kwargs
        self.assertEqual(container.labels, {"io.sorna.agent": "agent-0",
                                            "io.sorna.kernel": kernel["kernel_id"],
                                            "io.sorna.lang": "python3"})
        self.assertEqual(container.name, f"sorna-kernel-{kernel['kernel_id']}")
        self.assertEqual((args["network_mode"], args["read_only"], args["user"]),
                         ("none", True, "1000:1000"))
        self.assertEqual(args["cap_drop"], ["ALL"])
        self.assertEqual(args["security_opt"], ["no-new-privileges"])
        self.assertEqual(args["mem_limit"], args["memswap_limit"])
        self.assertTrue(args["pids_limit"] > 0)
        self.assertEqual(set(args["tmpfs"]), {"/tmp", "/home/work"})
        [mount] = args["mounts"]
        self.assertEqual((mount["Target"], mount["Type"]), ("/ipc", "bind"))
        self.assertEqual(os.path.basename(mount["Source"]), kernel["kernel_id"])

    def test_execute_keeps_state_and_reports_exceptions(self):
        kernel = self.create()
        kid = kernel["kernel_id"]
        self.successResultOf(self.client.execute(kid, "x = 20"))
        result = self.successResultOf(self.client.execute(kid, "print(x + 1)\nx * 2"))
        self.assertEqual(result["stdout"], "21\n40\n")
        result = self.successResultOf(self.client.execute(kid, "import sys\n"
                                                           "print('e', file=sys.stderr)\n1/0"))
        self.assertEqual(result["stderr"], "e\n")
        [[name, args, before, tb]] = result["exceptions"]
        self.assertEqual((name, args, before), ("ZeroDivisionError", ["division by zero"], False))
        result = self.successResultOf(self.client.execute(kid, "def f(:"))
        self.assertEqual(result["exceptions"][0][0], "SyntaxError")
        self.assertTrue(result["exceptions"][0][2])

    def test_unknown_kernel_is_404(self):
        self.create()
        e = self.error(self.client.execute("A" * 22, "1", ))
        self.assertEqual(e.code, 404)

    def test_front_ends_cannot_create_or_destroy_at_the_agent(self):
        sock, replies = self.raw()
        sock.send([b"", encode({"action": "create_kernel", "kernel_id": "A" * 22,
                                "lang": "python3"})])
        reply, _ = decode(replies[-1])
        self.assertEqual(reply["reply"], 403)
        self.assertIn("manager", reply["cause"])
        self.assertEqual(self.host.running(), [])

    def test_2016_json_execute_at_the_agent(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())
        self.cluster = FakeCluster(self.clock, insecure=True)  # what 2016 front-ends need
        self.cluster.start()
        self.host = self.cluster.hosts[0]
        self.client = self.cluster.client(timeout=10)
        kernel = self.create()
        self.assertNotIn("agent_key", kernel)
        sock, replies = self.raw(kernel["kernel_addr"], curve=None)
        sock.send([b"", json.dumps({"action": 1, "kernel_id": kernel["kernel_id"],
                                    "entry_id": "e", "cell_id": 3,
                                    "code": "print(1+1)"}).encode()])
        reply = json.loads(replies[-1])
        self.assertEqual(reply["reply"], 200)
        self.assertEqual(reply["result"]["stdout"], "2\n")

    def test_one_long_execution_does_not_delay_another_kernel(self):
        a, b = self.create(), self.create()
        self.host.hold = True
        slow = self.client.execute(a["kernel_id"], "1")
        self.host.hold = False
        fast = self.client.execute(b["kernel_id"], "2")
        self.assertEqual(self.successResultOf(fast)["stdout"], "2\n")
        self.assertNoResult(slow)
        self.host.release()
        self.assertEqual(self.successResultOf(slow)["stdout"], "1\n")

    def test_executions_on_one_kernel_queue_up_to_a_limit(self):
        kid = self.create()["kernel_id"]
        self.host.hold = True
        running = [self.client.execute(kid, f"{i}") for i in range(9)]
        e = self.error(self.client.execute(kid, "10"))
        self.assertEqual(e.code, 409)
        for _ in range(9):
            self.host.release()
        self.assertEqual([self.successResultOf(d)["stdout"] for d in running],
                         [f"{i}\n" for i in range(9)])

    def test_a_timed_out_execution_that_ignores_the_interrupt_costs_the_kernel(self):
        kid = self.successResultOf(self.client.create("python3", limits={"exec_timeout": 5}))[
            "kernel_id"]
        self.host.hold = self.host.ignore_interrupts = True
        d = self.client.execute(kid, "while True: pass")
        self.clock.advance(5)  # the timeout: an interrupt, which this kernel ignores
        self.assertNoResult(d)
        self.clock.advance(5)  # the grace period
        e = self.error(d)
        self.assertEqual((e.code, e.error), (504, "exec-timeout"))
        self.assertIn("ignored the interrupt", e.cause)
        self.assertEqual(self.host.running(), [])
        self.assertEqual(self.error(self.client.execute(kid, "1")).code, 404)

    def test_a_kernel_that_never_answers_is_removed(self):
        self.host.mute = True
        d = self.client.create("python3")
        self.clock.pump([1] * 30)
        e = self.error(d)
        self.assertEqual(e.code, 504)
        self.assertEqual(self.host.running(), [])
        self.assertEqual(len(self.agent.kernels), 0)
        self.host.mute = False
        self.create()

    def test_docker_failures_are_reported_and_clean(self):
        self.host.docker.fail_next_run = True
        e = self.error(self.client.create("python3"))
        self.assertEqual(e.code, 500)
        self.assertIn("injected failure", e.cause)
        self.assertEqual(os.listdir(self.agent.ipc_root), [])
        self.create()

    def test_the_agent_enforces_its_own_maximum(self):
        for _ in range(3):
            self.create()
        self.assertEqual(self.error(self.client.create("python3")).code, 503)
        self.assertEqual(len(self.host.running()), 3)

    def test_heartbeats_report_kernels_and_languages(self):
        kernel = self.create()
        status = self.successResultOf(self.client.status())
        [agent] = status["agents"]
        self.assertEqual((agent["kernels"], agent["langs"]), (1, ["python3"]))
        self.assertEqual(self.agent.kernels.running(), {kernel["kernel_id"]: "python3"})

    def test_destroy_removes_container_and_ipc_folder(self):
        kernel = self.create()
        self.successResultOf(self.client.destroy(kernel["kernel_id"]))
        self.assertEqual(self.host.running(), [])
        self.assertEqual(os.listdir(self.agent.ipc_root), [])

    def test_shutdown_destroys_every_kernel_and_fails_waiting_executions(self):
        kid = self.create()["kernel_id"]
        self.create()
        self.host.hold = True
        d = self.client.execute(kid, "1")
        self.successResultOf(self.agent.stopService())
        self.assertEqual(self.host.running(), [])
        self.assertEqual(self.error(d).code, 404)
        self.assertEqual(os.listdir(self.agent.ipc_root), [])
        self.agent.startService()  # tearDown stops it again

    def test_dead_containers_are_noticed_and_replaced(self):
        kernel = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        self.host.hold = True
        waiting = self.client.execute(kernel["kernel_id"], "1")
        [container] = self.host.running()
        container.status = "exited"
        self.clock.pump([1] * 3)
        e = self.error(waiting)
        self.assertEqual(e.code, 404)
        self.assertIn("died", e.cause)
        self.assertEqual(self.agent.kernels.running(), {})
        self.clock.pump([1] * 9)  # the manager forgets it at a heartbeat after its grace
        self.host.hold = False
        again = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        self.assertNotEqual(again["kernel_id"], kernel["kernel_id"])
        self.assertEqual(self.successResultOf(
            self.client.execute(again["kernel_id"], "1+1"))["stdout"], "2\n")

    def test_idle_kernels_are_culled_and_busy_ones_kept(self):
        self.agent.kernels.idle_timeout = 30
        self.create()  # left idle: culled
        busy, used = self.create(), self.create()
        self.host.hold = True
        running = self.client.execute(busy["kernel_id"], "1")
        self.host.hold = False
        for _ in range(15):  # 45 s: past the idle timeout, within the execution timeout
            self.clock.advance(3)
            self.successResultOf(self.client.execute(used["kernel_id"], "1"))
        self.assertEqual(set(self.agent.kernels.running()), {busy["kernel_id"],
                                                             used["kernel_id"]})
        self.assertEqual(len(self.host.running()), 2)
        self.host.release()
        self.successResultOf(running)

    def test_kernels_still_starting_are_not_reaped(self):
        self.assertEqual(self.successResultOf(self.agent.kernels.reap()), [])
        self.create()
        self.assertEqual(self.successResultOf(self.agent.kernels.reap()), [])

    def test_leftover_containers_are_removed_at_start(self):
        self.create()
        self.agent.kernels._kernels.clear()  # as if the agent had crashed
        self.agent.stopping = True
        self.successResultOf(self.agent.stopService())
        self.assertEqual(len(self.host.running()), 1)
        self.agent.startService()
        self.assertEqual(self.host.running(), [])
