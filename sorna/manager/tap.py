"""`twistd sorna-manager`: options and service construction."""

import os

from twisted.python import usage

from sorna.cluster_keys import INSECURE_FLAG, KEYS_OPTION, check_keys_options
from sorna.fatal import stop_reactor_with_error
from sorna.manager.redis_registry import RedisCapacityTable, parse_redis_url
from sorna.manager.registry import PLACEMENTS, MemoryCapacityTable
from sorna.manager.service import ManagerService
from sorna.metrics import METRICS_PORT_OPTION, check_metrics_port
from sorna.transport import ZmqTransport


class Options(usage.Options):
    optFlags = [INSECURE_FLAG]
    optParameters = [
        KEYS_OPTION,
        ["port", "p", 5001, "TCP port of the ROUTER socket for front-ends and agents.", int],
        ["listen", None, "*", "Address to bind (e.g. 127.0.0.1); * binds every interface."],
        ["heartbeat-interval", None, 3.0,
         "Seconds between agent heartbeats; an agent silent for 3 intervals is dead.", float],
        ["max-message-size", None, 1 << 20, "Largest request in bytes (larger: 413).", int],
        ["create-timeout", None, 60.0,
         "Seconds a creation may take in all, retries on other agents included.", float],
        ["create-attempt-timeout", None, 20.0,
         "Seconds one agent may take to start a kernel before another one is asked.",
         float],
        ["failing-cooldown", None, 60.0,
         "Seconds an agent that failed or timed out a creation is passed over.", float],
        ["redis", None, None,
         "Keep the capacity table in Redis (redis://HOST:6379/0) instead of in memory. "
         "Without it, REDIS_PORT_6379_TCP_ADDR/_PORT are used when set."],
        ["redis-prefix", None, "sorna:", "Prefix of every Redis key of this cluster."],
        ["placement", None, "least-loaded",
         "Where new kernels go: least-loaded (spread over agents) or most-loaded (pack "
         "agents one after the other)."],
        METRICS_PORT_OPTION,
        ["max-kernels-per-user", None, 0,
         "Most kernels one user_id may hold through get_or_create (0: no limit); more "
         "get 429.", int],
    ]

    def __init__(self, environ=None):
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def postOptions(self):
        check_keys_options(self, "sorna-manager", "manager", self.environ)
        if not 0 < self["port"] < 65536:
            raise usage.UsageError(f"--port must be 1-65535, not {self['port']}")
        if self["heartbeat-interval"] <= 0:
            raise usage.UsageError("--heartbeat-interval must be positive")
        if self["placement"] not in PLACEMENTS:
            raise usage.UsageError(f"--placement must be one of {', '.join(PLACEMENTS)}")
        check_metrics_port(self)
        if self["max-kernels-per-user"] < 0:
            raise usage.UsageError("--max-kernels-per-user must be 0 (no limit) or more")
        for name in ("create-timeout", "create-attempt-timeout"):
            if self[name] <= 0:
                raise usage.UsageError(f"--{name} must be positive")
        if self["failing-cooldown"] < 0:
            raise usage.UsageError("--failing-cooldown must be 0 or more seconds")
        if self["max-message-size"] < 1024:
            raise usage.UsageError("--max-message-size must be at least 1024 bytes")
        host = self.environ.get("REDIS_PORT_6379_TCP_ADDR")
        if self["redis"] is None and host:
            # the variables a Docker link named `redis` sets
            host = f"[{host}]" if ":" in host else host
            port = self.environ.get("REDIS_PORT_6379_TCP_PORT") or 6379
            self["redis"] = f"redis://{host}:{port}/0"
        if self["redis"] is not None:
            try:
                parse_redis_url(self["redis"])
            except ValueError as e:
                raise usage.UsageError(f"--redis: {e}")
            if not self["redis-prefix"]:
                raise usage.UsageError("--redis-prefix must not be empty")


def makeService(config, clock=None, transport=None, reactor=None):
    """`reactor` is stopped on a fatal error; `clock` (the reactor by default) times
    everything."""
    if reactor is None:
        from twisted.internet import reactor
    clock = clock or reactor
    interval = config["heartbeat-interval"]
    if config["redis"] is not None:
        table = RedisCapacityTable(config["redis"], config["redis-prefix"], clock,
                                   agent_timeout=3 * interval)
    else:
        table = MemoryCapacityTable(agent_timeout=3 * interval)
    return ManagerService(
        endpoint=f"tcp://{config['listen']}:{config['port']}",
        table=table,
        transport=transport or ZmqTransport(),
        clock=clock,
        heartbeat_interval=interval,
        max_message_size=config["max-message-size"],
        create_timeout=config["create-timeout"],
        close_transport=transport is None,
        on_fatal=lambda error: stop_reactor_with_error(reactor),
        placement=config["placement"],
        max_kernels_per_user=config["max-kernels-per-user"],
        create_attempt_timeout=config["create-attempt-timeout"],
        failing_cooldown=config["failing-cooldown"],
        metrics_port=config["metrics-port"],
        metrics_interface=config["listen"],
        keys=config["keys"],
    )
