"""One request must never freeze an agent, lose a kernel or lose a reply: what a
hostile front-end tried, against real processes and a real kernel."""

import statistics
import threading
import time

import msgpack
import zmq
from twisted.python import log

from tests.integration import REPLY_TIMEOUT, ClusterTestCase

CATASTROPHIC = {"op": "regex", "target": "stdout", "value": "(a+)+$"}


class AbuseTestCase(ClusterTestCase):
    agent_args = ()

    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster(
            agent_kw={"extra_args": list(self.agent_args)})
        self.client = self.client(self.manager)

    def create(self, **limits):
        kernel_id = self.client.create("python3", limits=limits or None)["kernel_id"]
        self.destroy_later(self.client, kernel_id)
        return kernel_id

    def dealer(self):
        return self.socket(zmq.DEALER, self.agent.addr)

    def send(self, sock, message):
        sock.send_multipart([b"", msgpack.packb(message, use_bin_type=True)])

    def replies(self, sock, count, timeout=REPLY_TIMEOUT):
        """The next `count` final replies (partial ones skipped), by id."""
        got = {}
        while len(got) < count:
            reply = msgpack.unpackb(self.receive(sock, timeout), raw=False)
            if not reply.get("partial"):
                got[reply.get("id")] = reply
        return got


class GradingTests(AbuseTestCase):
    agent_args = ("--match-timeout", "1")

    def test_a_catastrophic_pattern_times_out_and_the_agent_keeps_answering(self):
        kernel_id = self.create()
        outcome = {}

        def grade():
            try:
                self.client.run_code(kernel_id, "print('a' * 40 + '!')", match=CATASTROPHIC)
            except Exception as e:
                outcome["error"] = e

        grader = threading.Thread(target=grade)
        grader.start()
        pinger = self.dealer()
        latencies = []
        deadline = time.monotonic() + 20
        while grader.is_alive() and time.monotonic() < deadline:
            started = time.monotonic()
            self.send(pinger, {"action": "ping", "id": len(latencies)})
            self.receive(pinger, timeout=5)  # a frozen agent answers no ping at all
            latencies.append(time.monotonic() - started)
            time.sleep(0.02)
        grader.join(REPLY_TIMEOUT)
        self.assertFalse(grader.is_alive(), "the graded execute never ended")
        self.assertError(outcome["error"], 504, "match-timeout")
        self.assertGreater(len(latencies), 10)
        median, worst = statistics.median(latencies), max(latencies)
        log.msg(f"measured: agent ping while a catastrophic pattern is graded: median "
                f"{median * 1000:.1f} ms, max {worst * 1000:.1f} ms over {len(latencies)}")
        self.assertLess(median, 0.05)
        # Grading goes on, in a fresh worker.
        reply = self.client.run_code(kernel_id, "print('a' * 40)", match=CATASTROPHIC)
        self.assertIs(reply["match_result"], True)

    def test_a_broken_pattern_is_400_before_the_code_runs(self):
        kernel_id = self.create()
        error = self.error_of(self.client.run_code, kernel_id, "x = 1",
                              match={"op": "regex", "target": "stdout", "value": "(?<"})
        self.assertError(error, 400, "bad-pattern")
        self.assertEqual(self.client.execute(kernel_id, "'x' in dir()")["stdout"], "False\n")


class QueueTests(AbuseTestCase):
    def test_restart_ends_the_running_and_the_queued_run_and_the_kernel_lives(self):
        kernel_id = self.create(exec_timeout=2)
        sock = self.dealer()
        self.send(sock, {"action": "execute", "id": 1, "kernel_id": kernel_id,
                         "code": "import time\ntime.sleep(3)"})
        self.send(sock, {"action": "execute", "id": 2, "kernel_id": kernel_id,
                         "code": "print('queued')"})
        time.sleep(0.2)  # both have reached the agent: one running, one queued
        self.assertEqual(self.client.restart(kernel_id), {"kernel_id": kernel_id})
        replies = self.replies(sock, 2)
        for run in (1, 2):
            self.assertEqual((replies[run]["reply"], replies[run]["error"]),
                             (409, "restarted"), replies[run])
        # Nothing of the old runs is left to time out and cost the kernel its life.
        self.assertEqual(self.client.execute(kernel_id, "1+1")["stdout"], "2\n")
        time.sleep(2.5)
        self.assertEqual(self.client.execute(kernel_id, "2+2")["stdout"], "4\n")

    def test_an_interrupt_stops_the_running_run_only(self):
        kernel_id = self.create()
        sock = self.dealer()
        self.send(sock, {"action": "execute", "id": 1, "kernel_id": kernel_id,
                         "code": "import time\nprint('on', flush=True)\ntime.sleep(30)",
                         "stream": True})
        self.receive(sock)  # its first output: it runs
        self.send(sock, {"action": "execute", "id": 2, "kernel_id": kernel_id,
                         "code": "import time\ntime.sleep(0.5)\nprint('second')"})
        time.sleep(0.2)
        self.assertEqual(self.client.interrupt(kernel_id), {"interrupted": True})
        replies = self.replies(sock, 2)
        self.assertEqual([e[0] for e in replies[1]["result"]["exceptions"]],
                         ["KeyboardInterrupt"])
        self.assertEqual((replies[2]["result"]["stdout"], replies[2]["result"]["exceptions"]),
                         ("second\n", []))


class InputTests(AbuseTestCase):
    def test_the_input_text_may_come_in_code(self):
        kernel_id = self.create()
        reply = self.client.run_code(kernel_id, "print('hi', input('who? '))")
        self.assertEqual(reply["status"], "waiting-input")
        error = self.error_of(self.client.run_code, kernel_id, mode="input")
        self.assertError(error, 400, "invalid-input")
        reply = self.client.run_code(kernel_id, "Ada", mode="input")
        self.assertEqual(reply["result"]["stdout"], "hi Ada\n")


class ReplyTests(AbuseTestCase):
    def test_a_run_whose_end_the_daemon_cannot_encode_still_gets_a_reply(self):
        kernel_id = self.create(exec_timeout=60)
        started = time.monotonic()
        try:
            self.client.execute(kernel_id, "open(b'bad\\xff.txt', 'w').write('x')")
        except Exception as e:  # the daemon may only be able to say that it failed
            self.assertEqual(getattr(e, "code", None), 500, e)
        self.assertLess(time.monotonic() - started, 30, "the reply waited for a timeout")
        self.assertEqual(self.client.execute(kernel_id, "1+1")["stdout"], "2\n")
