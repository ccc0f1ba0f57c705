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
        self.assertEqual(set(kernel), {"kernel_id", "kernel_addr", "lang"})
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
