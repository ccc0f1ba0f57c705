"""The interpreter and compiled drivers' child handling (repl/runner/process_driver.py),
with real processes."""

import importlib.util
import os
import platform
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from sorna.testing.cluster import REPL_DIR

sys.path.insert(0, str(REPL_DIR / "runner"))
spec = importlib.util.spec_from_file_location("sorna_process_driver",
                                              REPL_DIR / "runner" / "process_driver.py")
process_driver = importlib.util.module_from_spec(spec)
spec.loader.exec_module(process_driver)

# Closes its pipe to the runner (fd 4) first, and only then exits: as an interpreter
# does at the end of a session.
LATE_EXIT = ["sh", "-c", "exec 4>&-; sleep 0.3; exit 3"]


class ReapTests(SynchronousTestCase):
    def spawn(self, argv):
        child = process_driver._Child("sh", terminate=None)
        r, w = os.pipe()
        try:
            child._spawn(argv, os.getcwd(), fds=((w, 4),))
        finally:
            os.close(r)
            os.close(w)
        return child

    def test_a_program_that_ends_on_its_own_is_given_time_to_exit(self):
        child = self.spawn(LATE_EXIT)
        status = child._reap(grace=process_driver.EXIT_GRACE)
        self.assertEqual(process_driver.describe_status(status),
                         ("ExitStatus", [3], "the program exited with status 3"))

    def test_without_grace_the_group_is_killed_at_once(self):
        child = self.spawn(LATE_EXIT)
        started = time.monotonic()
        status = child._reap()
        self.assertLess(time.monotonic() - started, 0.3)
        self.assertEqual(process_driver.describe_status(status)[:2], ("Signal", ["SIGKILL"]))

    def test_grace_ends_with_the_kill(self):
        child = self.spawn(["sleep", "30"])
        started = time.monotonic()
        status = child._reap(grace=0.2)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(process_driver.describe_status(status)[:2], ("Signal", ["SIGKILL"]))


# nanosleep, clock_nanosleep, futex (a thread's join)
SLEEPS = {"x86_64": {35, 230, 202}, "aarch64": {101, 115, 98}}

# Each program blocks in one way; the first ones wait for their standard input.
WAITS_FOR_STDIN = {
    "read": "import sys; sys.stdin.buffer.raw.read(1)",
    "poll": "import select; p = select.poll(); p.register(0, select.POLLIN); p.poll()",
    "select": "import select, os; r, w = os.pipe(); select.select([r, 0], [], [])",
    "epoll": "import select; e = select.epoll(); e.register(0, select.EPOLLIN); e.poll()",
    "poll of an epoll that holds it": "import select; e = select.epoll(); "
                                      "e.register(0, select.EPOLLIN); p = select.poll(); "
                                      "p.register(e.fileno(), select.POLLIN); p.poll()",
    "a thread's read": "import sys, threading; t = threading.Thread("
                       "target=sys.stdin.buffer.raw.read, args=(1,)); t.start(); t.join()",
}
WAITS_FOR_SOMETHING_ELSE = {
    "sleep": "import time; time.sleep(60)",
    "poll of another pipe": "import select, os; r, w = os.pipe(); p = select.poll(); "
                            "p.register(r, select.POLLIN); p.register(0, select.POLLOUT); "
                            "p.poll()",
    "select of another pipe": "import select, os; r, w = os.pipe(); "
                              "select.select([r], [0], [])",
    "epoll of another pipe": "import select, os; r, w = os.pipe(); e = select.epoll(); "
                             "e.register(r, select.EPOLLIN); e.poll()",
    "poll of an epoll of another pipe": "import select, os; r, w = os.pipe(); "
                                        "e = select.epoll(); e.register(r, select.EPOLLIN); "
                                        "p = select.poll(); "
                                        "p.register(e.fileno(), select.POLLIN); p.poll()",
}


class StdinWaitTests(SynchronousTestCase):
    """`reading_stdin` sees a program wait for its standard input however it waits."""

    def blocked(self, code):
        child = process_driver._Child("python3", terminate=None)
        child._spawn([sys.executable, "-c", code], os.getcwd())
        self.addCleanup(child.stop)
        calls = set().union(*process_driver.stdin_wait.CALLS.values(),
                            SLEEPS.get(platform.machine(), ()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # until every thread is in its blocking call
            tasks = os.listdir(f"/proc/{child.pid}/task")
            states = []
            for tid in tasks:
                with open(f"/proc/{child.pid}/task/{tid}/syscall") as f:
                    states.append(f.read().split()[0])
            if all(s.isdigit() and int(s) in calls for s in states) and len(tasks) == \
                    (2 if "thread" in code.lower() else 1):
                return child
            time.sleep(0.01)
        self.fail(f"the program never blocked: {code}")

    def test_waits_for_standard_input_are_seen(self):
        if not process_driver.stdin_wait.supported():
            self.fail("stdin_wait knows no syscalls of this machine")
        for name, code in WAITS_FOR_STDIN.items():
            self.assertTrue(self.blocked(code).reading_stdin(), name)

    def test_other_waits_are_not(self):
        for name, code in WAITS_FOR_SOMETHING_ELSE.items():
            self.assertFalse(self.blocked(code).reading_stdin(), name)

    def test_text_given_and_not_yet_read_is_no_new_wait(self):
        child = self.blocked(WAITS_FOR_STDIN["poll"])
        self.assertTrue(child.reading_stdin())
        os.write(child._stdin_w, b"x")
        self.assertFalse(child.reading_stdin())


class _Recorder:
    """A driver that records what reaches it."""

    language = "java"

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args)) or [name]


class SnippetDriverTests(SynchronousTestCase):
    """A whole program goes to the compiled driver, anything else to the snippets'
    interpreter; input and interrupts follow the run."""

    def setUp(self):
        self.snippets, self.programs = _Recorder(), _Recorder()
        self.driver = process_driver.SnippetDriver(
            self.snippets, self.programs, r"\bstatic\s+void\s+main\s*\(")

    def test_a_program_compiles_and_snippets_go_to_the_session(self):
        program = "class A { public static void main(String[] a) {} }"
        self.driver.run("int x = 41;")
        self.driver.feed("text", False)
        self.driver.run(program)
        self.driver.signal()
        self.assertEqual(self.snippets.calls, [("run", "int x = 41;"), ("feed", "text", False)])
        self.assertEqual(self.programs.calls, [("run", program), ("signal",)])

    def test_completion_and_inspection_ask_the_session(self):
        self.driver.run("class A { static void main(String[] a) {} }")
        self.driver.complete("Sys", 3)
        self.driver.inspect("x", 1)
        self.assertEqual([c[0] for c in self.snippets.calls], ["complete", "inspect"])
