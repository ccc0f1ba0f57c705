"""Build the kernel images: a Debian base from scratch, then one image per language.

No image registry may be reachable, so the base image is not pulled: it is
debootstrapped into a folder and `docker import`ed. Each `repl/<lang>/Dockerfile` then
builds on it without network access (the base already holds python3, pyzmq, msgpack).
"""

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sorna
from sorna.images.mirror import MirrorNotFound, apt_proxy_env, find_debian_mirror

BASE_IMAGE = "sorna/kernel-base:latest"
RELEASE = "bookworm"
# matplotlib and numpy come from Debian (no PyPI at build time); fonts-dejavu-core is
# what matplotlib draws text with (python-matplotlib-data depends on it, but name it:
# a headless figure without fonts fails only when it is saved). python3-munkres
# satisfies python3-fonttools' "python3-scipy | python3-munkres": without it apt takes
# scipy, which drags in pythran, g++, boost and openblas headers (~600 MB more).
BASE_PACKAGES = ["python3", "python3-zmq", "python3-msgpack", "python3-numpy",
                 "python3-matplotlib", "fonts-dejavu-core", "python3-munkres"]
KERNEL_UID = 1000
# Bump when the steps of build_base_image change in a way the data below does not show
# (the recipe hash then differs, and `sorna images build` rebuilds the base).
BASE_STEPS_VERSION = 2
BASE_RECIPE_LABEL = "io.sorna.base-recipe"
DOCKER_TIMEOUT = 600
# Things no kernel needs: dropping them keeps the image small.
CLEAN_PATHS = ["var/lib/apt/lists/*", "var/cache/apt/*", "var/cache/debconf/*-old",
               "var/log/*", "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*",
               "usr/share/locale/*", "usr/share/lintian/*", "tmp/*",
               # Unicode's data files (a python3-fonttools dependency nothing reads)
               "usr/share/unicode"]
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
        return f"{BASE_IMAGE} is missing"
    have = (labels or {}).get(BASE_RECIPE_LABEL)
    if have is None:
        return f"{BASE_IMAGE} has no {BASE_RECIPE_LABEL} label (built by an older sorna)"
    if have != wanted:
        return f"{BASE_IMAGE} was built from recipe {have}, the current one is {wanted}"
    return None


class ImageBuildError(Exception):
    """A build step failed; the message says what to do about it."""


def default_repl_dir():
    """The repository's `repl/` folder (sorna is installed editable from the repo)."""
    return Path(sorna.__file__).resolve().parent.parent / "repl"


def available_langs(repl_dir=None):
    """Languages that have a `repl/<lang>/Dockerfile`, sorted."""
    repl_dir = Path(repl_dir or default_repl_dir())
    return sorted(p.parent.name for p in repl_dir.glob("*/Dockerfile"))


class _Progress:
    """Prints timestamped steps so that a long build never looks stuck."""

    def __init__(self, out):
        self.out, self.t0 = out, time.monotonic()

    def __call__(self, msg):
        self.out.write(f"[{time.monotonic() - self.t0:6.1f}s] {msg}\n")
        self.out.flush()


def docker_client():
    """A docker-py client, or an ImageBuildError saying the engine is unreachable."""
    import docker

    try:
        client = docker.from_env(timeout=DOCKER_TIMEOUT)
        client.ping()
        return client
    except Exception as e:
        raise ImageBuildError(
            f"cannot reach the Docker engine ({e}); is dockerd running, and may this "
            f"user use its socket (DOCKER_HOST or /var/run/docker.sock)?") from e


def build_images(langs=None, mirror=None, rebuild_base=False, out=sys.stdout,
                 repl_dir=None, client=None):
    """Build the base image if needed, then every requested language image.

    Returns the tags built. Language images are always rebuilt: the layer cache makes
    that about a second, and it picks up edits to `repl/<lang>/`.
    """
    repl_dir = Path(repl_dir or default_repl_dir())
    known = available_langs(repl_dir)
    langs = known if langs is None else list(langs)
    unknown = [lang for lang in langs if lang not in known]
    if unknown:
        raise ImageBuildError(
            f"no Dockerfile for {', '.join(unknown)} under {repl_dir}; "
            f"known languages: {', '.join(known) or 'none'}")
    progress = _Progress(out)
    client = client or docker_client()
    tags = [f"sorna/kernel-{lang}:latest" for lang in langs]
    previous = {tag: _image_id(client, tag) for tag in tags + [BASE_IMAGE]}
    built = []
    reason = ("--rebuild-base was given" if rebuild_base
              else base_rebuild_reason(_image_labels(client, BASE_IMAGE)))
    if reason:
        progress(f"building {BASE_IMAGE}: {reason}")
        build_base_image(client, mirror, progress)
        built.append(BASE_IMAGE)
    else:
        progress(f"{BASE_IMAGE} is current (recipe {base_recipe_hash()}; "
                 f"pass --rebuild-base to rebuild it anyway)")
    for lang in langs:
        built.append(build_lang_image(client, lang, repl_dir / lang, progress))
    _remove_replaced(client, previous, progress)
    progress(f"done: {', '.join(built) or 'nothing to build'}")
    return built


