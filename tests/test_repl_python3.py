"""Tests of the Python 3 REPL daemon, on the host and inside its kernel container.

The daemon is a separate program (it never imports sorna), so it is tested the way the
agent uses it: a real process, a real ZMQ DEALER, one msgpack map per frame.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import msgpack
import zmq
from twisted.trial.unittest import SynchronousTestCase

from tests.support import require_docker, require_image

RUN_PY = Path(__file__).resolve().parent.parent / "repl" / "python3" / "run.py"
TIMEOUT = 10.0


class Peer:
    """A DEALER talking to the daemon, never waiting longer than `timeout`."""

    def __init__(self, endpoint):
        self.context = zmq.Context()
        self.sock = self.context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def request(self, message, timeout=TIMEOUT):
        payload = message if isinstance(message, bytes) else msgpack.packb(message)
        self.sock.send(payload)
        if not self.sock.poll(timeout * 1000):
            raise AssertionError(f"no reply within {timeout}s to {message!r}")
        return msgpack.unpackb(self.sock.recv(), raw=False)

    def close(self):
        self.sock.close()
        self.context.term()


def short_tempdir(testcase):
    """A temp folder with a short path: ipc:// paths must fit in sun_path (108 bytes)."""
    path = tempfile.mkdtemp(prefix="sorna-repl-")
    testcase.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class DaemonTests(SynchronousTestCase):
    def setUp(self):
        self.dir = short_tempdir(self)
        self.socket_path = os.path.join(self.dir, "repl")
        self.log = open(os.path.join(self.dir, "daemon.log"), "wb")
        self.addCleanup(self.log.close)
        env = dict(os.environ, SORNA_REPL_ENDPOINT=f"ipc://{self.socket_path}")
        self.proc = subprocess.Popen([sys.executable, "-I", str(RUN_PY)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop)
        self.peer = Peer(f"ipc://{self.socket_path}")
        self.addCleanup(self.peer.close)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT)

    def execute(self, code, id=1):
        reply = self.peer.request({"action": "execute", "id": id, "code": code})
        self.assertEqual(reply["reply"], 200, reply)
        self.assertEqual(reply["id"], id)
        return reply

    def assertInvalid(self, message):
        reply = self.peer.request(message)
        self.assertEqual(reply["reply"], 400, reply)
        self.assertEqual(reply["error"], "invalid-input")
        self.assertIsInstance(reply["cause"], str)
        self.assertTrue(reply["cause"])
        self.assertAlive()
        return reply

    def assertAlive(self):
        self.assertEqual(self.peer.request({"action": "ping", "id": "alive"}),
                         {"id": "alive", "reply": 0})

    def test_ping(self):
        self.assertEqual(self.peer.request({"action": "ping", "id": 7}),
                         {"id": 7, "reply": 0})

    def test_print_goes_to_stdout(self):
        reply = self.execute("print('hello')\nprint('world')")
        self.assertEqual(reply["stdout"], "hello\nworld\n")
        self.assertEqual(reply["stderr"], "")
        self.assertEqual(reply["exceptions"], [])
        self.assertEqual(reply["media"], [])
        self.assertEqual(reply["files"], [])

    def test_stderr(self):
        reply = self.execute("import sys\nprint('oops', file=sys.stderr)")
        self.assertEqual(reply["stdout"], "")
        self.assertEqual(reply["stderr"], "oops\n")

    def test_state_is_kept(self):
        self.execute("x = 20\ndef double(n):\n    return 2 * n")
        self.assertEqual(self.execute("print(double(x) + 2)")["stdout"], "42\n")

    def test_last_expression_is_shown(self):
        self.assertEqual(self.execute("6*7")["stdout"], "42\n")
        self.assertEqual(self.execute("a = 'x'\na")["stdout"], "'x'\n")
        self.assertEqual(self.execute("None")["stdout"], "")
        self.assertEqual(self.execute("y = 5")["stdout"], "")
        self.assertEqual(self.execute("print(1)")["stdout"], "1\n")

    def test_runtime_error(self):
        reply = self.execute("def f():\n    return 1 / 0\nf()")
        [(name, args, before, tb)] = reply["exceptions"]
        self.assertEqual(name, "ZeroDivisionError")
        self.assertEqual(args, ["division by zero"])
        self.assertIs(before, False)
        self.assertIn('File "<input>", line 3', tb)
        self.assertIn('File "<input>", line 2, in f', tb)
        self.assertNotIn("run.py", tb)

    def test_exception_args_are_made_safe(self):
        reply = self.execute("raise ValueError('a', 1, None, 2.5, True, [1], 2**70)")
        [(name, args, _, _)] = reply["exceptions"]
        self.assertEqual(args, ["a", 1, None, 2.5, True, "[1]", str(2**70)])

    def test_syntax_error_is_raised_before_exec(self):
        reply = self.execute("print('not run')\nx = (")
        self.assertEqual(reply["stdout"], "")
        [(name, args, before, tb)] = reply["exceptions"]
        self.assertEqual(name, "SyntaxError")
        self.assertIs(before, True)
        self.assertIn("<input>", tb)
        self.assertNotIn("run.py", tb)

    def test_null_byte_is_raised_before_exec(self):
        [(name, _, before, _)] = self.execute("a\x00b")["exceptions"]
        self.assertIn(name, ("SyntaxError", "ValueError"))
        self.assertIs(before, True)

    def test_system_exit_and_keyboard_interrupt_are_reported(self):
        for code, name in (("raise SystemExit(3)", "SystemExit"),
                           ("import sys; sys.exit('bye')", "SystemExit"),
                           ("raise KeyboardInterrupt", "KeyboardInterrupt")):
            [exc] = self.execute(code)["exceptions"]
            self.assertEqual(exc[0], name)
            self.assertIs(exc[2], False)
            self.assertAlive()

    def test_streams_restored_after_user_replaces_them(self):
        self.execute("import io, sys\nsys.stdout = io.StringIO()\nsys.stderr = None")
        reply = self.execute("print('back')\nprint('err', file=sys.stderr)")
        self.assertEqual(reply["stdout"], "back\n")
        self.assertEqual(reply["stderr"], "err\n")

    def test_streams_restored_after_user_deletes_them(self):
        self.execute("import sys\ndel sys.stdout")
        self.assertEqual(self.execute("print('back')")["stdout"], "back\n")

    def test_unencodable_output(self):
        reply = self.execute("print('\\udcff')\n"
                             "import sys\n"
                             "n = sys.stdout.buffer.write(b'ok\\n')")
        self.assertEqual(reply["stdout"], "\\udcff\nok\n")

    def test_garbage_bytes(self):
        self.assertIsNone(self.assertInvalid(b"\xc1 not msgpack")["id"])

    def test_not_a_map(self):
        self.assertInvalid(msgpack.packb(["execute", "print(1)"]))

    def test_unknown_action(self):
        reply = self.assertInvalid({"action": "explode", "id": 3})
        self.assertEqual(reply["id"], 3)
        self.assertIn("explode", reply["cause"])

    def test_missing_action(self):
        self.assertInvalid({"id": 4})

    def test_code_of_wrong_type(self):
        for code in (None, 5, b"print(1)", ["print(1)"]):
            msg = {"action": "execute", "id": 5}
            if code is not None:
                msg["code"] = code
            reply = self.assertInvalid(msg)
            self.assertEqual(reply["id"], 5)
            self.assertIn("code", reply["cause"])

    def test_sigterm_exits_cleanly(self):
        self.assertAlive()
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(TIMEOUT), 0)
        self.assertFalse(os.path.exists(self.socket_path))


