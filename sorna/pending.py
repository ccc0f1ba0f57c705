"""Requests we sent and whose replies we await, each with a timeout on an injected clock."""

import itertools

from twisted.internet import defer

from sorna.proto import codes
from sorna.proto.errors import SornaError, Timeout


class PendingRequests:
    def __init__(self, clock):
        self._clock = clock
        self._ids = itertools.count(1)
        self._pending = {}

    def new_id(self):
        """An id for a message whose answers are not a single reply (a run's events)."""
        return next(self._ids)

    def send(self, send, message, timeout, peer=None, what=None, on_partial=None):
        """Give `message` an id, pass it to `send`, and return a Deferred of the reply map.

        Error replies fail the Deferred with the SornaError they describe; no reply
        within `timeout` seconds fails it with Timeout. `peer`, when given, is the only
        sender whose reply is accepted. Replies marked `partial` go to `on_partial` and
        the wait goes on.
        """
        req_id = next(self._ids)
        message = dict(message, id=req_id)
        d = defer.Deferred(lambda _: self._pending.pop(req_id, None))
        self._pending[req_id] = (d, peer, on_partial)
        what = what or message.get("action", "request")

        def timed_out(result, timeout):
            raise Timeout(f"{what} got no reply within {timeout:.3g} s")

        d.addTimeout(timeout, self._clock, onTimeoutCancel=timed_out)
        send(message)
        return d

    def resolve(self, message, peer=None):
        """Hand a reply to whoever waits for it; False when nobody does."""
        req_id = message.get("id")
        entry = self._pending.get(req_id) if isinstance(req_id, int) else None
        if entry is None or (entry[1] is not None and entry[1] != peer):
            return False
        if message.get("partial"):
            if entry[2] is not None:
                entry[2](message)
            return True
        d, _, _ = self._pending.pop(req_id)
        if message.get("reply") in (codes.SUCCESS, codes.PONG):
            d.callback(message)
        else:
            d.errback(SornaError.from_reply(message))
        return True

    def fail_all(self, error, peer=None):
        """Fail every pending request (to `peer` only, when given), e.g. when it is gone."""
        for req_id, (d, p, _) in list(self._pending.items()):
            if peer is None or p == peer:
                del self._pending[req_id]
                d.errback(error)

    def __len__(self):
        return len(self._pending)