def _image_id(client, tag):
    import docker

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def _image_labels(client, tag):
    """The image's labels ({} when it has none), or None when it does not exist."""
    import docker

    try:
        return client.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return None


def _remove_replaced(client, previous, progress):
    """Delete the images our tags pointed at before, so rebuilds leave no <none>s.

    Children first (language images, then the base); an image still used by a
    container or by anything else is kept.
    """
    import docker

    for tag, old in sorted(previous.items(), key=lambda item: item[0] == BASE_IMAGE):
        if old and old != _image_id(client, tag):
            try:
                client.images.remove(old)
                progress(f"removed the previous {tag} ({old[7:19]})")
            except docker.errors.APIError:
                pass


def build_lang_image(client, lang, context, progress):
    """`docker build` one language image, streaming the build output."""
    import docker

    tag = f"sorna/kernel-{lang}:latest"
    progress(f"docker build {context} -> {tag}")
    t0 = time.monotonic()
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True,
                                      decode=True, network_mode="none"):
            if "error" in chunk:
                raise ImageBuildError(
                    f"docker build of {tag} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").rstrip()
            if text:
                progress(f"  {text}")
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"docker build of {tag} failed: {e}") from e
    progress(f"built {tag} in {time.monotonic() - t0:.1f}s")
    return tag


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
    root = tempfile.mkdtemp(prefix="sorna-rootfs-", dir="/var/tmp")
    os.chmod(root, 0o755)  # mkdtemp's 0700 would lock apt's `_apt` user out
    progress(f"building {BASE_IMAGE} in {root} from {mirror}")
    try:
        _debootstrap(root, mirror, env, progress)
        _install_packages(root, env, progress)
        _check_plotting(root, progress)
        _prepare_root(root, progress)
        _import(client, root, progress)
    finally:
        _remove_root(root, progress)


def _run_streamed(cmd, env, on_line, what):
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
        _run_streamed(cmd, env, on_line, "debootstrap")
    except ImageBuildError as e:
        log = Path(root, "debootstrap", "debootstrap.log")
        if log.exists():  # its own log says which package or download broke
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise ImageBuildError(f"{e}\nLast lines of {log.name}:\n  "
                                  + "\n  ".join(tail)) from None
        raise
    summary = ", ".join(f"{n} {verb.lower()}" for verb, n in counts.items())
    progress(f"debootstrap done in {time.monotonic() - t0:.1f}s ({summary})")


# apt/dpkg lines repeated for every package: shown only when a step fails.
_APT_NOISE = re.compile(r"(Get:\d+|Selecting previously|Preparing to unpack|Unpacking|"
                        r"\(Reading database)")


def _chroot(root, args, env, progress, what):
    def on_line(line):
        if line.strip() and not _APT_NOISE.match(line):
            progress(f"  {line}")

    _run_streamed(["chroot", root] + args, env, on_line, what)


