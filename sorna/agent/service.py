"""The agent process: a ROUTER port for front-ends, a DEALER to the manager for heartbeats
and commands, and the kernels of this host."""

import os
import secrets
import shutil
import tempfile
from collections import Counter

from twisted.application.service import MultiService
from twisted.internet import task
from twisted.logger import Logger

from sorna.agent.api import AgentApi
from sorna.agent.docker import thd_prepare_ipc_root
from sorna.cluster_keys import KeyWatch, agent_access, warn_insecure
from sorna.defer import deferred
from sorna.metrics import metrics_service
from sorna.proto import actions
from sorna.proto.codec import encode
from sorna.ratelog import RateLimitedLog
from sorna.server import RequestServer

log = Logger(namespace="sorna.agent")

# Seconds (at least a heartbeat interval) before an agent whose handshake with the
# manager failed dials again.
REDIAL_AFTER = 5.0


class _DealerAsRouter:
    """Lets a RequestServer answer on a DEALER connection (the manager is its only peer)."""

    def __init__(self, dealer):
        self.dealer = dealer

    def send(self, peer, frames):
        self.dealer.send(frames)


class AgentService(MultiService):
    def __init__(self, agent_id, manager_addr, endpoint, advertised_addr, kernels, transport,
                 clock, pool, heartbeat_interval=3.0, ipc_root=None,
                 max_message_size=17 << 20, on_fatal=None, close_transport=False,
                 instance=None, grader=None, extra_pools=(), own_ipc_root=None,
                 metrics_port=None, metrics_interface="127.0.0.1", keys=None):
        """`grader` grades `match` patterns; `extra_pools` (S3 uploads) start and stop
        with the agent, like the Docker `pool`. `metrics_port`: serve Prometheus metrics
        there (on `metrics_interface`). `keys`: a sorna.cluster_keys.ServerKeys
        (CurveZMQ on both sockets), or None for plaintext."""
        super().__init__()
        self.keys = keys
        self.access = agent_access(keys.ring) if keys else None
        self._handshakes = RateLimitedLog(log, clock)
        self._manager_refused = False
        self._redial = None
        self.agent_id = agent_id
        self.instance = instance or {}  # what EC2 instance metadata said, if anything
        self.manager_addr = manager_addr
        self.endpoint = endpoint
        self.advertised_addr = advertised_addr
        self.kernels = kernels
        self.transport = transport
        self.clock = clock
        self.pool = pool
        self.heartbeat_interval = heartbeat_interval
        self.ipc_root = ipc_root
        self.on_fatal = on_fatal
        self.close_transport = close_transport
        self.pools = [pool] + list(extra_pools)
        self.api = AgentApi(kernels, grader)
        metrics = kernels.metrics
        self.frontend = RequestServer("agent", actions.AGENT, actions.AGENT_LEGACY,
                                      self.api.frontend_handlers(),
                                      max_size=max_message_size, clock=clock,
                                      metrics=metrics.requests, access=self.access)
        if keys is not None:
            KeyWatch.for_clock(keys.ring, clock).setServiceParent(self)
        self.commands = RequestServer("agent.commands", actions.AGENT, actions.AGENT_LEGACY,
                                      self.api.manager_handlers(),
                                      on_reply=self._manager_reply,
                                      max_size=max_message_size, clock=clock,
                                      metrics=metrics.requests)
        if metrics_port is not None:
            metrics_service(metrics.registry, metrics_port,
                            metrics_interface).setServiceParent(self)
        # Drawn per process and sent to the manager only: the id any peer could claim,
        # the session only this process knows (sorna.manager.connections).
        self.session = secrets.token_hex(16)
        self.langs = []
        self.sandbox = {}
        self.stopping = False
        self._heartbeat = None
        self._reaper = None
        self._router = None
        self._dealer = None
        # By default a folder it made is the agent's to remove at stop.
        self._owns_ipc_root = ipc_root is None if own_ipc_root is None else own_ipc_root
        self._starting = None

    @property
    def stopping(self):
        return self.frontend.draining

    @stopping.setter
    def stopping(self, value):
        self.frontend.draining = self.commands.draining = value

    def startService(self):
        super().startService()
        self.stopping = False
        for pool in self.pools:
            pool.start()
        self.api.grader.start()
        self._starting = self._start()
        self._starting.addErrback(self._fatal)
        return self._starting

    @deferred
    async def _start(self):
        if self.ipc_root is None:
            self.ipc_root = await self.pool.run(tempfile.mkdtemp, "", "sorna-ipc-")
        await self.pool.run(thd_prepare_ipc_root, self.ipc_root)
        self.kernels.ipc_root = self.ipc_root
        await self._remove_leftovers()
        self.sandbox = await self.kernels.containers.engine_report()
        self._report_sandbox()
        runtime = self.kernels.policy.runtime
        if runtime and runtime not in self.sandbox["runtimes"]:
            raise RuntimeError(f"the Docker engine has no runtime named {runtime!r} "
                               f"(registered: {', '.join(self.sandbox['runtimes'])}); "
                               f"register it in the engine's daemon.json or drop --runtime")
        self.langs = await self.kernels.refresh_images()
        if not self.langs:
            log.warn("no kernel image found: build them with `sorna images build`")
        curve = manager_curve = None
        if self.keys is not None:
            curve = self.keys.server_curve("sorna-agent", self.access)
            manager_curve = self.keys.manager_curve()
        else:
            warn_insecure("sorna-agent", self.endpoint)
        self._router = self.transport.router(self.endpoint, self.frontend.on_message,
                                             curve=curve)
        self.frontend.socket = self._router
        self._dial_manager(manager_curve)
        self.kernels.pools.open()
        self.kernels.pools.fill()
        self._heartbeat = self._every(self.heartbeat_interval, self._beat, now=True)
        self._reaper = self._every(self.heartbeat_interval, self._reap, now=False)
        log.info("sorna-agent {agent} ready on {endpoint} (advertised as {addr}), "
                 "manager {manager}, languages: {langs}", agent=self.agent_id,
                 endpoint=self.endpoint, addr=self.advertised_addr,
                 manager=self.manager_addr, langs=", ".join(self.langs) or "none")

    def _dial_manager(self, curve):
        self._dealer = self.transport.dealer(
            self.manager_addr, lambda frames: self.commands.on_message(b"manager", frames),
            send_hwm=10, curve=curve, on_handshake=self._manager_handshake)
        self.commands.socket = _DealerAsRouter(self._dealer)

    def _redial_manager(self):
        """libzmq gives up on a connection whose handshake failed: dial again, so that
        an agent whose key the manager allows later gets in without a restart."""
        self._redial = None
        if self.stopping or self._dealer is None:
            return
        self._dealer.close()
        self._dial_manager(self.keys.manager_curve() if self.keys else None)
        self.send_heartbeat()

    def _manager_reply(self, peer, message):
        """The manager answers a heartbeat only to refuse it."""
        self._handshakes.warn("the manager refused this agent's heartbeat: {cause}",
                              cause=str(message.get("cause"))[:300])

    def _manager_handshake(self, outcome):
        if outcome == "ok":
            if self._manager_refused:
                log.info("the manager at {manager} accepted this agent's key",
                         manager=self.manager_addr)
            self._manager_refused = False
            return
        self._manager_refused = True
        if self._redial is None:
            self._redial = self.clock.callLater(max(self.heartbeat_interval, REDIAL_AFTER),
                                                self._redial_manager)
        if outcome == "refused":
            why = (f"it does not allow this agent's key ({self.keys.name}): add that "
                   f"key's .key file to the manager's agents/ folder")
        elif self.keys is None:
            why = ("it uses CurveZMQ keys and this agent runs --insecure: give the agent "
                   "the cluster's keys (--keys)")
        else:
            why = (f"it is not the manager whose key is {self.keys.folder}/manager.key, "
                   f"or it runs --insecure")
        self._handshakes.warn("the manager at {manager} refused the connection: {why}",
                              manager=self.manager_addr, why=why)

    async def _remove_leftovers(self):
        """Containers labelled with our id outlived an earlier run of this agent."""
        for container_id, kernel_id, status in await self.kernels.containers.list_kernels():
            log.warn("removing container {container} of kernel {kernel} left by an earlier "
                     "run ({status})", container=container_id[:12], kernel=kernel_id,
                     status=status)
            await self.kernels.containers.remove_kernel(container_id, None)

    def _report_sandbox(self):
        """Say what the engine cannot enforce: never run weaker kernels silently."""
        missing = [name for name in ("memory", "swap", "pids", "cpu", "seccomp")
                   if not self.sandbox[name]]
        for name in missing:
            log.warn("the Docker engine cannot enforce the kernels' {limit} limit: kernels "
                     "run without it", limit=name)
        for warning in self.sandbox["warnings"]:
            log.warn("the Docker engine warns: {engine_warning}", engine_warning=warning)
        if not missing:
            log.info("the Docker engine enforces every kernel limit (memory, swap, pids, "
                     "cpu, seccomp)")

    def _fatal(self, failure):
        log.failure("sorna-agent could not start", failure)
        if self.on_fatal is not None:
            self.on_fatal(failure)
        return None

    def _every(self, interval, work, now):
        """A LoopingCall whose Deferred is held: `work` catches its own errors, so one
        failure never stops the loop, and an unexpected end is logged."""
        loop = task.LoopingCall(work)
        loop.clock = self.clock
        loop.start(interval, now=now).addErrback(
            lambda f: log.failure("a periodic task of the agent stopped", f))
        return loop

    def _reap(self):
        d = self.kernels.reap()
        d.addCallback(lambda _: self.kernels.cull_idle())
        d.addCallback(lambda _: self._look_for_images())
        d.addCallback(lambda _: self.kernels.pools.fill())
        d.addErrback(lambda f: log.failure("could not check the kernels' containers", f))
        return d

    @deferred
    async def _look_for_images(self):
        """Images built (or removed) since the agent started are served from the next
        heartbeat on."""
        langs = await self.kernels.refresh_images()
        if langs != self.langs:
            log.info("kernel images now: {langs}", langs=", ".join(langs) or "none")
            self.langs = langs

    def _beat(self):
        try:
            self.send_heartbeat()
        except Exception:
            log.failure("could not send a heartbeat")

    def send_heartbeat(self, leaving=False):
        if self._dealer is None:
            return
        self._dealer.send([b"", encode({
            "action": "heartbeat", "agent_id": self.agent_id, "session": self.session,
            "leaving": leaving, "addr": self.advertised_addr,
            "max_kernels": self.kernels.max_kernels, "kernels": self.kernels.running(),
            "langs": self.langs, "aliases": self.kernels.aliases(),
            "warm": self.kernels.pools.counts(),
            "instance": self.instance, "gone": self.kernels.gone(),
            "resources": {"cpus": os.cpu_count(), "sandbox": self.sandbox,
                          "executions": self.kernels.executions(),
                          "running": dict(Counter(self.kernels.running().values())),
                          "versions": self.kernels.versions(),
                          "packages": self.kernels.packages()},
        })])

    @deferred
    async def stopService(self):
        self.stopping = True
        if self._starting is not None:
            await self._starting
        for loop in (self._heartbeat, self._reaper):
            if loop is not None and loop.running:
                loop.stop()
        if self._redial is not None and self._redial.active():
            self._redial.cancel()
        self._redial = None
        await self.kernels.close()
        self.send_heartbeat(leaving=True)  # the manager frees our id for a restart at once
        await self.api.grader.stop()
        await self.frontend.in_flight.wait()
        await self.commands.in_flight.wait()
        for sock in (self._router, self._dealer):
            if sock is not None:
                sock.close()
        self._router = self._dealer = None
        if self._owns_ipc_root and self.ipc_root:
            await self.pool.run(shutil.rmtree, self.ipc_root, True)
        for pool in self.pools:
            pool.stop()
        if self.close_transport:
            self.transport.close()
        await super().stopService()
        log.info("sorna-agent {agent} stopped", agent=self.agent_id)
