"""A real `redis-server` process for tests: on a free 127.0.0.1 port, in a folder of its
own, persisting nothing. It can be stopped and started again on the same port (Redis
down for a while) or frozen with SIGSTOP (Redis hanging).

    server = RedisServer().start()
    table = RedisCapacityTable(server.url, "test:", reactor, agent_timeout=9)
    server.call("KEYS", "test:*")
    server.stop(); server.start()  # same port, empty again
    server.remove()

Waits poll a condition until a deadline; nothing sleeps for luck.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from sorna.testing.processes import LOOPBACK, ProcessError, free_port


def redis_server_path():
    """The redis-server executable, or None when it is not installed."""
    return shutil.which("redis-server")


class RedisServer:
    def __init__(self, port=None, executable=None):
        self.executable = executable or redis_server_path()
        if self.executable is None:
            raise ProcessError("redis-server is not installed (Debian: apt-get install "
                               "redis-server)")
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix="sorna-redis-")
        self.log_path = os.path.join(self.workdir, "redis.log")
        self.process = None

    @property
    def url(self):
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self):
        return [self.executable, "--port", str(self.port), "--bind", LOOPBACK,
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--logfile", self.log_path, "--daemonize", "no"]

    # -- life cycle
    def start(self, timeout=10.0):
        """Start (again, on the same port after `stop`) and wait until PING answers."""
        if self.alive():
            raise ProcessError(f"redis-server on port {self.port} is already running")
        self.process = subprocess.Popen(self.command(), cwd=self.workdir,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None:
                raise ProcessError(f"redis-server exited with status "
                                   f"{self.process.returncode} on port {self.port}; "
                                   f"log:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise ProcessError(f"redis-server did not answer PING on port "
                                   f"{self.port} within {timeout:g} s; log:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.01)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Safe to call more than once."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.resume()  # a stopped process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def restart(self, timeout=10.0):
        self.stop()
        return self.start(timeout)

    def pause(self):
        """Freeze the server (SIGSTOP): connections stay open, nothing answers."""
        if self.alive():
            self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        if self.alive():
            self.process.send_signal(signal.SIGCONT)

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def remove(self):
        """Stop and delete the folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- talking to it
    def ping(self):
        try:
            return self.call("PING", timeout=1.0) == "PONG"
        except OSError:
            return False

    def call(self, *args, timeout=5.0):
        """One command over a fresh connection; the reply as Python values (bulk
        strings as bytes, errors raised as RedisReplyError)."""
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as sock:
            sock.sendall(_encode(args))
            return _Reader(sock).read()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


class RedisReplyError(Exception):
    """An error reply (`-ERR ...`) from Redis."""


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif not isinstance(arg, bytes):
            arg = str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class _Reader:
    """Just enough RESP2 for test assertions."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _line(self):
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis-server closed the connection")
        self.buffer += chunk

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buffer) < n + 2:
                self._fill()
            data, self.buffer = self.buffer[:n], self.buffer[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ConnectionError(f"unexpected reply from redis-server: {line[:80]!r}")
