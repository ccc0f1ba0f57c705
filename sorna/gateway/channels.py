"""`/api/kernels/{id}/channels`: Jupyter's messaging protocol (v5, the JSON text frames
jupyter_server's gateway client sends, no signatures) over a Sorna kernel.

An execute_request becomes one Sorna run, whose output comes in order: `stream`,
`display_data` messages (one per displayed object, with all its MIME types; with a
`display_id` when it can be updated), `update_display_data`, `clear_output`, its value
as `execute_result`; a read of standard input becomes an `input_request` (or, when
the request does not allow stdin, end-of-file), exceptions become `error`. Requests of
one kernel run one at a time, in order; iopub messages go to every connection of the
kernel, replies to the connection that asked.

A socket is opened by the kernel's owner (or an admin token) only, within the token's
and the kernel's socket quotas; what it may send is type-checked and rate-limited, and
what it does not read is bounded (sorna.gateway.backpressure)."""

import collections
import datetime
import json
import uuid

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import defer
from twisted.logger import Logger

from sorna import __version__
from sorna.defer import InFlight, deferred
from sorna.gateway.backpressure import (
    SEND_BUDGET, TokenBucket, drop_unsent, over_budget,
)
from sorna.gateway.jupyter import kernel_not_found
from sorna.gateway.languages import describe, language_info
from sorna.gateway.tenants import Quotas
from sorna.gateway.web import HttpError, Route
from sorna.proto.codec import parse_json
from sorna.proto.errors import BadRequest, SornaError
from sorna.ratelog import RateLimitedLog

log = Logger(namespace="sorna.gateway.channels")

MAX_MESSAGE = 2 << 20  # a WebSocket message from a client (code is at most 1 MiB)
MAX_QUEUED_RUNS = 16  # execute_requests of one kernel waiting behind the running one
INPUT_TIMEOUT = 300.0  # seconds an input_request waits for its input_reply
PROTOCOL_VERSION = "5.3"
# Requests other than execute_request and input_reply one socket may send, a second
# (each costs replies to every socket of the kernel, some a call to the cluster).
REQUESTS_PER_SECOND = 10
REQUEST_BURST = 30
# The header fields a reply echoes as its parent_header, each at most this long.
HEADER_FIELDS = ("msg_id", "msg_type", "username", "session", "date", "version")
MAX_HEADER_FIELD = 1024
# Seconds a closing socket has to answer the close before its connection is dropped.
CLOSE_TIMEOUT = 5
# Close codes (applications' codes are 4000-4999).
CLOSE_MALFORMED = 4400  # a frame no Jupyter client sends
CLOSE_REVOKED = 4401  # the token was removed
CLOSE_TOO_SLOW = 4408  # the client left more than the send budget unread
CLOSE_BINARY = 4415
CLOSE_TOO_MANY = 4429  # the client went on sending past the request rate

# Requests the gateway answers with an empty, successful reply, so that no UI waits.
EMPTY_REPLIES = {
    "comm_info_request": {"status": "ok", "comms": {}},
}
# user_expressions of one execute_request evaluated (each is a run), and their size.
MAX_USER_EXPRESSIONS = 16
MAX_USER_EXPRESSION = 64 << 10
# Requests the kernel answers (sorna.agent.assists).
ASSISTS = {"complete_request": "complete", "inspect_request": "inspect",
           "is_complete_request": "is_complete"}


def jupyter_data(bundle):
    """A Sorna MIME bundle as Jupyter's `data`: JSON types as JSON, not text."""
    data = {}
    for mime, content in bundle.items():
        if mime == "application/json" or mime.endswith("+json"):
            try:
                content = parse_json(content, "value")
            except BadRequest:
                pass
        data[mime] = content
    return data


def _reply_type(msg_type):
    return msg_type[:-len("_request")] + "_reply"


def _reply_channel(message):
    return message["channel"] if message["channel"] in ("shell", "control") else "shell"


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_message(msg_type, content, parent, channel, session):
    header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "username": "sorna",
              "session": session, "date": now_iso(), "version": PROTOCOL_VERSION}
    return {"header": header, "msg_id": header["msg_id"], "msg_type": msg_type,
            "parent_header": parent or {}, "metadata": {}, "content": content,
            "channel": channel, "buffers": []}


