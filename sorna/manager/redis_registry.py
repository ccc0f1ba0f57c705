"""The capacity table in Redis: what lets a manager restart lose nothing, and what several
managers can share.

Same semantics as `MemoryCapacityTable` (both pass `tests/test_registry.py`). Every
method that touches more than one key, or reads before it writes, is one Lua script, so
that two managers never promise the same slot. Every Redis call has a timeout; a call
that times out or finds no connection fails with a 503 `state-unavailable` error, which
the manager passes on to the front-end. docs/REDIS.md describes the keys.
"""

import hashlib
import uuid
from dataclasses import replace
from urllib.parse import unquote, urlsplit

import msgpack
import txredisapi
from twisted.internet import defer, endpoints, error
from twisted.logger import Logger

from sorna.manager.registry import (
    DEFAULT_LEASE, LOST_TTL, AgentRecord, CapacityTable, KernelRecord,
)
from sorna.proto.errors import Failure, NoCapacity

log = Logger(namespace="sorna.manager")

DEFAULT_PORT = 6379

# Redis errors that mean "not now" rather than "wrong": answered like a lost connection.
_TRANSIENT = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "MISCONF", "NOAUTH",
              "NOREPLICAS", "CLUSTERDOWN")


def parse_redis_url(url):
    """`redis://[[user]:password@]host[:port][/db]`, or `host[:port]`, to a dict of
    host, port, db, username, password. Raises ValueError with a readable reason."""
    if "://" not in url:
        url = "redis://" + url
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"{url!r}: only redis:// URLs are supported (no TLS, no sockets)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number between 1 and 65535")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"{url!r}: the database, after the /, must be a number")
    return {"host": parts.hostname, "port": port, "db": int(db),
            "username": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None}


def session_key_part(session):
    """The session part of a key: a digest, so no user-chosen string reaches a key name."""
    return hashlib.sha256(_pack(list(session))).hexdigest()


def _pack(value):
    return msgpack.packb(value, use_bin_type=True)


def _unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _num(value):
    """A float as Redis should store it: repr round-trips exactly (txredisapi's own
    formatting of floats keeps six decimals)."""
    return repr(float(value))


# -- Lua. Keys are built from the prefix (ARGV[1]) inside the scripts that have to
# walk the agents; the scripts' key names are the ones docs/REDIS.md lists.

