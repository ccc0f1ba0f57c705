"""The interactive side of the `sorna` command, as a person at a terminal uses it: `exec`
streaming and answering input, `shell` (under a pseudo-terminal, so that Ctrl-C and
Ctrl-D mean what they do for a person), and `cp`."""

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

from sorna.proto.errors import KernelNotFound
from tests.integration import ClusterTestCase
from tests.support import temp_folder

CLI = [sys.executable, "-m", "sorna.client.cli"]
CLI_TIMEOUT = 60.0
EXPECT_TIMEOUT = 20.0
PROMPT = ">>> "


class Terminal:
    """The `sorna` command in a pseudo-terminal of its own (its controlling terminal, so
    that `\\x03` is a SIGINT and `\\x04` an end of file), read with deadlines."""

    def __init__(self, args, env):
        pid, fd = pty.fork()
        if pid == 0:  # the child: nothing but exec
            try:
                # An ignored SIGINT survives exec, and Python then installs no
                # KeyboardInterrupt: tests started in the background (`cmd &` in a
                # script) would see Ctrl-C do nothing. A person's terminal has it default.
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.execve(CLI[0], CLI + list(args), env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.output = ""  # everything read so far, with the terminal's \r\n
        self.position = 0  # where the next `expect` starts looking
        self.status = None

    def send(self, text):
        os.write(self.fd, text.encode())

    def _read(self, timeout):
        if not select.select([self.fd], [], [], max(timeout, 0))[0]:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            return None
        self.output += data.decode("utf-8", "replace")
        return True

    def expect(self, pattern, timeout=EXPECT_TIMEOUT):
        """Wait until the output after the last match matches `pattern` (regex or str);
        return the match and move past it."""
        if isinstance(pattern, str):
            pattern = re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            match = pattern.search(self.output, self.position)
            if match:
                self.position = match.end()
                return match
            left = deadline - time.monotonic()
            if left <= 0 or self._read(left) is None:
                raise AssertionError(
                    f"the terminal never showed {pattern.pattern!r} (exit status "
                    f"{self.poll()}); after the last match it showed:\n"
                    f"{self.output[self.position:]!r}")

    def poll(self):
        """The exit status once the command has ended, else None."""
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status

    def wait(self, timeout=EXPECT_TIMEOUT):
        """Read until the command exits; return its exit status."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"sorna did not exit within {timeout:g} s; it showed:\n"
                                     f"{self.output[self.position:]!r}")
            if self._read(min(left, 0.1)) is None:
                time.sleep(0.01)  # the terminal is closed; the exit is a moment away
        return self.status

    def close(self):
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


class ShellTestCase(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.env = dict(os.environ, SORNA_MANAGER_ADDR=self.manager.addr, TERM="dumb")

    def sorna(self, *args, stdin=None, cwd=None):
        return subprocess.run(CLI + list(args), env=self.env, input=stdin, cwd=cwd,
                              capture_output=True, text=True, timeout=CLI_TIMEOUT)

    def terminal(self, *args):
        terminal = Terminal(args, self.env)
        self.addCleanup(terminal.close)
        return terminal

    def assertNoContainers(self):
        self.assertEqual(self.containers_of(self.agent), [], "the command left its kernel")


class ExecTests(ShellTestCase):
    def test_exec_prints_and_exits_0(self):
        done = self.sorna("exec", "python3", "for i in range(3): print(i)")
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, "0\n1\n2\n", ""))
        self.assertNoContainers()

    def test_exec_streams_output_before_the_code_ends(self):
        terminal = self.terminal("exec", "python3", "import time\nprint('first', flush=True)\n"
                                                    "time.sleep(3)\nprint('last')")
        terminal.expect("first\r\n")
        self.assertIsNone(terminal.poll(), "the first line came only at the end")
        terminal.expect("last\r\n")
        self.assertEqual(terminal.wait(), 0)
        self.assertNoContainers()

    def test_exec_answers_input_from_the_terminal(self):
        terminal = self.terminal("exec", "python3", "name = input('Name? ')\nprint('hi', name)")
        terminal.expect("Name? ")
        terminal.send("Ada\r")
        terminal.expect("hi Ada\r\n")
        self.assertEqual(terminal.wait(), 0)
        self.assertNoContainers()

    def test_exec_answers_input_from_piped_stdin(self):
        done = self.sorna("exec", "python3",
                          "a = input('First? ')\nb = input('Second? ')\nprint(a + b)",
                          stdin="4\n2\n")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout, "First? Second? 42\n")
        self.assertNoContainers()


class ShellTests(ShellTestCase):
    def test_a_session(self):
        terminal = self.terminal("shell", "python3")
        kernel_id = terminal.expect(re.compile(r"kernel ([A-Za-z0-9_-]{22})")).group(1)
        terminal.expect(PROMPT)

        terminal.send("x = 6\r")
        terminal.expect(PROMPT)
        terminal.send("print(x * 7)\r")
        terminal.expect("\r\n42\r\n")
        terminal.expect(PROMPT)

        # A block: continuation lines until an empty one.
        terminal.send("for i in range(3):\r")
        terminal.expect("... ")
        terminal.send("    print(i * 10)\r")
        terminal.expect("... ")
        terminal.send("\r")
        terminal.expect("0\r\n10\r\n20\r\n")
        terminal.expect(PROMPT)

        terminal.send("name = input('Name? ')\r")
        terminal.expect("Name? ")
        terminal.send("Ada\r")
        terminal.expect(PROMPT)
        terminal.send("print('hi', name)\r")
        terminal.expect("hi Ada\r\n")
        terminal.expect(PROMPT)

        # Ctrl-C interrupts the code, not the shell.
        terminal.send("import time; print('sleeping', flush=True); time.sleep(30)\r")
        terminal.expect("sleeping\r\n")
        interrupted = time.monotonic()
        terminal.send("\x03")
        terminal.expect("KeyboardInterrupt")
        terminal.expect(PROMPT, timeout=10)
        self.assertLess(time.monotonic() - interrupted, 10)
        self.assertIsNone(terminal.poll(), "Ctrl-C ended the shell")
        terminal.send("print(x)\r")
        terminal.expect("\r\n6\r\n")
        terminal.expect(PROMPT)

        # Ctrl-D leaves, and takes the kernel along.
        terminal.send("\x04")
        self.assertEqual(terminal.wait(), 0, terminal.output[-2000:])
        self.assertNoContainers()
        self.assertRaises(KernelNotFound, self.client(self.manager).kernel_info, kernel_id)


class CopyTests(ShellTestCase):
    def test_copy_to_a_kernel_and_back(self):
        client = self.client(self.manager)
        kernel_id = client.create("python3")["kernel_id"]
        self.destroy_later(client, kernel_id)
        folder = temp_folder(self)
        data = "línea uno\nline two\n".encode() + bytes(range(256))
        with open(os.path.join(folder, "local.txt"), "wb") as f:
            f.write(data)

        done = self.sorna("cp", "local.txt", f"{kernel_id}:remote.txt", cwd=folder)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        result = client.execute(kernel_id, "len(open('remote.txt', 'rb').read())")
        self.assertEqual(result["stdout"], f"{len(data)}\n")

        done = self.sorna("cp", f"{kernel_id}:remote.txt", "back.txt", cwd=folder)
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        with open(os.path.join(folder, "back.txt"), "rb") as f:
            self.assertEqual(f.read(), data)

