"""A blocking client of a REPL daemon's Unix socket (frames of a 4-byte big-endian
length and one msgpack map), for tests, benchmarks and tools beside the agent.

It connects lazily and again after the daemon went away (a restart replaces the
process and its socket), as the agent's own link does.
"""

import select
import socket
import struct
import time

import msgpack

HEADER = struct.Struct(">I")


class ReplSocket:
    def __init__(self, path, connect_timeout=10.0):
        self.path = path
        self.connect_timeout = connect_timeout
        self._sock = None
        self._in = bytearray()

    def _connect(self):
        deadline = time.monotonic() + self.connect_timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                self._sock, self._in = sock, bytearray()
                return
            except OSError:
                sock.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def send(self, message):
        """Send a map (packed here) or raw payload bytes as one frame."""
        payload = message if isinstance(message, bytes) else msgpack.packb(
            message, use_bin_type=True)
        for attempt in (1, 2):  # once more on a fresh connection if the old one ended
            if self._sock is None:
                self._connect()
            try:
                self._sock.sendall(HEADER.pack(len(payload)) + payload)
                return
            except OSError:
                self._drop()
                if attempt == 2:
                    raise

    def poll(self, timeout):
        """Whether a whole frame is there within `timeout` seconds (False also when the
        daemon closed the connection)."""
        deadline = time.monotonic() + timeout
        while not self._complete():
            left = deadline - time.monotonic()
            if self._sock is None or left <= 0:
                return False
            readable, _, _ = select.select([self._sock], [], [], left)
            if not readable:
                return False
            try:
                data = self._sock.recv(262144)
            except OSError:
                data = b""
            if not data:
                self._drop()
                return False
            self._in += data
        return True

    def recv(self, timeout=10.0):
        """The next frame's payload; TimeoutError when none comes."""
        if not self.poll(timeout):
            raise TimeoutError(f"no message from {self.path} within {timeout:g} s")
        (size,) = HEADER.unpack_from(self._in)
        payload = bytes(self._in[HEADER.size:HEADER.size + size])
        del self._in[:HEADER.size + size]
        return payload

    def recv_message(self, timeout=10.0):
        return msgpack.unpackb(self.recv(timeout), raw=False)

    def _complete(self):
        if len(self._in) < HEADER.size:
            return False
        return len(self._in) >= HEADER.size + HEADER.unpack_from(self._in)[0]

    def _drop(self):
        if self._sock is not None:
            self._sock.close()
        self._sock = None

    def close(self):
        self._drop()
