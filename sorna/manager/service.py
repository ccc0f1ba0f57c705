"""The manager process: one ROUTER socket for front-ends and agents alike."""

from twisted.application.service import MultiService
from twisted.internet import defer, task
from twisted.logger import Logger

from sorna.cluster_keys import KeyWatch, manager_access, warn_insecure
from sorna.manager.api import ManagerApi
from sorna.manager.metrics import ManagerMetrics
from sorna.metrics import metrics_service
from sorna.pending import PendingRequests
from sorna.proto import actions
from sorna.proto.codec import encode
from sorna.proto.errors import Failure, SornaError
from sorna.server import RequestServer

log = Logger(namespace="sorna.manager")


class ManagerService(MultiService):
    def __init__(self, endpoint, table, transport, clock, heartbeat_interval=3.0,
                 max_message_size=1 << 20, create_timeout=60.0, close_transport=False,
                 on_fatal=None, metrics_port=None, metrics_interface="127.0.0.1", keys=None,
                 **policy):
        """`policy`: `placement` and `max_kernels_per_user`, for ManagerApi.
        `metrics_port`: serve Prometheus metrics there (on `metrics_interface`).
        `keys`: a sorna.cluster_keys.ServerKeys (CurveZMQ), or None for plaintext."""
        super().__init__()
        self.keys = keys
        self.endpoint = endpoint
        self.table = table
        self.transport = transport
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.pending = PendingRequests(clock)
        self.metrics = ManagerMetrics()
        self.api = ManagerApi(table, self.send_command, clock, heartbeat_interval,
                              create_timeout=create_timeout, metrics=self.metrics,
                              ring=keys.ring if keys else None, **policy)
        self.access = manager_access(keys.ring) if keys else None
        self.server = RequestServer("manager", actions.MANAGER, actions.MANAGER_LEGACY,
                                    self.api.handlers(), on_reply=self._on_agent_reply,
                                    max_size=max_message_size, clock=clock,
                                    served_while_draining=("ping", "heartbeat"),
                                    metrics=self.metrics.requests, access=self.access)
        if keys is not None:
            KeyWatch.for_clock(keys.ring, clock).setServiceParent(self)
        self.metrics_served = metrics_port is not None
        if self.metrics_served:
            metrics_service(self.metrics.registry, metrics_port,
                            metrics_interface).setServiceParent(self)
        self._started = None
        self._expiry = None
        self._expiring = None
        self._socket = None
        self.close_transport = close_transport
        self.on_fatal = on_fatal

    def startService(self):
        super().startService()
        self.server.draining = False
        self._started = defer.maybeDeferred(self.table.start)
        self._started.addCallbacks(lambda _: self._listen(), self._table_failed)
        return self._started

    def _table_failed(self, failure):
        log.critical("sorna-manager cannot open its capacity table: {error}",
                     error=failure.getErrorMessage())
        if self.on_fatal is not None:
            self.on_fatal(failure.value)

    def _listen(self):
        curve = None
        if self.keys is not None:
            curve = self.keys.server_curve("sorna-manager", self.access)
        try:
            self._socket = self.transport.router(self.endpoint, self.server.on_message,
                                                 curve=curve)
        except Exception as e:
            log.critical("sorna-manager cannot listen on {endpoint}: {error}; is another "
                         "manager running there? Choose another --port.",
                         endpoint=self.endpoint, error=e)
            if self.on_fatal is not None:
                self.on_fatal(e)
            return
        self.server.socket = self._socket
        self._listening_since = self.clock.seconds()
        self._expiry = task.LoopingCall(self._expire)
        self._expiry.clock = self.clock
        # Checking twice an interval finds a dead agent soon after its third missed beat.
        self._expiring = self._expiry.start(self.heartbeat_interval / 2, now=False)
        self._expiring.addErrback(lambda f: log.failure("agent expiry stopped", f))
        if self.keys is None:
            warn_insecure("sorna-manager", self.endpoint)
        log.info("sorna-manager ready on {endpoint} ({security})", endpoint=self.endpoint,
                 security="insecure" if self.keys is None
                 else f"CurveZMQ, keys of {self.keys.folder}")

    @defer.inlineCallbacks
    def stopService(self):
        """Refuse new work (503 shutting-down), end what waits on agents, then wait for
        the requests in flight to finish before closing anything."""
        self.server.draining = True
        if self._started is not None:
            yield self._started
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        self.pending.fail_all(Failure("the manager is shutting down", error="shutting-down",
                                      code=503))
        if self._expiring is not None:
            yield self._expiring  # fires once an expiry in progress has finished
        yield self.server.in_flight.wait()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self.server.socket = None
        yield self.table.stop()
        if self.close_transport:
            self.transport.close()
        yield super().stopService()

    def send_command(self, agent_id, message, timeout):
        """Send to the connection that holds `agent_id` (sorna.manager.connections)."""
        peer = self.api.connections.peer_of(agent_id)
        if peer is None:
            return defer.fail(Failure(f"agent {agent_id} is not connected to this "
                                      f"manager", error="agent-unreachable"))
        return self.pending.send(
            lambda m: self._socket.send(peer, [b"", encode(m)]), message, timeout, peer=peer,
            what=f"{message['action']} on agent {agent_id}")

    def _on_agent_reply(self, peer, message):
        if not self.pending.resolve(message, peer):
            log.debug("dropped a reply nobody waits for from {peer!r}", peer=peer[:32])

    @defer.inlineCallbacks
    def _expire(self):
        if self.clock.seconds() < self._listening_since + 3 * self.heartbeat_interval:
            # A manager that was down (a restart) has heard no heartbeat yet: judging the
            # agents it finds in Redis now would declare them all dead. Give them time.
            return
        try:
            dead = yield self.table.expire(self.clock.seconds())
        except SornaError as e:  # Redis away for a while: try again next time
            log.warn("could not look for dead agents: {cause}", cause=e.cause)
            return
        for agent_id, kernels in dead.items():
            log.warn("agent {agent} missed its heartbeats and is considered dead "
                     "({n} kernels lost)", agent=agent_id, n=len(kernels))
            peer = self.api.connections.peer_of(agent_id)
            if peer is not None:
                self.pending.fail_all(Failure(f"agent {agent_id} is dead"), peer=peer)
        try:
            yield self.api.agents_died(dead)
        except SornaError as e:
            log.warn("could not record the lost kernels: {cause}", cause=e.cause)
        if self.metrics_served:  # the gauges, from a listing at most half as old
            try:
                yield self.api.recent_agents(self.clock.seconds())
            except SornaError as e:
                log.warn("could not list the agents for the metrics: {cause}",
                         cause=e.cause)
