"""The gateway's HTTP plumbing: routes, tokens, CORS, body caps and JSON errors, once for
the Jupyter, Piston and dashboard endpoints.

Every answer that is not a success is JSON, `{"message": SENTENCE, "reason": SHORT}`
(Jupyter's and Piston's clients both read `message`)."""

import json
import re

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import http, resource, server

from sorna.defer import InFlight
from sorna.proto.codec import parse_json
from sorna.proto.errors import BadRequest, SornaError
from sorna.ratelog import RateLimitedLog

log = Logger(namespace="sorna.gateway")

MAX_BODY = 1 << 20
# A body past the cap is read and dropped (the client gets its 413 once it has sent it);
# past this much the connection is closed instead.
MAX_DISCARDED = 64 << 20


class HttpError(Exception):
    def __init__(self, status, message, reason=None, **fields):
        """`fields`: more of the JSON body (a quota's name and limit)."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason or http.RESPONSES.get(status, b"error").decode().lower()
        self.fields = fields

    def body(self):
        return dict(self.fields, message=self.message, reason=self.reason)


# What a Sorna error becomes for an HTTP client.
SORNA_STATUS = {400: 400, 403: 403, 404: 404, 409: 409, 413: 413, 429: 429, 503: 503,
                504: 504}


def http_error(error):
    """The HttpError a SornaError from the cluster becomes."""
    return HttpError(SORNA_STATUS.get(error.code, 502), error.cause, error.error)


class CappedRequest(server.Request):
    """A request whose body is kept up to the site's `max_body` bytes only."""

    too_large = False
    _received = 0

    def gotLength(self, length):
        super().gotLength(length)
        if length is not None and length > self.channel.site.max_body:
            self.too_large = True

    def handleContentChunk(self, data):
        self._received += len(data)
        if self._received > self.channel.site.max_body:
            self.too_large = True
        if self.too_large:
            if self._received > MAX_DISCARDED:
                self.channel.transport.abortConnection()
            return
        super().handleContentChunk(data)


class GatewaySite(server.Site):
    requestFactory = CappedRequest

    def __init__(self, root, max_body, clock, **kw):
        super().__init__(root, **kw)
        self.max_body = max_body
        self.displayTracebacks = False
        self.refusals = RateLimitedLog(log, clock)

    def log(self, request):
        """The access log, without the query: it may hold a token (`?token=`). Refusals
        (4xx) are logged at a bounded rate: a client decides how many it causes."""
        fields = dict(method=request.method.decode("ascii", "replace"),
                      path=request.path.decode("utf-8", "replace")[:200],
                      code=request.code, size=request.sentLength)
        if 400 <= (request.code or 0) < 500:
            self.refusals.info("{method} {path} {code} {size}", **fields)
        else:
            log.info("{method} {path} {code} {size}", **fields)