_LUA_COMMON = """
local prefix = ARGV[1]
local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
-- Python orders agent ids by code point, which is UTF-8 byte order; Lua's `<` on strings
-- would follow the server's locale.
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function fmt(x) return string.format('%.17g', x) end
-- Placement reads candidate sets instead of scanning agents: cand:<lang> (least loaded
-- first) and cand-ml:<lang> (most loaded first), agents with a warm kernel of the
-- language before the others, ties by id (members of equal score sort bytewise). An
-- agent is in them while it has a free slot; `place` recomputes its scores from its
-- record whenever its counts change ('placed' remembers the sets it is in).
local function unplace(id)
  local akey = prefix .. 'agent:' .. id
  local placed = redis.call('HGET', akey, 'placed')
  if placed then
    for _, l in ipairs(cmsgpack.unpack(placed)) do
      redis.call('ZREM', prefix .. 'cand:' .. l, id)
      redis.call('ZREM', prefix .. 'cand-ml:' .. l, id)
    end
    redis.call('HDEL', akey, 'placed')
  end
end
local function place(id)
  unplace(id)
  local akey = prefix .. 'agent:' .. id
  local a = redis.call('HMGET', akey, 'max_kernels', 'kernels', 'langs', 'warm')
  if not a[1] then return end
  local max, kernels = tonumber(a[1]), tonumber(a[2] or '0')
  local held = redis.call('ZCARD', prefix .. 'reservations:' .. id)
  local placed = {}
  if max - kernels - held > 0 then
    local warm = a[4] and cmsgpack.unpack(a[4]) or {}
    local load = (kernels + held) / max
    for _, l in ipairs(cmsgpack.unpack(a[3])) do
      local first = 2
      if type(warm) == 'table' and (tonumber(warm[l]) or 0) > 0 then first = 0 end
      redis.call('ZADD', prefix .. 'cand:' .. l, fmt(first + load), id)
      redis.call('ZADD', prefix .. 'cand-ml:' .. l, fmt(first + (1 - load)), id)
      table.insert(placed, l)
    end
  end
  if #placed > 0 then redis.call('HSET', akey, 'placed', cmsgpack.pack(placed)) end
end
-- Leases that ended by `now` (lease-ends: "agent reservation" scored by their end) no
-- longer count: their agents' places are recomputed.
local function end_leases(now)
  local key = prefix .. 'lease-ends'
  local ended = redis.call('ZRANGEBYSCORE', key, '-inf', now)
  if #ended == 0 then return end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local touched, order = {}, {}
  for _, member in ipairs(ended) do
    local space = string.find(member, ' ', 1, true)
    local id = string.sub(member, 1, space - 1)
    redis.call('ZREM', prefix .. 'reservations:' .. id, string.sub(member, space + 1))
    if not touched[id] then touched[id] = true; table.insert(order, id) end
  end
  for _, id in ipairs(order) do place(id) end
end
-- An agent's live reservations: leases whose end (the score) is past are dropped first.
local function reserved(id, now)
  local rkey = prefix .. 'reservations:' .. id
  local ended = redis.call('ZRANGEBYSCORE', rkey, '-inf', now)
  if #ended > 0 then
    redis.call('ZREMRANGEBYSCORE', rkey, '-inf', now)
    for _, reservation in ipairs(ended) do
      redis.call('ZREM', prefix .. 'lease-ends', id .. ' ' .. reservation)
    end
    place(id)
  end
  return redis.call('ZCARD', rkey)
end
-- Forget a kernel: its record, its place in its agent's set and count, its session.
local function forget(kernel_id)
  local kkey = prefix .. 'kernel:' .. kernel_id
  local flat = redis.call('HGETALL', kkey)
  if #flat == 0 then return nil end
  local k = fields(flat)
  local akey = prefix .. 'agent:' .. k.agent_id
  if tonumber(redis.call('HGET', akey, 'kernels') or '0') > 0 then
    redis.call('HINCRBY', akey, 'kernels', -1)
    place(k.agent_id)
  end
  redis.call('SREM', prefix .. 'agent-kernels:' .. k.agent_id, kernel_id)
  if k.user_key and k.user_key ~= '' then redis.call('SREM', k.user_key, kernel_id) end
  if k.session_key ~= '' and redis.call('GET', k.session_key) == kernel_id then
    redis.call('DEL', k.session_key)
  end
  redis.call('DEL', kkey)
  return flat
end
-- {kernel id, created_at, ...} of an agent's kernels
local function kernel_ages(id)
  local out = {}
  for _, kernel_id in ipairs(redis.call('SMEMBERS', prefix .. 'agent-kernels:' .. id)) do
    local created = redis.call('HGET', prefix .. 'kernel:' .. kernel_id, 'created_at')
    if created then
      table.insert(out, kernel_id)
      table.insert(out, created)
    end
  end
  return out
end
local function with_reserved(flat, id, now)
  table.insert(flat, 'reserved')
  table.insert(flat, tostring(reserved(id, now)))
  return flat
end
"""

# KEYS: agents, agent:<id>, agent-kernels:<id>
# ARGV: prefix, id, addr, max_kernels, langs, now, instance, resources, aliases, warm, key
# Returns the agent's kernels: {kernel id, created_at, ...}.
_HEARTBEAT = _LUA_COMMON + """
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], 'agent_id', ARGV[2], 'addr', ARGV[3], 'max_kernels', ARGV[4],
           'langs', ARGV[5], 'last_seen', ARGV[6], 'instance', ARGV[7],
           'resources', ARGV[8], 'aliases', ARGV[9], 'warm', ARGV[10], 'key', ARGV[11],
           'kernels', redis.call('SCARD', KEYS[3]))
place(ARGV[2])
return kernel_ages(ARGV[2])
"""

