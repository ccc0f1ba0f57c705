"""The agent's Docker calls. Each runs in the Docker pool with a client of its thread's own
(docker-py clients are not shared between threads); `_thd_*` functions run there."""

import os
import shutil
import subprocess
import threading
from typing import NamedTuple

import docker
from docker.errors import ImageNotFound, NotFound
from twisted.logger import Logger

from sorna.agent.sandbox import KERNEL_UID, LABEL_PREFIX
from sorna.proto.schema import KERNEL_ID_RE

log = Logger(namespace="sorna.agent")


def real_client_factory(timeout=30):
    return lambda: docker.from_env(timeout=timeout)


class KernelImage(NamedTuple):
    tag: str
    labels: dict
    id: str


class Containers:
    """`ipc_tmpfs_mb`: each kernel's ipc folder is a tmpfs of this size (0: a plain host
    folder), so a kernel cannot fill the host's disk through the one host path it sees."""

    def __init__(self, pool, client_factory, agent_id, ipc_tmpfs_mb=0):
        self.pool = pool
        self.client_factory = client_factory
        self.agent_id = agent_id
        self.ipc_tmpfs_mb = ipc_tmpfs_mb
        self.ipc_tmpfs = None  # whether mounting works here; known after the first kernel
        self._local = threading.local()

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self.client_factory()
        return client

    # -- Deferred-returning API, for the reactor thread
    def start_kernel(self, ipc_dir, container_args):
        """Create the kernel's ipc directory and start its container; fire with its id."""
        return self.pool.run(self._thd_start_kernel, ipc_dir, container_args)

    def remove_kernel(self, container_id, ipc_dir):
        return self.pool.run(self._thd_remove_kernel, container_id, ipc_dir)

    def list_kernels(self):
        """Containers labelled with this agent's id: [(container_id, kernel_id, status)]."""
        return self.pool.run(self._thd_list_kernels)

    def limit_memory(self, container_id, memory_mb):
        """Lower a running kernel's memory limit (swap included, so still no swap)."""
        return self.pool.run(self._thd_limit_memory, container_id, memory_mb)

    def death_cause(self, container_id):
        """Why a stopped kernel container stopped, in words ("" when unknown)."""
        return self.pool.run(self._thd_death_cause, container_id)

    def engine_report(self):
        """What the engine can enforce: {memory, swap, pids, cpu, warnings}."""
        return self.pool.run(self._thd_engine_report)

    def kernel_images(self):
        """{lang: KernelImage} of local images that carry `io.sorna.lang`."""
        return self.pool.run(self._thd_kernel_images)

    # -- thread side
    def _thd_start_kernel(self, ipc_dir, container_args):
        os.makedirs(ipc_dir, mode=0o700)
        try:
            self._thd_mount_ipc(ipc_dir)
            os.chown(ipc_dir, KERNEL_UID, KERNEL_UID)
            container = self._client().containers.run(**container_args)
        except BaseException:
            _thd_remove_folder(ipc_dir)
            self._thd_remove_by_name(container_args.get("name"))
            raise
        return container.id

    def _thd_mount_ipc(self, ipc_dir):
        if not self.ipc_tmpfs_mb or self.ipc_tmpfs is False:
            return
        options = (f"size={self.ipc_tmpfs_mb}m,nr_inodes=16,uid={KERNEL_UID},"
                   f"gid={KERNEL_UID},mode=0700,nosuid,nodev,noexec,nosymfollow")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "sorna-ipc", ipc_dir],
                              capture_output=True, text=True)
        self.ipc_tmpfs = done.returncode == 0
        if not self.ipc_tmpfs:
            log.warn(
                "cannot mount a tmpfs on the kernels' ipc folders ({error}); they stay plain "
                "host folders, which a kernel could fill", error=done.stderr.strip())

    def _thd_remove_by_name(self, name):
        if not name:
            return
        try:
            self._client().containers.get(name).remove(force=True)
        except NotFound:
            pass

    def _thd_remove_kernel(self, container_id, ipc_dir):
        try:
            if container_id:
                self._client().containers.get(container_id).remove(force=True)
        except NotFound:
            pass
        finally:
            if ipc_dir:
                _thd_remove_folder(ipc_dir)

    def _thd_list_kernels(self):
        # A container removed between docker-py's listing and its inspection is skipped.
        found = self._client().containers.list(
            all=True, filters={"label": f"{LABEL_PREFIX}agent={self.agent_id}"},
            ignore_removed=True)
        return [(c.id, c.labels.get(LABEL_PREFIX + "kernel"), c.status) for c in found]

    def _thd_limit_memory(self, container_id, memory_mb):
        self._client().containers.get(container_id).update(
            mem_limit=f"{memory_mb}m", memswap_limit=f"{memory_mb}m")

    def _thd_death_cause(self, container_id):
        try:
            state = self._client().containers.get(container_id).attrs.get("State", {})
        except NotFound:
            return "its container is gone"
        if state.get("OOMKilled"):
            return "it ran out of memory (the kernel's memory limit was reached)"
        code = state.get("ExitCode")
        if code is not None and code > 128:
            return f"its process was killed by signal {code - 128}"
        if code is not None:
            return f"its process exited with status {code}"
        return ""

    def _thd_engine_report(self):
        info = self._client().info()
        seccomp = any("seccomp" in o for o in info.get("SecurityOptions") or [])
        return {"memory": bool(info.get("MemoryLimit")), "swap": bool(info.get("SwapLimit")),
                "pids": bool(info.get("PidsLimit")), "cpu": bool(info.get("CpuCfsQuota")),
                "seccomp": seccomp, "warnings": list(info.get("Warnings") or []),
                "runtimes": sorted(info.get("Runtimes") or {})}

    def _thd_kernel_images(self):
        # One request: `images.list` would also inspect every image, every interval.
        images = {}
        for image in self._client().api.images(filters={"label": LABEL_PREFIX + "lang"}):
            labels = image.get("Labels") or {}
            lang = labels.get(LABEL_PREFIX + "lang")
            tag = f"sorna/kernel-{lang}:latest"
            if lang and tag in (image.get("RepoTags") or []):
                images[lang] = KernelImage(tag, dict(labels), image["Id"])
        return images


def _thd_remove_folder(path):
    """Remove a kernel's ipc folder, unmounting its tmpfs first (never following links)."""
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", path], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def unmount_below(path):
    """Unmount every mount under `path` (what a killed agent leaves: kernels' ipc tmpfs)."""
    prefix = os.path.realpath(path).rstrip("/") + "/"
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1].replace("\\040", " ") for line in f]
    for target in sorted((t for t in targets if t.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)


def thd_prepare_ipc_root(root):
    """Create the agent's ipc root, or empty it of what an earlier run left there (kernel
    folders and their mounts; nothing else is touched)."""
    os.makedirs(root, mode=0o711, exist_ok=True)
    os.chmod(root, 0o711)  # kernels (uid 1000) must traverse it to their own folder
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if KERNEL_ID_RE.match(name) and os.path.isdir(path) and not os.path.islink(path):
            _thd_remove_folder(path)
    return root


__all__ = ["Containers", "KernelImage", "real_client_factory", "NotFound", "ImageNotFound"]
