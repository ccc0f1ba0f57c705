"""The image builder's steps on the build host: the cache folder, commands whose output
becomes progress lines, chroots, mounts, apt in a chroot, and cleaning a root file
system of what no kernel needs."""

import collections
import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path


class ImageBuildError(Exception):
    """A build step failed; the message says what to do about it."""


CACHE_DIR = os.environ.get("SORNA_IMAGE_CACHE", "/var/cache/sorna")

# Things no kernel needs: dropping them keeps the image small.
CLEAN_PATHS = ["var/lib/apt/lists/*", "var/cache/apt/*", "var/cache/debconf/*-old",
               "var/log/*", "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*",
               "usr/share/locale/*", "usr/share/lintian/*", "tmp/*",
               # Unicode's data files (a python3-fonttools dependency nothing reads)
               "usr/share/unicode"]
CHROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# apt/dpkg lines repeated for every package: shown only when a step fails.
_APT_NOISE = re.compile(r"(Get:\d+|Selecting previously|Preparing to unpack|Unpacking|"
                        r"\(Reading database)")


def run_streamed(cmd, env, on_line, what):
    """Run cmd, passing each output line to on_line; fail with its last lines."""
    tail = collections.deque(maxlen=25)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    try:
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            on_line(line)
    finally:
        proc.stdout.close()
        rc = proc.wait()
    if rc:
        raise ImageBuildError(
            f"{what} failed (exit status {rc}); its last output lines:\n  "
            + "\n  ".join(tail)
            + "\nCheck that the mirror is reachable (or pass --mirror URL) and retry.")


def chroot(root, args, env, progress, what):
    def on_line(line):
        if line.strip() and not _APT_NOISE.match(line):
            progress(f"  {line}")

    run_streamed(["chroot", root] + args, env, on_line, what)


def apt_install(root, packages, env, progress, where, downloaded=None):
    """apt-get update, install `packages` (no recommends) and clean, in the chroot;
    `downloaded()` is called before the downloaded packages are cleaned away."""
    env = dict(env, DEBIAN_FRONTEND="noninteractive", LC_ALL="C", PATH=CHROOT_PATH)
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0"]
    chroot(root, apt + ["update"], env, progress, f"apt-get update in {where}")
    chroot(root, apt + ["install", "-y", "--no-install-recommends"] + list(packages),
           env, progress, f"apt-get install in {where}")
    if downloaded is not None:
        downloaded()
    chroot(root, apt + ["clean"], env, progress, f"apt-get clean in {where}")


def mount(args):
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        raise ImageBuildError(f"mount {' '.join(args)} failed: {done.stderr.strip()}; "
                              f"building layers needs root and overlayfs")


def clean(root):
    """Delete CLEAN_PATHS under `root`."""
    rootp = Path(root)
    for pattern in CLEAN_PATHS:
        for path in rootp.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


def _mounts_under(root):
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh
                if line.split()[1].startswith(root.rstrip("/") + "/")]


def remove_root(root, progress):
    """Delete a build folder, never descending into something still mounted."""
    for point in sorted(_mounts_under(root), reverse=True):
        subprocess.run(["umount", "-l", point])
    if _mounts_under(root):
        progress(f"warning: {root} still has mounts; not deleting it")
        return
    # --one-file-system: never delete through a mount that appeared meanwhile.
    subprocess.run(["rm", "-rf", "--one-file-system", root])
    progress(f"removed {root}")


class Progress:
    """Prints timestamped steps so that a long build never looks stuck; `prefixed`
    gives the steps of one language of several built at once."""

    def __init__(self, out, prefix="", lock=None, t0=None):
        self.out, self.prefix = out, prefix
        self.lock = lock or threading.Lock()
        self.t0 = time.monotonic() if t0 is None else t0

    def __call__(self, msg):
        with self.lock:
            self.out.write(f"[{time.monotonic() - self.t0:6.1f}s] {self.prefix}{msg}\n")
            self.out.flush()

    def prefixed(self, name):
        return Progress(self.out, f"{self.prefix}{name}: ", self.lock, self.t0)
