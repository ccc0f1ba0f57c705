"""`twistd sorna-agent`: options and service construction."""

import json
import os
import socket
import tempfile
from urllib.parse import urlsplit

from twisted.python import usage

from sorna.agent import identity
from sorna.agent.docker import Containers, real_client_factory
from sorna.agent.grading import ProcessGrader
from sorna.agent.kernels import Kernels
from sorna.agent.pools import parse_warm_pools
from sorna.agent.repl_link import UnixReplLinks
from sorna.agent.s3 import S3Exporter
from sorna.agent.sandbox import SandboxPolicy
from sorna.agent.service import AgentService
from sorna.cluster_keys import (
    INSECURE_FLAG, KEY_NAME_OPTION, KEYS_OPTION, check_keys_options,
)
from sorna.fatal import stop_reactor_with_error
from sorna.metrics import METRICS_PORT_OPTION, check_metrics_port
from sorna.proto.schema import AGENT_ID_RE
from sorna.threadpool import WorkerPool
from sorna.transport import ZmqTransport


class Options(usage.Options):
    optFlags = [INSECURE_FLAG]
    optParameters = [
        ["manager-addr", "m", None, "The manager's address, e.g. tcp://127.0.0.1:5001."],
        KEYS_OPTION,
        KEY_NAME_OPTION,
        ["max-kernels", "n", 8, "Most kernels this agent runs at once.", int],
        ["port", "p", 6001, "TCP port of the ROUTER socket for front-ends.", int],
        ["listen", None, "*", "Address to bind (e.g. 127.0.0.1); * binds every interface."],
        ["agent-id", None, None,
         "This agent's id (default: the EC2 instance id, else HOSTNAME:PORT)."],
        ["advertise-host", None, None,
         "Host name or IP front-ends use to reach this agent (default: the --listen "
         "address, else the EC2 local-ipv4, else the address this host uses to reach "
         "the manager)."],
        ["instance-metadata", None, "auto",
         "EC2 instance metadata: auto (ask only when local files say EC2), off, or the "
         "service's URL."],
        ["instance-metadata-timeout", None, identity.DEFAULT_TIMEOUT,
         "Seconds each instance metadata request may take.", float],
        ["heartbeat-interval", None, 3.0, "Seconds between heartbeats.", float],
        ["ipc-tmpfs-mb", None, 1, "Each kernel's ipc folder is a tmpfs of this size "
                                  "(0: a plain folder on the host's disk).", int],
        ["ipc-root", None, None, "Folder for the kernels' ipc sockets (default: "
                                 "$TMPDIR/sorna-ipc-PORT, removed at stop)."],
        ["docker-threads", None, 4, "Size of the thread pool for Docker calls.", int],
        ["max-memory-mb", None, 1024, "Most memory a kernel may get.", int],
        ["max-exec-timeout", None, 600.0, "Most seconds one execution may run.", float],
        ["runtime", None, None, "OCI runtime for kernels (e.g. runsc), when registered."],
        ["max-message-size", None, 17 << 20,
         "Largest request in bytes (larger: 413); uploads need room for their file.", int],
        ["s3-bucket", None, None,
         "Export the files each execution creates or changes to this S3 bucket (credentials "
         "and region from the standard AWS variables)."],
        ["s3-endpoint", None, None, "S3 endpoint URL, for S3-compatible services."],
        ["pids-limit", None, 128, "Most processes and threads in a kernel.", int],
        ["cpus", None, 1.0, "CPUs a kernel may use (a CFS quota).", float],
        ["nofile", None, 1024, "Most open files in a kernel.", int],
        ["tmp-size-mb", None, 64, "Size of a kernel's /tmp (tmpfs).", int],
        ["work-size-mb", None, 256, "Size of a kernel's /home/work (tmpfs).", int],
        ["shm-size-mb", None, 16, "Size of a kernel's /dev/shm.", int],
        ["build-size-mb", None, 256, "Size of the exec-allowed build folder of compiled "
                                     "languages' kernels (tmpfs).", int],
        ["fsize-mb", None, None, "Largest file a kernel may write (default: the work "
                                 "folder's size).", int],
        ["container-log-kb", None, 1024, "What the engine keeps of a kernel container's own "
                                         "stdout/stderr.", int],
        ["seccomp-profile", None, None, "A seccomp profile (JSON file) for kernels instead "
                                        "of the engine's default one."],
        ["max-output", None, 1 << 20,
         "Bytes of output kept per execution; the rest is dropped (result `truncated`).",
         int],
        ["max-executions", None, 0,
         "Most executions running at once on this agent (0: no limit); more get 409.", int],
        ["match-timeout", None, 5.0,
         "Seconds a grading pattern may run before it is stopped (504 match-timeout).",
         float],
        ["match-workers", None, 1, "Grading processes at once.", int],
        METRICS_PORT_OPTION,
        ["max-input-wait", None, 300.0,
         "Seconds a run may wait for input before it is interrupted (504 input-timeout).",
         float],
        ["idle-timeout", None, 600.0,
         "Destroy a kernel unused for this many seconds (0: never).", float],
        ["warm-pool", None, "python3=2",
         "Ready kernels kept per language, handed out at create (LANG=N,...; 0: none). "
         "They use free slots only."],
    ]

    def postOptions(self):
        addr = self["manager-addr"]
        if not addr:
            raise usage.UsageError("--manager-addr is required, e.g. "
                                   "--manager-addr tcp://127.0.0.1:5001")
        parts = urlsplit(addr)
        if parts.scheme != "tcp" or not parts.hostname or not parts.port:
            raise usage.UsageError(f"--manager-addr must look like tcp://HOST:PORT, not {addr}")
        check_keys_options(self, "sorna-agent", "agent", os.environ)
        if self["max-kernels"] < 1:
            raise usage.UsageError("--max-kernels must be at least 1")
        if not 0 < self["port"] < 65536:
            raise usage.UsageError(f"--port must be 1-65535, not {self['port']}")
        try:
            self["warm-pool"] = parse_warm_pools(self["warm-pool"])
        except ValueError as e:
            raise usage.UsageError(f"--warm-pool: {e}")
        if self["idle-timeout"] < 0:
            raise usage.UsageError("--idle-timeout must be 0 (never) or more seconds")
        for name in ("pids-limit", "nofile", "tmp-size-mb", "work-size-mb", "shm-size-mb",
                     "container-log-kb", "build-size-mb"):
            if self[name] < 1:
                raise usage.UsageError(f"--{name} must be at least 1")
        if self["cpus"] <= 0:
            raise usage.UsageError("--cpus must be more than 0")
        if self["fsize-mb"] is not None and self["fsize-mb"] < 1:
            raise usage.UsageError("--fsize-mb must be at least 1")
        if self["seccomp-profile"] is not None:
            try:
                with open(self["seccomp-profile"], encoding="utf-8") as f:
                    json.loads(f.read())
                    f.seek(0)
                    self["seccomp-profile"] = f.read()
            except (OSError, ValueError) as e:
                raise usage.UsageError(f"--seccomp-profile: cannot use "
                                       f"{self['seccomp-profile']}: {e}")
        if self["max-output"] < 1024:
            raise usage.UsageError("--max-output must be at least 1024 bytes")
        if self["max-executions"] < 0:
            raise usage.UsageError("--max-executions must be 0 (no limit) or more")
        if self["max-input-wait"] <= 0:
            raise usage.UsageError("--max-input-wait must be positive")
        if not 0 < self["match-timeout"] <= 600:
            raise usage.UsageError("--match-timeout must be in (0, 600] seconds")
        if not 1 <= self["match-workers"] <= 64:
            raise usage.UsageError("--match-workers must be 1-64")
        check_metrics_port(self)
        if self["docker-threads"] < 1:
            raise usage.UsageError("--docker-threads must be at least 1")
        try:
            identity.check_setting(self["instance-metadata"])
        except ValueError as e:
            raise usage.UsageError(f"--instance-metadata {e}")
        if not 0 < self["instance-metadata-timeout"] <= 30:
            raise usage.UsageError("--instance-metadata-timeout must be in (0, 30]")
        # without --agent-id, makeService decides it (instance metadata or HOSTNAME:PORT)
        if self["agent-id"] is not None and not AGENT_ID_RE.match(self["agent-id"]):
            raise usage.UsageError("--agent-id may hold letters, digits and . _ : @ - "
                                   "(at most 64)")


