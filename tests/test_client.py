"""The Twisted client and the CLI's argument handling, on the in-memory cluster."""

import io

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from sorna.client.api import SornaClient
from sorna.client.cli import main
from sorna.proto.errors import SornaError, Timeout
from sorna.testing.cluster import FakeCluster
from sorna.testing.transport import FakeNetwork


class ClientTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock)
        self.cluster.start()
        self.client = self.cluster.client()

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())

    def test_session_round_trip(self):
        self.assertEqual(self.successResultOf(self.client.ping("x")), "x")
        kernel = self.successResultOf(self.client.get_or_create("u", "e", "python"))
        self.assertEqual(set(kernel), {"kernel_id", "kernel_addr", "lang", "agent_key"})
        result = self.successResultOf(self.client.execute(kernel["kernel_id"], "6*7"))
        self.assertEqual(result["stdout"], "42\n")
        self.successResultOf(self.client.destroy(kernel["kernel_id"]))

    def test_a_second_client_finds_the_kernel_through_the_manager(self):
        kernel = self.successResultOf(self.client.create("python3"))
        other = self.cluster.client()
        self.addCleanup(other.close)
        result = self.successResultOf(other.execute(kernel["kernel_id"], "print('hi')"))
        self.assertEqual(result["stdout"], "hi\n")

    def test_error_replies_raise_sorna_errors(self):
        e = self.failureResultOf(self.client.kernel_info("A" * 22), SornaError).value
        self.assertEqual((e.code, e.error), (404, "kernel-not-found"))

    def test_no_manager_times_out_on_the_clock(self):
        client = SornaClient("tcp://127.0.0.1:9", transport=FakeNetwork(), clock=self.clock,
                             timeout=5)
        d = client.status()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        e = self.failureResultOf(d, Timeout).value
        self.assertIn("no reply within 5 s", e.cause)
        client.close()

    def test_close_fails_pending_requests(self):
        client = SornaClient("tcp://127.0.0.1:9", transport=FakeNetwork(), clock=self.clock)
        d = client.status()
        client.close()
        self.assertEqual(self.failureResultOf(d, SornaError).value.error, "closed")


class CliUsageTests(SynchronousTestCase):
    def run_cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()

    def test_exec_needs_code(self):
        code, out, err = self.run_cli("exec", "python3")
        self.assertEqual(code, 2)
        self.assertIn("-f FILE", err)

    def test_exec_refuses_code_and_file_together(self):
        code, out, err = self.run_cli("exec", "python3", "1", "-f", "x.py")
        self.assertEqual(code, 2)

    def test_unreadable_file(self):
        code, out, err = self.run_cli("exec", "python3", "-f", "/nonexistent/x.py")
        self.assertEqual(code, 2)
        self.assertIn("cannot read", err)


class RetryTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock)

    def tearDown(self):
        self.successResultOf(self.cluster.stop())

    def test_idempotent_requests_retry_until_the_manager_answers(self):
        client = self.cluster.client(timeout=10, attempt_timeout=2)
        self.addCleanup(client.close)
        d = client.status()
        self.clock.pump([0.5] * 6)
        self.assertNoResult(d)
        self.cluster.start()
        self.clock.pump([0.5] * 8)
        self.assertEqual(self.successResultOf(d)["capacity"], 4)

    def test_the_deadline_ends_the_retries_with_a_clear_error(self):
        client = self.cluster.client(timeout=6, attempt_timeout=2)
        self.addCleanup(client.close)
        d = client.get_or_create("u", "e", "python3")
        self.clock.pump([0.5] * 11)
        self.assertNoResult(d)
        self.clock.pump([0.5] * 2)
        e = self.failureResultOf(d, Timeout).value
        self.assertIn("get_or_create failed", e.cause)
        self.assertIn("times in 6 s", e.cause)

    def test_an_execution_on_a_lost_kernel_ends_with_kernel_lost(self):
        self.cluster.start()
        client = self.cluster.client(watch_interval=1)
        self.addCleanup(client.close)
        kid = self.successResultOf(client.create("python3"))["kernel_id"]
        host = self.cluster.hosts[0]
        host.hold = True
        d = client.execute(kid, "1")
        table = self.cluster.manager.table
        self.successResultOf(table.remove_kernel(kid))
        self.successResultOf(table.mark_lost([kid], "its agent agent-0 stopped answering",
                                             self.clock.seconds()))
        self.clock.advance(1)
        e = self.failureResultOf(d, SornaError).value
        self.assertEqual((e.code, e.error), (404, "kernel-lost"))
        host.hold = False


class AttemptsTests(SynchronousTestCase):
    def test_only_idempotent_actions_retry(self):
        from sorna.client.calls import Attempts
        timeout = Timeout("no reply")
        self.assertRaises(Timeout, Attempts("create", 0, 10, 2).pause_after, timeout, 1)
        self.assertEqual(Attempts("status", 0, 10, 2).pause_after(timeout, 1), 0.1)
        busy = SornaError("full", error="no-capacity", code=503)
        self.assertRaises(SornaError, Attempts("status", 0, 10, 2).pause_after, busy, 1)
        redis_away = SornaError("away", error="state-unavailable", code=503)
        self.assertEqual(Attempts("status", 0, 10, 2).pause_after(redis_away, 1), 0.1)

    def test_backoff_grows_and_caps(self):
        from sorna.client.calls import Attempts
        attempts = Attempts("ping", 0, 100, 2)
        pauses = [attempts.pause_after(Timeout("x"), 0) for _ in range(8)]
        self.assertEqual(pauses, [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])

    def test_a_retried_destroy_that_finds_nothing_is_done(self):
        from sorna.client.calls import Attempts
        from sorna.proto.errors import KernelNotFound
        attempts = Attempts("destroy", 0, 10, 2)
        attempts.next_timeout(0)
        self.assertFalse(attempts.already_done(KernelNotFound("gone")))
        attempts.next_timeout(1)
        self.assertTrue(attempts.already_done(KernelNotFound("gone")))
