"""How a kernel container is locked down: the docker-py arguments, from one place.

docs/SECURITY.md gives the reason for every setting here.
"""

import re

from docker.types import LogConfig, Mount, Ulimit

LABEL_PREFIX = "io.sorna."
KERNEL_UID = 1000
IPC_MOUNT = "/ipc"
REPL_SOCKET = "/ipc/repl"
# Where an image may ask for its exec-allowed build folder (label io.sorna.exec-folder).
EXEC_FOLDER_RE = re.compile(r"^/[a-z][a-z0-9_-]{0,31}$")
RESERVED_FOLDERS = ("/tmp", "/home", "/ipc", "/dev", "/proc", "/sys", "/opt", "/usr",
                    "/etc", "/bin", "/sbin", "/lib", "/var", "/run", "/root", "/boot")


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
                 cpus=1.0, nofile=1024, tmp_size_mb=64, work_size_mb=256, runtime=None,
                 shm_size_mb=16, fsize_mb=None, tmp_inodes=4096, work_inodes=16384,
                 log_size_kb=1024, oom_score_adj=500, seccomp_profile=None,
                 max_output=1 << 20, build_size_mb=256, build_inodes=16384):
        """`fsize_mb`: the largest file a kernel may write (default: the work folder's
        size); `log_size_kb`: what the engine keeps of a container's own stdout/stderr;
        `seccomp_profile`: a JSON profile's text, else the engine's default profile."""
        self.max_memory_mb = max_memory_mb
        self.max_exec_timeout = max_exec_timeout
        self.pids_limit = pids_limit
        self.cpus = cpus
        self.nofile = nofile
        self.tmp_size_mb = tmp_size_mb
        self.work_size_mb = work_size_mb
        self.runtime = runtime
        self.shm_size_mb = shm_size_mb
        self.fsize_mb = fsize_mb or max(work_size_mb, tmp_size_mb)
        self.tmp_inodes = tmp_inodes
        self.work_inodes = work_inodes
        self.log_size_kb = log_size_kb
        self.oom_score_adj = oom_score_adj
        self.seccomp_profile = seccomp_profile
        self.max_output = max_output  # bytes of output kept per execution
        self.build_size_mb = build_size_mb  # compiled languages' exec-allowed folder
        self.build_inodes = build_inodes

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

    def container_args(self, agent_id, kernel_id, lang, image, ipc_dir, limits,
                       image_labels=None):
        memory = f"{limits['memory_mb']}m"
        args = dict(
            image=image,
            name=f"sorna-kernel-{kernel_id}",
            detach=True,
            labels={LABEL_PREFIX + "agent": agent_id, LABEL_PREFIX + "kernel": kernel_id,
                    LABEL_PREFIX + "lang": lang},
            environment={"SORNA_REPL_SOCKET": REPL_SOCKET,
                         "SORNA_MAX_OUTPUT": str(self.max_output)},
            user=f"{KERNEL_UID}:{KERNEL_UID}",
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=self.security_opt(),
            # docker-init as PID 1 reaps orphans (double-forked daemons) and lets a REPL
            # that kills itself end the container, instead of an immortal PID 1.
            init=True,
            ipc_mode="private",
            shm_size=f"{self.shm_size_mb}m",
            pids_limit=self.pids_limit,
            mem_limit=memory,
            memswap_limit=memory,  # no swap
            oom_score_adj=self.oom_score_adj,  # under host pressure, kernels die first
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[Ulimit(name="nofile", soft=self.nofile, hard=self.nofile),
                     Ulimit(name="fsize", soft=self.fsize_mb << 20,
                            hard=self.fsize_mb << 20),
                     Ulimit(name="core", soft=0, hard=0)],
            tmpfs={
                "/tmp": (f"rw,nosuid,nodev,noexec,size={self.tmp_size_mb}m,"
                         f"nr_inodes={self.tmp_inodes}"),
                "/home/work": (f"rw,nosuid,nodev,size={self.work_size_mb}m,"
                               f"nr_inodes={self.work_inodes},"
                               f"uid={KERNEL_UID},gid={KERNEL_UID},mode=0700"),
            },
            mounts=[Mount(target=IPC_MOUNT, source=ipc_dir, type="bind", read_only=False)],
            # What the REPL writes to the container's own stdout/stderr (diagnostics, or
            # user code writing to those fds) lands on the host's disk: keep it bounded.
            log_config=LogConfig(type="json-file", config={
                "max-size": f"{self.log_size_kb}k", "max-file": "1"}),
        )
        folder = self.exec_folder(image_labels or {})
        if folder:
            # Compiled programs must run from somewhere: one folder, size- and
            # inode-limited like the others, the only one without noexec.
            args["tmpfs"][folder] = (f"rw,nosuid,nodev,exec,size={self.build_size_mb}m,"
                                     f"nr_inodes={self.build_inodes},uid={KERNEL_UID},"
                                     f"gid={KERNEL_UID},mode=0700")
        if self.runtime:
            args["runtime"] = self.runtime
        return args

    @staticmethod
    def exec_folder(image_labels):
        """The exec-allowed folder an image asks for, when it names an acceptable one."""
        folder = image_labels.get(LABEL_PREFIX + "exec-folder")
        if folder and EXEC_FOLDER_RE.match(folder) and folder not in RESERVED_FOLDERS:
            return folder
        return None

    def security_opt(self):
        """no-new-privileges, and a seccomp profile: the engine's default unless one is
        given. `seccomp=unconfined` is never produced here."""
        options = ["no-new-privileges"]
        if self.seccomp_profile:
            options.append(f"seccomp={self.seccomp_profile}")
        return options