def advertised_host(listen, manager_host):
    """The address front-ends should dial: the bound one, else the one we reach the manager
    from (a UDP connect sends nothing; it only asks the kernel for a route)."""
    if listen not in ("*", "0.0.0.0", ""):
        return listen
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((manager_host, 9))
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


def makeService(config, clock=None, transport=None, client_factory=None, pool=None,
                identify=identity.identify, reactor=None, grader=None, links=None):
    """`reactor` runs the grading processes, the kernels' REPL links (unless `links`
    says otherwise), and stops on a fatal error; `clock` (the reactor by default)
    times everything."""
    if reactor is None:
        from twisted.internet import reactor
    clock = clock or reactor
    manager_host = urlsplit(config["manager-addr"]).hostname
    # Blocking, before the reactor runs: see sorna.agent.identity.
    me = identify(config, route_host=lambda: advertised_host("*", manager_host))
    host = me.host
    pool = pool or WorkerPool("sorna-docker", size=config["docker-threads"])
    containers = Containers(pool, client_factory or real_client_factory(), me.agent_id,
                            ipc_tmpfs_mb=config["ipc-tmpfs-mb"])
    policy = SandboxPolicy(
        max_memory_mb=config["max-memory-mb"], max_exec_timeout=config["max-exec-timeout"],
        runtime=config["runtime"], max_output=config["max-output"],
        pids_limit=config["pids-limit"], cpus=config["cpus"], nofile=config["nofile"],
        tmp_size_mb=config["tmp-size-mb"], work_size_mb=config["work-size-mb"],
        shm_size_mb=config["shm-size-mb"], fsize_mb=config["fsize-mb"],
        log_size_kb=config["container-log-kb"], seccomp_profile=config["seccomp-profile"],
        build_size_mb=config["build-size-mb"])
    exporter = None
    extra_pools = []
    if config["s3-bucket"]:
        s3_pool = WorkerPool("sorna-s3", size=2, inline=pool.inline)
        extra_pools.append(s3_pool)
        exporter = S3Exporter(config["s3-bucket"], s3_pool, endpoint_url=config["s3-endpoint"])
    kernels = Kernels(containers, links or UnixReplLinks(reactor, clock), clock, policy,
                      ipc_root=config["ipc-root"], max_kernels=config["max-kernels"],
                      idle_timeout=config["idle-timeout"], exporter=exporter,
                      max_executions=config["max-executions"],
                      max_input_wait=config["max-input-wait"],
                      warm_pools=config["warm-pool"])
    return AgentService(
        agent_id=me.agent_id, instance=me.instance, manager_addr=config["manager-addr"],
        endpoint=f"tcp://{config['listen']}:{config['port']}",
        advertised_addr=f"tcp://{host}:{config['port']}", kernels=kernels,
        transport=transport or ZmqTransport(), clock=clock, pool=pool,
        heartbeat_interval=config["heartbeat-interval"],
        ipc_root=config["ipc-root"] or os.path.join(tempfile.gettempdir(),
                                                    f"sorna-ipc-{config['port']}"),
        own_ipc_root=config["ipc-root"] is None,
        max_message_size=config["max-message-size"],
        grader=grader or ProcessGrader(reactor, workers=config["match-workers"],
                                       timeout=config["match-timeout"]),
        extra_pools=extra_pools,
        on_fatal=lambda error: stop_reactor_with_error(reactor),
        close_transport=transport is None,
        metrics_port=config["metrics-port"], metrics_interface=config["listen"],
        keys=config["keys"])
