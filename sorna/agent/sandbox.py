"""How a kernel container is locked down: the docker-py arguments, from one place."""

import re

from docker.types import Mount, Ulimit

LABEL_PREFIX = "io.sorna."
KERNEL_UID = 1000
IPC_MOUNT = "/ipc"
REPL_ENDPOINT = "ipc:///ipc/repl"


def parse_memory_mb(text, default):
    """`256m`, `1g`, `512` (MB) -> megabytes; anything else -> default."""
    match = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)[bB]?\s*", str(text or ""))
    if not match:
        return default
    value, unit = int(match.group(1)), match.group(2).lower()
    return {"k": max(1, value // 1024), "m": value, "g": value * 1024, "": value}[unit]


class SandboxPolicy:
    """The agent's maximums; image labels give defaults, requests may only lower them."""

    def __init__(self, max_memory_mb=1024, max_exec_timeout=600.0, pids_limit=128,
                 cpus=1.0, nofile=1024, tmp_size_mb=64, work_size_mb=256, runtime=None):
        self.max_memory_mb = max_memory_mb
        self.max_exec_timeout = max_exec_timeout
        self.pids_limit = pids_limit
        self.cpus = cpus
        self.nofile = nofile
        self.tmp_size_mb = tmp_size_mb
        self.work_size_mb = work_size_mb
        self.runtime = runtime

    def limits_for(self, image_labels, requested):
        """Effective {memory_mb, exec_timeout} for a kernel."""
        requested = requested or {}
        memory = min(parse_memory_mb(image_labels.get(LABEL_PREFIX + "memory"), 256),
                     self.max_memory_mb)
        try:
            timeout = float(image_labels.get(LABEL_PREFIX + "exec-timeout", 60))
        except ValueError:
            timeout = 60.0
        timeout = min(timeout, self.max_exec_timeout)
        if requested.get("memory_mb"):
            memory = min(memory, requested["memory_mb"])
        if requested.get("exec_timeout"):
            timeout = min(timeout, requested["exec_timeout"])
        return {"memory_mb": memory, "exec_timeout": timeout}

    def container_args(self, agent_id, kernel_id, lang, image, ipc_dir, limits):
        memory = f"{limits['memory_mb']}m"
        args = dict(
            image=image,
            name=f"sorna-kernel-{kernel_id}",
            detach=True,
            labels={LABEL_PREFIX + "agent": agent_id, LABEL_PREFIX + "kernel": kernel_id,
                    LABEL_PREFIX + "lang": lang},
            environment={"SORNA_REPL_ENDPOINT": REPL_ENDPOINT},
            user=f"{KERNEL_UID}:{KERNEL_UID}",
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=self.pids_limit,
            mem_limit=memory,
            memswap_limit=memory,  # no swap
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=self.nofile, hard=self.nofile)],
            tmpfs={
                "/tmp": f"rw,nosuid,nodev,size={self.tmp_size_mb}m",
                "/home/work": (f"rw,nosuid,nodev,size={self.work_size_mb}m,"
                               f"uid={KERNEL_UID},gid={KERNEL_UID},mode=0700"),
            },
            mounts=[Mount(target=IPC_MOUNT, source=ipc_dir, type="bind", read_only=False)],
        )
        if self.runtime:
            args["runtime"] = self.runtime
        return args
