"""Jupyter's kernel gateway REST API over Sorna kernels (the WebSocket is in
sorna.gateway.channels). Kernel ids are UUIDs of the gateway's own, mapped to Sorna's."""

import collections
import datetime
import uuid

from twisted.internet import defer

from sorna.defer import deferred
from sorna.gateway.history import History
from sorna.gateway.languages import kernelspec
from sorna.gateway.logos import logo_svg
from sorna.gateway.tenants import Quotas, Tenant, holding
from sorna.gateway.web import HttpError, Route, json_body
from sorna.ids import new_trace
from sorna.proto.errors import KernelNotFound

ADMIN = Tenant("(the gateway)", admin=True)  # for looking a kernel up by its id alone
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


def kernel_not_found(kernel_id):
    """The 404 of an unknown id, and of another token's kernel: the same, word for
    word."""
    return HttpError(404, f"no kernel has id {kernel_id[:64]}", "kernel-not-found")


class GatewayKernel:
    def __init__(self, lang, sorna_id, now, owner):
        self.id = str(uuid.uuid4())
        self.owner = owner  # the name of the token that made it
        self.lang = lang
        self.sorna_id = sorna_id
        self.last_activity = now
        self.execution_state = "idle"
        self.connections = 0
        self.execution_count = 0
        self.runs = defer.DeferredLock()  # one execute_request at a time, in order
        self.requests_seen = 0  # execute_requests queued so far
        self.aborted_through = 0  # ...of which these are aborted (stop_on_error)
        self.history = History()

    def restarted(self):
        """A fresh process: counting starts again, in a new history session."""
        self.execution_count = 0
        self.history.restarted()

    def model(self):
        return {"id": self.id, "name": self.lang, "last_activity": iso(self.last_activity),
                "execution_state": self.execution_state, "connections": self.connections}


