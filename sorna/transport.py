"""ZMQ sockets behind a small interface of our own, so tests can swap in a fake network.

`ZmqTransport` opens real txzmq sockets; `sorna.testing.transport.FakeNetwork` offers the
same methods in memory. Both pass `tests/test_transport.py`.
"""

import zmq
from twisted.logger import Logger
from txzmq import ZmqEndpoint, ZmqEndpointType, ZmqFactory
from txzmq.router_dealer import ZmqDealerConnection, ZmqRouterConnection

log = Logger()

# ZMQ drops (and disconnects) senders of larger frames before they reach us; below it,
# the protocol's own limit answers 413.
HARD_FRAME_LIMIT = 64 << 20
# Messages one socket hands over per reactor turn; then the others get theirs.
MESSAGES_PER_TURN = 64
# What ZMQ keeps for one peer, in either direction (txzmq's default, 0, is unbounded).
HIGH_WATER_MARK = 1000


# pyzmq's constants are enums, and every operation on one builds a new enum object.
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
_NOBLOCK, _MORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)


class _Fair:
    """txzmq drains a socket until it is empty, so one busy peer would keep the reactor
    to itself: read at most MESSAGES_PER_TURN, then come back on the next turn."""

    def send(self, message):
        """As txzmq's, but the read it schedules after every send (a send can take the
        edge of ZMQ's descriptor) is scheduled only when a message is waiting: a reply
        then costs no extra reactor turn."""
        sock = self.socket
        for part in message[:-1]:
            sock.send(part, _MORE)
        sock.send(message[-1], _NOBLOCK)
        if (self.read_scheduled is None and self.factory is not None
                and sock.get(_EVENTS) & _POLLIN):
            self.read_scheduled = self.factory.reactor.callLater(0, self.doRead)

    def doRead(self):
        if self.read_scheduled is not None:
            if not self.read_scheduled.called:
                self.read_scheduled.cancel()
            self.read_scheduled = None
        for _ in range(MESSAGES_PER_TURN):
            if self.factory is None:  # closed meanwhile
                return
            if not self.socket.get(_EVENTS) & _POLLIN:
                return
            try:
                message = self._readMultipart()
            except zmq.ZMQError as e:
                if e.errno == zmq.EAGAIN:
                    continue
                raise
            try:
                self.messageReceived(message)
            except Exception:  # one bad message must not cost the socket
                log.failure("a message could not be handled")
        if self.factory is not None:
            self.read_scheduled = self.factory.reactor.callLater(0, self.doRead)


class _Router(_Fair, ZmqRouterConnection):
    highWaterMark = HIGH_WATER_MARK

    def __init__(self, factory, on_message):
        self._on_message = on_message
        super().__init__(factory)

    def gotMessage(self, sender, *frames):
        self._on_message(sender, list(frames))


class _Dealer(_Fair, ZmqDealerConnection):
    highWaterMark = HIGH_WATER_MARK

    def __init__(self, factory, on_message, identity):
        self._on_message = on_message
        super().__init__(factory, identity=identity)

    def gotMessage(self, *frames):
        self._on_message(list(frames))


class RouterSocket:
    def __init__(self, conn):
        self._conn = conn

    def send(self, peer, frames):
        """Send to one peer; an unknown or vanished peer is silently dropped by ZMQ."""
        try:
            self._conn.sendMultipart(peer, list(frames))
        except zmq.ZMQError as e:
            log.warn("could not send to a peer: {error}", error=e)

    def close(self):
        if self._conn.socket is not None:
            self._conn.shutdown()


class DealerSocket:
    def __init__(self, conn):
        self._conn = conn

    def send(self, frames):
        """Send, or return False when ZMQ cannot take the message now (peer absent)."""
        try:
            self._conn.sendMultipart(list(frames))
            return True
        except zmq.ZMQError as e:
            if e.errno == zmq.EAGAIN:
                return False
            raise

    def close(self):
        if self._conn.socket is not None:
            self._conn.shutdown()


class ZmqTransport:
    """Creates the process's ZMQ context lazily: nothing happens at construction."""

    def __init__(self):
        self._factory = None

    def _get_factory(self):
        if self._factory is None:
            self._factory = ZmqFactory()
            self._factory.lingerPeriod = 200
        return self._factory

    def router(self, endpoint, on_message):
        conn = _Router(self._get_factory(), on_message)
        # No ROUTER_HANDOVER: a second connection with a peer's identity never takes
        # that peer's place (its messages are dropped by ZMQ).
        conn.socket.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        _open(conn, ZmqEndpoint(ZmqEndpointType.bind, endpoint))
        return RouterSocket(conn)

    def dealer(self, endpoint, on_message, identity=None, immediate=False, send_hwm=0):
        """Connect a DEALER. `immediate` drops messages while no peer is connected."""
        conn = _Dealer(self._get_factory(), on_message, identity)
        conn.socket.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        conn.socket.setsockopt(zmq.RECONNECT_IVL, 20)
        conn.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if immediate:
            conn.socket.setsockopt(zmq.IMMEDIATE, 1)
        if send_hwm:
            conn.socket.setsockopt(zmq.SNDHWM, send_hwm)
        _open(conn, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
        return DealerSocket(conn)

    def close(self):
        if self._factory is not None:
            self._factory.shutdown()
            self._factory = None


def _open(conn, endpoint):
    """Bind or connect, closing the socket if that fails (a taken port, a bad address)."""
    try:
        conn.addEndpoints([endpoint])
    except Exception:
        conn.shutdown()
        raise
