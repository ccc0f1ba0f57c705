"""An in-memory network with the interface of `sorna.transport.ZmqTransport`, and of
the agent's REPL links (`repl_links`, the twin of sorna.agent.repl_link.UnixReplLinks).

Delivery is synchronous but never re-entrant: a message sent while another is being
delivered waits in a queue, so handlers see the same ordering as with real sockets.
CurveZMQ is played too: a dealer's first message to a router is its handshake, which
succeeds when both speak CURVE, the dealer knows the router's key and the router
allows the dealer's (or when neither speaks it); a refused dealer's messages are
dropped, and it is told why, as libzmq's monitor tells a real one.
"""

import itertools
from collections import deque


class FakeNetwork:
    def __init__(self):
        self._routers = {}
        self._listeners = {}  # REPL socket path -> FakeReplListener
        self._queue = deque()
        self._delivering = False
        self._anonymous = itertools.count(1)
        self.repl_links = FakeReplLinks(self)

    def listen_repl(self, path, on_frame):
        """A daemon's socket: `on_frame(connection, payload)`; `connection.send(payload)`
        answers the link that sent it."""
        listener = FakeReplListener(self, path, on_frame)
        self._listeners[path] = listener
        for link in list(self._waiting_links(path)):
            link._connect()
        return listener

    def _waiting_links(self, path):
        return [link for link in self.repl_links.opened
                if link.path == path and not link.closed and link._listener is None]

    # -- the transport interface
    def router(self, endpoint, on_message, curve=None):
        if endpoint in self._routers:
            raise OSError(f"address already in use: {endpoint}")
        router = FakeRouter(self, endpoint, on_message, curve)
        self._routers[endpoint] = router
        return router

    def dealer(self, endpoint, on_message, identity=None, immediate=False, send_hwm=0,
               curve=None, on_handshake=None):
        if identity is None:
            identity = b"\x00fake-%d" % next(self._anonymous)
        return FakeDealer(self, endpoint, on_message, identity, immediate, curve,
                          on_handshake)

    def close(self):
        for router in list(self._routers.values()):
            router.close()

    # -- internals
    def _post(self, deliver, *args):
        self._queue.append((deliver, args))
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._queue:
                fn, a = self._queue.popleft()
                fn(*a)
        finally:
            self._delivering = False


class FakeRouter:
    def __init__(self, network, endpoint, on_message, curve=None):
        self._network = network
        self.endpoint = endpoint
        self._on_message = on_message
        self.curve = curve
        self._peers = {}
        self._shaken = set()  # dealers whose handshake succeeded
        self.closed = False

    def send(self, peer, frames):
        dealer = self._peers.get(peer)
        if dealer is None or dealer.closed or self.closed:
            return  # ZMQ drops messages to unknown peers
        self._network._post(dealer._deliver, list(frames))

    def close(self):
        self.closed = True
        if self._network._routers.get(self.endpoint) is self:
            del self._network._routers[self.endpoint]

    def _deliver(self, dealer, frames):
        if self.closed:
            return
        holder = self._peers.get(dealer.identity)
        if holder is not None and holder is not dealer and not holder.closed:
            return  # no handover: a connected identity is not taken by a second one
        if dealer not in self._shaken:
            outcome = self._handshake(dealer)
            dealer._handshook(outcome)
            if outcome != "ok":
                return
            self._shaken.add(dealer)
        self._peers[dealer.identity] = dealer
        if self.curve is None:
            self._on_message(dealer.identity, list(frames))
        else:
            self._on_message(dealer.identity, list(frames), dealer.curve.public)

    def _handshake(self, dealer):
        """What the dealer's monitor would report (sorna.curve.HANDSHAKE_OUTCOMES)."""
        if (self.curve is None) != (dealer.curve is None):
            return "failed"
        if self.curve is None:
            return "ok"
        if dealer.curve.server != self.curve.public:
            return "failed"
        return "ok" if self.curve.allows(dealer.curve.public) else "refused"


class FakeDealer:
    def __init__(self, network, endpoint, on_message, identity, immediate, curve=None,
                 on_handshake=None):
        self._network = network
        self.endpoint = endpoint
        self._on_message = on_message
        self.identity = identity
        self._immediate = immediate
        self.curve = curve
        self._on_handshake = on_handshake
        self._backlog = []
        self.closed = False

    def send(self, frames):
        if self.closed:
            return False
        router = self._network._routers.get(self.endpoint)
        if router is None:
            if self._immediate:
                return False
            self._backlog.append(list(frames))  # like ZMQ, queued until the peer binds
            return True
        backlog, self._backlog = self._backlog, []
        for queued in backlog:
            self._network._post(router._deliver, self, queued)
        self._network._post(router._deliver, self, list(frames))
        return True

    def flush(self):
        """Deliver messages queued before the peer existed (ZMQ does this on connect)."""
        router = self._network._routers.get(self.endpoint)
        if router is not None and self._backlog:
            backlog, self._backlog = self._backlog, []
            for queued in backlog:
                self._network._post(router._deliver, self, queued)

    def close(self):
        self.closed = True

    def _handshook(self, outcome):
        if self._on_handshake is not None and not self.closed:
            self._on_handshake(outcome)

    def _deliver(self, frames):
        if not self.closed:
            self._on_message(list(frames))


class FakeReplLinks:
    """Opens FakeReplLinks (the interface of UnixReplLinks)."""

    def __init__(self, network):
        self.network = network
        self.opened = []

    def open(self, path, on_message, on_violation, max_frame, frames_per_turn=64):
        link = FakeReplLink(self.network, path, on_message, on_violation, max_frame)
        self.opened = [l for l in self.opened if not l.closed] + [link]
        return link


class FakeReplListener:
    def __init__(self, network, path, on_frame):
        self.network = network
        self.path = path
        self.on_frame = on_frame
        self.closed = False

    def close(self):
        self.closed = True
        if self.network._listeners.get(self.path) is self:
            del self.network._listeners[self.path]


class FakeReplLink:
    """Connected while a listener is bound at its path; frames sent before that wait,
    like the real link's (at most 16)."""

    def __init__(self, network, path, on_message, on_violation, max_frame):
        self.network = network
        self.path = path
        self.on_message = on_message
        self.on_violation = on_violation
        self.max_frame = max_frame
        self.closed = False
        self._listener = None
        self._queued = []
        self._connect()

    def _connect(self):
        listener = self.network._listeners.get(self.path)
        if listener is not None and not listener.closed:
            self._listener = listener
            queued, self._queued = self._queued, []
            for payload in queued:
                self._deliver_to_daemon(payload)

    def send(self, payload):
        if self.closed:
            return
        if self._listener is not None and self._listener.closed:
            self._listener = None
        if self._listener is None:
            self._connect()
        if self._listener is None:
            self._queued = (self._queued + [payload])[-16:]
            return
        self._deliver_to_daemon(payload)

    def _deliver_to_daemon(self, payload):
        listener = self._listener
        self.network._post(lambda: None if listener.closed else
                           listener.on_frame(_FakeConnection(self), payload))

    def _from_daemon(self, payload):
        if self.closed:
            return
        if len(payload) > self.max_frame:
            self.close()
            self.on_violation(f"it sent a frame of {len(payload)} bytes, more than the "
                              f"{self.max_frame} the REPL protocol allows")
            return
        self.on_message(payload)

    def close(self):
        self.closed = True


class _FakeConnection:
    def __init__(self, link):
        self._link = link

    def send(self, payload):
        self._link.network._post(self._link._from_daemon, payload)
