"""Answers requests that arrive on a ROUTER socket, through a table of handlers.

The manager and the agent both use it: framing, decoding, validation, error replies,
the 2016 JSON path and the tracking of in-flight work live here once.
"""

from twisted.internet import defer
from twisted.logger import Logger

from sorna.defer import InFlight
from sorna.proto import codes
from sorna.proto.actions import parse_request
from sorna.proto.codec import DEFAULT_MAX_SIZE, JSON, MSGPACK, decode, encode
from sorna.proto.errors import BadRequest, Failure, Forbidden, NoCapacity, SornaError
from sorna.ids import new_trace
from sorna.proto.schema import request_id, trace_id
from sorna.ratelog import RateLimitedLog

NO_REPLY = object()

# What one peer, and all peers together, may be sent per window. ZMQ holds what a peer
# has not read yet, so a peer that asks and never reads would make this process hold
# its replies without end; past the budget a reply is replaced by a short 503.
REPLY_WINDOW = 10.0
PEER_REPLY_BUDGET = 128 << 20
TOTAL_REPLY_BUDGET = 512 << 20


class ReplyBudget:
    def __init__(self, clock, per_peer=PEER_REPLY_BUDGET, total=TOTAL_REPLY_BUDGET,
                 window=REPLY_WINDOW):
        self.clock = clock
        self.per_peer = per_peer
        self.total = total
        self.window = window
        self._started = None
        self._spent = {}
        self._total = 0

    def spend(self, peer, size):
        """Whether `size` more bytes may go to `peer` now (and count them if so)."""
        now = self.clock.seconds()
        if self._started is None or now - self._started >= self.window:
            self._started, self._spent, self._total = now, {}, 0
        spent = self._spent.get(peer, 0)
        if spent + size > self.per_peer or self._total + size > self.total:
            return False
        self._spent[peer] = spent + size
        self._total += size
        return True


# Actions answered without a line in the request log (they come every few seconds).
UNLOGGED_ACTIONS = frozenset(("ping", "heartbeat"))


class Request:
    __slots__ = ("peer", "action", "id", "fields", "encoding", "partial", "key",
                 "key_kind", "trace")

    def __init__(self, peer, action, id, fields, encoding, partial=None, key=None,
                 key_kind=None, trace=None):
        self.peer = peer
        self.action = action
        self.id = id
        self.trace = trace  # the client's trace id, or the one this process made
        self.fields = fields
        self.encoding = encoding
        self.partial = partial  # sends a partial reply (to streaming DEALER clients)
        self.key = key  # the CurveZMQ public key the request came with (Z85), if any
        self.key_kind = key_kind  # "agents" or "clients": where the cluster lists it

    @property
    def legacy(self):
        return self.encoding == JSON


