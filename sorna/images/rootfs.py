"""The kernels' root file system, `sorna/kernel-rootfs`: Debian minbase with python3,
msgpack and CA certificates (what the runner needs, nothing of any language),
debootstrapped into a folder of the cache and `docker import`ed. The folder is kept:
the package layers are installed over it. It is rebuilt only when its recipe changes.
"""

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from sorna.images.host import (CACHE_DIR, CLEAN_PATHS, ImageBuildError, apt_install,
                               chroot, clean, remove_root, run_streamed)
from sorna.images.mirror import MirrorNotFound, apt_proxy_env, find_debian_mirror

ROOTFS_IMAGE = "sorna/kernel-rootfs:latest"
RELEASE = "bookworm"
# What the runner needs, and nothing of any language: CA certificates for the code of
# every language that fetches nothing (kernels have no network) but checks a chain.
BASE_PACKAGES = ["python3", "python3-msgpack", "ca-certificates"]
KERNEL_UID = 1000
# Bump when the steps of build_base_image change in a way the data below does not show
# (the recipe hash then differs, and `sorna images build` rebuilds the root file system).
BASE_STEPS_VERSION = 3
BASE_RECIPE_LABEL = "io.sorna.base-recipe"
IMPORT_CHANGES = [
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    f"LABEL io.sorna.base=debian-{RELEASE}",
]


def base_recipe_hash():
    """A short hash of everything that decides the base image's contents.

    The mirror is left out on purpose: the same release from another mirror is the
    same image.
    """
    recipe = {"release": RELEASE, "variant": "minbase", "packages": BASE_PACKAGES,
              "uid": KERNEL_UID, "clean": CLEAN_PATHS, "changes": IMPORT_CHANGES,
              "steps": BASE_STEPS_VERSION}
    text = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_rebuild_reason(labels, wanted=None):
    """Why the base image with these labels must be rebuilt, or None if it is current.

    `labels` is None when there is no base image at all.
    """
    wanted = wanted or base_recipe_hash()
    if labels is None:
        return f"{ROOTFS_IMAGE} is missing"
    have = (labels or {}).get(BASE_RECIPE_LABEL)
    if have is None:
        return f"{ROOTFS_IMAGE} has no {BASE_RECIPE_LABEL} label (built by an older sorna)"
    if have != wanted:
        return f"{ROOTFS_IMAGE} was built from recipe {have}, the current one is {wanted}"
    return None


def build_base_image(client, mirror, progress):
    """debootstrap a minimal Debian with Python into a folder and import it."""
    if os.geteuid() != 0:
        raise ImageBuildError("building the base image needs root (debootstrap and "
                              "chroot); run the build as root")
    for tool, package in (("debootstrap", "debootstrap"), ("chroot", "coreutils"),
                          ("tar", "tar")):
        if not shutil.which(tool):
            raise ImageBuildError(f"`{tool}` is missing; install it "
                                  f"(apt-get install {package}) and retry")
    try:
        mirror = mirror or find_debian_mirror(RELEASE)
    except MirrorNotFound as e:
        raise ImageBuildError(str(e)) from e
    env = dict(os.environ, **apt_proxy_env())
    os.makedirs(CACHE_DIR, exist_ok=True)
    root = tempfile.mkdtemp(prefix="rootfs-build-", dir=CACHE_DIR)
    os.chmod(root, 0o755)  # mkdtemp's 0700 would lock apt's `_apt` user out
    progress(f"building {ROOTFS_IMAGE} in {root} from {mirror}")
    keep = os.path.join(CACHE_DIR, f"rootfs-{base_recipe_hash()}")
    try:
        _debootstrap(root, mirror, env, progress)
        t0 = time.monotonic()
        progress(f"chroot apt-get install {' '.join(BASE_PACKAGES)}")
        apt_install(root, BASE_PACKAGES, env, progress, "the chroot")
        progress(f"apt done in {time.monotonic() - t0:.1f}s")
        _prepare_root(root, progress)
        _import(client, root, progress)
        # The layers are installed over this very folder: keep it, and no older one.
        for old in Path(CACHE_DIR).glob("rootfs-*"):
            if str(old) != root:
                remove_root(str(old), progress)
        os.rename(root, keep)
    finally:
        if os.path.exists(root):
            remove_root(root, progress)


