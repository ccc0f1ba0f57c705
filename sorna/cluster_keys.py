"""What a server (manager, agent, gateway) does with the cluster's keys folder: the
`--keys`/`--insecure` options, its own pair and the keys it allows, and the reload on
SIGHUP or when the folder changes.
"""

import signal

from twisted.application.service import Service
from twisted.internet import task, threads
from twisted.logger import Logger
from twisted.python import usage

from sorna import keys
from sorna.defer import deferred
from sorna.curve import Access, ClientCurve, ServerCurve

log = Logger(namespace="sorna.keys")

KEYS_OPTION = ["keys", None, None,
               "The cluster's keys folder (`sorna keys init DIR`); default: $SORNA_KEYS, "
               f"else the first of {', '.join(keys.DEFAULT_FOLDERS)} that exists."]
KEY_NAME_OPTION = ["key-name", None, None,
                   "Which key pair of the folder is this process's (default: the one "
                   "`sorna keys init` made, or the only one)."]
INSECURE_FLAG = ["insecure", None,
                 "Plaintext, no keys: anyone who reaches the ports can run code. Only for "
                 "a private network, or the 2016 JSON front-ends."]


class ServerKeys:
    """A server's pair, the keys it allows (a KeyRing of `allowed` kinds) and, for an
    agent, the manager's public key."""

    def __init__(self, folder, public, secret, name, ring, manager=None):
        self.folder = folder
        self.public = public
        self.secret = secret
        self.name = name
        self.ring = ring
        self.manager = manager

    @classmethod
    def load(cls, folder, role, name=None):
        """`role`: "manager" (allows agents and clients) or "agent" (allows clients)."""
        if role == "manager":
            public, secret = keys.manager_pair(folder)
            return cls(folder, public, secret, "manager", keys.KeyRing(folder))
        public, secret, name = keys.own_pair(folder, "agents", name)
        return cls(folder, public, secret, f"agents/{name}",
                   keys.KeyRing(folder, kinds=("clients",)), keys.manager_key(folder))

    def server_curve(self, domain, access):
        return ServerCurve(self.public, self.secret, domain, access.allows_connection)

    def manager_curve(self):
        """The agent's side of its connection to the manager."""
        return ClientCurve(self.public, self.secret, self.manager)


def check_keys_options(options, who, role, environ):
    """In postOptions: replace `keys` with the loaded ServerKeys (None when
    --insecure), or raise a UsageError that says how to make keys."""
    if options["insecure"]:
        if options["keys"]:
            raise usage.UsageError("give --keys or --insecure, not both")
        return
    folder = keys.find(options["keys"], environ)
    if folder is None:
        raise usage.UsageError(keys.missing_keys_advice(who))
    try:
        options["keys"] = ServerKeys.load(folder, role, options.get("key-name"))
    except keys.KeysError as e:
        raise usage.UsageError(f"--keys: {e}")


def manager_access(ring):
    """Agents send heartbeats (and ping); front-ends ask everything else."""
    return Access(ring, {"clients"}, {"heartbeat": {"agents"},
                                      "ping": {"agents", "clients"}})


def agent_access(ring):
    return Access(ring, {"clients"})


def warn_insecure(who, endpoint):
    log.warn("{who} runs --insecure: {endpoint} speaks plaintext and lets anyone who "
             "reaches it in", who=who, endpoint=endpoint)


_UNSEEN = object()  # KeyWatch's signature before its first look (a signature may be None)
CHANGED = "a change in the folder"


class KeyWatch(Service):
    """Rereads the allowed keys on SIGHUP and whenever the folder's key files change
    (looked at every `interval` s, in a thread: it is file I/O). `ring`: a
    sorna.keys.KeyRing, or anything with its read/replace/signature (the gateway's
    tokens)."""

    def __init__(self, ring, clock, interval=keys.WATCH_INTERVAL, in_thread=None,
                 on_signal=True):
        self.ring = ring
        self.clock = clock
        self.interval = interval
        self.in_thread = in_thread or threads.deferToThread
        self.on_signal = on_signal
        self._loop = None
        self._signature = _UNSEEN
        self._previous_handler = None
        self._busy = None  # the look (and reload) in progress
        self._wanted = None  # why a reload was asked for (SIGHUP)

    @classmethod
    def for_clock(cls, ring, clock):
        """On the reactor: SIGHUP and threads. On an injected clock (tests): inline
        file reads and no signal handler."""
        from twisted.internet import defer, reactor
        if clock is reactor:
            return cls(ring, clock)
        return cls(ring, clock, in_thread=defer.maybeDeferred, on_signal=False)

    def startService(self):
        super().startService()
        if self.on_signal:
            from twisted.internet import reactor
            self._previous_handler = signal.signal(
                signal.SIGHUP, lambda *_: reactor.callFromThread(self.reload, "SIGHUP"))
        self._loop = task.LoopingCall(self.check)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: log.failure("the keys folder watch stopped", f))

    def stopService(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.on_signal and self._previous_handler is not None:
            signal.signal(signal.SIGHUP, self._previous_handler)
        super().stopService()
        return self._busy

    def check(self):
        """Look at the folder; reload when its key files changed since the last look."""
        if self._busy is None:
            d = self._work()
            if not d.called:  # (inline file reads are done already)
                self._busy = d
            return d
        return self._busy

    def reload(self, why):
        """Reload now (or once the look in progress is done, at the latest with the
        next look)."""
        self._wanted = why
        return self.check()

    @deferred
    async def _work(self):
        try:
            while True:
                signature = await self.in_thread(self.ring.signature)
                # The first look always counts as a change: the ring was read when the
                # process started, and the folder may have changed since.
                changed = signature != self._signature
                self._signature = signature
                why, self._wanted = self._wanted, None
                if why is None and changed:
                    why = CHANGED
                if why is None:
                    return
                added, removed = self.ring.replace(await self.in_thread(self.ring.read))
                if why == CHANGED and not (added or removed):
                    continue  # rewritten with the same keys (or the first look)
                log.info("reloaded the {what} of {folder} after {why}: {n} allowed "
                         "({added} added, {removed} removed)", folder=self.ring.folder,
                         why=why, n=len(self.ring), added=added, removed=removed,
                         what=self.ring.what)
        except Exception as e:
            log.warn("could not reload the {what} of {folder}: {error}; the ones read "
                     "before stay in force", folder=self.ring.folder, error=e,
                     what=self.ring.what)
        finally:
            self._busy = None