class RequestServer:
    """`handlers` maps action names to callables taking a Request and returning a map
    (or a Deferred of one, or NO_REPLY). Maps that carry `reply` but no `action` are
    replies to our own requests and go to `on_reply(peer, message)`.

    With `access` (sorna.curve.Access) every message must come with a key it allows
    now, and each action only from the kinds of key it names: a key removed from the
    cluster's folder gets 403 from the next reload on, on connections opened before.
    """

    def __init__(self, name, actions, legacy, handlers, on_reply=None,
                 max_size=DEFAULT_MAX_SIZE, served_while_draining=("ping",), clock=None,
                 metrics=None, access=None):
        """`metrics`: a sorna.metrics.RequestMetrics that counts every answer."""
        self.name = name.split(".")[0]
        self.log = Logger(namespace=f"sorna.{name}")
        if clock is None:
            from twisted.internet import reactor as clock
        self.clock = clock
        self.metrics = metrics
        self._refusals = RateLimitedLog(self.log, clock)
        # Any peer can cause 4xx answers cheaply: their lines are bounded too.
        self._client_errors = RateLimitedLog(self.log, clock)
        self.budget = ReplyBudget(clock)
        # Once `draining` (shutdown), other actions get 503 shutting-down at once.
        self.draining = False
        self._served_while_draining = frozenset(served_while_draining)
        self._actions = actions
        self._legacy = legacy
        self._handlers = handlers
        self._on_reply = on_reply
        self.max_size = max_size
        self.in_flight = InFlight()
        self.access = access
        self.socket = None

    def on_message(self, peer, frames, key=None):
        envelope, body = _split_envelope(frames)

        if len(body) != 1:
            self._refuse(peer, envelope, MSGPACK, None, BadRequest(
                f"a request is one frame holding a msgpack map after the empty delimiter; "
                f"got {len(body)} frames", error="malformed"))
            return
        try:
            message, encoding = decode(body[0], self.max_size)
        except SornaError as e:
            self._refuse(peer, envelope, getattr(e, "encoding", MSGPACK), None, e)
            return
        kind = None
        if self.access is not None:
            kind = self.access.kind_of(key)
            if kind is None:
                self._refuse(peer, envelope, encoding, request_id(message), Forbidden(
                    "this connection's key is not (or no longer) allowed by the cluster",
                    error="key-refused"))
                return
        if "reply" in message and "action" not in message:
            if self._on_reply is not None:
                self._on_reply(peer, message)
            return
        req_id = request_id(message)
        try:
            action, fields = parse_request(message, self._actions, self._legacy)
            trace = trace_id(message) or new_trace(self.name)
        except SornaError as e:
            self._refuse(peer, envelope, encoding, req_id, e)
            return
        if kind is not None:
            refusal = self.access.refusal(action, kind)
            if refusal is not None:
                self._refuse(peer, envelope, encoding, req_id,
                             Forbidden(refusal, error="key-refused"))
                return
        if self.draining and action not in self._served_while_draining:
            error = NoCapacity(f"the {self.name} is shutting down; try again once it is "
                               f"back (or ask another one)", error="shutting-down")
            self._count(action, error.code, None)
            self.send(peer, envelope, encoding, req_id, error.reply_fields())
            return
        request = Request(peer, action, req_id, fields, encoding, key=key, key_kind=kind,
                          trace=trace)
        started = self.clock.seconds()
        request.partial = lambda fields: self.send(
            peer, envelope, encoding, req_id, dict(fields, reply=codes.SUCCESS, partial=True))
        d = defer.maybeDeferred(self._handlers[action], request)
        d.addCallbacks(self._success, self._failure, errbackArgs=(request,))
        d.addCallback(self._send_reply, peer, envelope, request, started)
        d.addErrback(lambda f: self.log.failure("could not send a reply", f))
        self.in_flight.track(d)

    def _success(self, result):
        if result is NO_REPLY:
            return NO_REPLY
        result = dict(result)
        result.setdefault("reply", codes.SUCCESS)
        return result

    def _failure(self, failure, request):
        error = failure.value
        if not isinstance(error, SornaError):
            self.log.failure("request {request}: {action} failed", failure,
                             action=request.action, request=request.trace)
            error = Failure(f"internal error while handling {request.action}: "
                            f"{type(error).__name__}: {error}")
        return error.reply_fields()

    def _send_reply(self, reply, peer, envelope, request, started):
        elapsed = self.clock.seconds() - started
        if reply is NO_REPLY:
            self._count(request.action, "none", elapsed)
            return
        code = reply.get("reply", codes.SUCCESS)
        self._count(request.action, code, elapsed)
        self._log_request(request, reply, code, elapsed)
        self.send(peer, envelope, request.encoding, request.id, reply)

    def _log_request(self, request, reply, code, elapsed):
        """One line per answered request, with its trace id and its kernel, so that one
        grep follows a kernel through the manager's and its agent's logs."""
        if request.action in UNLOGGED_ACTIONS and code in (codes.SUCCESS, codes.PONG):
            return
        kernel = request.fields.get("kernel_id") or reply.get("kernel_id")
        if code in (codes.SUCCESS, codes.PONG):
            emit = self.log.info
        elif isinstance(code, int) and 400 <= code < 500:
            emit = self._client_errors.info
        else:
            emit = self.log.warn
        emit("request {request}: {action}{of_kernel} answered {code} in {ms:.1f} ms"
             "{because}", request=request.trace, action=request.action,
             kernel=kernel, of_kernel=f" of kernel {kernel}" if kernel else "", code=code,
             ms=elapsed * 1000,
             because=f": {reply['cause'][:300]}" if code != codes.SUCCESS and
             reply.get("cause") else "")

    def _count(self, action, code, seconds):
        if self.metrics is not None:
            self.metrics.observe(action, code, seconds)

    def _refuse(self, peer, envelope, encoding, req_id, error):
        self._refusals.info("refused a message from {peer!r}: {cause}", peer=peer[:32],
                            cause=error.cause[:300])
        self._count(None, error.code, None)
        self.send(peer, envelope, encoding, req_id, error.reply_fields())

    def send(self, peer, envelope, encoding, req_id, reply):
        reply = dict(reply)
        if req_id is not None:
            reply["id"] = req_id
        if encoding == JSON:
            reply["reply"] = codes.legacy(reply.get("reply", codes.SUCCESS))
        payload = encode(reply, encoding)
        if not self.budget.spend(peer, len(payload)):
            self._refusals.warn("not sending {size} bytes to {peer!r}: past its reply "
                                "budget", size=len(payload), peer=peer[:32])
            error = NoCapacity(
                f"this connection (or all of them together) was sent over "
                f"{self.budget.per_peer >> 20} MiB ({self.budget.total >> 20} MiB) in the "
                f"last {self.budget.window:g} s; read the replies you have, then ask again",
                error="reply-budget").reply_fields()
            if req_id is not None:
                error["id"] = req_id
            if encoding == JSON:
                error["reply"] = codes.legacy(error["reply"])
            payload = encode(error, encoding)
        if self.socket is not None:
            self.socket.send(peer, envelope + [payload])


def _split_envelope(frames):
    """REQ peers send `['', payload]`, DEALER peers `[payload]` or `['', payload]`;
    proxies add routing frames before the delimiter."""
    for i in range(len(frames) - 1, -1, -1):
        if frames[i] == b"":
            return list(frames[:i + 1]), list(frames[i + 1:])
    return [], list(frames)
