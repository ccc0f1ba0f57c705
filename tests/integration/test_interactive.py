"""Interactive kernels end to end: output streamed as it is printed, runs driven step by
step, input, interrupt, restart, execution time limits, media and grading, against a real
manager, agent and python3 kernel."""

import base64
import struct
import time

import msgpack
import zmq
from twisted.python import log

from sorna.testing.processes import wait_until
from tests.integration import ClusterTestCase

COUNT_SLOWLY = "import time\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(1)"
# Four lines 0.4 s apart: long enough that a 0.5 s wait ends before the run does.
COUNT_A_LITTLE = "import time\nfor i in range(4):\n    print(i, flush=True)\n    time.sleep(0.4)"


def record(what, seconds):
    log.msg(f"measured: {what}: {seconds:.3f} s")


class InteractiveTestCase(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.client = self.client(self.manager)

    def create(self, limits=None):
        kernel_id = self.client.create("python3", limits=limits)["kernel_id"]
        self.destroy_later(self.client, kernel_id)
        return kernel_id

    def stdout_of(self, kernel_id, code):
        result = self.client.execute(kernel_id, code)
        self.assertEqual(result["exceptions"], [], result["exceptions"])
        return result["stdout"]

    def exception_names(self, result):
        return [name for name, *_ in result["exceptions"]]

    def kernel_container(self, kernel_id):
        found = [c for c in self.containers_of(self.agent)
                 if c.labels.get("io.sorna.kernel") == kernel_id]
        return found[0] if found else None


class StreamingTests(InteractiveTestCase):
    def test_output_arrives_as_it_is_printed(self):
        kernel_id = self.create()
        seen = []  # (seconds since the request, stdout of the partial reply)

        def on_output(fields):
            seen.append((time.monotonic() - started, fields["result"]["stdout"]))

        started = time.monotonic()
        reply = self.client.run_code(kernel_id, COUNT_SLOWLY, on_output=on_output)
        total = time.monotonic() - started

        self.assertEqual(reply["status"], "finished")
        first = [t for t, stdout in seen if "0" in stdout]
        self.assertTrue(first, f"no partial reply carried the first line; partials: {seen}")
        record("first streamed output line after the request", first[0])
        record("the whole five-second run", total)
        self.assertLess(first[0], 1.5, f"the first line came {first[0]:.2f} s after the "
                                       f"request; partials: {seen}")
        self.assertGreaterEqual(total, 4.0)
        streamed = "".join(stdout for _, stdout in seen) + reply["result"]["stdout"]
        self.assertEqual(streamed, "0\n1\n2\n3\n4\n", "every line exactly once")


class StepByStepTests(InteractiveTestCase):
    """REQ-style clients cannot take partial replies: they ask again."""

    def test_query_then_continue_until_finished(self):
        kernel_id = self.create()
        reply = self.client.run_code(kernel_id, COUNT_A_LITTLE, mode="query", wait=0.5)
        self.assertEqual(reply["status"], "continued")
        self.assertTrue(reply["result"]["stdout"].startswith("0\n"), reply)
        stdout, steps = reply["result"]["stdout"], 1
        while reply["status"] != "finished":
            self.assertEqual(reply["status"], "continued")
            self.assertLess(steps, 20, "the run never finished")
            reply = self.client.continue_run(kernel_id, wait=0.5)
            stdout += reply["result"]["stdout"]
            steps += 1
        self.assertEqual(stdout, "0\n1\n2\n3\n")
        self.assertEqual(reply["result"]["exceptions"], [])
        self.assertGreater(steps, 1)

    def test_the_end_of_a_run_waits_for_a_late_continue(self):
        """A client that polls less often than output comes (a web page asking every few
        seconds) must still get the run's last output and its exceptions."""
        kernel_id = self.create()
        reply = self.client.run_code(
            kernel_id, "print('a', flush=True)\nimport time\ntime.sleep(0.5)\nprint('b')\n"
                       "open('.done', 'w').close()\n1 / 0", mode="query", wait=0)
        self.assertEqual(reply["status"], "continued")
        stdout = reply["result"]["stdout"]
        wait_until(lambda: ".done" in [e["name"] for e in self.client.list_files(kernel_id)],
                   10, "the run writing its last file")
        reply = self.client.continue_run(kernel_id, wait=5)
        self.assertEqual(reply["status"], "finished")
        self.assertEqual(stdout + reply["result"]["stdout"], "a\nb\n")
        self.assertEqual(self.exception_names(reply["result"]), ["ZeroDivisionError"])
        # Asking again (a reply lost on the way, say) gets the same end, until a new run.
        self.assertEqual(self.client.continue_run(kernel_id), reply)

    def test_a_raw_req_socket_with_msgpack(self):
        kernel_id = self.create()
        sock = self.socket(zmq.REQ, self.agent.addr)

        def ask(request):
            sock.send(msgpack.packb(dict(request, kernel_id=kernel_id), use_bin_type=True))
            reply = msgpack.unpackb(self.receive(sock), raw=False)
            self.assertEqual(reply["reply"], 200, reply)
            return reply

        reply = ask({"action": "execute", "code": COUNT_A_LITTLE, "mode": "query",
                     "wait": 0.5})
        self.assertEqual(reply["status"], "continued")
        stdout = reply["result"]["stdout"]
        deadline = time.monotonic() + 15
        while reply["status"] != "finished":
            self.assertLess(time.monotonic(), deadline, "the run never finished")
            reply = ask({"action": "execute", "mode": "continue", "wait": 0.5})
            stdout += reply["result"]["stdout"]
        self.assertEqual(stdout, "0\n1\n2\n3\n")
        self.assertNotIn("partial", reply)


class InputTests(InteractiveTestCase):
    def test_input_is_asked_for_and_answered(self):
        kernel_id = self.create()
        reply = self.client.run_code(kernel_id, "name = input('Name? ')\nprint('hi', name)")
        self.assertEqual((reply["status"], reply["prompt"], reply["password"]),
                         ("waiting-input", "Name? ", False))
        reply = self.client.send_input(kernel_id, "Ada")
        self.assertEqual(reply["status"], "finished")
        self.assertEqual(reply["result"]["exceptions"], [])
        self.assertIn("hi Ada\n", reply["result"]["stdout"])
        self.assertEqual(self.stdout_of(kernel_id, "name"), "'Ada'\n")

    def test_getpass_asks_for_a_password(self):
        kernel_id = self.create()
        reply = self.client.run_code(kernel_id, "import getpass\nsecret = getpass.getpass()")
        self.assertEqual(reply["status"], "waiting-input")
        self.assertIs(reply["password"], True)
        reply = self.client.send_input(kernel_id, "s3cr3t")
        self.assertEqual(reply["status"], "finished")
        self.assertNotIn("s3cr3t", reply["result"]["stdout"])
        self.assertEqual(self.stdout_of(kernel_id, "secret"), "'s3cr3t'\n")

    def test_input_or_continue_when_nothing_waits(self):
        kernel_id = self.create()
        self.assertError(self.error_of(self.client.continue_run, kernel_id), 404, "no-run")
        self.assertError(self.error_of(self.client.send_input, kernel_id, "x"),
                         409, "not-waiting-input")

        reply = self.client.run_code(kernel_id, "import time\ntime.sleep(1)\n'slept'",
                                     mode="query", wait=0)
        self.assertEqual(reply["status"], "continued")
        self.assertError(self.error_of(self.client.send_input, kernel_id, "x"),
                         409, "not-waiting-input")
        reply = self.client.continue_run(kernel_id, wait=10)
        self.assertEqual((reply["status"], reply["result"]["stdout"]),
                         ("finished", "'slept'\n"), "the refused input disturbed the run")


class InterruptTests(InteractiveTestCase):
    def test_interrupt_stops_the_run_and_keeps_the_state(self):
        kernel_id = self.create()
        self.stdout_of(kernel_id, "x = 5")
        # A streaming DEALER, so that the first line says the sleep has begun.
        sock = self.socket(zmq.DEALER, self.agent.addr)
        sock.send_multipart([b"", msgpack.packb({
            "action": "execute", "id": "sleep", "kernel_id": kernel_id, "stream": True,
            "code": "import time\nprint('sleeping', flush=True)\ntime.sleep(60)"})])
        partial = msgpack.unpackb(self.receive(sock, 10), raw=False)
        self.assertTrue(partial.get("partial"), partial)
        self.assertEqual(partial["result"]["stdout"], "sleeping\n")

        asked = time.monotonic()
        self.assertEqual(self.client.interrupt(kernel_id)["interrupted"], True)
        reply = msgpack.unpackb(self.receive(sock, 10), raw=False)
        took = time.monotonic() - asked
        record("interrupt to the end of the run", took)
        self.assertEqual((reply["reply"], reply["status"]), (200, "finished"), reply)
        self.assertEqual(self.exception_names(reply["result"]), ["KeyboardInterrupt"])
        self.assertLess(took, 2.0)
        self.assertEqual(self.stdout_of(kernel_id, "x"), "5\n")

    def test_interrupt_of_an_idle_kernel_is_a_no_op(self):
        kernel_id = self.create()
        self.stdout_of(kernel_id, "x = 5")
        self.assertIs(self.client.interrupt(kernel_id)["interrupted"], False)
        self.assertEqual(self.stdout_of(kernel_id, "x"), "5\n")


class RestartTests(InteractiveTestCase):
    def test_restart_forgets_the_state_and_keeps_the_kernel(self):
        kernel_id = self.create()
        self.stdout_of(kernel_id, "x = 5")
        container = self.kernel_container(kernel_id)
        self.assertEqual(self.client.restart(kernel_id)["kernel_id"], kernel_id)
        result = self.client.execute(kernel_id, "x")
        self.assertEqual(self.exception_names(result), ["NameError"])
        self.assertEqual(self.stdout_of(kernel_id, "print(6 * 7)"), "42\n")
        self.assertEqual(self.kernel_container(kernel_id).id, container.id,
                         "a restart keeps the container")
        self.assertEqual(self.client.kernel_info(kernel_id)["kernel_id"], kernel_id)


class ExecTimeoutTests(InteractiveTestCase):
    def test_an_endless_loop_is_interrupted_and_the_state_kept(self):
        kernel_id = self.create(limits={"exec_timeout": 2})
        self.stdout_of(kernel_id, "x = 5")
        started = time.monotonic()
        error = self.error_of(self.client.execute, kernel_id, "while True: pass")
        took = time.monotonic() - started
        record("an endless loop until its 504 (exec_timeout 2 s)", took)
        self.assertError(error, 504, "exec-timeout")
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 5.0)
        self.assertEqual(self.stdout_of(kernel_id, "x"), "5\n")

    def test_a_loop_that_ignores_the_interrupt_costs_the_kernel(self):
        kernel_id = self.create(limits={"exec_timeout": 2})
        self.assertIsNotNone(self.kernel_container(kernel_id))
        error = self.error_of(self.client.execute, kernel_id,
                              "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                              "while True: pass")
        self.assertError(error, 504, "exec-timeout")
        wait_until(lambda: self.kernel_container(kernel_id) is None, 15,
                   "the stuck kernel's container going away")
        self.assertError(self.error_of(self.client.execute, kernel_id, "1"),
                         404, "kernel-not-found")


class MediaTests(InteractiveTestCase):
    def test_a_matplotlib_figure_becomes_png_and_svg(self):
        kernel_id = self.create()
        result = self.client.execute(
            kernel_id, "import matplotlib.pyplot as plt\n"
                       "fig = plt.figure(figsize=(4, 3), dpi=100)\nplt.plot([1, 2, 3])")
        self.assertEqual(result["exceptions"], [])
        media = dict(result["media"])
        self.assertEqual(sorted(media), ["image/png", "image/svg+xml"], result["media"])
        png = base64.b64decode(media["image/png"], validate=True)
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(png[12:16], b"IHDR")
        self.assertEqual(struct.unpack(">II", png[16:24]), (400, 300))
        self.assertTrue(media["image/svg+xml"].lstrip().startswith(("<?xml", "<svg")),
                        media["image/svg+xml"][:80])

    def test_html(self):
        kernel_id = self.create()
        result = self.client.execute(
            kernel_id, "import sorna_display\nsorna_display.html('<b>hi</b>')")
        self.assertEqual(result["exceptions"], [])
        self.assertIn(["text/html", "<b>hi</b>"], result["media"])


class MatchTests(InteractiveTestCase):
    def match(self, kernel_id, code, op, target, value):
        reply = self.client.run_code(kernel_id, code,
                                     match={"op": op, "target": target, "value": value})
        self.assertEqual(reply["status"], "finished")
        return reply["match_result"]

    def test_patterns(self):
        kernel_id = self.create()
        self.assertIs(self.match(kernel_id, "print(42)", "equal", "stdout", "42"), True)
        self.assertIs(self.match(kernel_id, "print(43)", "equal", "stdout", "42"), False)
        self.assertIs(self.match(kernel_id, "print('answer: 42')", "regex", "stdout",
                                 r"answer: \d+"), True)
        self.assertIs(self.match(kernel_id, "print('answer: none')", "regex", "stdout",
                                 r"answer: \d+"), False)
        self.assertIs(self.match(kernel_id, "import sys\nprint('oops', file=sys.stderr)",
                                 "contains", "stderr", "oop"), True)
        self.assertIs(self.match(kernel_id, "1 / 0", "contains", "exception",
                                 "ZeroDivisionError"), True)
        self.assertIs(self.match(kernel_id, "1 / 1", "contains", "exception",
                                 "ZeroDivisionError"), False)

    def test_an_invalid_regex_is_refused_before_running(self):
        kernel_id = self.create()
        error = self.error_of(self.client.run_code, kernel_id, "ran = True",
                              match={"op": "regex", "target": "stdout", "value": "("})
        self.assertEqual(error.code, 400, error.cause)
        result = self.client.execute(kernel_id, "ran")
        self.assertEqual(self.exception_names(result), ["NameError"],
                         "the refused execution must not have run")
