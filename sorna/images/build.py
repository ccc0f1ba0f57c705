"""Build the kernel images: a Debian root file system from scratch, a layer of Debian
packages per language on it, and the runner on top.

No image registry may be reachable, so nothing is pulled:

- `sorna/kernel-rootfs` is debootstrapped into a folder (Debian minbase with python3,
  msgpack and CA certificates: what the runner needs) and `docker import`ed; the folder
  is kept in the cache (`SORNA_IMAGE_CACHE`, /var/cache/sorna) for the layers.
- A *layer* is the Debian packages of a language (`repl/<lang>/packages`) or a layer
  several share (`repl/layers/<name>/packages`: gcc for c, cpp and rust): installed
  with the machine's apt configuration into an overlay over the root file system (and
  the layers below), then its upper folder is one tar, cached by recipe.
- `sorna/kernel-base` is the root file system plus the runner (`repl/runner/`), and each
  `repl/<lang>/Dockerfile` builds `sorna/kernel-<lang>` from the root file system, the
  layer tars it ADDs, the runner and the language's driver, without network access.
  The runner comes last, so that changing it rebuilds thin layers only.
"""

import collections
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import sorna
from sorna.images.mirror import MirrorNotFound, apt_proxy_env, find_debian_mirror

ROOTFS_IMAGE = "sorna/kernel-rootfs:latest"
BASE_IMAGE = "sorna/kernel-base:latest"
RELEASE = "bookworm"
# What the runner needs, and nothing of any language: CA certificates for the code of
# every language that fetches nothing (kernels have no network) but checks a chain.
BASE_PACKAGES = ["python3", "python3-msgpack", "ca-certificates"]
KERNEL_UID = 1000
# Bump when the steps of build_base_image change in a way the data below does not show
# (the recipe hash then differs, and `sorna images build` rebuilds the root file system).
BASE_STEPS_VERSION = 3
BASE_RECIPE_LABEL = "io.sorna.base-recipe"
# The language's own version, as repl/<lang>/version prints it in the image.
VERSION_LABEL = "io.sorna.version"
LAYER_STEPS_VERSION = 1
CACHE_DIR = os.environ.get("SORNA_IMAGE_CACHE", "/var/cache/sorna")
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
        return f"{ROOTFS_IMAGE} is missing"
    have = (labels or {}).get(BASE_RECIPE_LABEL)
    if have is None:
        return f"{ROOTFS_IMAGE} has no {BASE_RECIPE_LABEL} label (built by an older sorna)"
    if have != wanted:
        return f"{ROOTFS_IMAGE} was built from recipe {have}, the current one is {wanted}"
    return None


class ImageBuildError(Exception):
    """A build step failed; the message says what to do about it."""


def default_repl_dir():
    """The repository's `repl/` folder (sorna is installed editable from the repo)."""
    return Path(sorna.__file__).resolve().parent.parent / "repl"