# KEYS: agents.  ARGV: prefix, now.  Every agent record, live or not.
_AGENTS = _LUA_COMMON + """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local flat = redis.call('HGETALL', prefix .. 'agent:' .. id)
  if #flat > 0 then table.insert(out, with_reserved(flat, id, ARGV[2])) end
end
return out
"""

# KEYS: agents.  ARGV: prefix, lang, now, agent_timeout, placement, lease end, reservation,
#       agent ids to pass over...
_RESERVE = _LUA_COMMON + """
local lang, now, timeout = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local excluded = {}
for i = 8, #ARGV do excluded[ARGV[i]] = true end
end_leases(ARGV[3])
local set = prefix .. (ARGV[5] == 'most-loaded' and 'cand-ml:' or 'cand:') .. lang
local best
local start = 0
while best == nil do
  local ids = redis.call('ZRANGE', set, start, start + 31)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    if not excluded[id] then
      local seen = redis.call('HGET', prefix .. 'agent:' .. id, 'last_seen')
      if seen and now - tonumber(seen) < timeout then best = id; break end
    end
  end
  start = start + 32
end
if best == nil then return false end
local best_key = prefix .. 'agent:' .. best
redis.call('ZADD', prefix .. 'reservations:' .. best, ARGV[6], ARGV[7])
redis.call('ZADD', prefix .. 'lease-ends', ARGV[6], best .. ' ' .. ARGV[7])
local warm_raw = redis.call('HGET', best_key, 'warm')
if warm_raw then
  local warm = cmsgpack.unpack(warm_raw)
  if type(warm) == 'table' and (tonumber(warm[lang]) or 0) > 0 then
    warm[lang] = tonumber(warm[lang]) - 1
    redis.call('HSET', best_key, 'warm', cmsgpack.pack(warm))
  end
end
place(best)
return with_reserved(redis.call('HGETALL', best_key), best, ARGV[3])
"""

# KEYS: reservations:<id>.  ARGV: prefix, reservation, agent id
_RELEASE = _LUA_COMMON + """
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', prefix .. 'lease-ends', ARGV[3] .. ' ' .. ARGV[2])
place(ARGV[3])
return 1
"""

# KEYS: kernel:<id>, agent:<agent>, agent-kernels:<agent>, reservations:<agent>
# ARGV: prefix, kernel_id, agent_id, lang, addr, created_at, session, session_key,
#       reservation ('' for none), user ('' for kernels without a session), agent key
_ADD_KERNEL = _LUA_COMMON + """
local kkey, akey = KEYS[1], KEYS[2]
local kernel_id, agent_id, session_key = ARGV[2], ARGV[3], ARGV[8]
local user_key = ''
if ARGV[10] ~= '' then user_key = prefix .. 'user-kernels:' .. redis.sha1hex(ARGV[10]) end
local old = fields(redis.call('HGETALL', kkey))
if ARGV[9] ~= '' then
  redis.call('ZREM', KEYS[4], ARGV[9])
  redis.call('ZREM', prefix .. 'lease-ends', agent_id .. ' ' .. ARGV[9])
end
if redis.call('EXISTS', akey) == 1 and old.agent_id == nil then
  redis.call('HINCRBY', akey, 'kernels', 1)
end
if old.agent_id ~= nil then
  -- recorded again: it leaves its former agent's set and its former session
  if old.agent_id ~= agent_id then
    redis.call('SREM', prefix .. 'agent-kernels:' .. old.agent_id, kernel_id)
  end
  if old.session_key ~= '' and old.session_key ~= session_key
      and redis.call('GET', old.session_key) == kernel_id then
    redis.call('DEL', old.session_key)
  end
  if old.user_key and old.user_key ~= '' and old.user_key ~= user_key then
    redis.call('SREM', old.user_key, kernel_id)
  end
end
redis.call('HSET', kkey, 'kernel_id', kernel_id, 'agent_id', agent_id, 'lang', ARGV[4],
           'addr', ARGV[5], 'created_at', ARGV[6], 'session', ARGV[7],
           'session_key', session_key, 'user_key', user_key, 'key', ARGV[11])
redis.call('SADD', KEYS[3], kernel_id)
if user_key ~= '' then redis.call('SADD', user_key, kernel_id) end
if session_key ~= '' then redis.call('SET', session_key, kernel_id) end
if redis.call('EXISTS', akey) == 1 then place(agent_id) end
if old.agent_id ~= nil and old.agent_id ~= agent_id then place(old.agent_id) end
return 1
"""

