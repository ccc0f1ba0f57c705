"""The operator's dashboard: `/` is a plain HTML page (no build step, no external
assets) that follows `/api/dashboard/events`, server-sent events of the cluster's state
(agents, kernels by language, warm pools, recent errors). The state is asked of the
manager once per interval however many pages watch. An admin token sees all of it; a
plain token sees the cluster's size and its own kernels and errors."""

import collections
import json
from importlib import resources

from twisted.internet import task
from twisted.logger import Logger
from twisted.web import server

from sorna.defer import deferred
from sorna.gateway.backpressure import drop_unsent, over_budget
from sorna.gateway.tenants import Quotas
from sorna.gateway.web import HttpError, Route
from sorna.proto.errors import SornaError

log = Logger(namespace="sorna.gateway.dashboard")

INTERVAL = 2.0
MAX_WATCHERS = 64
RECENT_ERRORS = 20


class DashboardApi:
    def __init__(self, client, kernels, clock, interval=INTERVAL, quotas=Quotas()):
        self.client = client
        self.kernels = kernels
        self.clock = clock
        self.interval = interval
        self.quotas = quotas
        self.watchers = {}  # request -> the tenant watching
        self.errors = collections.deque(maxlen=RECENT_ERRORS)  # the gateway's own
        # Errors of each token's requests, apart: a token fills its own list only.
        self.errors_of = collections.defaultdict(
            lambda: collections.deque(maxlen=RECENT_ERRORS))
        self._loop = None
        self._last = None  # the newest state, every tenant's part included
        self._page = resources.files("sorna.gateway").joinpath(
            "dashboard.html").read_bytes()

    def routes(self):
        return [Route("GET", r"/", self.page, token=False, raw=True),
                Route("GET", r"/api/dashboard", self.snapshot_route),
                Route("GET", r"/api/dashboard/events", self.events, query_token=True,
                      raw=True)]

    def record_error(self, where, message, tenant=None):
        entry = {"time": self.clock.seconds(), "where": where[:200],
                 "message": message[:500]}
        if tenant is None:
            self.errors.appendleft(entry)
        else:
            self.errors_of[tenant.name].appendleft(dict(entry, token=tenant.name))

    def page(self, request):
        request.setHeader("content-type", "text/html; charset=utf-8")
        request.setHeader("content-security-policy",
                          "default-src 'self'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'")
        return self._page

    @deferred
    async def snapshot(self):
        """The cluster's state, for admins; `view` cuts it down for a plain token."""
        try:
            status = await self.client.status()
        except SornaError as e:
            self.record_error("manager status", e.cause)
            return {"time": self.clock.seconds(), "manager": f"unreachable: {e.cause}",
                    "agents": [], "kernels": 0, "capacity": 0, "by_lang": {},
                    "warm": {}}
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
                "by_lang": dict(by_lang), "warm": dict(warm)}

    def view(self, state, tenant):
        """What `tenant` may see of `state`: an admin everything (every token's kernels
        and errors); a plain token the cluster's size and its own kernels and errors."""
        if tenant.admin:
            by_token = collections.Counter(k.owner for k in self.kernels)
            tokens_errors = sorted((e for errors in self.errors_of.values()
                                    for e in errors), key=lambda e: -e["time"])
            errors = sorted(list(self.errors) + tokens_errors[:RECENT_ERRORS],
                            key=lambda e: -e["time"])
            return dict(state, role="admin", errors=errors, gateway={
                "kernels": len(self.kernels), "by_token": dict(by_token)})
        own = self.kernels.owned_by(tenant.name)
        return {"time": state["time"], "manager": state["manager"],
                "security": state.get("security"), "role": "user", "token": tenant.name,
                "agents": [], "kernels": state["kernels"], "capacity": state["capacity"],
                "by_lang": dict(collections.Counter(k.lang for k in own)), "warm": {},
                "errors": list(self.errors_of.get(tenant.name, ())),
                "gateway": {"kernels": len(own),
                            "max_kernels": self.quotas.of(tenant, "kernels"),
                            "max_runs": self.quotas.of(tenant, "runs")}}

    @deferred
    async def snapshot_route(self, request, tenant):
        return 200, self.view(await self.snapshot(), tenant)

    def events(self, request, tenant):
        streams = sum(1 for t in self.watchers.values() if t.name == tenant.name)
        self.quotas.check(tenant, "streams", streams)
        if not tenant.admin and len(self.watchers) >= MAX_WATCHERS:
            raise HttpError(503, f"{MAX_WATCHERS} dashboards watch already, the most this "
                                 f"gateway serves", "too-many-watchers")
        request.setHeader("content-type", "text/event-stream")
        request.setHeader("cache-control", "no-cache")
        self.watchers[request] = tenant
        request.notifyFinish().addBoth(lambda _: self.watchers.pop(request, None))
        if self._last is not None:
            self._send(request, tenant, self._last)
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
        self._last = await self.snapshot()
        for request, tenant in list(self.watchers.items()):
            self._send(request, tenant, self._last)

    def _send(self, request, tenant, state):
        if request.finished or request._disconnected:
            return
        data = b"data: " + json.dumps(self.view(state, tenant)).encode() + b"\n\n"
        if over_budget(request.transport, len(data)):
            # A watcher that does not read is let go, not buffered for.
            self.watchers.pop(request, None)
            request.transport.abortConnection()
            drop_unsent(request.transport)
            return
        request.write(data)

    def revoke(self, ring):
        """End the event streams of tokens the ring no longer accepts."""
        for request, tenant in list(self.watchers.items()):
            if not ring.holds(tenant):
                self.watchers.pop(request, None)
                if not request.finished and not request._disconnected:
                    request.finish()

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        self._last = None
        for request in list(self.watchers):
            if not request.finished and not request._disconnected:
                request.finish()
        self.watchers.clear()
