"""The Twisted client, on the same transport interface as the servers (txzmq by default)."""

from twisted.internet import defer, task
from twisted.python.failure import Failure

from sorna.client.calls import WATCH_INTERVAL, Attempts, ClientCalls, strip
from sorna.defer import deferred
from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import KernelNotFound, SornaError


class SornaClient(ClientCalls):
    """Every method returns a Deferred. Call `close()` when done.

    `transport` defaults to real ZMQ sockets (opened on first use); tests pass a
    `sorna.testing.transport.FakeNetwork`, and `clock` an `IReactorTime`. `timeout` is the
    deadline of one call, retries included; `attempt_timeout` bounds each try of an
    idempotent request. `keys`, `insecure`, `key_name`: see calls.ClientSecurity; a key
    the cluster refuses ends the calls to that address at once, with an error that
    says so.
    """

    def __init__(self, manager_addr, transport=None, clock=None, timeout=30.0,
                 execute_timeout=660.0, attempt_timeout=5.0, watch_interval=WATCH_INTERVAL,
                 keys=None, insecure=None, key_name=None):
        super().__init__(manager_addr, keys, insecure, key_name)
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._transport = transport
        self._owns_transport = transport is None
        self._pending = PendingRequests(clock)
        self._sockets = {}
        self.timeout = timeout
        self.execute_timeout = execute_timeout
        self.attempt_timeout = attempt_timeout
        self.watch_interval = watch_interval

    def _socket(self, addr):
        sock = self._sockets.get(addr)
        if sock is None:
            if self._transport is None:
                from sorna.transport import ZmqTransport  # txzmq: only when used
                self._transport = ZmqTransport()
            sock = self._sockets[addr] = self._transport.dealer(
                addr, lambda frames: self._on_message(addr, frames),
                curve=self._curve_for(addr),
                on_handshake=lambda outcome: self._on_handshake(addr, outcome))
        return sock

    def _on_handshake(self, addr, outcome):
        if outcome != "ok":
            # libzmq gives up on a connection whose handshake failed: the next call
            # dials again, on a new socket
            self._forget_socket(addr)
            self._pending.fail_all(self.security.handshake_error(addr, outcome), peer=addr)

    def _forget_socket(self, addr):
        sock = self._sockets.pop(addr, None)
        if sock is not None:
            sock.close()

    def _on_message(self, addr, frames):
        try:
            message, _ = decode(frames[-1], max_size=1 << 30)
        except SornaError:
            return
        self._pending.resolve(message, peer=addr)

    def _attempt(self, addr, message, timeout, on_partial=None):
        sock = self._socket(addr)
        return self._pending.send(
            lambda m: sock.send([b"", encode(m)]), message, timeout, peer=addr,
            what=f"{message['action']} at {addr}",
            on_partial=None if on_partial is None else lambda m: on_partial(strip(m)))

    @deferred
    async def _call(self, addr, message, on_partial=None):
        if message["action"] == "execute":
            return await self._execute_watching(addr, message, on_partial)
        attempts = Attempts(message["action"], self._clock.seconds(), self.timeout,
                            self.attempt_timeout)
        while True:
            try:
                return await self._attempt(addr, message,
                                           attempts.next_timeout(self._clock.seconds()))
            except SornaError as e:
                if attempts.already_done(e):
                    return {"reply": 200, "kernel_id": message.get("kernel_id")}
                pause = attempts.pause_after(e, self._clock.seconds())
            await task.deferLater(self._clock, pause)

    async def _execute_watching(self, addr, message, on_partial):
        """Run the execution; meanwhile ask the manager whether the kernel still exists."""
        lost = defer.Deferred()

        def check():
            d = self._attempt(self.manager_addr, {"action": "kernel_info",
                                                  "kernel_id": message["kernel_id"]},
                              min(self.attempt_timeout, self.watch_interval))

            def gone(failure):
                failure.trap(KernelNotFound)
                if not lost.called:
                    lost.errback(failure)

            return d.addCallbacks(lambda _: None, gone).addErrback(lambda _: None)

        done = defer.Deferred()

        def settle(outcome):
            if not done.called:
                if isinstance(outcome, Failure):
                    done.errback(outcome)
                else:
                    done.callback(outcome)

        execution = self._attempt(addr, message, self.execute_timeout, on_partial)
        execution.addBoth(settle)
        lost.addErrback(settle)
        watch = task.LoopingCall(check)
        watch.clock = self._clock
        watch.start(self.watch_interval, now=False)
        try:
            return await done
        finally:
            watch.stop()
            if not execution.called:
                execution.cancel()

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