# KEYS: kernel:<id>.  ARGV: prefix, kernel_id
_REMOVE_KERNEL = _LUA_COMMON + """
return forget(ARGV[2]) or false
"""

# KEYS: agents.  ARGV: prefix, now, agent_timeout
# Returns {{agent_id, {kernel record, ...}}, ...} for the agents it dropped.
_EXPIRE = _LUA_COMMON + """
local now, timeout = tonumber(ARGV[2]), tonumber(ARGV[3])
local dead = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local akey = prefix .. 'agent:' .. id
  local seen = redis.call('HGET', akey, 'last_seen')
  if not seen or not (now - tonumber(seen) < timeout) then
    local kset = prefix .. 'agent-kernels:' .. id
    local kernels = {}
    for _, kernel_id in ipairs(redis.call('SMEMBERS', kset)) do
      local flat = forget(kernel_id)
      if flat then table.insert(kernels, flat) end
    end
    unplace(id)
    for _, reservation in ipairs(redis.call('ZRANGE', prefix .. 'reservations:' .. id, 0, -1)) do
      redis.call('ZREM', prefix .. 'lease-ends', id .. ' ' .. reservation)
    end
    redis.call('DEL', akey, kset, prefix .. 'reservations:' .. id)
    redis.call('SREM', KEYS[1], id)
    table.insert(dead, {id, kernels})
  end
end
return dead
"""


