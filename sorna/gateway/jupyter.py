"""Jupyter's kernel gateway REST API over Sorna kernels (the WebSocket is in
sorna.gateway.channels). Kernel ids are UUIDs of the gateway's own, mapped to Sorna's."""

import datetime
import uuid

from twisted.internet import defer

from sorna.defer import deferred
from sorna.gateway.languages import kernelspec
from sorna.gateway.web import HttpError, Route, json_body
from sorna.ids import new_trace
from sorna.proto.errors import KernelNotFound

# The most kernels one gateway holds for its clients (the cluster bounds them too).
MAX_KERNELS = 1000
# Kernel specs and liveness are asked of the manager at most this often: JupyterLab
# polls both.
REFRESH_INTERVAL = 2.0
UUID = r"[0-9a-fA-F-]{36}"


def iso(seconds):
    """ISO 8601 in UTC with microseconds and `Z`: jupyter_server parses no other form."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


class GatewayKernel:
    def __init__(self, lang, sorna_id, now):
        self.id = str(uuid.uuid4())
        self.lang = lang
        self.sorna_id = sorna_id
        self.last_activity = now
        self.execution_state = "idle"
        self.connections = 0
        self.execution_count = 0
        self.runs = defer.DeferredLock()  # one execute_request at a time, in order

    def model(self):
        return {"id": self.id, "name": self.lang, "last_activity": iso(self.last_activity),
                "execution_state": self.execution_state, "connections": self.connections}


class Kernels:
    """The gateway's kernels: its UUIDs, the Sorna kernels behind them."""

    def __init__(self, client, clock, max_kernels=MAX_KERNELS):
        self.client = client
        self.clock = clock
        self.max_kernels = max_kernels
        self._kernels = {}
        self._langs = None  # (when, [lang], {lang: version}) of the live agents
        self._checked = {}  # kernel id -> when the manager last confirmed it

    def __len__(self):
        return len(self._kernels)

    def __iter__(self):
        return iter(list(self._kernels.values()))

    @deferred
    async def langs(self):
        now = self.clock.seconds()
        if self._langs is None or now - self._langs[0] >= REFRESH_INTERVAL:
            status = await self.client.status()
            versions = {}
            for agent in status["agents"]:
                reported = (agent.get("resources") or {}).get("versions")
                if isinstance(reported, dict):
                    for lang, version in reported.items():
                        if isinstance(version, str):
                            versions.setdefault(lang, version[:64])
            self._langs = (now, list(status["langs"]), versions)
        return self._langs[1]

    def version(self, lang):
        """The version live agents' images report for `lang` ("" if none, or not
        asked yet)."""
        return self._langs[2].get(lang, "") if self._langs else ""

    @deferred
    async def start(self, lang, trace=None):
        if len(self._kernels) >= self.max_kernels:
            raise HttpError(503, f"this gateway holds {self.max_kernels} kernels, the most "
                                 f"it may; shut some down first", "too-many-kernels")
        reply = await self.client.create(lang, trace=trace or new_trace("gateway"))
        kernel = GatewayKernel(reply["lang"], reply["kernel_id"], self.clock.seconds())
        self._kernels[kernel.id] = kernel
        self._checked[kernel.id] = self.clock.seconds()
        return kernel

    def find(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            raise HttpError(404, f"no kernel has id {kernel_id[:64]}", "kernel-not-found")
        return kernel

    @deferred
    async def get(self, kernel_id):
        """The kernel, confirmed alive by the manager lately; 404 when Sorna lost it."""
        kernel = self.find(kernel_id)
        now = self.clock.seconds()
        if now - self._checked.get(kernel.id, 0) >= REFRESH_INTERVAL:
            try:
                await self.client.kernel_info(kernel.sorna_id)
            except KernelNotFound as e:
                self.forget(kernel)
                raise HttpError(404, f"kernel {kernel.id} is gone: {e.cause}",
                                "kernel-not-found")
            self._checked[kernel.id] = now
        return kernel

    @deferred
    async def live(self):
        """Every kernel Sorna still has (the lost ones are forgotten)."""
        kernels = list(self._kernels.values())
        results = await defer.DeferredList([self.get(k.id) for k in kernels],
                                           consumeErrors=True)
        return [k for ok, k in results if ok]

    def forget(self, kernel):
        self._kernels.pop(kernel.id, None)
        self._checked.pop(kernel.id, None)

    @deferred
    async def shutdown(self, kernel):
        self.forget(kernel)
        try:
            await self.client.destroy(kernel.sorna_id)
        except KernelNotFound:
            pass

    @deferred
    async def shutdown_all(self):
        await defer.DeferredList([self.shutdown(k) for k in list(self._kernels.values())],
                                 consumeErrors=True)


class JupyterApi:
    def __init__(self, kernels):
        self.kernels = kernels

    def routes(self):
        k = rf"/api/kernels/(?P<kernel_id>{UUID})"
        return [
            Route("GET", r"/api", self.version, token=False),
            Route("GET", r"/api/kernelspecs", self.kernelspecs),
            Route("GET", r"/api/kernelspecs/(?P<name>[^/]+)", self.kernelspec),
            Route("GET", r"/api/kernels", self.list_kernels),
            Route("POST", r"/api/kernels", self.start_kernel),
            Route("GET", k, self.get_kernel),
            Route("DELETE", k, self.delete_kernel),
            Route("POST", k + r"/interrupt", self.interrupt),
            Route("POST", k + r"/restart", self.restart),
            Route("GET", r"/api/sessions", lambda request: (200, [])),
        ]

    def version(self, request):
        return 200, {"version": "sorna-gateway"}

    @deferred
    async def kernelspecs(self, request):
        langs = await self._langs()
        default = "python3" if "python3" in langs else (langs[0] if langs else "python3")
        return 200, {"default": default,
                     "kernelspecs": {lang: kernelspec(lang) for lang in langs}}

    @deferred
    async def kernelspec(self, request, name):
        if name not in await self._langs():
            raise HttpError(404, f"no kernelspec named {name[:64]!r}: no live agent serves "
                                 f"that language", "no-such-kernelspec")
        return 200, kernelspec(name)

    @deferred
    async def list_kernels(self, request):
        return 200, [k.model() for k in await self.kernels.live()]

    @deferred
    async def start_kernel(self, request):
        body = json_body(request, required=False)
        name = body.get("name")
        if name is None:
            name = (await self.kernelspecs(request))[1]["default"]
        if not isinstance(name, str) or not name:
            raise HttpError(400, "`name` must name a kernelspec (GET /api/kernelspecs)",
                            "bad-name")
        if name not in await self._langs():
            raise HttpError(400, f"no kernelspec named {name[:64]!r}; the kernelspecs "
                                 f"are: {', '.join(await self._langs())}", "no-such-kernelspec")
        kernel = await self.kernels.start(name)
        return 201, kernel.model()

    @deferred
    async def get_kernel(self, request, kernel_id):
        return 200, (await self.kernels.get(kernel_id)).model()

    @deferred
    async def delete_kernel(self, request, kernel_id):
        await self.kernels.shutdown(self.kernels.find(kernel_id))
        return 204, None

    @deferred
    async def interrupt(self, request, kernel_id):
        kernel = await self.kernels.get(kernel_id)
        await self.kernels.client.interrupt(kernel.sorna_id)
        return 204, None

    @deferred
    async def restart(self, request, kernel_id):
        kernel = await self.kernels.get(kernel_id)
        await self.kernels.client.restart(kernel.sorna_id)
        kernel.execution_count = 0
        return 200, kernel.model()

    def _langs(self):
        return self.kernels.langs()
