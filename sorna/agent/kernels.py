"""The kernels of one agent: their containers from start to end. Each kernel's REPL
connection is a ReplChannel (sorna.agent.channel), its executions a RunQueue
(sorna.agent.scheduler); kernels started ahead of demand wait in WarmPools
(sorna.agent.pools)."""

import os

from twisted.internet import defer
from twisted.logger import Logger

from sorna.agent import assists
from sorna.agent.channel import ReplChannel
from sorna.agent.metrics import AgentMetrics
from sorna.agent.pools import WarmPools
from sorna.agent.runs import RunOptions
from sorna.agent.scheduler import RunQueue
from sorna.defer import deferred, returns_deferred
from sorna.ids import new_kernel_id
from sorna.langs import parse_aliases
from sorna.proto.actions import MAX_FILE_SIZE
from sorna.proto.errors import (
    BadRequest, Busy, Failure, KernelNotFound, NoCapacity, SornaError, Timeout,
)

log = Logger(namespace="sorna.agent")

# How long heartbeats keep telling the manager why a kernel ended (seconds).
GONE_MEMORY = 30.0
FILE_REQUESTS_AT_ONCE = 2
FILE_REQUESTS_WAITING = 16
MAX_PACKAGES = 64  # added packages an agent reports per language


class KernelDied(KernelNotFound):
    error = "kernel-died"

class Kernel:
    def __init__(self, kernel_id, lang, ipc_dir, limits):
        self.kernel_id = kernel_id
        self.lang = lang
        self.ipc_dir = ipc_dir
        self.limits = limits
        self.container_id = None
        self.channel = None  # ReplChannel, once the container runs
        self.runs = None  # RunQueue, likewise
        # File requests at the daemon at once: each may carry 16 MiB both ways.
        self.files = defer.DeferredSemaphore(FILE_REQUESTS_AT_ONCE)
        self.ready = False
        self.pooled = False  # waiting in a warm pool: no user has had it yet
        self.image_id = None

    @property
    def last_used(self):
        return self.runs.last_used if self.runs is not None else 0.0