# ARGV: prefix, reason, ttl, kernel ids...
_MARK_LOST = """
for i = 4, #ARGV do
  redis.call('SET', ARGV[1] .. 'lost:' .. ARGV[i], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


class _Factory(txredisapi.RedisFactory):
    # txredisapi backs off up to 10 s; a manager should notice a restarted Redis sooner.
    initialDelay = 0.2
    maxDelay = 2.0


class RedisCapacityTable(CapacityTable):
    """`url_or_host_port`: `redis://host:port/db` or `host:port`. `clock` times every
    call out after `call_timeout` s. Connections open in `start()`, close in `stop()`."""

    def __init__(self, url_or_host_port, prefix, clock, agent_timeout, call_timeout=2.0,
                 poolsize=4, reactor=None):
        self.address = parse_redis_url(url_or_host_port)
        self.where = f"{self.address['host']}:{self.address['port']}"
        self.prefix = prefix
        self.clock = clock
        self.agent_timeout = agent_timeout
        self.call_timeout = call_timeout
        self.poolsize = poolsize
        self._reactor = reactor
        self._factory = None
        self._redis = None

    # -- life cycle
    def start(self):
        """Open the pool and check that Redis answers. An unreachable Redis is logged,
        not fatal: the pool keeps reconnecting and calls fail with 503 meanwhile."""
        if self._factory is not None:
            return defer.succeed(None)
        a = self.address
        self._factory = _Factory(self.where, a["db"], self.poolsize, isLazy=True,
                                 charset=None, password=a["password"],
                                 convertNumbers=False, username=a["username"])
        # Fires with an error only when Redis refuses the password or the db number.
        self._factory.deferred.addErrback(lambda f: log.error(
            "Redis at {where} refused the connection: {error}", where=self.where,
            error=f.getErrorMessage()))
        self._factory.startConnecting(endpoints.HostnameEndpoint(
            self._reactor or _global_reactor(), a["host"], a["port"],
            timeout=self.call_timeout))
        self._redis = self._factory.handler

        def ready(_):
            log.info("capacity table: Redis at {where} db {db}, key prefix {prefix!r}",
                     where=self.where, db=a["db"], prefix=self.prefix)

        def unreachable(f):
            f.trap(NoCapacity)
            log.warn("{cause}; the manager starts anyway and answers 503 until Redis "
                     "answers", cause=f.value.cause)

        return self._call("PING", lambda redis: redis.ping()).addCallbacks(ready,
                                                                          unreachable)

    def stop(self):
        factory, self._factory, self._redis = self._factory, None, None
        if factory is None:
            return defer.succeed(None)
        return factory.disconnect()

    # -- calls
    def _key(self, *parts):
        return self.prefix + "".join(parts)

    def _call(self, what, fn):
        """`fn(redis)`: one Redis call, with a timeout; failing to reach Redis is a 503."""
        if self._redis is None:
            return defer.fail(self._unavailable(f"{what}: the table is not started"))
        d = defer.maybeDeferred(fn, self._redis)
        d.addTimeout(self.call_timeout, self.clock)
        return d.addErrback(self._failed, what)

    def _eval(self, what, script, keys, args):
        # txredisapi sends EVALSHA once a connection knows the script, EVAL before that
        # and after a Redis restart (NOSCRIPT).
        return self._call(what, lambda redis: redis.eval(script, keys, [self.prefix, *args]))

    def _failed(self, failure, what):
        if failure.check(defer.TimeoutError, defer.CancelledError):
            raise self._unavailable(f"no reply to {what} within {self.call_timeout:g} s")
        if failure.check(txredisapi.ConnectionError, error.ConnectError,
                         error.ConnectionLost, error.ConnectionDone):
            raise self._unavailable(f"{what} failed: {failure.getErrorMessage()}")
        if failure.check(txredisapi.ResponseError):
            message = failure.getErrorMessage()
            if message.split(" ", 1)[0] in _TRANSIENT:
                raise self._unavailable(f"{what} failed: {message}")
            raise Failure(f"the capacity table (Redis at {self.where}) refused {what}: "
                          f"{message}")
        return failure

    def _unavailable(self, reason):
        return NoCapacity(f"the capacity table (Redis at {self.where}) is unreachable: "
                          f"{reason}; retry shortly", error="state-unavailable")

    # -- the interface
    def heartbeat(self, agent, now):
        a = agent.agent_id
        d = self._eval("heartbeat", _HEARTBEAT,
                       [self._key("agents"), self._key("agent:", a),
                        self._key("agent-kernels:", a)],
                       [a, agent.addr, str(int(agent.max_kernels)), _pack(list(agent.langs)),
                        _num(now), _pack(agent.instance), _pack(agent.resources),
                        _pack(agent.aliases), _pack(agent.warm), agent.key])
        return d.addCallback(lambda flat: {
            flat[i].decode(): float(flat[i + 1]) for i in range(0, len(flat), 2)})

    def agents(self, now):
        d = self._eval("agents", _AGENTS, [self._key("agents")], [_num(now)])
        return d.addCallback(lambda rows: sorted(
            (a for a in map(_agent, rows) if now - a.last_seen < self.agent_timeout),
            key=lambda a: a.agent_id))

    def expire(self, now):
        d = self._eval("expire", _EXPIRE, [self._key("agents")],
                       [_num(now), _num(self.agent_timeout)])
        return d.addCallback(lambda rows: {
            agent_id.decode(): _kernels(flats) for agent_id, flats in sorted(rows)})

    def reserve(self, lang, now, placement="least-loaded", lease=DEFAULT_LEASE,
                exclude=()):
        reservation = uuid.uuid4().hex
        d = self._eval("reserve", _RESERVE, [self._key("agents")],
                       [lang, _num(now), _num(self.agent_timeout), placement,
                        _num(now + lease), reservation, *sorted(exclude)])
        return d.addCallback(
            lambda flat: replace(_agent(flat), reservation=reservation) if flat else None)

    def release(self, agent_id, reservation):
        d = self._eval("release", _RELEASE, [self._key("reservations:", agent_id)],
                       [reservation, agent_id])
        return d.addCallback(lambda _: None)

    def add_kernel(self, kernel, reservation=None):
        session = b""
        session_key = ""
        if kernel.session is not None:
            session = _pack(list(kernel.session))
            session_key = self._key("session:", session_key_part(kernel.session))
        d = self._eval("add_kernel", _ADD_KERNEL,
                       [self._key("kernel:", kernel.kernel_id),
                        self._key("agent:", kernel.agent_id),
                        self._key("agent-kernels:", kernel.agent_id),
                        self._key("reservations:", kernel.agent_id)],
                       [kernel.kernel_id, kernel.agent_id, kernel.lang, kernel.addr,
                        _num(kernel.created_at), session, session_key, reservation or "",
                        kernel.session[0] if kernel.session is not None else "",
                        kernel.key])
        return d.addCallback(lambda _: kernel)

    def get_kernel(self, kernel_id):
        key = self._key("kernel:", kernel_id)
        d = self._call("get_kernel", lambda redis: redis.execute_command("HGETALL", key))
        return d.addCallback(lambda flat: _kernel(flat) if flat else None)

    def remove_kernel(self, kernel_id):
        d = self._eval("remove_kernel", _REMOVE_KERNEL, [self._key("kernel:", kernel_id)],
                       [kernel_id])
        return d.addCallback(lambda flat: _kernel(flat) if flat else None)

    def find_session(self, session):
        key = self._key("session:", session_key_part(tuple(session)))
        d = self._call("find_session", lambda redis: redis.execute_command("GET", key))
        return d.addCallback(lambda kernel_id: kernel_id.decode() if kernel_id else None)


    def count_user_kernels(self, user_id):
        key = self._key("user-kernels:", hashlib.sha1(user_id.encode()).hexdigest())
        d = self._call("count_user_kernels",
                       lambda redis: redis.execute_command("SCARD", key))
        return d.addCallback(int)

    def mark_lost(self, kernel_ids, reason, now):
        if not kernel_ids:
            return defer.succeed(None)
        d = self._eval("mark_lost", _MARK_LOST, [],
                       [reason, str(int(LOST_TTL)), *kernel_ids])
        return d.addCallback(lambda _: None)

    def lost(self, kernel_id, now):
        key = self._key("lost:", kernel_id)
        d = self._call("lost", lambda redis: redis.execute_command("GET", key))
        return d.addCallback(lambda reason: reason.decode() if reason else None)


def _global_reactor():
    from twisted.internet import reactor

    return reactor


def _fields(flat):
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def _agent(flat):
    f = _fields(flat)
    return AgentRecord(
        agent_id=f["agent_id"].decode(), addr=f["addr"].decode(),
        max_kernels=int(f["max_kernels"]), langs=list(_unpack(f["langs"])),
        last_seen=float(f["last_seen"]), instance=_unpack(f["instance"]),
        resources=_unpack(f["resources"]), reserved=int(f["reserved"]),
        aliases=_unpack(f["aliases"]) if "aliases" in f else {},
        warm=_unpack(f["warm"]) if "warm" in f else {},
        kernels=int(f["kernels"]), key=f.get("key", b"").decode())


def _kernel(flat):
    f = _fields(flat)
    return KernelRecord(
        kernel_id=f["kernel_id"].decode(), agent_id=f["agent_id"].decode(),
        lang=f["lang"].decode(), addr=f["addr"].decode(),
        created_at=float(f["created_at"]),
        session=tuple(_unpack(f["session"])) if f["session"] else None,
        key=f.get("key", b"").decode())


def _kernels(flats):
    return sorted(map(_kernel, flats), key=lambda k: (k.created_at, k.kernel_id))
