"""The manager's actions: one handler per action, named after it."""

from twisted.logger import Logger

from sorna import langs
from sorna.defer import KeyedLock, deferred
from sorna.ids import new_kernel_id, new_trace
from sorna.manager.connections import TOO_SOON, AgentConnections
from sorna.manager.metrics import ManagerMetrics
from sorna.manager.registry import AgentRecord, KernelRecord
from sorna.proto import codes
from sorna.proto.errors import (
    BadRequest, Failure, Forbidden, KernelNotFound, NoCapacity, QuotaExceeded, SornaError,
    Timeout,
)
from sorna.ratelog import RateLimitedLog
from sorna.server import NO_REPLY

log = Logger(namespace="sorna.manager")

# A heartbeat may list this many kernels beyond its max_kernels (creations racing it).
HEARTBEAT_SLACK = 16
# Orphans of one agent whose destroy_kernel may be on its way at once.
MAX_DESTROYS_IN_FLIGHT = 8


class ManagerApi:
    """`commands` sends a command to an agent and returns a Deferred of its reply:
    `commands(agent_id, message, timeout)`."""

    def __init__(self, table, commands, clock, heartbeat_interval,
                 create_timeout=60.0, destroy_timeout=30.0, placement="least-loaded",
                 max_kernels_per_user=0, connections=None, create_attempt_timeout=20.0,
                 failing_cooldown=60.0, metrics=None, ring=None):
        """`ring`: the sorna.keys.KeyRing of a CurveZMQ manager (None: insecure)."""
        self.table = table
        self.commands = commands
        self.clock = clock
        self.heartbeat_interval = heartbeat_interval
        self.create_timeout = create_timeout
        self.create_attempt_timeout = min(create_attempt_timeout, create_timeout)
        self.failing_cooldown = failing_cooldown
        self.destroy_timeout = destroy_timeout
        self.placement = placement
        self.max_kernels_per_user = max_kernels_per_user
        self._creating = set()
        self._destroying = {}  # agent id -> orphans whose destroy_kernel is on its way
        self._failing = {}  # agent id -> until when placement passes it over
        self.ring = ring
        self.connections = connections or AgentConnections(
            3 * heartbeat_interval, heartbeat_interval,
            key_allowed=(lambda key: ring.kind_of(key) == "agents") if ring else None)
        self._refusals = RateLimitedLog(log, clock)
        self._session_locks = KeyedLock()
        self._user_locks = KeyedLock()
        # (when, live agents, alias table): what creates resolve names and word errors
        # from, refreshed at most every half interval
        self._recent = None
        self.metrics = metrics or ManagerMetrics()

    def handlers(self):
        return {
            "ping": self.ping,
            "get_or_create": self.get_or_create,
            "create": self.create,
            "destroy": self.destroy,
            "kernel_info": self.kernel_info,
            "status": self.status,
            "heartbeat": self.heartbeat,
        }

    def ping(self, req):
        return {"reply": codes.PONG, "body": req.fields["body"]}

    @deferred
    async def get_or_create(self, req):
        f = req.fields
        lang = await self._canonical(f["lang"])
        session = (f["user_id"], f["entry_id"], lang)
        kernel = await self._session_locks.run(session, self._open_session, session,
                                               f["limits"], req.trace)
        return _kernel_reply(kernel)

    @deferred
    async def _open_session(self, session, limits, trace):
        kernel_id = await self.table.find_session(session)
        if kernel_id is not None:
            kernel = await self.table.get_kernel(kernel_id)
            if kernel is not None:
                return kernel
        if not self.max_kernels_per_user:
            return await self._create_kernel(session[2], limits, trace, session)
        return await self._user_locks.run(session[0], self._create_within_quota, session,
                                          limits, trace)

    @deferred
    async def _create_within_quota(self, session, limits, trace):
        """One user's creations are serialized (on this manager) so that the count holds."""
        held = await self.table.count_user_kernels(session[0])
        if held >= self.max_kernels_per_user:
            raise QuotaExceeded(f"user {session[0]!r} already has {held} kernels, the most "
                                f"allowed; destroy one first")
        return await self._create_kernel(session[2], limits, trace, session)

    @deferred
    async def create(self, req):
        kernel = await self._create_kernel(await self._canonical(req.fields["lang"]),
                                           req.fields["limits"], req.trace)
        return _kernel_reply(kernel)

    @deferred
    async def destroy(self, req):
        kernel = await self._get_kernel(req.fields["kernel_id"])
        try:
            await self.commands(kernel.agent_id, {"action": "destroy_kernel",
                                                  "kernel_id": kernel.kernel_id,
                                                  "trace": req.trace},
                                self.destroy_timeout)
        except KernelNotFound:
            pass  # already gone on the agent: forgetting it is all that is left
        except SornaError as e:
            log.warn("agent {agent} could not destroy kernel {kernel}: {cause}",
                     agent=kernel.agent_id, kernel=kernel.kernel_id, cause=e.cause)
            raise
        await self.table.remove_kernel(kernel.kernel_id)
        return {"kernel_id": kernel.kernel_id}

    @deferred
    async def kernel_info(self, req):
        kernel = await self._get_kernel(req.fields["kernel_id"])
        reply = _kernel_reply(kernel)
        reply.update(agent_id=kernel.agent_id,
                     age=round(self.clock.seconds() - kernel.created_at, 3))
        return reply

    @deferred
    async def status(self, req):
        now = self.clock.seconds()
        agents = await self.table.agents(now)
        return {"agents": [{
            "agent_id": a.agent_id, "addr": a.addr, "max_kernels": a.max_kernels,
            "kernels": a.kernels, "reserved": a.reserved, "free": a.free,
            "langs": sorted(a.langs), "last_heartbeat": round(now - a.last_seen, 3),
            "instance": a.instance, "resources": a.resources, "warm": a.warm,
        } for a in sorted(agents, key=lambda a: a.agent_id)],
            "kernels": sum(a.kernels for a in agents),
            "capacity": sum(a.max_kernels for a in agents),
            "langs": sorted({lang for a in agents for lang in a.langs}),
            "security": "curve" if self.ring is not None else "insecure"}

    @deferred
    async def heartbeat(self, req):
        f = req.fields
        now = self.clock.seconds()
        agent_id = f["agent_id"]
        if f["leaving"]:
            self.metrics.heartbeat("leaving")
            self.connections.release(agent_id, f["session"])
            return NO_REPLY
        refused = self.connections.claim(agent_id, req.peer, f["session"], now, req.key)
        if refused is TOO_SOON:
            self.metrics.heartbeat("too-soon")
            return NO_REPLY  # heartbeats faster than the protocol's: the extra do nothing
        if refused is not None:
            self.metrics.heartbeat("refused")
            self._refusals.warn("refused a heartbeat for agent {agent} (key {key}): {cause}",
                                agent=agent_id, cause=refused.cause,
                                key=self._key_name(req.key))
            raise Forbidden(refused.cause, error=refused.error)
        slack = f["max_kernels"] + HEARTBEAT_SLACK
        if len(f["kernels"]) > slack or len(f["gone"]) > slack:
            raise BadRequest(f"a heartbeat may list at most max_kernels + {HEARTBEAT_SLACK} "
                             f"kernels ({slack}); it listed {len(f['kernels'])} running "
                             f"and {len(f['gone'])} gone")
        self.metrics.heartbeat("accepted")
        known = await self.table.heartbeat(AgentRecord(
            agent_id=f["agent_id"], addr=f["addr"], max_kernels=f["max_kernels"],
            langs=list(f["langs"]), last_seen=now, instance=f["instance"] or {},
            resources=f["resources"] or {}, aliases=f["aliases"], warm=f["warm"],
            key=req.key.decode() if req.key else ""), now)
        await self._reconcile(agent_id, known, f["kernels"], f["gone"], now)
        return NO_REPLY

    def _key_name(self, key):
        if key is None or self.ring is None:
            return "none"
        return self.ring.name_of(key) or key.decode()

    async def _reconcile(self, agent_id, known, reported, gone, now):
        """Forget kernels the agent no longer runs; destroy ones nobody asked for.
        `known`: {kernel_id: created_at} of the kernels the table holds on the agent."""
        grace = 2 * self.heartbeat_interval
        for kernel_id, created_at in known.items():
            if kernel_id not in reported and now - created_at > grace:
                log.info("kernel {kernel} is gone from agent {agent}",
                         kernel=kernel_id, agent=agent_id)
                await self.table.remove_kernel(kernel_id)
                why = gone.get(kernel_id) or (
                    f"it stopped running on agent {agent_id} (it crashed, was killed, or "
                    f"was idle too long)")
                await self.table.mark_lost([kernel_id], why, now)
                self.metrics.lost("left-agent")
        destroying = self._destroying.setdefault(agent_id, set())
        for kernel_id in reported:
            if len(destroying) >= MAX_DESTROYS_IN_FLIGHT:
                break  # the rest wait for a later heartbeat: one cannot make us flood
            if kernel_id in known or kernel_id in self._creating or kernel_id in destroying:
                continue
            # Only a candidate orphan costs a lookup: it may have been recorded meanwhile.
            if await self.table.get_kernel(kernel_id):
                continue
            trace = new_trace("manager")
            log.info("request {request}: destroying orphan kernel {kernel} on agent {agent}",
                     kernel=kernel_id, agent=agent_id, request=trace)
            destroying.add(kernel_id)
            d = self.commands(agent_id, {"action": "destroy_kernel", "kernel_id": kernel_id,
                                         "trace": trace}, self.destroy_timeout)
            d.addErrback(lambda f: None)  # a later heartbeat tries again
            d.addBoth(lambda _, k=kernel_id: destroying.discard(k))

    async def _get_kernel(self, kernel_id):
        kernel = await self.table.get_kernel(kernel_id)
        if kernel is None:
            reason = await self.table.lost(kernel_id, self.clock.seconds())
            if reason is not None:
                raise KernelNotFound(f"kernel {kernel_id} is lost: {reason}; create a new "
                                     f"one", error="kernel-lost")
            raise KernelNotFound(f"no kernel has id {kernel_id}")
        return kernel

    @deferred
    async def agents_died(self, dead):
        """`dead`: {agent_id: [KernelRecord]} from the table's expiry."""
        now = self.clock.seconds()
        for agent_id, kernels in dead.items():
            self.connections.forget(agent_id)
            self._destroying.pop(agent_id, None)
            self.metrics.agents_died.inc()
            await self.table.mark_lost([k.kernel_id for k in kernels],
                                       f"its agent {agent_id} stopped answering", now)
            self.metrics.lost("agent-died", len(kernels))

    async def _create_kernel(self, lang, limits, trace, session=None):
        started = self.clock.seconds()
        try:
            kernel = await self._place_kernel(lang, limits, trace, session)
        except SornaError as e:
            self.metrics.created(lang, None, e)
            raise
        self.metrics.created(lang, self.clock.seconds() - started)
        return kernel

    async def _place_kernel(self, lang, limits, trace, session):
        """Place a kernel: an agent that fails or does not answer in time is passed over
        (for `failing_cooldown` s) and the next one is asked, until `create_timeout`."""
        deadline = self.clock.seconds() + self.create_timeout
        tried, last_error = set(), None
        while True:
            now = self.clock.seconds()
            if now >= deadline and last_error is not None:
                raise last_error
            failing = {a for a, until in self._failing.items() if until > now} - tried
            # The lease outlives the attempt's own timeout: only a manager that died
            # meanwhile leaves it to expire.
            lease = self.create_attempt_timeout + 2 * self.heartbeat_interval
            agent = await self.table.reserve(lang, now, self.placement, lease=lease,
                                             exclude=tried | failing)
            if agent is None and failing:  # agents that failed lately are the last resort
                agent = await self.table.reserve(lang, now, self.placement, lease=lease,
                                                 exclude=tried)
            if agent is None:
                raise last_error or await self._no_room(lang, now)
            tried.add(agent.agent_id)
            try:
                return await self._create_on(agent, lang, limits, trace, session,
                                             min(self.create_attempt_timeout,
                                                 deadline - now))
            except SornaError as e:
                last_error = _creation_error(agent.agent_id, lang, e)
                if isinstance(e, (Timeout, Failure)) or e.code >= 500:
                    self._failing[agent.agent_id] = now + self.failing_cooldown
                log.warn("request {request}: agent {agent} could not create a {lang} "
                         "kernel ({cause}); trying another agent", agent=agent.agent_id,
                         lang=lang, cause=e.cause, request=trace)

    async def _create_on(self, agent, lang, limits, trace, session, timeout):
        kernel_id = new_kernel_id()
        self._creating.add(kernel_id)
        try:
            try:
                await self.commands(agent.agent_id, {
                    "action": "create_kernel", "kernel_id": kernel_id, "lang": lang,
                    "limits": limits, "trace": trace}, timeout)
            except BaseException:
                await self.table.release(agent.agent_id, agent.reservation)
                raise
            # Front-ends reach the kernel at the address the agent advertises in its
            # heartbeats (checked there), never at one its reply names.
            kernel = KernelRecord(kernel_id=kernel_id, agent_id=agent.agent_id, lang=lang,
                                  addr=agent.addr, created_at=self.clock.seconds(),
                                  session=session, key=agent.key)
            await self.table.add_kernel(kernel, reservation=agent.reservation)
        finally:
            self._creating.discard(kernel_id)
        self._failing.pop(agent.agent_id, None)
        log.info("request {request}: kernel {kernel} ({lang}) created on agent {agent}",
                 kernel=kernel_id, lang=lang, agent=agent.agent_id, request=trace)
        return kernel

    @deferred
    async def recent_agents(self, now):
        """The live agents, as listed at most half a heartbeat interval ago: a create
        must not cost a listing of every agent (O(agents), a large read from Redis)."""
        if self._recent is None or now - self._recent[0] >= self.heartbeat_interval / 2:
            agents = await self.table.agents(now)
            self._recent = (now, agents, langs.alias_table(agents))
            self.metrics.listed(agents)
        return self._recent

    async def _canonical(self, lang):
        """The language a request names, through the aliases live agents report."""
        _, _, aliases = await self.recent_agents(self.clock.seconds())
        return langs.canonical(lang, aliases)

    async def _no_room(self, lang, now):
        _, agents, _ = await self.recent_agents(now)
        served = sorted({lang for a in agents for lang in a.langs})
        if lang not in served and lang not in langs.KNOWN:
            return BadRequest(f"unknown language {lang!r}; the languages are: "
                              f"{', '.join(sorted(set(langs.KNOWN) | set(served)))}",
                              error="unknown-language")
        if not agents:
            return NoCapacity("no agent is connected to the manager; start one with "
                              "`twistd sorna-agent --manager-addr ...`")
        if lang not in served:
            return NoCapacity(f"no live agent has the image sorna/kernel-{lang}; build it "
                              f"on an agent's host with `sorna images build {lang}` (the "
                              f"agent finds it within two heartbeats)",
                              error="no-image")
        return NoCapacity(f"every agent serving {lang} is full; try again later",
                          error="no-capacity")


def _creation_error(agent_id, lang, error):
    if isinstance(error, Timeout):
        return Timeout(f"agent {agent_id} did not create a {lang} kernel in time",
                       error="create-timeout")
    if isinstance(error, SornaError):
        return type(error)(f"agent {agent_id} could not create a {lang} kernel: "
                           f"{error.cause}", error=error.error, code=error.code)
    return Failure(f"could not create a {lang} kernel on agent {agent_id}: {error}")


def _kernel_reply(kernel):
    reply = {"kernel_id": kernel.kernel_id, "kernel_addr": kernel.addr, "lang": kernel.lang}
    if kernel.key:
        reply["agent_key"] = kernel.key  # the CurveZMQ server key of kernel_addr
    return reply