def _install_packages(root, env, progress):
    """apt-get install inside the chroot (debootstrap --include trips over them)."""
    t0 = time.monotonic()
    env = dict(env, DEBIAN_FRONTEND="noninteractive", LC_ALL="C",
               PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0"]
    progress(f"chroot apt-get install {' '.join(BASE_PACKAGES)}")
    _chroot(root, apt + ["update"], env, progress, "apt-get update in the chroot")
    _chroot(root, apt + ["install", "-y", "--no-install-recommends"] + BASE_PACKAGES,
            env, progress, "apt-get install in the chroot")
    _chroot(root, apt + ["clean"], env, progress, "apt-get clean in the chroot")
    progress(f"apt done in {time.monotonic() - t0:.1f}s")


# Draws a figure with text the way a kernel does (no display, config in /tmp): a missing
# font or backend dependency fails the build here rather than in a user's first plot.
_PLOT_CHECK = """\
import matplotlib.pyplot as plt, matplotlib.font_manager as fm, io
fig = plt.figure(figsize=(2, 1), dpi=50)
fig.text(0.1, 0.5, "Sorna")
buf = io.BytesIO()
fig.savefig(buf, format="png")
font = fm.findfont(fm.FontProperties(family="DejaVu Sans"), fallback_to_default=False)
print("matplotlib", __import__("matplotlib").__version__, "draws with", font)
"""


def _check_plotting(root, progress):
    """Fail the build now if matplotlib cannot draw headless in the new root."""
    config = tempfile.mkdtemp(prefix="mpl-", dir=os.path.join(root, "tmp"))
    env = dict(os.environ, LC_ALL="C.UTF-8", MPLBACKEND="Agg",
               MPLCONFIGDIR=config[len(root):],
               PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    try:
        _chroot(root, ["python3", "-c", _PLOT_CHECK], env, progress,
                "the matplotlib check in the chroot")
    finally:
        shutil.rmtree(config, ignore_errors=True)


def _prepare_root(root, progress):
    """Add the kernel user and the folders the containers expect; drop what is unused."""
    env = dict(os.environ, LC_ALL="C", PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    uid = str(KERNEL_UID)
    _chroot(root, ["groupadd", "-g", uid, "work"], env, progress, "groupadd")
    _chroot(root, ["useradd", "-u", uid, "-g", uid, "-m", "-d", "/home/work",
                   "-s", "/bin/sh", "work"], env, progress, "useradd")
    for folder in ("ipc", "opt/sorna"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    os.chown(os.path.join(root, "ipc"), KERNEL_UID, KERNEL_UID)
    # docker bind-mounts its own resolv.conf/hostname; the host's must not leak in.
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = os.path.join(root, name)
        if os.path.lexists(path):
            os.remove(path)
    rootp = Path(root)
    for pattern in CLEAN_PATHS:
        for path in rootp.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    size = subprocess.run(["du", "-sh", root], capture_output=True, text=True).stdout
    progress(f"root file system ready: {size.split()[0] if size else '?'}")


def _import(client, root, progress):
    """Stream a tar of the folder into the engine as BASE_IMAGE."""
    import docker

    t0 = time.monotonic()
    progress(f"docker import -> {BASE_IMAGE}")
    repo, tag = BASE_IMAGE.rsplit(":", 1)
    tar = subprocess.Popen(["tar", "-C", root, "--numeric-owner", "-cf", "-", "."],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        changes = IMPORT_CHANGES + [f"LABEL {BASE_RECIPE_LABEL}={base_recipe_hash()}"]
        result = client.api.import_image_from_stream(
            tar.stdout, repository=repo, tag=tag, changes=changes)
    except docker.errors.DockerException as e:
        tar.kill()
        raise ImageBuildError(f"docker import of {BASE_IMAGE} failed: {e}") from e
    finally:
        tar.stdout.close()
        err = tar.stderr.read().decode(errors="replace")
        tar.stderr.close()
        rc = tar.wait()
    if rc:
        raise ImageBuildError(f"tar of {root} failed (exit status {rc}): {err}")
    if '"error"' in str(result):
        raise ImageBuildError(f"docker import of {BASE_IMAGE} failed: {result}")
    size = client.images.get(BASE_IMAGE).attrs.get("Size", 0)
    progress(f"imported {BASE_IMAGE} ({size / 1e6:.0f} MB) "
             f"in {time.monotonic() - t0:.1f}s")


def _mounts_under(root):
    with open("/proc/mounts") as fh:
        return [line.split()[1] for line in fh
                if line.split()[1].startswith(root.rstrip("/") + "/")]


def _remove_root(root, progress):
    """Delete the build folder, never descending into something still mounted."""
    for point in sorted(_mounts_under(root), reverse=True):
        subprocess.run(["umount", "-l", point])
    if _mounts_under(root):
        progress(f"warning: {root} still has mounts; not deleting it")
        return
    # --one-file-system: never delete through a mount that appeared meanwhile.
    subprocess.run(["rm", "-rf", "--one-file-system", root])
    progress(f"removed {root}")