def available_langs(repl_dir=None):
    """Languages that have a `repl/<lang>/Dockerfile`, sorted (`base` is not one)."""
    repl_dir = Path(repl_dir or default_repl_dir())
    return sorted(p.parent.name for p in repl_dir.glob("*/Dockerfile")
                  if p.parent.name != "base")


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
    """Build the root file system if needed, the base, then every requested language
    image (all of them by default). Returns the tags built.

    The root file system and the package layers are built only when their recipe
    changed (or they are missing); the images themselves are always rebuilt, which the
    engine's layer cache makes a matter of seconds, so that edits to `repl/` count.
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
    previous = {tag: _image_id(client, tag) for tag in tags + [BASE_IMAGE, ROOTFS_IMAGE]}
    built = []
    reason = ("--rebuild-base was given" if rebuild_base
              else base_rebuild_reason(_image_labels(client, ROOTFS_IMAGE)))
    if reason:
        progress(f"building {ROOTFS_IMAGE}: {reason}")
        build_base_image(client, mirror, progress)
        built.append(ROOTFS_IMAGE)
    else:
        progress(f"{ROOTFS_IMAGE} is current (recipe {base_recipe_hash()}; "
                 f"pass --rebuild-base to rebuild it anyway)")
    built.append(build_docker_image(client, BASE_IMAGE, repl_dir / "base", repl_dir,
                                    [], progress))
    layers = Layers(client, mirror, progress, repl_dir)
    for lang in langs:
        context = repl_dir / lang
        dockerfile = (context / "Dockerfile").read_text()
        below = layers.image(lang, layer_stack(dockerfile))
        labels = {}
        version = language_version(client, below, context, progress)
        if version:
            labels[VERSION_LABEL] = version
        built.append(build_docker_image(client, f"sorna/kernel-{lang}:latest", context,
                                        repl_dir, [], progress,
                                        dockerfile=on_layers(dockerfile, below),
                                        labels=labels))
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

    order = {ROOTFS_IMAGE: 2, BASE_IMAGE: 1}  # children first
    for tag, old in sorted(previous.items(), key=lambda item: order.get(item[0], 0)):
        if old and old != _image_id(client, tag):
            try:
                client.images.remove(old)
                progress(f"removed the previous {tag} ({old[7:19]})")
            except docker.errors.APIError:
                pass


def language_version(client, image, context, progress):
    """What `repl/<lang>/version` (a shell command) prints in `image`, the image of the
    language's packages: its first line, at most 64 characters; "" without the file."""
    import docker

    path = Path(context) / "version"
    if not path.exists():
        return ""
    command = path.read_text().strip()
    # Not containers.run(remove=True): it reads the logs' stream after removing the
    # container, and a fast command's output (R's) was sometimes lost.
    container = None
    try:
        container = client.containers.create(image, ["sh", "-c", command],
                                             network_disabled=True)
        container.start()
        status = container.wait()["StatusCode"]
        output = container.logs(stdout=True, stderr=True)
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"{path} failed in {image}: {e}") from e
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass
    if status != 0:
        raise ImageBuildError(f"{path} exited with status {status} in {image}: "
                              f"{output.decode('utf-8', 'replace')[-500:]}")
    lines = output.decode("utf-8", "replace").strip().splitlines()
    version = lines[0].strip()[:64] if lines else ""
    if not version:
        raise ImageBuildError(f"{path} printed no version in {image}")
    progress(f"{Path(context).name} version: {version}")
    return version