def error_content(name, value, traceback):
    return {"status": "error", "ename": name, "evalue": value,
            "traceback": traceback.splitlines() if traceback else [f"{name}: {value}"]}


class Malformed(Exception):
    """A frame that is not a Jupyter message; the message says what is wrong."""


def parse_message(payload):
    """The Jupyter message in a client's text frame, its header reduced to the standard
    fields (which replies echo as their parent_header); Malformed otherwise."""
    try:
        message = parse_json(payload, "frame")
    except BadRequest as e:
        raise Malformed(e.cause)
    if not isinstance(message, dict):
        raise Malformed("a frame must be a JSON object")
    header = message.get("header")
    if not isinstance(header, dict) or not isinstance(header.get("msg_type"), str):
        raise Malformed("a message needs a header naming its msg_type")
    for field in HEADER_FIELDS:
        value = header.get(field)
        if value is None or (field == "date" and type(value) in (int, float)):
            continue  # jupyter_server's gateway client sends the date as a timestamp
        if not isinstance(value, str) or len(value) > MAX_HEADER_FIELD:
            raise Malformed(f"header.{field} must be a string of at most "
                            f"{MAX_HEADER_FIELD} characters")
    parts = {}
    for field in ("parent_header", "content", "metadata"):
        value = message.get(field)
        if value is not None and not isinstance(value, dict):
            raise Malformed(f"{field} must be an object")
        parts[field] = value or {}
    parent_id = parts["parent_header"].get("msg_id")
    if parent_id is not None and not isinstance(parent_id, str):
        raise Malformed("parent_header.msg_id must be a string")
    channel = message.get("channel")
    if channel is not None and not isinstance(channel, str):
        raise Malformed("channel must be a string")
    return dict(parts, header={k: header[k] for k in HEADER_FIELDS if k in header},
                channel=channel)


class JupyterChannel(WebSocketServerProtocol):
    """One WebSocket of one kernel, opened by one token."""

    api = None  # the ChannelsApi (set on the factory's protocol)
    tenant = kernel = None
    dropping = False

    def onConnect(self, request):
        # ChannelsApi.upgrade checked the token, the kernel and the quotas, and hands
        # them over while autobahn reads the handshake (synchronously, within it).
        self.tenant, self.kernel = self.api.handing_over
        self.inputs = {}  # input_request msg_id -> Deferred of the value
        self.refusals = RateLimitedLog(log, self.api.clock)
        self.requests = TokenBucket(self.api.clock, REQUESTS_PER_SECOND, REQUEST_BURST)
        self.refused = TokenBucket(self.api.clock, REQUESTS_PER_SECOND, REQUEST_BURST)
        return None  # no subprotocol: the JSON text frames

    def onOpen(self):
        self.kernel.connections += 1
        self.api.open(self)

    def onClose(self, wasClean, code, reason):
        drop_unsent(self.transport)
        if self.kernel is not None and self in self.api.connections:
            self.kernel.connections -= 1
            self.api.close(self)
            for d in self.inputs.values():
                if not d.called:
                    d.errback(ConnectionError("the connection closed"))

    def onMessage(self, payload, isBinary):
        if isBinary:
            return self._refuse(CLOSE_BINARY, "binary frames (messages with buffers) are "
                                              "not supported; send JSON text frames")
        try:
            message = parse_message(payload)
        except Malformed as e:
            return self._refuse(CLOSE_MALFORMED, f"not a JSON Jupyter message: {e}")
        self.api.handle(self, message, message["header"]["msg_type"])

    def _refuse(self, code, why):
        """A frame no Jupyter client sends: the connection is closed, saying why (a
        WebSocket close reason holds at most 123 bytes)."""
        self.refusals.info("kernel {kernel}: refused a frame of {token}: {why}",
                           kernel=self.kernel.id, token=self.tenant.name, why=why)
        self.sendClose(code, why[:120])

    def send_payload(self, data):
        """Send one encoded message, unless the peer has left more than the send budget
        unread: then the socket is closed (4408) and nothing more is kept for it."""
        if self.state != self.STATE_OPEN or self.dropping:
            return
        if over_budget(self.transport, len(data)):
            self.dropping = True
            self.refusals.info("kernel {kernel}: closed a WebSocket of {token} that did "
                               "not read", kernel=self.kernel.id, token=self.tenant.name)
            self.sendClose(CLOSE_TOO_SLOW, f"the client left more than {SEND_BUDGET >> 20} "
                                           f"MiB unread; read faster, then reconnect")
            return
        self.sendMessage(data, isBinary=False)

    def send_message(self, message):
        self.send_payload(encode(message))


