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

import signal
import socket

from sorna.testing.processes import LOOPBACK
from sorna.testing.servers import ServerProcess


class RedisServer(ServerProcess):
    name = "redis-server"
    install_hint = "Debian: apt-get install redis-server"
    short_name = "redis"
    ready_what = "answer PING"
    start_timeout = 10.0
    poll_interval = 0.01
    output_to_log = False  # redis-server writes the log file itself (--logfile)

    @property
    def url(self):
        return f"redis://{LOOPBACK}:{self.port}/0"

    def command(self):
        return [self.executable, "--port", str(self.port), "--bind", LOOPBACK,
                "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--logfile", self.log_path, "--daemonize", "no"]

    def ready(self):
        return self.ping()

    # -- life cycle
    def stop(self, timeout=10.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL. Safe to call more than once."""
        self.resume()  # a stopped process cannot act on SIGTERM
        return super().stop(timeout)

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


def redis_server_path():
    """The redis-server executable, or None when it is not installed."""
    return RedisServer.executable_path()


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