def build_docker_image(client, tag, context, repl_dir, tars, progress, dockerfile=None,
                       labels=None):
    """`docker build` of `context` (a folder of `repl/`) as `tag`, with the runner and
    the layer tars (`[(name, path)]`) beside it (and `dockerfile` for the context's
    own), streaming the build output. `labels` are added to the image's own."""
    import docker

    progress(f"docker build {context} -> {tag}")
    t0 = time.monotonic()
    os.makedirs(CACHE_DIR, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="context-", dir=CACHE_DIR)
    try:
        if context is not None:
            shutil.copytree(context, folder, dirs_exist_ok=True)
        if dockerfile is not None:
            Path(folder, "Dockerfile").write_text(dockerfile)
        shutil.copytree(Path(repl_dir) / "runner", os.path.join(folder, "runner"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        os.makedirs(os.path.join(folder, "layers"))
        for name, path in tars:
            os.link(path, os.path.join(folder, "layers", f"{name}.tar"))
        for chunk in client.api.build(path=folder, tag=tag, rm=True, forcerm=True,
                                      decode=True, network_mode="none",
                                      labels=labels or None):
            if "error" in chunk:
                raise ImageBuildError(
                    f"docker build of {tag} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").rstrip()
            if text and not text.startswith(" ---> "):
                progress(f"  {text}")
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"docker build of {tag} failed: {e}") from e
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    progress(f"built {tag} in {time.monotonic() - t0:.1f}s")
    return tag


_ADD_LAYER = re.compile(r"^ADD\s+layers/([a-z0-9+_-]+)\.tar\s+/\s*$", re.M)


def layer_stack(dockerfile):
    """The package layers a Dockerfile ADDs, bottom first."""
    return _ADD_LAYER.findall(dockerfile)


def on_layers(dockerfile, image):
    """The Dockerfile with its FROM and layer ADDs replaced by `image`, which holds
    them already: rebuilding a language sends the engine no layer again."""
    lines = [line for line in dockerfile.splitlines()
             if not _ADD_LAYER.match(line) and not line.startswith("FROM ")]
    return "\n".join([f"FROM {image}"] + lines) + "\n"


LAYERS_REPO = "sorna/kernel-layers"


def read_packages(path):
    """The Debian packages listed in a `packages` file (words; `#` starts a comment)."""
    words = []
    for line in Path(path).read_text().splitlines():
        words += line.split("#", 1)[0].split()
    return words


class Layers:
    """Package layers, each built once per recipe into the cache: the overlay's upper
    folder (kept: it is a lower one for the layers above it) and its tar."""

    def __init__(self, client, mirror, progress, repl_dir):
        self.client = client
        self.mirror = mirror
        self.progress = progress
        self.repl_dir = Path(repl_dir)
        self._rootfs = None

    def packages_file(self, lang, name):
        if name == lang:
            return self.repl_dir / lang / "packages"
        return self.repl_dir / "layers" / name / "packages"

    def image(self, lang, stack):
        """An image of the root file system with the layers of `stack` on it (one
        tagged image per layer, each on the one below, built once per recipe)."""
        below = ROOTFS_IMAGE
        for name, tar in self.tars(lang, stack):
            tag = f"{LAYERS_REPO}:{name}-{os.path.basename(tar)[len(name) + 1:-4]}"
            if _image_id(self.client, tag) is None:
                build_docker_image(self.client, tag, None, self.repl_dir,
                                   [(name, tar)], self.progress,
                                   dockerfile=f"FROM {below}\nADD layers/{name}.tar /\n")
            below = tag
        return below

    def tars(self, lang, stack):
        """[(name, tar path)] for `stack`, building what is missing."""
        done, lowers, parent = [], [], base_recipe_hash()
        for name in stack:
            packages = read_packages(self.packages_file(lang, name))
            recipe = json.dumps({"parent": parent, "packages": packages,
                                 "steps": LAYER_STEPS_VERSION, "clean": CLEAN_PATHS},
                                sort_keys=True)
            parent = hashlib.sha256(recipe.encode()).hexdigest()[:16]
            upper = os.path.join(CACHE_DIR, "layers", f"{name}-{parent}")
            tar = upper + ".tar"
            if not os.path.exists(tar):
                self.progress(f"building the {name} layer ({' '.join(packages)})")
                self._build(name, packages, lowers, upper, tar)
            else:
                self.progress(f"the {name} layer is current ({parent})")
            done.append((name, tar))
            lowers.insert(0, upper)
        return done

    def rootfs(self):
        """The root file system's folder in the cache (exported from the image when the
        cache lost it)."""
        if self._rootfs is None:
            path = os.path.join(CACHE_DIR, f"rootfs-{base_recipe_hash()}")
            if not os.path.isdir(path):
                self.progress(f"unpacking {ROOTFS_IMAGE} into {path} for the layers")
                _export_image(self.client, ROOTFS_IMAGE, path)
            self._rootfs = path
        return self._rootfs

    def _build(self, name, packages, lowers, upper, tar):
        t0 = time.monotonic()
        work = tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE_DIR)
        merged, scratch, fresh = (os.path.join(work, d) for d in ("merged", "work", "upper"))
        for folder in (merged, scratch, fresh):
            os.makedirs(folder)
        lowerdir = ":".join(lowers + [self.rootfs()])
        try:
            _mount(["-t", "overlay", "overlay", "-o",
                    f"lowerdir={lowerdir},upperdir={fresh},workdir={scratch}", merged])
            try:
                # apt needs /proc and the host's resolver; neither goes into the layer.
                resolv = os.path.join(merged, "etc", "resolv.conf")
                open(resolv, "w").close()
                # Some maintainer scripts (Java's) link their man pages and fail
                # without the folder the root file system was cleaned of.
                os.makedirs(os.path.join(merged, "usr/share/man/man1"), exist_ok=True)
                _mount(["-t", "proc", "proc", os.path.join(merged, "proc")])
                _mount(["--bind", "/etc/resolv.conf", resolv])
                try:
                    _install(merged, packages, self.mirror, self.progress)
                finally:
                    for point in (resolv, os.path.join(merged, "proc")):
                        subprocess.run(["umount", "-l", point])
                os.unlink(resolv)
                _clean(merged)
            finally:
                subprocess.run(["umount", "-l", merged])
            os.makedirs(os.path.dirname(upper), exist_ok=True)
            shutil.rmtree(upper, ignore_errors=True)
            os.rename(fresh, upper)
            skipped = _tar_layer(upper, tar + ".part")
            os.rename(tar + ".part", tar)
        finally:
            _remove_root(work, lambda message: None)
        size = os.path.getsize(tar) / 1e6
        self.progress(f"built the {name} layer in {time.monotonic() - t0:.1f}s ({size:.0f} "
                      f"MB" + (f"; {skipped} deletions of lower files left out)" if skipped
                               else ")"))


