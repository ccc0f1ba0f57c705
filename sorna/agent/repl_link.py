"""The agent's end of a kernel's REPL link: a Unix stream socket in the kernel's ipc
folder, carrying frames of a 4-byte big-endian length and one msgpack map.

Not ZMQ, because the daemon at the other end is as hostile as the code in its kernel:
ZMQ receives a multipart message whole before anyone can look at it, and bounds only
each part's size, so one kernel could make the agent hold gigabytes. Here the agent
reads with Twisted, frame by frame: a frame announcing more than `max_frame` bytes
ends the link before its body is read, the buffer never holds more than one frame
plus one read, and at most `frames_per_turn` frames are handled before the reactor
serves everyone else.

The socket is opened without following links (`O_PATH | O_NOFOLLOW`, then connected
through `/proc/self/fd`), so a kernel that puts a symlink in place of its socket can
never make the agent, root on the host, connect to a host socket.
"""

import os
import stat
import struct

from twisted.internet import protocol
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.logger import Logger

log = Logger(namespace="sorna.agent")

HEADER = struct.Struct(">I")
RECONNECT_FIRST = 0.02
RECONNECT_MAX = 1.0
# A daemon binds its socket within a few seconds of its start (or restart): look every
# RECONNECT_FIRST seconds that long, then back off. Doubling from the start made a
# creation wait up to twice as long as the daemon took to start.
FAST_RECONNECT_FOR = 5.0
MAX_QUEUED = 16  # frames sent while the daemon is not connected (starting, restarting)


def frame(payload):
    return HEADER.pack(len(payload)) + payload


class _FrameReader(protocol.Protocol):
    def __init__(self, link):
        self.link = link
        self._buffer = bytearray()
        self._resume = None

    def connectionMade(self):
        self.link._connected(self)

    def dataReceived(self, data):
        self._buffer += data
        if self._resume is None:
            self._drain()

    def _drain(self):
        self._resume = None
        link, buffer, start, handled = self.link, self._buffer, 0, 0
        try:
            while len(buffer) - start >= HEADER.size:
                (size,) = HEADER.unpack_from(buffer, start)
                if size > link.max_frame:
                    link._violation(f"it sent a frame of {size} bytes, more than the "
                                    f"{link.max_frame} the REPL protocol allows")
                    return
                if len(buffer) - start < HEADER.size + size:
                    break
                if handled == link.frames_per_turn:
                    # Enough for one turn: let the reactor serve the others first.
                    self.transport.pauseProducing()
                    self._resume = link.clock.callLater(0, self._continue)
                    break
                payload = bytes(buffer[start + HEADER.size:start + HEADER.size + size])
                start += HEADER.size + size
                handled += 1
                link.on_message(payload)
                if link.closed:
                    return
        finally:
            del buffer[:start]

    def _continue(self):
        self._drain()
        if self._resume is None and self.transport is not None:
            self.transport.resumeProducing()

    def connectionLost(self, reason):
        if self._resume is not None and self._resume.active():
            self._resume.cancel()
        self._resume = None
        self.link._lost(self)


class ReplLink:
    """Connects to `path` and keeps reconnecting (the daemon re-creates its socket when
    it restarts) until `close()`. `on_message(payload)` gets each frame's payload;
    `on_violation(cause)` is told once, when the daemon breaks the framing rules (the
    link is closed then)."""

    def __init__(self, reactor, clock, path, on_message, on_violation, max_frame,
                 frames_per_turn):
        self.reactor = reactor
        self.clock = clock
        self.path = path
        self.on_message = on_message
        self.on_violation = on_violation
        self.max_frame = max_frame
        self.frames_per_turn = frames_per_turn
        self.closed = False
        self._protocol = None
        self._queued = []
        self._retry = None
        self._delay = RECONNECT_FIRST
        self._since = self.clock.seconds()  # when the looking began
        self._connect()

    def send(self, payload):
        """Send one frame. While no daemon is connected (it is starting or restarting)
        the last MAX_QUEUED frames wait and go out once it is; the agent's own timeouts
        and pings cover whatever is dropped."""
        if self.closed:
            return
        if self._protocol is None:
            self._queued.append(payload)
            del self._queued[:-MAX_QUEUED]
            return
        transport = self._protocol.transport
        transport.write(frame(payload))
        # Twisted writes at the reactor's next turn; writing now spares an execute that
        # turn (its epoll wait and callbacks) on its way to the daemon. What the socket
        # cannot take stays buffered, and an error is the reactor's to see next turn.
        transport.doWrite()

    def close(self):
        self.closed = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._protocol is not None:
            self._protocol.transport.abortConnection()
            self._protocol = None

    def _connect(self):
        self._retry = None
        if self.closed:
            return
        try:
            fd = os.open(self.path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            self._later()  # not bound yet (or gone while the daemon restarts)
            return
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                log.warn("{path} is not a socket (a link, or a file put there by the "
                         "kernel); not connecting to it", path=self.path)
                os.close(fd)
                self._later()
                return
        except OSError:
            os.close(fd)
            self._later()
            return
        endpoint = UNIXClientEndpoint(self.reactor, f"/proc/self/fd/{fd}", timeout=5)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: _FrameReader(self)))

        def done(result):
            os.close(fd)
            if isinstance(result, protocol.Protocol):
                return None
            self._later()  # refused: the daemon is not listening (yet, or any more)
            return None

        d.addBoth(done)

    def _later(self):
        if not self.closed:
            self._retry = self.clock.callLater(self._delay, self._connect)
            if self.clock.seconds() - self._since >= FAST_RECONNECT_FOR:
                self._delay = min(self._delay * 2, RECONNECT_MAX)

    def _connected(self, reader):
        if self.closed:
            reader.transport.abortConnection()
            return
        self._protocol = reader
        self._delay = RECONNECT_FIRST
        queued, self._queued = self._queued, []
        reader.transport.write(b"".join(frame(p) for p in queued))

    def _lost(self, reader):
        if self._protocol is reader:
            self._protocol = None
            self._since = self.clock.seconds()  # a restart: its daemon binds again soon
            self._later()

    def _violation(self, cause):
        if not self.closed:
            self.close()
            self.on_violation(cause)


class UnixReplLinks:
    """Opens ReplLinks on the real reactor."""

    def __init__(self, reactor, clock=None):
        self.reactor = reactor
        self.clock = clock or reactor

    def open(self, path, on_message, on_violation, max_frame, frames_per_turn=64):
        return ReplLink(self.reactor, self.clock, path, on_message, on_violation,
                        max_frame, frames_per_turn)


__all__ = ["ReplLink", "UnixReplLinks", "frame", "HEADER"]
