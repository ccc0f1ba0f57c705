"""The kernels of one agent: their containers, their REPL connections, their executions."""

import os

from twisted.internet import defer
from twisted.logger import Logger

from sorna.agent.runs import CONTINUED, FINISHED, RUNNING, WAITING_INPUT, Run
from sorna.defer import deferred
from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import (
    BadRequest, Busy, Failure, KernelNotFound, NoCapacity, SornaError, Timeout,
)

log = Logger(namespace="sorna.agent")

# How long heartbeats keep telling the manager why a kernel ended (seconds).
GONE_MEMORY = 30.0


class KernelDied(KernelNotFound):
    error = "kernel-died"

class Kernel:
    def __init__(self, kernel_id, lang, ipc_dir, limits):
        self.kernel_id = kernel_id
        self.lang = lang
        self.ipc_dir = ipc_dir
        self.limits = limits
        self.container_id = None
        self.socket = None
        self.pending = None
        self.lock = defer.DeferredLock()
        self.run = None
        self.last_run = None
        self.ready = False
        self.last_used = 0.0


class Kernels:
    """Creates, runs and destroys kernels. Every Docker call goes through `containers`."""

    def __init__(self, containers, transport, clock, policy, ipc_root, max_kernels,
                 start_timeout=30.0, max_queued=8, max_reply_size=64 << 20,
                 idle_timeout=600.0, interrupt_grace=5.0, default_wait=2.0, exporter=None,
                 max_executions=0):
        self.containers = containers
        self.transport = transport
        self.clock = clock
        self.policy = policy
        self.ipc_root = ipc_root
        self.max_kernels = max_kernels
        self.start_timeout = start_timeout
        self.max_queued = max_queued
        self.max_reply_size = max_reply_size
        self.idle_timeout = idle_timeout
        self.interrupt_grace = interrupt_grace
        self.default_wait = default_wait
        self.exporter = exporter
        self.max_executions = max_executions  # runs at once on this agent (0: no limit)
        self.images = {}  # lang -> (tag, labels)
        self._kernels = {}
        self._gone = {}

    def running(self):
        """{kernel_id: lang} of kernels that are ready, as heartbeats report them."""
        return {k.kernel_id: k.lang for k in self._kernels.values() if k.ready}

    def __len__(self):
        return len(self._kernels)

    @deferred
    async def refresh_images(self):
        self.images = await self.containers.kernel_images()
        return sorted(self.images)

    @deferred
    async def create(self, kernel_id, lang, requested_limits=None):
        if kernel_id in self._kernels:
            raise BadRequest(f"kernel {kernel_id} already exists on this agent",
                             error="duplicate-kernel")
        if lang not in self.images:
            raise BadRequest(f"this agent has no image for language {lang!r}; it has: "
                             f"{', '.join(sorted(self.images)) or 'none'}",
                             error="unknown-language")
        if len(self._kernels) >= self.max_kernels:
            raise NoCapacity(f"this agent already runs its maximum of {self.max_kernels} "
                             f"kernels")
        image, labels = self.images[lang]
        limits = self.policy.limits_for(labels, requested_limits)
        kernel = Kernel(kernel_id, lang, os.path.join(self.ipc_root, kernel_id), limits)
        self._kernels[kernel_id] = kernel
        try:
            args = self.policy.container_args(self.containers.agent_id, kernel_id, lang,
                                              image, kernel.ipc_dir, limits)
            kernel.container_id = await self.containers.start_kernel(kernel.ipc_dir, args)
            if self._kernels.get(kernel_id) is not kernel:
                raise Failure(f"kernel {kernel_id} was destroyed while it started")
            self._connect(kernel)
            await self._until_ready(kernel)
        except BaseException as e:
            await self._remove(kernel)
            if isinstance(e, SornaError):
                raise
            raise Failure(f"could not start a {lang} kernel: {e}")
        kernel.ready = True
        kernel.last_used = self.clock.seconds()
        log.info("kernel {kernel} ({lang}) started in container {container}",
                 kernel=kernel_id, lang=lang, container=kernel.container_id[:12])
        return kernel

    @deferred
    async def reap(self):
        """Forget kernels whose containers stopped: a crash, an OOM kill, a kill from outside.

        Only kernels ready before the listing are judged, so a kernel whose container is
        still starting is never mistaken for a dead one.
        """
        candidates = [k for k in self._kernels.values() if k.ready]
        if not candidates:
            return []
        states = {kernel_id: status
                  for _, kernel_id, status in await self.containers.list_kernels()}
        dead = []
        for kernel in candidates:
            status = states.get(kernel.kernel_id, "missing")
            if status in ("running", "paused", "restarting"):
                continue
            if self._kernels.get(kernel.kernel_id) is not kernel:
                continue  # destroyed meanwhile
            cause = await self.containers.death_cause(kernel.container_id)
            cause = cause or f"its container is {status}"
            log.warn("kernel {kernel} died: {cause}", kernel=kernel.kernel_id, cause=cause)
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
                if k.ready and not k.lock.locked and now - k.last_used >= self.idle_timeout]
        for kernel in idle:
            log.info("kernel {kernel} was idle for {t:.0f} s; destroying it",
                     kernel=kernel.kernel_id, t=now - kernel.last_used)
            await self._remove(kernel)
        return [k.kernel_id for k in idle]

    @deferred
    async def destroy(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            raise KernelNotFound(f"no kernel has id {kernel_id} on this agent")
        await self._remove(kernel)

    def destroy_all(self):
        return defer.gatherResults([self._remove(k) for k in list(self._kernels.values())],
                                   consumeErrors=True)

    def _ready(self, kernel_id):
        kernel = self._kernels.get(kernel_id)
        if kernel is None or not kernel.ready:
            raise KernelNotFound(f"no kernel has id {kernel_id} on this agent")
        return kernel

    @deferred
    async def execute(self, kernel_id, code=None, mode=None, text="", wait=None,
                      partial=None, entry_id=None):
        """Start, continue or feed a run; fire with the reply fields.

        Without `mode` the reply comes when the run finishes or waits for input; with a
        mode, also after `wait` seconds (status `continued`). `partial(fields)` receives
        the output as it comes, for streaming clients.
        """
        kernel = self._ready(kernel_id)
        if mode in (None, "query"):
            if code is None:
                raise BadRequest("`code` is missing")
            run = await self._start(kernel, code, entry_id)
        else:
            # The last run stays reachable after its end, so that a late `continue`
            # (or one after an abandoned request) still gets the end of it.
            run = kernel.run or kernel.last_run
            if mode == "input":
                if run is None or run.waiting is None:
                    raise Busy("the execution is not waiting for input", error="not-waiting-input")
                await self._request(kernel, {"action": "input", "text": text}, 10.0,
                                    what="the input")
                run.waiting = None
                self._arm(kernel, run)
            elif run is None:
                raise KernelNotFound(f"no execution is running on kernel {kernel_id}",
                                     error="no-run")
        if mode is not None and wait is None:
            wait = self.default_wait
        return await self._follow(kernel, run, wait, partial)

    def executions(self):
        return sum(1 for k in self._kernels.values() if k.run is not None)

    async def _start(self, kernel, code, entry_id=None):
        if self.max_executions and self.executions() >= self.max_executions:
            raise Busy(f"this agent already runs its maximum of {self.max_executions} "
                       f"executions at once; try again shortly", error="agent-busy")
        if kernel.lock.locked and len(kernel.lock.waiting) >= self.max_queued:
            raise Busy(f"kernel {kernel.kernel_id} is busy with {self.max_queued} queued "
                       f"executions; wait for them to finish")
        await kernel.lock.acquire()
        if self._kernels.get(kernel.kernel_id) is not kernel:
            kernel.lock.release()
            raise KernelNotFound(f"kernel {kernel.kernel_id} was destroyed")
        run = kernel.run = Run(kernel.pending.new_id(), kernel.limits["exec_timeout"], entry_id,
                               max_output=self.policy.max_output)
        kernel.last_used = self.clock.seconds()
        kernel.socket.send([encode({"action": "execute", "id": run.id, "code": code})])
        self._arm(kernel, run)
        return run

    async def _follow(self, kernel, run, wait, partial):
        deadline = None if wait is None else self.clock.seconds() + wait
        while True:
            if run.error is not None:
                raise run.error
            if run.finished is not None:
                if run.timed_out:
                    raise Timeout(f"the code ran longer than {kernel.limits['exec_timeout']:g} "
                                  f"s and was interrupted; the kernel keeps its state",
                                  error="exec-timeout")
                await run.exported
                if run.final is None:
                    run.final = {"status": FINISHED, "result": dict(
                        run.take(), exceptions=run.finished.get("exceptions") or [],
                        files=run.files, truncated=run.truncated)}
                return run.final
            if run.waiting is not None:
                return dict(run.waiting, status=WAITING_INPUT, result=run.take_interim())
            if partial is not None and run.records:
                partial({"status": RUNNING, "result": run.take()})
            left = None if deadline is None else deadline - self.clock.seconds()
            if left is not None and left <= 0:
                return {"status": CONTINUED, "result": run.take_interim()}
            changed = run.changed()
            if left is not None:
                changed.addTimeout(left, self.clock)
            try:
                await changed
            except defer.TimeoutError:
                pass

    def _arm(self, kernel, run):
        """Start (or resume) the run's clock: time spent waiting for input is not counted."""
        run.started_at = self.clock.seconds()
        run.timer = self.clock.callLater(run.budget, self._timed_out, kernel, run)

    def _pause(self, run):
        if run.timer is not None and run.timer.active():
            run.timer.cancel()
            run.budget -= self.clock.seconds() - run.started_at
        run.timer = None

    def _on_event(self, kernel, message):
        run = kernel.run
        if run is None or message.get("id") != run.id:
            return
        if message.get("event") == WAITING_INPUT:
            self._pause(run)
        elif message.get("event") == FINISHED:
            run.finished = message  # before _end, which exports the files it names
            self._end(kernel, run)
        run.on_event(message)

    def _end(self, kernel, run, error=None):
        """The run is over: free the kernel for the next one, export its files."""
        self._pause(run)
        if run.grace is not None and run.grace.active():
            run.grace.cancel()
        if error is not None:
            run.fail(error)
        if kernel.run is run:
            kernel.run = None
            kernel.last_run = run
            kernel.last_used = self.clock.seconds()
            kernel.lock.release()
        run.files = list((run.finished or {}).get("files") or [])
        if run.finished is not None and self.exporter is not None:
            run.exported = self.exporter.export(self, kernel, run)

    def _timed_out(self, kernel, run):
        """Interrupt first; a run that ignores the interrupt costs the kernel its life."""
        run.timer = None
        if run.done:
            return
        timeout = kernel.limits["exec_timeout"]
        log.warn("kernel {kernel} exceeded its {t} s execution time; interrupting it",
                 kernel=kernel.kernel_id, t=timeout)
        run.timed_out = True
        kernel.socket.send([encode({"action": "interrupt", "id": kernel.pending.new_id()})])
        run.grace = self.clock.callLater(self.interrupt_grace, self._kill_stuck, kernel, run)

    def _kill_stuck(self, kernel, run):
        if run.done:
            return
        timeout = kernel.limits["exec_timeout"]
        log.warn("kernel {kernel} ignored the interrupt; destroying it", kernel=kernel.kernel_id)
        d = self._remove(kernel, Timeout(
            f"the code ran longer than {timeout:g} s and ignored the interrupt; the kernel "
            f"was destroyed, create a new one", error="exec-timeout"))
        d.addErrback(lambda f: log.failure("could not destroy kernel {kernel}", f,
                                           kernel=kernel.kernel_id))

    @deferred
    async def interrupt(self, kernel_id):
        kernel = self._ready(kernel_id)
        reply = await self._request(kernel, {"action": "interrupt"}, 10.0, what="the interrupt")
        return {"interrupted": bool(reply.get("interrupted"))}

    @deferred
    async def restart(self, kernel_id):
        """A fresh process in the same container: the session's state is gone."""
        kernel = self._ready(kernel_id)
        kernel.ready = False
        try:
            if kernel.run is not None:
                self._end(kernel, kernel.run, Busy("the kernel was restarted during this "
                                                   "execution", error="restarted"))
            await self._request(kernel, {"action": "restart"}, 10.0, what="the restart")
            await self._until_ready(kernel)
        except SornaError:
            await self._remove(kernel)
            raise
        kernel.ready = True
        kernel.last_used = self.clock.seconds()
        return {}

    @deferred
    async def file_request(self, kernel_id, message):
        """upload, download and list go to the daemon, which owns the work directory."""
        kernel = self._ready(kernel_id)
        kernel.last_used = self.clock.seconds()
        reply = await self._request(kernel, message, 30.0, what=message["action"])
        return {k: v for k, v in reply.items() if k not in ("id", "reply")}

    def _connect(self, kernel):
        kernel.pending = PendingRequests(self.clock)

        def on_message(frames):
            try:
                message, _ = decode(frames[-1], self.max_reply_size)
            except SornaError as e:
                log.warn("kernel {kernel} sent a bad reply: {cause}",
                         kernel=kernel.kernel_id, cause=e.cause)
                return
            if "event" in message:
                self._on_event(kernel, message)
            else:
                kernel.pending.resolve(message)

        kernel.socket = self.transport.dealer(f"ipc://{kernel.ipc_dir}/repl", on_message)

    async def _until_ready(self, kernel):
        """Ping until the daemon answers: a ping sent while the daemon (re)binds its
        socket can be lost, so one ping is not enough."""
        deadline = self.clock.seconds() + self.start_timeout
        while True:
            left = deadline - self.clock.seconds()
            try:
                return await self._request(kernel, {"action": "ping"}, min(1.0, left),
                                           what=f"the {kernel.lang} kernel's ping")
            except Timeout:
                if left <= 1.0:
                    raise Timeout(f"the {kernel.lang} kernel did not answer within "
                                  f"{self.start_timeout:g} s", error="start-timeout")

    def _request(self, kernel, message, timeout, what):
        return kernel.pending.send(lambda m: kernel.socket.send([encode(m)]), message,
                                   timeout, what=what)

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
        if why is not None:
            self._gone[kernel.kernel_id] = (why.cause, self.clock.seconds())
        if kernel.run is not None:
            self._end(kernel, kernel.run, gone)
        if kernel.pending is not None:
            kernel.pending.fail_all(gone)
        if kernel.socket is not None:
            kernel.socket.close()
            kernel.socket = None
        await self.containers.remove_kernel(kernel.container_id, kernel.ipc_dir)
        log.info("kernel {kernel} destroyed", kernel=kernel.kernel_id)