def encode(message):
    return json.dumps(message).encode("utf-8")


class ChannelsApi:
    def __init__(self, kernels, clock, quotas=Quotas(), tokens=None):
        """`tokens`: the TokenRing, for the owners of kernels reached without a
        token."""
        self.kernels = kernels
        self.tokens = tokens
        self.clock = clock
        self.quotas = quotas
        self.client = kernels.client
        self.connections = set()
        self._of_kernel = collections.defaultdict(set)  # kernel id -> its connections
        self._of_token = collections.Counter()  # token name -> connections
        self.handing_over = None
        self.in_flight = InFlight()
        factory = WebSocketServerFactory()
        factory.protocol = type("Channel", (JupyterChannel,), {"api": self})
        factory.setProtocolOptions(maxMessagePayloadSize=MAX_MESSAGE,
                                   maxFramePayloadSize=MAX_MESSAGE, autoPingInterval=30,
                                   autoPingTimeout=30, closeHandshakeTimeout=CLOSE_TIMEOUT)
        self.resource = WebSocketResource(factory)
        self._queued = {}  # kernel id -> runs waiting

    def routes(self):
        return [Route("GET", r"/api/kernels/(?P<kernel_id>[0-9a-fA-F-]{36})/channels",
                      self.upgrade, query_token=True, raw=True, anonymous=True)]

    def upgrade(self, request, kernel_id, tenant):
        if tenant is None:
            # jupyter_server's gateway client (nbclient's and papermill's way here)
            # opens this socket with no token. The kernel's id, a random UUID shown only
            # to its owner and to admins, is then the credential, as a kernel id is on
            # Sorna's ZMQ ports; the socket is its owner's and counts in its quotas.
            tenant = self._owner(kernel_id)
        kernel = self.kernels.find(kernel_id, tenant)  # 404 before the upgrade
        if (request.getHeader("upgrade") or "").lower() != "websocket":
            raise HttpError(400, "this is a WebSocket endpoint: connect with a WebSocket "
                                 "client", "not-websocket")
        self.quotas.check(tenant, "sockets", self._of_token[tenant.name])
        self.quotas.check(tenant, "sockets_per_kernel", len(self._of_kernel[kernel.id]))
        self.handing_over = (tenant, kernel)
        try:
            return self.resource.render(request)
        finally:
            self.handing_over = None

    def _owner(self, kernel_id):
        kernel = self.kernels.any(kernel_id)
        owner = self.tokens.tenant_named(kernel.owner) if self.tokens else None
        if owner is None:
            raise kernel_not_found(kernel_id)
        return owner

    def open(self, conn):
        self.connections.add(conn)
        self._of_kernel[conn.kernel.id].add(conn)
        self._of_token[conn.tenant.name] += 1

    def close(self, conn):
        self.connections.discard(conn)
        conns = self._of_kernel.get(conn.kernel.id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._of_kernel[conn.kernel.id]
        self._of_token[conn.tenant.name] -= 1
        if self._of_token[conn.tenant.name] <= 0:
            del self._of_token[conn.tenant.name]

    def revoke(self, ring):
        """Close the WebSockets of tokens the ring no longer accepts."""
        for conn in list(self.connections):
            if not ring.holds(conn.tenant):
                conn.sendClose(CLOSE_REVOKED, "the token was revoked")

    def close_all(self):
        for conn in list(self.connections):
            conn.sendClose(1001, "the gateway is shutting down")

    # -- messages

    def broadcast(self, kernel, msg_type, content, parent):
        conns = self._of_kernel.get(kernel.id)
        if conns:
            data = encode(make_message(msg_type, content, parent, "iopub", kernel.id))
            for conn in list(conns):
                conn.send_payload(data)

    def reply(self, conn, msg_type, content, parent, channel="shell"):
        conn.send_message(make_message(msg_type, content, parent, channel, conn.kernel.id))

    def handle(self, conn, message, msg_type):
        parent = message["header"]
        content = message["content"]
        kernel = conn.kernel
        if msg_type == "execute_request":
            self._track(self.execute(conn, kernel, parent, content))
        elif msg_type == "input_reply":
            waiting = conn.inputs.get(message["parent_header"].get("msg_id"))
            value = content.get("value")
            if waiting is not None and not waiting.called:
                waiting.callback(value if isinstance(value, str) else "")
        elif not conn.requests.take():
            if not conn.refused.take():
                conn.refusals.info("kernel {kernel}: closed a WebSocket of {token} that "
                                   "went on past the request rate", kernel=kernel.id,
                                   token=conn.tenant.name)
                conn.sendClose(CLOSE_TOO_MANY, "too many requests: at most "
                                               f"{REQUESTS_PER_SECOND} a second")
            elif msg_type.endswith("_request"):
                self.reply(conn, _reply_type(msg_type), error_content(
                    "RateLimited", f"more than {REQUESTS_PER_SECOND} requests a second "
                                   f"other than execute_request on this socket; slow down",
                    ""), parent, _reply_channel(message))
        elif msg_type == "kernel_info_request":
            self.kernel_info(conn, kernel, parent)
        elif msg_type in ASSISTS:
            self._track(self.assist(conn, kernel, parent, msg_type, content))
        elif msg_type == "history_request":
            self.reply(conn, "history_reply", {
                "status": "ok", "history": kernel.history.answer(content)}, parent)
        elif msg_type in EMPTY_REPLIES:
            self.reply(conn, _reply_type(msg_type), EMPTY_REPLIES[msg_type], parent)
        elif msg_type == "interrupt_request":
            self._track(self.interrupt(conn, kernel, parent))
        elif msg_type == "shutdown_request":
            self._track(self.shutdown(conn, kernel, parent, content.get("restart") is True))
        elif msg_type.endswith("_request"):
            self.reply(conn, _reply_type(msg_type), error_content(
                "NotSupported", f"the Sorna gateway does not answer {msg_type[:64]}", ""),
                parent, _reply_channel(message))
        # other messages (comm_msg, ...) are dropped: Sorna kernels have no comms

    def _track(self, d):
        d.addErrback(lambda f: log.failure("a Jupyter request failed", f))
        self.in_flight.track(d)

    def kernel_info(self, conn, kernel, parent):
        about = describe(kernel.lang)
        self.broadcast(kernel, "status", {"execution_state": "busy"}, parent)
        self.reply(conn, "kernel_info_reply", {
            "status": "ok", "protocol_version": PROTOCOL_VERSION, "implementation": "sorna",
            "implementation_version": __version__,
            "language_info": language_info(kernel.lang, self.kernels.version(kernel.lang)),
            "banner": f"{about.display} in a Sorna kernel", "help_links": []}, parent)
        self.broadcast(kernel, "status", {"execution_state": "idle"}, parent)
        self.broadcast(kernel, "status", {"execution_state": kernel.execution_state}, None)

    @deferred
    async def assist(self, conn, kernel, parent, msg_type, content):
        code = content.get("code")
        reply_type = _reply_type(msg_type)
        if not isinstance(code, str):
            self.reply(conn, reply_type, error_content(
                "BadRequest", f"{msg_type} needs `code`, a string", ""), parent)
            return
        cursor = content.get("cursor_pos")
        cursor = cursor if type(cursor) is int and 0 <= cursor <= len(code) else len(code)
        action = ASSISTS[msg_type]
        try:
            if action == "is_complete":
                answer = await self.client.is_complete(kernel.sorna_id, code)
                reply = {"status": answer["status"]}
                if answer["status"] == "incomplete":
                    reply["indent"] = answer["indent"]
            elif action == "complete":
                answer = await self.client.complete(kernel.sorna_id, code, cursor)
                reply = {"status": "ok", "metadata": {}, **{k: answer[k] for k in (
                    "matches", "cursor_start", "cursor_end")}}
            else:
                answer = await self.client.inspect(kernel.sorna_id, code, cursor)
                reply = {"status": "ok", "found": answer["found"], "data": answer["data"],
                         "metadata": {}}
        except SornaError as e:
            reply = error_content("SornaError", e.cause, "")
        self.reply(conn, reply_type, reply, parent)

    @deferred
    async def interrupt(self, conn, kernel, parent):
        try:
            await self.client.interrupt(kernel.sorna_id)
            content = {"status": "ok"}
        except SornaError as e:
            content = error_content("SornaError", e.cause, "")
        self.reply(conn, "interrupt_reply", content, parent, "control")

    @deferred
    async def shutdown(self, conn, kernel, parent, restart):
        try:
            if restart:
                await self.client.restart(kernel.sorna_id)
                kernel.restarted()
            else:
                await self.kernels.shutdown(kernel)
            content = {"status": "ok", "restart": restart}
        except SornaError as e:
            content = error_content("SornaError", e.cause, "")
        self.reply(conn, "shutdown_reply", content, parent, "control")

    @deferred
    async def execute(self, conn, kernel, parent, content):
        code = content.get("code")
        silent = content.get("silent") is True
        if not isinstance(code, str):
            self.reply(conn, "execute_reply", dict(error_content(
                "BadRequest", "execute_request needs `code`, a string", ""),
                execution_count=kernel.execution_count), parent)
            return
        queued = self._queued.get(kernel.id, 0)
        if queued >= MAX_QUEUED_RUNS:
            self.reply(conn, "execute_reply", dict(error_content(
                "KernelBusy", f"{queued} executions wait on this kernel already, the most "
                              f"the gateway queues; wait for them", ""),
                execution_count=kernel.execution_count), parent)
            return
        self._queued[kernel.id] = queued + 1
        kernel.requests_seen += 1
        ticket = kernel.requests_seen
        await kernel.runs.acquire()
        self._queued[kernel.id] -= 1
        try:
            if ticket <= kernel.aborted_through:
                self._abort(conn, kernel, parent)
                return
            failed = await self._run(conn, kernel, parent, content, code, silent)
            if failed and content.get("stop_on_error", True) is not False:
                # As ipykernel does: the requests queued behind a failed cell are
                # aborted (a notebook's "Run All" stops at the first error).
                kernel.aborted_through = kernel.requests_seen
        finally:
            if not self._queued.get(kernel.id):
                self._queued.pop(kernel.id, None)
            kernel.runs.release()

    def _abort(self, conn, kernel, parent):
        self.broadcast(kernel, "status", {"execution_state": "busy"}, parent)
        self.reply(conn, "execute_reply", {"status": "aborted"}, parent)
        self.broadcast(kernel, "status", {"execution_state": "idle"}, parent)

    async def _run(self, conn, kernel, parent, content, code, silent):
        """Run one cell; whether it failed."""
        kernel.execution_state = "busy"
        kernel.last_activity = self.clock.seconds()
        self.broadcast(kernel, "status", {"execution_state": "busy"}, parent)
        stored = not silent and content.get("store_history", True) is not False
        if stored:
            kernel.execution_count += 1
            kernel.history.add(kernel.execution_count, code)
        count = kernel.execution_count
        if not silent:
            self.broadcast(kernel, "execute_input", {"code": code, "execution_count": count},
                           parent)
        pages = []  # help text goes in the reply's payload, which front-ends page

        def show(result):
            if silent or not result:
                return
            for kind, data in result.get("outputs") or []:
                if kind in ("stdout", "stderr"):
                    self.broadcast(kernel, "stream", {"name": kind, "text": data}, parent)
                elif kind == "media":
                    mime, content = data
                    self.broadcast(kernel, "display_data", {
                        "data": {mime: content, "text/plain": f"<{mime}>"},
                        "metadata": {}, "transient": {}}, parent)
                elif kind in ("display", "show", "update"):
                    bundle = data if kind == "display" else data["data"]
                    self.broadcast(
                        kernel, "update_display_data" if kind == "update" else
                        "display_data", {
                            "data": jupyter_data(bundle), "metadata": {},
                            "transient": {} if kind == "display" else {
                                "display_id": data["id"]}}, parent)
                elif kind == "clear":
                    self.broadcast(kernel, "clear_output", {"wait": data["wait"]}, parent)
                elif kind == "page":
                    pages.append({"source": "page", "data": jupyter_data(data), "start": 0})
                elif kind == "result":
                    if stored:
                        kernel.history.set_output(count, data.get("text/plain", ""))
                    self.broadcast(kernel, "execute_result", {
                        "execution_count": count, "data": jupyter_data(data),
                        "metadata": {}}, parent)

        def streamed(part):
            show(part.get("result"))

        try:
            if not code.strip():
                reply = {"status": "finished", "result": {"exceptions": []}}
            else:
                reply = await self.client.run_code(kernel.sorna_id, code, on_output=streamed,
                                                   ordered=True)
            while reply["status"] == "waiting-input":
                show(reply.get("result"))
                if content.get("allow_stdin") is True:
                    value = await self._ask(conn, parent, reply)
                    reply = await self.client.send_input(kernel.sorna_id, value,
                                                         on_output=streamed)
                else:
                    reply = await self.client.send_input(kernel.sorna_id, "", eof=True,
                                                         on_output=streamed)
            result = reply.get("result") or {}
            show(result)
            errors = [error_content(name, ", ".join(str(a) for a in args), trace)
                      for name, args, _, trace in result.get("exceptions") or []]
        except SornaError as e:
            errors = [error_content(f"Sorna{e.error.title().replace('-', '')}", e.cause,
                                    "")]
        except ConnectionError:
            errors = [error_content("InputCancelled", "the connection that was asked for "
                                                      "input closed", "")]
        for error in errors:
            if not silent:
                self.broadcast(kernel, "error", {k: error[k] for k in
                                                 ("ename", "evalue", "traceback")}, parent)
        reply_content = errors[-1] if errors else {"status": "ok"}
        expressions = {} if errors else await self._user_expressions(
            kernel, content.get("user_expressions"))
        self.reply(conn, "execute_reply", dict(reply_content, execution_count=count,
                                               user_expressions=expressions,
                                               payload=pages), parent)
        kernel.execution_state = "idle"
        kernel.last_activity = self.clock.seconds()
        self.broadcast(kernel, "status", {"execution_state": "idle"}, parent)
        return bool(errors)

    async def _user_expressions(self, kernel, asked):
        """As ipykernel answers `user_expressions` after a cell that succeeded: each
        expression's value as a bundle (`{status: ok, data, metadata}`), or its error.
        Each is a run of its own; what it prints is not shown, and a read of input
        gets end-of-file."""
        values = {}
        if not isinstance(asked, dict):
            return values
        for key, expression in list(asked.items())[:MAX_USER_EXPRESSIONS]:
            if not isinstance(expression, str) or len(expression) > MAX_USER_EXPRESSION:
                values[key] = error_content(
                    "BadRequest", f"a user expression is text of at most "
                                  f"{MAX_USER_EXPRESSION} characters", "")
                continue
            try:
                reply = await self.client.run_code(kernel.sorna_id, expression,
                                                   ordered=True)
                while reply["status"] == "waiting-input":
                    reply = await self.client.send_input(kernel.sorna_id, "", eof=True)
            except SornaError as e:
                values[key] = error_content("SornaError", e.cause, "")
                continue
            result = reply.get("result") or {}
            failures = result.get("exceptions") or []
            if failures:
                ename, args, _, trace = failures[-1]
                values[key] = error_content(ename, ", ".join(map(str, args)), trace)
            else:
                value = next((data for kind, data in result.get("outputs") or []
                              if kind == "result"), {})
                values[key] = {"status": "ok", "data": jupyter_data(value), "metadata": {}}
        return values

    async def _ask(self, conn, parent, reply):
        request = make_message("input_request", {"prompt": reply.get("prompt") or "",
                                                 "password": bool(reply.get("password"))},
                               parent, "stdin", conn.kernel.id)
        waiting = defer.Deferred()
        conn.inputs[request["msg_id"]] = waiting
        waiting.addTimeout(INPUT_TIMEOUT, self.clock,
                           onTimeoutCancel=lambda *_: "")  # then an empty line
        conn.send_message(request)
        try:
            return await waiting
        finally:
            conn.inputs.pop(request["msg_id"], None)