class ContainerTests(SynchronousTestCase):
    """The same daemon in its hardened kernel container, reached over a shared dir."""

    def test_ping_and_execute_in_container(self):
        client = require_docker()
        require_image(client, "sorna/kernel-python3:latest")
        ipc_dir = short_tempdir(self)
        os.chown(ipc_dir, 1000, 1000)
        container = client.containers.run(
            "sorna/kernel-python3:latest", detach=True, user="1000:1000",
            network_mode="none", read_only=True, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], pids_limit=64,
            mem_limit="256m", memswap_limit="256m",
            volumes={ipc_dir: {"bind": "/ipc", "mode": "rw"}},
            tmpfs={"/tmp": "size=64m", "/home/work": "size=64m,uid=1000,gid=1000"})
        self.addCleanup(container.remove, force=True)
        peer = Peer(f"ipc://{ipc_dir}/repl")
        self.addCleanup(peer.close)

        self.assertEqual(peer.request({"action": "ping", "id": 1}, timeout=30),
                         {"id": 1, "reply": 0})
        reply = peer.request({"action": "execute", "id": 2, "code": (
            "import os\n"
            "open('note.txt', 'w').write('x')\n"
            "print(os.getuid(), os.getcwd(), os.listdir('.'))\n"
            "6*7")})
        self.assertEqual(reply["reply"], 200, reply)
        self.assertEqual(reply["stdout"], "1000 /home/work ['note.txt']\n42\n")
        self.assertEqual(reply["exceptions"], [])

        container.stop(timeout=10)  # SIGTERM: the daemon must exit by itself
        self.assertEqual(container.wait(timeout=30)["StatusCode"], 0)
