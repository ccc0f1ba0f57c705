"""The kernels of one agent: their containers, their REPL connections, their executions."""

import os

from twisted.internet import defer
from twisted.logger import Logger

from sorna.defer import deferred
from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import (
    BadRequest, Busy, Failure, KernelNotFound, NoCapacity, SornaError, Timeout,
)

log = Logger(namespace="sorna.agent")

RESULT_FIELDS = ("stdout", "stderr", "exceptions", "media", "files")


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
        self.ready = False
        self.last_used = 0.0


class Kernels:
    """Creates, runs and destroys kernels. Every Docker call goes through `containers`."""

    def __init__(self, containers, transport, clock, policy, ipc_root, max_kernels,
                 start_timeout=30.0, max_queued=8, max_reply_size=64 << 20,
                 idle_timeout=600.0):
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
        self.images = {}  # lang -> (tag, labels)
        self._kernels = {}

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
            await self._request(kernel, {"action": "ping"}, self.start_timeout,
                                what=f"the {lang} kernel's first ping")
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
            log.warn("kernel {kernel} died (its container is {status})",
                     kernel=kernel.kernel_id, status=status)
            dead.append(kernel.kernel_id)
            await self._remove(kernel, reason=f"kernel {kernel.kernel_id} died (its "
                                              f"container is {status}); create a new one")
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

    @deferred
    async def execute(self, kernel_id, code):
        kernel = self._kernels.get(kernel_id)
        if kernel is None or not kernel.ready:
            raise KernelNotFound(f"no kernel has id {kernel_id} on this agent")
        if kernel.lock.locked and len(kernel.lock.waiting) >= self.max_queued:
            raise Busy(f"kernel {kernel_id} is busy with {self.max_queued} queued "
                       f"executions; wait for them to finish")
        return await kernel.lock.run(self._execute, kernel, code)

    @deferred
    async def _execute(self, kernel, code):
        if self._kernels.get(kernel.kernel_id) is not kernel:
            raise KernelNotFound(f"kernel {kernel.kernel_id} was destroyed")
        timeout = kernel.limits["exec_timeout"]
        kernel.last_used = self.clock.seconds()
        try:
            reply = await self._request(kernel, {"action": "execute", "code": code}, timeout,
                                        what="the execution")
        except Timeout:
            log.warn("kernel {kernel} exceeded its {t} s execution time; destroying it",
                     kernel=kernel.kernel_id, t=timeout)
            await self._remove(kernel)
            raise Timeout(f"the code ran longer than {timeout:g} s; the kernel was "
                          f"destroyed, create a new one", error="exec-timeout")
        finally:
            kernel.last_used = self.clock.seconds()
        return {name: reply.get(name, "" if name in ("stdout", "stderr") else [])
                for name in RESULT_FIELDS}

    def _connect(self, kernel):
        kernel.pending = PendingRequests(self.clock)

        def on_message(frames):
            try:
                message, _ = decode(frames[-1], self.max_reply_size)
            except SornaError as e:
                log.warn("kernel {kernel} sent a bad reply: {cause}",
                         kernel=kernel.kernel_id, cause=e.cause)
                return
            kernel.pending.resolve(message)

        kernel.socket = self.transport.dealer(f"ipc://{kernel.ipc_dir}/repl", on_message)

    def _request(self, kernel, message, timeout, what):
        return kernel.pending.send(lambda m: kernel.socket.send([encode(m)]), message,
                                   timeout, what=what)

    @deferred
    async def _remove(self, kernel, reason=None):
        if self._kernels.get(kernel.kernel_id) is kernel:
            del self._kernels[kernel.kernel_id]
        kernel.ready = False
        if kernel.pending is not None:
            kernel.pending.fail_all(KernelNotFound(
                reason or f"kernel {kernel.kernel_id} was destroyed"))
        if kernel.socket is not None:
            kernel.socket.close()
            kernel.socket = None
        await self.containers.remove_kernel(kernel.container_id, kernel.ipc_dir)
        log.info("kernel {kernel} destroyed", kernel=kernel.kernel_id)
