"""The blocking client, for scripts and front-ends that do not run a Twisted reactor."""

import itertools
import time

import zmq

from sorna.client.calls import ClientCalls, check_reply
from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError, Timeout


class BlockingClient(ClientCalls):
    """Same methods as SornaClient, returning values. Use as a context manager."""

    def __init__(self, manager_addr, timeout=30.0, execute_timeout=660.0):
        super().__init__(manager_addr)
        self.timeout = timeout
        self.execute_timeout = execute_timeout
        self._context = None
        self._sockets = {}
        self._ids = itertools.count(1)

    def _socket(self, addr):
        sock = self._sockets.get(addr)
        if sock is None:
            if self._context is None:
                self._context = zmq.Context()
            sock = self._context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(addr)
            self._sockets[addr] = sock
        return sock

    def _call(self, addr, message):
        sock = self._socket(addr)
        req_id = next(self._ids)
        sock.send_multipart([b"", encode(dict(message, id=req_id))])
        timeout = self.execute_timeout if message["action"] == "execute" else self.timeout
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(left * 1000):
                raise Timeout(f"{message['action']} at {addr} got no reply within "
                              f"{timeout:g} s; is the server running there?")
            frames = sock.recv_multipart()
            try:
                reply, _ = decode(frames[-1], max_size=1 << 30)
            except SornaError:
                continue
            if reply.get("id") == req_id:
                return check_reply(reply)

    def _then(self, result, fn):
        return fn(result)

    def close(self):
        for sock in self._sockets.values():
            sock.close(0)
        self._sockets.clear()
        if self._context is not None:
            self._context.term()
            self._context = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