class Kernels:
    """Creates, runs and destroys kernels. Every Docker call goes through `containers`."""

    def __init__(self, containers, links, clock, policy, ipc_root, max_kernels,
                 start_timeout=30.0, max_queued=8, idle_timeout=600.0, interrupt_grace=5.0,
                 default_wait=2.0, exporter=None, max_executions=0, max_input_wait=300.0,
                 warm_pools=None):
        """`links` opens REPL links (sorna.agent.repl_link.UnixReplLinks); `warm_pools`,
        {lang: n}, how many ready kernels to keep per language."""
        self.containers = containers
        self.links = links
        self.clock = clock
        self.policy = policy
        self.ipc_root = ipc_root
        self.max_kernels = max_kernels
        self.start_timeout = start_timeout
        self.max_queued = max_queued
        # The largest frame a daemon may send: a downloaded file (or a run's output, if
        # larger) and the envelope around it.
        self.max_frame = max(MAX_FILE_SIZE, policy.max_output) + (1 << 20)
        self.idle_timeout = idle_timeout
        self.interrupt_grace = interrupt_grace
        self.default_wait = default_wait
        self.exporter = exporter
        self.max_executions = max_executions  # runs at once on this agent (0: no limit)
        self.max_input_wait = max_input_wait
        self.images = {}  # lang -> KernelImage
        self.pools = WarmPools(self, warm_pools or {})
        self._kernels = {}
        self._gone = {}
        self.metrics = AgentMetrics(self)

    def running(self):
        """{kernel_id: lang} of users' kernels that are ready, as heartbeats report them."""
        return {k.kernel_id: k.lang for k in self._kernels.values()
                if k.ready and not k.pooled}

    def count(self):
        """Users' kernels that are ready."""
        return len(self.running())

    def queued(self):
        """Runs waiting behind another run on their kernel."""
        return sum(k.runs.queued for k in self._kernels.values() if k.runs is not None)

    def pooled(self):
        """Kernels in the warm pools, ready or starting, oldest first."""
        return [k for k in self._kernels.values() if k.pooled]

    def has_free_slot(self):
        return len(self._kernels) < self.max_kernels

    def __len__(self):
        return len(self._kernels)

    @deferred
    async def refresh_images(self):
        self.images = await self.containers.kernel_images()
        for kernel in self.pooled():
            image = self.images.get(kernel.lang)
            if kernel.ready and (image is None or image.id != kernel.image_id):
                log.info("the {lang} image changed: warm kernel {kernel} is replaced",
                         lang=kernel.lang, kernel=kernel.kernel_id)
                await self._remove(kernel)
        return sorted(self.images)

    def aliases(self):
        """{lang: [alias]} from the images' io.sorna.aliases labels."""
        return {lang: parse_aliases(image.labels.get("io.sorna.aliases"))
                for lang, image in self.images.items()}

    def versions(self):
        """{lang: version} from the images' io.sorna.version labels (what `sorna images
        build` found the language's own command to say)."""
        return {lang: image.labels["io.sorna.version"][:64]
                for lang, image in self.images.items()
                if image.labels.get("io.sorna.version")}

    def packages(self):
        """{lang: [package]}: what an operator added to the images (io.sorna.packages,
        `sorna images build LANG --with`)."""
        return {lang: [p[:100] for p in image.labels["io.sorna.packages"].split(",")
                       if p][:MAX_PACKAGES]
                for lang, image in self.images.items()
                if image.labels.get("io.sorna.packages")}

    @deferred
    async def create(self, kernel_id, lang, requested_limits=None):
        """A warm kernel of `lang` when the pool has one its limits fit, else a new one
        (making room by destroying a warm kernel, when every slot is taken)."""
        if kernel_id in self._kernels:
            raise BadRequest(f"kernel {kernel_id} already exists on this agent",
                             error="duplicate-kernel")
        if lang not in self.images:
            raise BadRequest(f"this agent has no image for language {lang!r}; it has: "
                             f"{', '.join(sorted(self.images)) or 'none'}",
                             error="unknown-language")
        limits = self.policy.limits_for(self.images[lang].labels, requested_limits)
        kernel = await self._hand_out(kernel_id, lang, limits)
        if kernel is None:
            await self._make_room()
            kernel = await self._start(kernel_id, lang, limits)
        self.pools.fill()
        return kernel

    @deferred
    async def start_pooled(self, lang):
        limits = self.policy.limits_for(self.images[lang].labels, None)
        kernel = await self._start(new_kernel_id(), lang, limits, pooled=True)
        log.info("warm {lang} kernel {kernel} is ready", lang=lang, kernel=kernel.kernel_id)
        return kernel

    @deferred
    async def _hand_out(self, kernel_id, lang, limits):
        """Give the oldest ready warm kernel of `lang` the id `kernel_id` and the
        requested limits: a lower memory limit is applied to its running container
        (`docker update`); if that fails, None (the caller starts a new kernel)."""
        kernel = next((k for k in self.pooled() if k.lang == lang and k.ready
                       and k.image_id == self.images[lang].id), None)
        if kernel is None:
            return None
        pool_id = kernel.kernel_id
        del self._kernels[pool_id]
        kernel.pooled = False
        kernel.kernel_id = kernel.channel.name = kernel.runs.name = kernel_id
        self._kernels[kernel_id] = kernel
        if limits["memory_mb"] < kernel.limits["memory_mb"]:
            try:
                await self.containers.limit_memory(kernel.container_id, limits["memory_mb"])
            except Exception as e:
                log.warn("could not lower the memory limit of warm kernel {pool} ({cause}); "
                         "starting a new kernel instead", pool=pool_id, cause=str(e))
                await self._remove(kernel)
                return None
            if self._kernels.get(kernel_id) is not kernel:
                raise Failure(f"kernel {kernel_id} was destroyed while it started")
        kernel.limits.update(limits)
        kernel.runs.last_used = self.clock.seconds()
        log.info("kernel {kernel} ({lang}) is warm kernel {pool}, container {container}",
                 kernel=kernel_id, lang=lang, pool=pool_id,
                 container=kernel.container_id[:12])
        return kernel

    @deferred
    async def _make_room(self):
        if self.has_free_slot():
            return
        # Ready warm kernels go first: a starting one would waste its start.
        pooled = sorted(self.pooled(), key=lambda k: not k.ready)
        if not pooled:
            raise NoCapacity(f"this agent already runs its maximum of {self.max_kernels} "
                             f"kernels")
        log.info("destroying warm kernel {kernel} ({lang}) to make room",
                 kernel=pooled[0].kernel_id, lang=pooled[0].lang)
        await self._remove(pooled[0])

    @deferred
    async def _start(self, kernel_id, lang, limits, pooled=False):
        image = self.images[lang]
        kernel = Kernel(kernel_id, lang, os.path.join(self.ipc_root, kernel_id), limits)
        kernel.pooled = pooled
        kernel.image_id = image.id
        self._kernels[kernel_id] = kernel
        try:
            args = self.policy.container_args(self.containers.agent_id, kernel_id, lang,
                                              image.tag, kernel.ipc_dir, limits,
                                              image.labels)
            kernel.container_id = await self.containers.start_kernel(kernel.ipc_dir, args)
            if self._kernels.get(kernel_id) is not kernel:
                raise Failure(f"kernel {kernel_id} was destroyed while it started")
            self._connect(kernel)
            await kernel.channel.until_ready(self.start_timeout, f"the {lang} kernel")
        except BaseException as e:
            await self._remove(kernel)
            if isinstance(e, SornaError):
                raise
            raise Failure(f"could not start a {lang} kernel: {e}")
        kernel.ready = True
        kernel.runs.last_used = self.clock.seconds()
        if not pooled:
            log.info("kernel {kernel} ({lang}) started in container {container}",
                     kernel=kernel_id, lang=lang, container=kernel.container_id[:12])
        return kernel

    @deferred
    async def reap(self):
        """Forget kernels whose containers stopped: a crash, an OOM kill, a kill from outside.

        Only kernels ready before the listing are judged, so a kernel whose container is
        still starting is never mistaken for a dead one. Containers are matched by id: a
        warm kernel keeps the label of its pool id after it is handed out.
        """
        candidates = [k for k in self._kernels.values() if k.ready]
        if not candidates:
            return []
        states = {container_id: status
                  for container_id, _, status in await self.containers.list_kernels()}
        dead = []
        for kernel in candidates:
            status = states.get(kernel.container_id, "missing")
            if status in ("running", "paused", "restarting"):
                continue
            if self._kernels.get(kernel.kernel_id) is not kernel:
                continue  # destroyed meanwhile
            cause = await self.containers.death_cause(kernel.container_id)
            cause = cause or f"its container is {status}"
            log.warn("kernel {kernel} died: {cause}", kernel=kernel.kernel_id, cause=cause)
            if kernel.pooled:
                await self._remove(kernel)
                continue
            dead.append(kernel.kernel_id)
            await self._remove(kernel, KernelDied(f"kernel {kernel.kernel_id} died: {cause}; "
                                                  f"create a new one"))
        return dead

    @deferred
    async def cull_idle(self):
        """Destroy kernels nobody has used for `idle_timeout` seconds (0: never)."""
        if not self.idle_timeout:
            return []
        now = self.clock.seconds()
        idle = [k for k in self._kernels.values()
                if k.ready and not k.pooled and not k.runs.busy
                and now - k.last_used >= self.idle_timeout]
        for kernel in idle:
            log.info("kernel {kernel} was idle for {t:.0f} s; destroying it",
                     kernel=kernel.kernel_id, t=now - kernel.last_used)
            await self._remove(kernel)
        return [k.kernel_id for k in idle]

    @deferred
    async def destroy(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None or kernel.pooled:
            raise KernelNotFound(f"no kernel has id {kernel_id} on this agent")
        await self._remove(kernel)

    @deferred
    async def close(self):
        """Stop filling the pools (the start in progress ends first), then destroy every
        kernel, warm ones included."""
        await self.pools.close()
        await self.destroy_all()

    def destroy_all(self):
        return defer.gatherResults([self._remove(k) for k in list(self._kernels.values())],
                                   consumeErrors=True)

    def _ready(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None or not kernel.ready or kernel.pooled:
            raise KernelNotFound(f"no kernel has id {kernel_id} on this agent")
        return kernel

    @returns_deferred
    def execute(self, kernel_id, code=None, mode=None, text=None, wait=None,
                partial=None, entry_id=None, eof=False, options=RunOptions()):
        """Start, continue or feed a run; fire with the reply fields.

        Without `mode` the reply comes when the run finishes or waits for input; with a
        mode, also after `wait` seconds (status `continued`). `partial(fields)` receives
        the output as it comes, for streaming clients. `options`: what else a new
        run was asked for (sorna.agent.runs.RunOptions).
        """
        kernel = self._ready(kernel_id)
        runs = kernel.runs
        if mode is not None and wait is None:
            wait = self.default_wait
        if mode in (None, "query"):
            if code is None:
                raise BadRequest("`code` is missing")
            if self.max_executions and self.executions() >= self.max_executions:
                raise Busy(f"this agent already runs its maximum of {self.max_executions} "
                           f"executions at once; try again shortly", error="agent-busy")
            return runs.follow(runs.submit(code, entry_id, options), wait, partial)
        # The last run stays reachable after its end, so that a late `continue` (or
        # one after an abandoned request) still gets the end of it.
        run = runs.current or runs.last
        if mode == "input":
            return runs.feed(run, text, eof).addCallback(
                lambda _: runs.follow(run, wait, partial))
        if run is None:
            raise KernelNotFound(f"no execution is running on kernel {kernel_id}",
                                 error="no-run")
        return runs.follow(run, wait, partial)

    def executions(self):
        return sum(1 for k in self._kernels.values()
                   if k.runs is not None and k.runs.current is not None)

    def _stuck(self, kernel, run):
        timeout = kernel.limits["exec_timeout"]
        log.warn("kernel {kernel} ignored the interrupt; destroying it", kernel=kernel.kernel_id)
        d = self._remove(kernel, Timeout(
            f"the code ran longer than {timeout:g} s and ignored the interrupt; the kernel "
            f"was destroyed, create a new one", error="exec-timeout"))
        d.addErrback(lambda f: log.failure("could not destroy kernel {kernel}", f,
                                           kernel=kernel.kernel_id))

    def _flooded(self, kernel, cause):
        log.warn("kernel {kernel} is destroyed: {cause}", kernel=kernel.kernel_id,
                 cause=cause)
        d = self._remove(kernel, KernelDied(f"kernel {kernel.kernel_id} died: {cause}; "
                                            f"create a new one"))
        d.addErrback(lambda f: log.failure("could not destroy kernel {kernel}", f,
                                           kernel=kernel.kernel_id))

    def _ended(self, kernel, run):
        run.files = list(run.finished.get("files") or [])
        if self.exporter is not None:
            run.exported = self.exporter.export(self, kernel, run)

    def interrupt(self, kernel_id):
        return self._ready(kernel_id).runs.interrupt()

    @deferred
    async def restart(self, kernel_id):
        """A fresh process in the same container: the session's state is gone, and so
        is every run, running or queued (409 restarted)."""
        kernel = self._ready(kernel_id)
        try:
            await kernel.runs.restart()
        except SornaError as e:
            if self._kernels.get(kernel_id) is kernel:
                log.warn("kernel {kernel} did not come back from a restart: {cause}",
                         kernel=kernel_id, cause=e.cause)
                await self._remove(kernel, Failure(
                    f"kernel {kernel_id} did not come back from a restart ({e.cause}); "
                    f"create a new one", error="restart-failed"))
            raise
        return {}

    def file_request(self, kernel_id, message):
        """upload, download and list go to the daemon, which owns the work directory."""
        return self._ask_daemon(kernel_id, message, 30.0)

    @deferred
    async def assist(self, kernel_id, action, code, cursor=None):
        """complete, inspect or is_complete, answered by the daemon (while a run goes on
        too) and cut to a well-formed reply (sorna.agent.assists)."""
        message = {"action": action, "code": code}
        if cursor is not None:
            message["cursor_pos"] = cursor
        reply = await self._ask_daemon(kernel_id, message, assists.TIMEOUT)
        return assists.clean(action, reply, code)

    @deferred
    async def _ask_daemon(self, kernel_id, message, timeout):
        """One request to the kernel's daemon, one at a time per kernel, and not during
        a restart; the reply's fields."""
        kernel = self._ready(kernel_id)
        if len(kernel.files.waiting) >= FILE_REQUESTS_WAITING:
            raise Busy(f"kernel {kernel_id} has {FILE_REQUESTS_WAITING} file requests "
                       f"waiting already; wait for their replies", error="files-busy")
        await kernel.files.acquire()
        try:
            if self._kernels.get(kernel_id) is not kernel:
                raise KernelNotFound(f"kernel {kernel_id} was destroyed")
            await kernel.runs.ready()
            kernel.runs.last_used = self.clock.seconds()
            reply = await kernel.channel.request(message, timeout, what=message["action"])
        finally:
            kernel.files.release()
        return {k: v for k, v in reply.items() if k not in ("id", "reply")}

    def _connect(self, kernel):
        kernel.channel = ReplChannel(self.links, os.path.join(kernel.ipc_dir, "repl"),
                                     self.clock, self.max_frame, kernel.kernel_id,
                                     on_flood=lambda cause: self._flooded(kernel, cause))
        kernel.runs = RunQueue(
            kernel.kernel_id, kernel.channel, self.clock, kernel.limits,
            max_queued=self.max_queued, max_output=self.policy.max_output,
            interrupt_grace=self.interrupt_grace, start_timeout=self.start_timeout,
            on_stuck=lambda run: self._stuck(kernel, run),
            on_end=lambda run: self._ended(kernel, run), max_input_wait=self.max_input_wait,
            on_over=lambda run, error, seconds: self.metrics.run_ended(
                kernel.lang, seconds, error, run.truncated))

    def gone(self):
        """{kernel_id: why} of kernels that ended lately, for the manager (heartbeats)."""
        now = self.clock.seconds()
        for kernel_id, (_, when) in list(self._gone.items()):
            if now - when > GONE_MEMORY:
                del self._gone[kernel_id]
        return {kernel_id: why for kernel_id, (why, _) in self._gone.items()}

    @deferred
    async def _remove(self, kernel, why=None):
        """Destroy a kernel. `why`, an error saying why it ended, goes to whoever waits
        on it and, through heartbeats, to the manager."""
        if self._kernels.get(kernel.kernel_id) is kernel:
            del self._kernels[kernel.kernel_id]
        kernel.ready = False
        gone = why or KernelNotFound(f"kernel {kernel.kernel_id} was destroyed")
        if why is not None and not kernel.pooled:
            self._gone[kernel.kernel_id] = (why.cause, self.clock.seconds())
            self.metrics.died(why)
        if kernel.runs is not None:
            kernel.runs.fail_all(gone)
        if kernel.channel is not None:
            kernel.channel.close(gone)
        await self.containers.remove_kernel(kernel.container_id, kernel.ipc_dir)
        log.info("kernel {kernel} destroyed", kernel=kernel.kernel_id)
