"""The `sorna` command as a user runs it: a subprocess against a real cluster."""

import os
import subprocess
import sys
import time

from twisted.trial.unittest import SynchronousTestCase

from sorna.testing.processes import free_port
from tests.integration import ClusterTestCase

CLI_TIMEOUT = 60.0


def sorna(*args, manager, stdin=None):
    env = dict(os.environ, SORNA_MANAGER_ADDR=manager)
    return subprocess.run([sys.executable, "-m", "sorna.client.cli", *args], env=env,
                          input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT)


class CliTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()

    def sorna(self, *args, manager=None, stdin=None):
        return sorna(*args, manager=manager or self.manager.addr, stdin=stdin)

    def assertNoContainers(self):
        self.assertEqual(self.containers_of(self.agent), [],
                         "sorna exec left its kernel behind")

    def test_exec_prints_output(self):
        done = self.sorna("exec", "python3", "print(6*7)")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "42\n", ""))
        self.assertNoContainers()

    def test_exec_of_raising_code_exits_1_with_the_traceback(self):
        done = self.sorna("exec", "python3", "print('partial')\n{}['missing']")
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertEqual(done.stdout, "partial\n")
        self.assertIn("Traceback (most recent call last)", done.stderr)
        self.assertIn("KeyError: 'missing'", done.stderr)
        self.assertNoContainers()

    def test_exec_of_a_syntax_error(self):
        done = self.sorna("exec", "python3", "def (")
        self.assertEqual(done.returncode, 1)
        self.assertIn("SyntaxError", done.stderr)
        self.assertNoContainers()

    def test_exec_file_and_stdin(self):
        path = os.path.join(self.mktemp() + ".py")
        with open(path, "w") as f:
            f.write("import sys\nfor i in range(3):\n    print(i)\n"
                    "print('warn', file=sys.stderr)\n")
        done = self.sorna("exec", "python3", "-f", path)
        self.assertEqual((done.returncode, done.stdout, done.stderr),
                         (0, "0\n1\n2\n", "warn\n"))
        done = self.sorna("exec", "python3", "-f", "-", stdin="print('from stdin')")
        self.assertEqual((done.returncode, done.stdout), (0, "from stdin\n"))
        done = self.sorna("exec", "python3", "-f", path + ".missing")
        self.assertEqual(done.returncode, 2)
        self.assertIn("cannot read", done.stderr)
        self.assertNoContainers()

    def test_run_a_program_with_its_arguments_files_and_exit_status(self):
        folder = self.mktemp()
        os.makedirs(folder)
        for name, content in (("solve.py", "import sys, helper\nprint(sys.argv[1:])\n"
                                           "helper.shout(input())\nsys.exit(4)\n'silent'\n"),
                              ("helper.py", "def shout(text): print(text.upper())\n")):
            with open(os.path.join(folder, name), "w") as f:
                f.write(content)
        done = self.sorna("run", "--with", os.path.join(folder, "helper.py"), "python3",
                          os.path.join(folder, "solve.py"), "a", "b c", "--x",
                          stdin="hi\n")
        self.assertEqual((done.returncode, done.stdout, done.stderr),
                         (4, "['a', 'b c', '--x']\nHI\n", ""))
        self.assertNoContainers()

    def test_the_end_of_its_stdin_ends_the_programs(self):
        done = self.sorna("exec", "python3", "import sys\nn = 0\nfor line in sys.stdin:\n"
                          "    n += 1\nprint('lines:', n)", stdin="a\nb\n")
        self.assertEqual((done.returncode, done.stdout), (0, "lines: 2\n"), done.stderr)
        self.assertNoContainers()

    def test_manager_option(self):
        done = self.sorna("--manager", self.manager.addr, "exec", "python3", "print(1)",
                          manager="tcp://127.0.0.1:1")
        self.assertEqual((done.returncode, done.stdout), (0, "1\n"), done.stderr)
        self.assertNoContainers()

    def test_status_lists_the_agent(self):
        done = self.sorna("status")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("1 agents", done.stdout)
        self.assertIn(self.agent.agent_id, done.stdout)
        self.assertIn(self.agent.addr, done.stdout)
        self.assertIn("python3", done.stdout)

    def test_unknown_language(self):
        done = self.sorna("exec", "intercal", "PLEASE READ OUT #1")
        self.assertEqual(done.returncode, 3)
        self.assertIn("unknown language 'intercal'", done.stderr)
        self.assertIn("python3", done.stderr)


class DeadManagerTests(SynchronousTestCase):
    def test_dead_manager_address(self):
        dead = f"tcp://127.0.0.1:{free_port()}"
        for args in (["status"], ["exec", "python3", "print(1)"]):
            started = time.monotonic()
            done = sorna("--timeout", "2", *args, manager=dead)
            elapsed = time.monotonic() - started
            self.assertEqual(done.returncode, 3, done)
            self.assertIn("got no reply within 2 s", done.stderr)
            self.assertIn(dead, done.stderr)
            self.assertNotIn("Traceback", done.stderr)
            self.assertLess(elapsed, 15, "--timeout 2 was not honoured")
