"""The operator's dashboard: `/` is a plain HTML page (no build step, no external
assets) that follows `/api/dashboard/events`, server-sent events of the cluster's state
(agents, kernels by language, warm pools, recent errors). The state is asked of the
manager once per interval however many pages watch."""

import collections
import json
from importlib import resources

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import server

from sorna.defer import deferred
from sorna.gateway.web import HttpError, Route
from sorna.proto.errors import SornaError

log = Logger(namespace="sorna.gateway.dashboard")

INTERVAL = 2.0
MAX_WATCHERS = 64
RECENT_ERRORS = 20


class DashboardApi:
    def __init__(self, client, kernels, clock, interval=INTERVAL):
        self.client = client
        self.kernels = kernels
        self.clock = clock
        self.interval = interval
        self.watchers = set()
        self.errors = collections.deque(maxlen=RECENT_ERRORS)
        self._loop = None
        self._last = None
        self._page = resources.files("sorna.gateway").joinpath(
            "dashboard.html").read_bytes()

    def routes(self):
        return [Route("GET", r"/", self.page, token=False, raw=True),
                Route("GET", r"/api/dashboard", self.snapshot_route),
                Route("GET", r"/api/dashboard/events", self.events, query_token=True,
                      raw=True)]

    def record_error(self, where, message):
        self.errors.appendleft({"time": self.clock.seconds(), "where": where[:200],
                                "message": message[:500]})

    def page(self, request):
        request.setHeader("content-type", "text/html; charset=utf-8")
        request.setHeader("content-security-policy",
                          "default-src 'self'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'")
        return self._page

    @deferred
    async def snapshot(self):
        try:
            status = await self.client.status()
        except SornaError as e:
            self.record_error("manager status", e.cause)
            return {"time": self.clock.seconds(), "manager": f"unreachable: {e.cause}",
                    "agents": [], "kernels": 0, "capacity": 0, "by_lang": {},
                    "warm": {}, "errors": list(self.errors), "gateway": self._gateway()}
        by_lang, warm, agents = collections.Counter(), collections.Counter(), []
        for agent in status["agents"]:
            resources = agent.get("resources") or {}
            running = resources.get("running") if isinstance(resources, dict) else None
            for lang, n in (running or {}).items():
                if isinstance(n, int):
                    by_lang[str(lang)[:32]] += n
            for lang, n in (agent.get("warm") or {}).items():
                if isinstance(n, int):
                    warm[lang] += n
            agents.append({k: agent.get(k) for k in (
                "agent_id", "addr", "kernels", "max_kernels", "free", "langs",
                "last_heartbeat", "warm")} | {"sandbox": resources.get("sandbox")})
        return {"time": self.clock.seconds(), "manager": "ok",
                "security": status.get("security"), "agents": agents,
                "kernels": status["kernels"], "capacity": status["capacity"],
                "by_lang": dict(by_lang), "warm": dict(warm), "errors": list(self.errors),
                "gateway": self._gateway()}

    def _gateway(self):
        return {"kernels": len(self.kernels)}

    @deferred
    async def snapshot_route(self, request):
        return 200, await self.snapshot()

    def events(self, request):
        if len(self.watchers) >= MAX_WATCHERS:
            raise HttpError(503, f"{MAX_WATCHERS} dashboards watch already, the most this "
                                 f"gateway serves", "too-many-watchers")
        request.setHeader("content-type", "text/event-stream")
        request.setHeader("cache-control", "no-cache")
        self.watchers.add(request)
        request.notifyFinish().addBoth(lambda _: self.watchers.discard(request))
        if self._last is not None:
            self._send(request, self._last)
        else:
            request.write(b": waiting for the first state\n\n")
        if self._loop is None:
            self._loop = task.LoopingCall(self._tick)
            self._loop.clock = self.clock
            self._loop.start(self.interval, now=True).addErrback(
                lambda f: log.failure("the dashboard's updates stopped", f))
        return server.NOT_DONE_YET

    @deferred
    async def _tick(self):
        if not self.watchers:
            self.stop()
            return
        self._last = json.dumps(await self.snapshot()).encode()
        for request in list(self.watchers):
            self._send(request, self._last)

    @staticmethod
    def _send(request, data):
        if not request.finished and not request._disconnected:
            request.write(b"data: " + data + b"\n\n")

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._last = None
        for request in list(self.watchers):
            if not request.finished and not request._disconnected:
                request.finish()
        self.watchers.clear()