class Kernels:
    """The gateway's kernels: its UUIDs, the Sorna kernels behind them, and the token
    that owns each. To any other (non-admin) token a kernel does not exist."""

    def __init__(self, client, clock, max_kernels=MAX_KERNELS, quotas=Quotas()):
        self.client = client
        self.clock = clock
        self.max_kernels = max_kernels
        self.quotas = quotas
        self._kernels = {}
        self._starting = collections.Counter()  # owner -> creations under way
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
            versions, packages = {}, {}
            for agent in status["agents"]:
                resources = agent.get("resources") or {}
                reported = resources.get("versions")
                if isinstance(reported, dict):
                    for lang, version in reported.items():
                        if isinstance(version, str):
                            versions.setdefault(lang, version[:64])
                added = resources.get("packages")
                if isinstance(added, dict):
                    for lang, names in added.items():
                        if isinstance(names, list):
                            packages.setdefault(lang, [n[:100] for n in names[:64]
                                                       if isinstance(n, str)])
            self._langs = (now, list(status["langs"]), versions, packages)
        return self._langs[1]

    def version(self, lang):
        """The version live agents' images report for `lang` ("" if none, or not
        asked yet)."""
        return self._langs[2].get(lang, "") if self._langs else ""

    def packages(self, lang):
        """The packages an operator added to live agents' images of `lang`."""
        return self._langs[3].get(lang, []) if self._langs else []

    def owned_by(self, name):
        return [k for k in self._kernels.values() if k.owner == name]

    def visible_to(self, tenant):
        return [k for k in self._kernels.values() if tenant.owns(k.owner)]

    @deferred
    async def start(self, lang, tenant, trace=None):
        """A new kernel of `tenant`'s; 429 past its quota (counting the kernels it is
        making now, so that concurrent requests cannot pass it together)."""
        if self._held(tenant.name) >= self.quotas.of(tenant, "kernels"):
            # Kernels Sorna lost or culled are counted until someone looks: look now.
            await self.live(tenant, own_only=True)
        self.quotas.check(tenant, "kernels", self._held(tenant.name))
        if len(self._kernels) + sum(self._starting.values()) >= self.max_kernels:
            raise HttpError(503, f"this gateway holds {self.max_kernels} kernels, the most "
                                 f"it may; shut some down first", "too-many-kernels")
        with holding(self._starting, tenant.name):
            reply = await self.client.create(lang, trace=trace or new_trace("gateway"))
        kernel = GatewayKernel(reply["lang"], reply["kernel_id"], self.clock.seconds(),
                               tenant.name)
        self._kernels[kernel.id] = kernel
        self._checked[kernel.id] = self.clock.seconds()
        return kernel

    def _held(self, name):
        return len(self.owned_by(name)) + self._starting[name]

    def any(self, kernel_id):
        """The kernel `kernel_id`, whoever owns it; 404 for an unknown id."""
        return self.find(kernel_id, ADMIN)

    def find(self, kernel_id, tenant):
        """`tenant`'s kernel `kernel_id`; 404 for an unknown id and for another token's
        kernel alike, so that ids cannot be probed."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None or not tenant.owns(kernel.owner):
            raise kernel_not_found(kernel_id)
        return kernel

    @deferred
    async def get(self, kernel_id, tenant):
        """The kernel, confirmed alive by the manager lately; 404 when Sorna lost it."""
        kernel = self.find(kernel_id, tenant)
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
    async def live(self, tenant, own_only=False):
        """The kernels `tenant` sees (an admin: every one; `own_only`: its own) that
        Sorna still has; the lost ones are forgotten."""
        kernels = (self.owned_by(tenant.name) if own_only else self.visible_to(tenant))
        results = await defer.DeferredList([self.get(k.id, tenant) for k in kernels],
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
            # Resources of a kernelspec (jupyter_server fetches them at /kernelspecs).
            Route("GET", r"/kernelspecs/(?P<name>[\w.+-]{1,64})/logo-svg\.svg", self.logo,
                  token=False, raw=True),
            Route("GET", r"/api/kernels", self.list_kernels),
            Route("POST", r"/api/kernels", self.start_kernel),
            Route("GET", k, self.get_kernel),
            Route("DELETE", k, self.delete_kernel),
            Route("POST", k + r"/interrupt", self.interrupt),
            Route("POST", k + r"/restart", self.restart),
            Route("GET", r"/api/sessions", lambda request, tenant: (200, [])),
        ]

    def version(self, request):
        return 200, {"version": "sorna-gateway"}

    @deferred
    async def kernelspecs(self, request, tenant=None):
        langs = await self._langs()
        default = "python3" if "python3" in langs else (langs[0] if langs else "python3")
        return 200, {"default": default,
                     "kernelspecs": {lang: kernelspec(lang, self.kernels.packages(lang))
                                     for lang in langs}}

    @deferred
    async def kernelspec(self, request, name, tenant):
        if name not in await self._langs():
            raise HttpError(404, f"no kernelspec named {name[:64]!r}: no live agent serves "
                                 f"that language", "no-such-kernelspec")
        return 200, kernelspec(name, self.kernels.packages(name))

    def logo(self, request, name):
        request.setHeader("content-type", "image/svg+xml")
        request.setHeader("cache-control", "max-age=86400")
        return logo_svg(name).encode()

    @deferred
    async def list_kernels(self, request, tenant):
        return 200, [k.model() for k in await self.kernels.live(tenant)]

    @deferred
    async def start_kernel(self, request, tenant):
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
        kernel = await self.kernels.start(name, tenant)
        return 201, kernel.model()

    @deferred
    async def get_kernel(self, request, kernel_id, tenant):
        return 200, (await self.kernels.get(kernel_id, tenant)).model()

    @deferred
    async def delete_kernel(self, request, kernel_id, tenant):
        await self.kernels.shutdown(self.kernels.find(kernel_id, tenant))
        return 204, None

    @deferred
    async def interrupt(self, request, kernel_id, tenant):
        kernel = await self.kernels.get(kernel_id, tenant)
        await self.kernels.client.interrupt(kernel.sorna_id)
        return 204, None

    @deferred
    async def restart(self, request, kernel_id, tenant):
        kernel = await self.kernels.get(kernel_id, tenant)
        await self.kernels.client.restart(kernel.sorna_id)
        kernel.restarted()
        return 200, kernel.model()

    def _langs(self):
        return self.kernels.langs()
