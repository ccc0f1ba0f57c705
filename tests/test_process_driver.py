"""The interpreter and compiled drivers' child handling (repl/runner/process_driver.py),
with real processes."""

import importlib.util
import os
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