def _mount(args):
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        raise ImageBuildError(f"mount {' '.join(args)} failed: {done.stderr.strip()}; "
                              f"building layers needs root and overlayfs")


def _install(root, packages, mirror, progress):
    """apt-get install `packages` in the chroot, from the machine's own mirror."""
    try:
        mirror = mirror or find_debian_mirror(RELEASE)
    except MirrorNotFound as e:
        raise ImageBuildError(str(e)) from e
    with open(os.path.join(root, "etc/apt/sources.list"), "w") as f:
        f.write(f"deb {mirror} {RELEASE} main\n")
    env = dict(os.environ, **apt_proxy_env(), DEBIAN_FRONTEND="noninteractive", LC_ALL="C",
               PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    apt = ["apt-get", "-q", "-o", "Dpkg::Use-Pty=0"]
    _chroot(root, apt + ["update"], env, progress, "apt-get update in the layer")
    _chroot(root, apt + ["install", "-y", "--no-install-recommends"] + packages,
            env, progress, "apt-get install in the layer")
    _chroot(root, apt + ["clean"], env, progress, "apt-get clean in the layer")


def _clean(root):
    rootp = Path(root)
    for pattern in CLEAN_PATHS:
        for path in rootp.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()


def _tar_layer(upper, tar):
    """Tar an overlay's upper folder as a layer, leaving out overlayfs's whiteouts
    (character devices 0:0 for files deleted from a lower folder, which ADD would
    create as devices). Returns how many were left out."""
    whiteouts = []
    for folder, dirs, files in os.walk(upper):
        for name in files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                whiteouts.append(os.path.relpath(path, upper))
    exclude = os.path.join(os.path.dirname(tar), os.path.basename(tar) + ".exclude")
    with open(exclude, "w") as f:
        f.writelines(f"./{path}\n" for path in whiteouts)
    try:
        done = subprocess.run(["tar", "-C", upper, "--numeric-owner", "-X", exclude,
                               "-cf", tar, "."], capture_output=True, text=True)
    finally:
        os.unlink(exclude)
    if done.returncode:
        raise ImageBuildError(f"tar of {upper} failed: {done.stderr.strip()}")
    return len(whiteouts)


def _export_image(client, tag, path):
    """Unpack an image's file system into `path` (docker export of a container)."""
    container = client.containers.create(tag, command=["true"])
    part = path + ".part"
    shutil.rmtree(part, ignore_errors=True)
    os.makedirs(part)
    try:
        tar = subprocess.Popen(["tar", "-C", part, "--numeric-owner", "-xf", "-"],
                               stdin=subprocess.PIPE)
        for chunk in container.export():
            tar.stdin.write(chunk)
        tar.stdin.close()
        if tar.wait():
            raise ImageBuildError(f"unpacking {tag} into {part} failed")
    finally:
        container.remove(force=True)
    os.rename(part, path)


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
        _install_packages(root, env, progress)
        _prepare_root(root, progress)
        _import(client, root, progress)
        # The layers are installed over this very folder: keep it, and no older one.
        for old in Path(CACHE_DIR).glob("rootfs-*"):
            if str(old) != root:
                _remove_root(str(old), progress)
        os.rename(root, keep)
    finally:
        if os.path.exists(root):
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