def token_of(request, query_allowed):
    """The token a request carries: `Authorization: token T` or `Bearer T`, or (where
    `query_allowed`: WebSockets and event streams, which browsers cannot give headers)
    `?token=T`."""
    header = request.getHeader("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() in ("token", "bearer") and value.strip():
            return value.strip()
        return None
    if query_allowed:
        values = request.args.get(b"token")
        if values:
            return values[0].decode("utf-8", "replace")
    return None


class Route:
    def __init__(self, method, pattern, handler, token=True, query_token=False,
                 raw=False, anonymous=False):
        """`handler(request, **groups)` returns (status, body) or a Deferred of it; with
        `raw` it writes the answer itself (WebSockets, event streams, HTML) and returns
        NOT_DONE_YET or bytes. `token`: the route needs one, and the handler is given
        its sorna.gateway.tenants.Tenant as `tenant=`; with `anonymous`, a request that
        carries no token at all is let through with `tenant=None` (a wrong one is still
        refused) for the handler to decide."""
        self.method = method
        self.pattern = re.compile(pattern + r"\Z")
        self.handler = handler
        self.token = token
        self.query_token = query_token
        self.raw = raw
        self.anonymous = anonymous


class Api(resource.Resource):
    isLeaf = True

    def __init__(self, routes, tokens, allow_origin=None, on_error=None):
        """`tokens`: a sorna.gateway.tokens.TokenRing. `on_error(where, message, tenant)`
        hears of every 5xx answer."""
        super().__init__()
        self.routes = routes
        self.tokens = tokens
        self.allow_origin = allow_origin
        self.on_error = on_error
        self.in_flight = InFlight()

    def render(self, request):
        self._cors(request)
        method = request.method.decode("ascii", "replace")
        path = request.path.decode("utf-8", "replace")
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        try:
            if request.too_large:
                raise HttpError(413, f"the request body is larger than "
                                     f"{request.channel.site.max_body} bytes, the most this "
                                     f"gateway takes", "body-too-large")
            if method == "OPTIONS":
                request.setResponseCode(204)
                return b""
            route, groups = self._route(method, path)
            tenant = None
            if route.anonymous and token_of(request, route.query_token) is None:
                groups["tenant"] = None
            elif route.token:
                tenant = groups["tenant"] = self.authenticate(request, route.query_token)
            if route.raw:
                return route.handler(request, **groups)
            d = defer.maybeDeferred(route.handler, request, **groups)
        except HttpError as e:
            return self._error_body(request, e)
        except Exception:
            log.failure("{method} {path} failed", method=method, path=path[:200])
            return self._error_body(request, HttpError(500, "internal error"))
        d.addCallbacks(lambda answer: self._write(request, *answer),
                       lambda failure: self._fail(request, failure, method, path, tenant))
        d.addErrback(lambda f: log.failure("could not answer {path}", f, path=path[:200]))
        self.in_flight.track(d)
        return server.NOT_DONE_YET

    def authenticate(self, request, query_allowed=False):
        """The token's tenant; HttpError 401 (no token or an unknown one) otherwise."""
        token = token_of(request, query_allowed)
        if token is None:
            raise HttpError(401, "this gateway needs a token: send `Authorization: token "
                                 "TOKEN` (or `Bearer TOKEN`); an operator makes one with "
                                 "`sorna tokens add NAME`", "token-missing")
        tenant = self.tokens.tenant_of(token)
        if tenant is None:
            raise HttpError(401, "the token is not (or no longer) one this gateway "
                                 "accepts; ask its operator for a valid one",
                            "token-refused")
        return tenant

    def _route(self, method, path):
        allowed = []
        for route in self.routes:
            match = route.pattern.match(path)
            if match:
                if route.method == method:
                    return route, match.groupdict()
                allowed.append(route.method)
        if allowed:
            raise HttpError(405, f"{path[:200]} answers {', '.join(sorted(set(allowed)))}, "
                                 f"not {method[:16]}", "method-not-allowed")
        raise HttpError(404, f"no endpoint at {path[:200]}", "not-found")

    def _cors(self, request):
        if self.allow_origin is None:
            return
        origin = request.getHeader("origin")
        if self.allow_origin == "*" or origin == self.allow_origin:
            request.setHeader("access-control-allow-origin", self.allow_origin)
            request.setHeader("access-control-allow-headers",
                              "authorization, content-type")
            request.setHeader("access-control-allow-methods",
                              "GET, POST, DELETE, PATCH, OPTIONS")
            request.setHeader("vary", "origin")

    def _fail(self, request, failure, method, path, tenant):
        error = failure.value
        if isinstance(error, SornaError):
            error = http_error(error)
        elif not isinstance(error, HttpError):
            log.failure("{method} {path} failed", failure, method=method, path=path[:200])
            error = HttpError(500, f"internal error: {type(error).__name__}")
        if error.status >= 500 and self.on_error is not None:
            self.on_error(f"{method} {path[:200]}", error.message, tenant)
        self._write(request, error.status, error.body())

    def _write(self, request, status, body):
        if request.finished or request._disconnected:
            return
        request.setResponseCode(status)
        if body is None:
            request.finish()
            return
        request.setHeader("content-type", "application/json")
        request.write(json.dumps(body).encode())
        request.finish()

    def _error_body(self, request, error):
        request.setResponseCode(error.status)
        request.setHeader("content-type", "application/json")
        return json.dumps(error.body()).encode()


def json_body(request, required=True):
    """The request's JSON object; HttpError 400 with what was wrong otherwise."""
    data = request.content.read() if request.content is not None else b""
    if not data.strip():
        if required:
            raise HttpError(400, "the request needs a JSON object as its body", "no-body")
        return {}
    try:
        body = parse_json(data)
    except BadRequest as e:
        raise HttpError(400, e.cause, "malformed-json")
    if not isinstance(body, dict):
        raise HttpError(400, f"the body must be a JSON object, not {type(body).__name__}",
                        "malformed-json")
    return body
