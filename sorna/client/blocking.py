"""The blocking client, for scripts and front-ends that do not run a Twisted reactor."""

import itertools
import time

import zmq
from zmq.utils.monitor import parse_monitor_message

from sorna.client.calls import WATCH_INTERVAL, Attempts, ClientCalls, check_reply, strip
from sorna.curve import HANDSHAKE_EVENT_MASK, HANDSHAKE_OUTCOMES
from sorna.proto.codec import decode, encode
from sorna.proto.errors import KernelNotFound, SornaError, Timeout


class BlockingClient(ClientCalls):
    """Same methods as SornaClient, returning values. Use as a context manager.

    `timeout` is the deadline of one call, retries included; `attempt_timeout` bounds
    each try of an idempotent request. `keys`, `insecure`, `key_name`: see
    calls.ClientSecurity; a key the cluster refuses ends the call at once.
    """

    def __init__(self, manager_addr, timeout=30.0, execute_timeout=660.0,
                 attempt_timeout=5.0, watch_interval=WATCH_INTERVAL, keys=None,
                 insecure=None, key_name=None):
        super().__init__(manager_addr, keys, insecure, key_name)
        self.timeout = timeout
        self.execute_timeout = execute_timeout
        self.attempt_timeout = attempt_timeout
        self.watch_interval = watch_interval
        self._context = None
        self._sockets = {}  # addr -> (DEALER, its monitor)
        self._ids = itertools.count(1)

    def _socket(self, addr):
        entry = self._sockets.get(addr)
        if entry is None:
            curve = self._curve_for(addr)
            if self._context is None:
                self._context = zmq.Context()
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            if curve is not None:
                curve.apply(sock)
            monitor = sock.get_monitor_socket(HANDSHAKE_EVENT_MASK,
                                              f"inproc://sorna-blocking-{next(_monitors)}")
            sock.connect(addr)
            entry = self._sockets[addr] = (sock, monitor)
        return entry

    def _forget_socket(self, addr):
        entry = self._sockets.pop(addr, None)
        if entry is not None:
            _close(*entry)

    def _handshake_failure(self, addr, monitor):
        """The error of a failed handshake the monitor reports, or None."""
        while monitor.poll(0):
            event = parse_monitor_message(monitor.recv_multipart())["event"]
            outcome = HANDSHAKE_OUTCOMES.get(int(event), "ok")
            if outcome != "ok":
                return self.security.handshake_error(addr, outcome)
        return None

    def _call(self, addr, message, on_partial=None):
        if message["action"] == "execute":
            return self._attempt(addr, message, self.execute_timeout,
                                 watch=lambda: self._check_kernel(message["kernel_id"]),
                                 on_partial=on_partial)
        attempts = Attempts(message["action"], time.monotonic(), self.timeout,
                            self.attempt_timeout)
        while True:
            try:
                return self._attempt(addr, message, attempts.next_timeout(time.monotonic()))
            except SornaError as e:
                if attempts.already_done(e):
                    return {"reply": 200, "kernel_id": message.get("kernel_id")}
                time.sleep(attempts.pause_after(e, time.monotonic()))

    def _check_kernel(self, kernel_id):
        """Raise KernelNotFound when the manager says the kernel is gone."""
        try:
            self._attempt(self.manager_addr, {"action": "kernel_info", "kernel_id": kernel_id},
                          min(self.attempt_timeout, self.watch_interval))
        except KernelNotFound:
            raise
        except SornaError:
            pass  # the manager being slow is no reason to give up on the kernel

    def _attempt(self, addr, message, timeout, watch=None, on_partial=None):
        sock, monitor = self._socket(addr)
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        req_id = next(self._ids)
        sock.send_multipart([b"", encode(dict(message, id=req_id))])
        deadline = time.monotonic() + timeout
        next_watch = time.monotonic() + self.watch_interval
        while True:
            now = time.monotonic()
            if watch is not None and now >= next_watch:
                watch()
                next_watch = time.monotonic() + self.watch_interval
            left = deadline - now
            if watch is not None:
                left = min(left, max(next_watch - now, 0))
            if left <= 0 and now >= deadline:
                raise Timeout(f"{message['action']} at {addr} got no reply within "
                              f"{timeout:.3g} s; is the server running there?")
            ready = dict(poller.poll(max(left, 0) * 1000))
            if monitor in ready:
                error = self._handshake_failure(addr, monitor)
                if error is not None:
                    self._forget_socket(addr)  # libzmq gave up on it: dial again next time
                    raise error
            if sock not in ready:
                continue
            frames = sock.recv_multipart()
            try:
                reply, _ = decode(frames[-1], max_size=1 << 30)
            except SornaError:
                continue
            if reply.get("id") != req_id:
                continue
            if reply.get("partial"):
                if on_partial is not None:
                    on_partial(strip(reply))
                continue
            return check_reply(reply)

    def _then(self, result, fn):
        return fn(result)

    def close(self):
        for entry in self._sockets.values():
            _close(*entry)
        self._sockets.clear()
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_monitors = itertools.count(1)


def _close(sock, monitor):
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)