def _debootstrap(root, mirror, env, progress):
    """Run debootstrap, condensing its per-package lines into counts."""
    t0 = time.monotonic()
    counts = collections.Counter()
    per_package = re.compile(r"I: (Retrieving|Validating|Extracting|Unpacking|"
                             r"Configuring) (?!InRelease|Release|Packages)\S+")

    def on_line(line):
        m = per_package.match(line)
        if m:
            counts[m.group(1)] += 1
            if counts[m.group(1)] % 25 == 1:
                progress(f"  debootstrap: {m.group(1).lower()} package "
                         f"{counts[m.group(1)]} ({line[3:].split()[1]})")
        elif line.strip():
            progress(f"  debootstrap: {line}")

    cmd = ["debootstrap", "--variant=minbase", RELEASE, root, mirror]
    progress(" ".join(cmd))
    try:
        run_streamed(cmd, env, on_line, "debootstrap")
    except ImageBuildError as e:
        log = Path(root, "debootstrap", "debootstrap.log")
        if log.exists():  # its own log says which package or download broke
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise ImageBuildError(f"{e}\nLast lines of {log.name}:\n  "
                                  + "\n  ".join(tail)) from None
        raise
    summary = ", ".join(f"{n} {verb.lower()}" for verb, n in counts.items())
    progress(f"debootstrap done in {time.monotonic() - t0:.1f}s ({summary})")


def _prepare_root(root, progress):
    """Add the kernel user and the folders the containers expect; drop what is unused."""
    env = dict(os.environ, LC_ALL="C", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    uid = str(KERNEL_UID)
    chroot(root, ["groupadd", "-g", uid, "work"], env, progress, "groupadd")
    chroot(root, ["useradd", "-u", uid, "-g", uid, "-m", "-d", "/home/work",
                  "-s", "/bin/sh", "work"], env, progress, "useradd")
    for folder in ("ipc", "opt/sorna"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    os.chown(os.path.join(root, "ipc"), KERNEL_UID, KERNEL_UID)
    # docker bind-mounts its own resolv.conf/hostname; the host's must not leak in.
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = os.path.join(root, name)
        if os.path.lexists(path):
            os.remove(path)
    clean(root)
    size = subprocess.run(["du", "-sh", root], capture_output=True, text=True).stdout
    progress(f"root file system ready: {size.split()[0] if size else '?'}")


def _import(client, root, progress):
    """Stream a tar of the folder into the engine as ROOTFS_IMAGE."""
    import docker

    t0 = time.monotonic()
    progress(f"docker import -> {ROOTFS_IMAGE}")
    repo, tag = ROOTFS_IMAGE.rsplit(":", 1)
    tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-cf", "-", "."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        changes = IMPORT_CHANGES + [f"LABEL {BASE_RECIPE_LABEL}={base_recipe_hash()}"]
        result = client.api.import_image_from_stream(
            tar.stdout, repository=repo, tag=tag, changes=changes)
    except docker.errors.DockerException as e:
        tar.kill()
        raise ImageBuildError(f"docker import of {ROOTFS_IMAGE} failed: {e}") from e
    finally:
        tar.stdout.close()
        err = tar.stderr.read().decode(errors="replace")
        tar.stderr.close()
        rc = tar.wait()
    if rc:
        raise ImageBuildError(f"tar of {root} failed (exit status {rc}): {err}")
    if '"error"' in str(result):
        raise ImageBuildError(f"docker import of {ROOTFS_IMAGE} failed: {result}")
    size = client.images.get(ROOTFS_IMAGE).attrs.get("Size", 0)
    progress(f"imported {ROOTFS_IMAGE} ({size / 1e6:.0f} MB) "
             f"in {time.monotonic() - t0:.1f}s")
