"""ZMQ sockets behind a small interface of our own, so tests can swap in a fake network.

`ZmqTransport` opens real txzmq sockets; `sorna.testing.transport.FakeNetwork` offers the
same methods in memory. Both pass `tests/test_transport.py`.
"""

import itertools

import zmq
from twisted.logger import Logger
from txzmq import ZmqConnection, ZmqEndpoint, ZmqEndpointType, ZmqFactory
from txzmq.router_dealer import ZmqDealerConnection, ZmqRouterConnection
from zmq.utils.monitor import parse_monitor_message

from sorna.curve import (
    HANDSHAKE_EVENT_MASK, HANDSHAKE_OUTCOMES, ZAP_ENDPOINT, Authenticator, zap_reply,
)

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


class _KeyedRouter(_Router):
    """A CURVE server's ROUTER: each message goes on with the public key its connection
    authenticated with (what the ZAP handler gave as its user id)."""

    _key = None

    def _readMultipart(self):
        frames = self.socket.recv_multipart(_NOBLOCK, copy=False)
        self._key = frames[-1].get("User-Id").encode()
        return [frame.bytes for frame in frames]

    def gotMessage(self, sender, *frames):
        self._on_message(sender, list(frames), self._key)


_monitors = itertools.count(1)


class _Monitor(_Fair, ZmqConnection):
    """The PAIR end of a socket monitor, read on the reactor like any other socket."""

    socketType = zmq.PAIR

    def __init__(self, factory, on_event):
        self._on_event = on_event
        super().__init__(factory)

    def messageReceived(self, message):
        event = parse_monitor_message(message)
        name = HANDSHAKE_OUTCOMES.get(int(event["event"]))
        if name is not None:
            self._on_event(name)


class _Zap(_Router):
    """The process's ZAP handler: answers the handshakes of every CURVE server socket
    of the context, on the reactor, from the Authenticator's decisions."""

    def __init__(self, factory, authenticator):
        self.authenticator = authenticator
        super().__init__(factory, self._answer)

    def _answer(self, sender, frames):
        reply = zap_reply(self.authenticator, frames)
        if reply is not None:
            self.sendMultipart(sender, reply)


class _Dealer(_Fair, ZmqDealerConnection):
    highWaterMark = HIGH_WATER_MARK

    def __init__(self, factory, on_message, identity):
        self._on_message = on_message
        super().__init__(factory, identity=identity)

    def gotMessage(self, *frames):
        self._on_message(list(frames))


class RouterSocket:
    def __init__(self, conn, authenticator=None, domain=None):
        self._conn = conn
        self._authenticator = authenticator
        self._domain = domain

    def send(self, peer, frames):
        """Send to one peer; an unknown or vanished peer is silently dropped by ZMQ."""
        try:
            self._conn.sendMultipart(peer, list(frames))
        except zmq.ZMQError as e:
            log.warn("could not send to a peer: {error}", error=e)

    def close(self):
        if self._domain is not None:
            self._authenticator.unregister(self._domain)
            self._domain = None
        if self._conn.socket is not None:
            self._conn.shutdown()


class DealerSocket:
    def __init__(self, conn, monitor=None):
        self._conn = conn
        self._monitor = monitor

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
        if self._monitor is not None and self._monitor.socket is not None:
            self._conn.socket.disable_monitor()
            self._monitor.shutdown()
        if self._conn.socket is not None:
            self._conn.shutdown()


class ZmqTransport:
    """Creates the process's ZMQ context lazily: nothing happens at construction.

    A router with `curve` (sorna.curve.ServerCurve) is a CURVE server: the ZAP handler
    is bound before it, and its `on_message(peer, frames, key)` gets each message's key.
    A dealer with `curve` (ClientCurve) is a CURVE client; `on_handshake(outcome)`
    hears how each of its handshakes went (see sorna.curve.HANDSHAKE_OUTCOMES).
    """

    def __init__(self):
        self._factory = None
        self._zap = None
        self.authenticator = Authenticator()

    def _get_factory(self):
        if self._factory is None:
            self._factory = ZmqFactory()
            self._factory.lingerPeriod = 200
        return self._factory

    def router(self, endpoint, on_message, curve=None):
        factory = self._get_factory()
        if curve is None:
            conn = _Router(factory, on_message)
        else:
            if self._zap is None:  # a CURVE socket bound without a handler lets all in
                zap = _Zap(factory, self.authenticator)
                _open(zap, ZmqEndpoint(ZmqEndpointType.bind, ZAP_ENDPOINT))
                self._zap = zap
            if curve.domain in self.authenticator:
                raise OSError(f"another socket of this process serves ZAP domain "
                              f"{curve.domain!r}")
            self.authenticator.register(curve.domain, curve.allows)
            conn = _KeyedRouter(factory, on_message)
            conn.socket.curve_server = True
            conn.socket.curve_secretkey = curve.secret
            conn.socket.zap_domain = curve.domain.encode()
        # No ROUTER_HANDOVER: a second connection with a peer's identity never takes
        # that peer's place (its messages are dropped by ZMQ).
        conn.socket.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        try:
            _open(conn, ZmqEndpoint(ZmqEndpointType.bind, endpoint))
        except Exception:
            if curve is not None:
                self.authenticator.unregister(curve.domain)
            raise
        return RouterSocket(conn, self.authenticator, curve and curve.domain)

    def dealer(self, endpoint, on_message, identity=None, immediate=False, send_hwm=0,
               curve=None, on_handshake=None):
        """Connect a DEALER. `immediate` drops messages while no peer is connected."""
        factory = self._get_factory()
        conn = _Dealer(factory, on_message, identity)
        if curve is not None:
            curve.apply(conn.socket)
        monitor = None
        if on_handshake is not None:
            address = f"inproc://sorna-monitor-{next(_monitors)}"
            conn.socket.monitor(address, HANDSHAKE_EVENT_MASK)
            monitor = _Monitor(factory, on_handshake)
            monitor.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, address)])
            monitor.doRead()  # connecting can take the descriptor's edge
        conn.socket.setsockopt(zmq.MAXMSGSIZE, HARD_FRAME_LIMIT)
        conn.socket.setsockopt(zmq.RECONNECT_IVL, 20)
        conn.socket.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        if immediate:
            conn.socket.setsockopt(zmq.IMMEDIATE, 1)
        if send_hwm:
            conn.socket.setsockopt(zmq.SNDHWM, send_hwm)
        try:
            _open(conn, ZmqEndpoint(ZmqEndpointType.connect, endpoint))
        except Exception:
            if monitor is not None:
                monitor.shutdown()
            raise
        return DealerSocket(conn, monitor)

    def close(self):
        if self._zap is not None:
            self._zap.shutdown()
            self._zap = None
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
