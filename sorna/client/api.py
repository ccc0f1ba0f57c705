"""The Twisted client, on the same transport interface as the servers (txzmq by default)."""

from twisted.internet import defer

from sorna.client.calls import ClientCalls
from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError
from sorna.transport import ZmqTransport


class SornaClient(ClientCalls):
    """Every method returns a Deferred. Call `close()` when done.

    `transport` defaults to real ZMQ sockets (opened on first use); tests pass a
    `sorna.testing.transport.FakeNetwork`, and `clock` an `IReactorTime`.
    """

    def __init__(self, manager_addr, transport=None, clock=None, timeout=30.0,
                 execute_timeout=660.0):
        super().__init__(manager_addr)
        if clock is None:
            from twisted.internet import reactor as clock
        self._transport = transport
        self._owns_transport = transport is None
        self._pending = PendingRequests(clock)
        self._sockets = {}
        self.timeout = timeout
        self.execute_timeout = execute_timeout

    def _socket(self, addr):
        sock = self._sockets.get(addr)
        if sock is None:
            if self._transport is None:
                self._transport = ZmqTransport()
            sock = self._sockets[addr] = self._transport.dealer(addr, self._on_message)
        return sock

    def _on_message(self, frames):
        try:
            message, _ = decode(frames[-1], max_size=1 << 30)
        except SornaError:
            return
        self._pending.resolve(message)

    def _call(self, addr, message):
        sock = self._socket(addr)
        timeout = self.execute_timeout if message["action"] == "execute" else self.timeout
        return self._pending.send(lambda m: sock.send([b"", encode(m)]), message, timeout,
                                  what=f"{message['action']} at {addr}")

    def _then(self, result, fn):
        return defer.maybeDeferred(lambda: result).addCallback(fn)

    def close(self):
        self._pending.fail_all(SornaError("the client was closed", error="closed"))
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()
        if self._owns_transport and self._transport is not None:
            self._transport.close()
            self._transport = None
