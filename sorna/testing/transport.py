"""An in-memory network with the interface of `sorna.transport.ZmqTransport`.

Delivery is synchronous but never re-entrant: a message sent while another is being
delivered waits in a queue, so handlers see the same ordering as with real sockets.
"""

import itertools
from collections import deque


class FakeNetwork:
    def __init__(self):
        self._routers = {}
        self._queue = deque()
        self._delivering = False
        self._anonymous = itertools.count(1)

    # -- the transport interface
    def router(self, endpoint, on_message):
        if endpoint in self._routers:
            raise OSError(f"address already in use: {endpoint}")
        router = FakeRouter(self, endpoint, on_message)
        self._routers[endpoint] = router
        return router

    def dealer(self, endpoint, on_message, identity=None, immediate=False, send_hwm=0):
        if identity is None:
            identity = b"\x00fake-%d" % next(self._anonymous)
        return FakeDealer(self, endpoint, on_message, identity, immediate)

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
    def __init__(self, network, endpoint, on_message):
        self._network = network
        self.endpoint = endpoint
        self._on_message = on_message
        self._peers = {}
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
        # Handover: the newest connection with an identity takes it over.
        self._peers[dealer.identity] = dealer
        self._on_message(dealer.identity, list(frames))


class FakeDealer:
    def __init__(self, network, endpoint, on_message, identity, immediate):
        self._network = network
        self.endpoint = endpoint
        self._on_message = on_message
        self.identity = identity
        self._immediate = immediate
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

    def _deliver(self, frames):
        if not self.closed:
            self._on_message(list(frames))
