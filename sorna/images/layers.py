"""Package layers: the Debian packages of a language (its language.toml's `packages`) or
of a layer several share (`repl/layers/<name>/packages`: gcc for c, cpp and rust),
installed with the machine's apt configuration into an overlay over the root file
system and the layers below, then its upper folder tarred. Each is built once per
recipe and kept in the cache, with an image of it on the layers below it."""

import collections
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from sorna.images.engine import commit_image, export_image, image_id
from sorna.images.host import (CACHE_DIR, CHROOT_PATH, CLEAN_PATHS, ImageBuildError,
                               apt_install, chroot, clean, mount, remove_root)
from sorna.images.mirror import MirrorNotFound, apt_proxy_env, find_debian_mirror
from sorna.images.rootfs import RELEASE, ROOTFS_IMAGE, base_recipe_hash
from sorna.language_spec import LanguageError, added_packages, layer_packages

LAYER_STEPS_VERSION = 1
LAYERS_REPO = "sorna/kernel-layers"


class Layers:
    """Package layers, each built once per recipe into the cache: the overlay's upper
    folder (kept: it is a lower one for the layers above it) and its tar. Safe to use
    from several threads: a layer two languages share is built by one of them."""

    def __init__(self, client, mirror, progress, repl_dir):
        self.client = client
        self.mirror = mirror
        self.progress = progress
        self.repl_dir = Path(repl_dir)
        self._rootfs = None
        self._guard = threading.Lock()
        self._locks = collections.defaultdict(threading.Lock)  # a layer's, by its tar

    def _lock(self, key):
        with self._guard:
            return self._locks[key]

    def recipe(self, lang, added=()):
        """[(name, Debian packages, [commands])] of the layers of `lang`, bottom first;
        the packages an operator `added` are a layer of their own, on top."""
        layers = [(name, layer_packages(lang, name), []) for name in lang.stack]
        if added:
            try:
                debian, commands = added_packages(lang, added)
            except LanguageError as e:
                raise ImageBuildError(str(e)) from e
            layers.append((f"{lang.name}-added", debian, commands))
        return layers

    def image(self, lang, progress=None, added=()):
        """An image of the root file system with the layers of `lang` on it (one
        tagged image per layer, each on the one below, built once per recipe)."""
        progress = progress or self.progress
        below = ROOTFS_IMAGE
        for name, tar in self.tars(lang, progress, added):
            tag = f"{LAYERS_REPO}:{name}-{os.path.basename(tar)[len(name) + 1:-4]}"
            with self._lock(tag):
                if image_id(self.client, tag) is None:
                    t0 = time.monotonic()
                    commit_image(self.client, below, tag, tar=tar)
                    progress(f"made {tag} in {time.monotonic() - t0:.1f}s")
            below = tag
        return below

    def tars(self, lang, progress=None, added=()):
        """[(name, tar path)] of the layers of `lang`, building what is missing."""
        progress = progress or self.progress
        done, lowers, parent = [], [], base_recipe_hash()
        for name, packages, commands in self.recipe(lang, added):
            recipe = {"parent": parent, "packages": packages,
                      "steps": LAYER_STEPS_VERSION, "clean": CLEAN_PATHS}
            if commands:
                recipe["commands"] = commands
            recipe = json.dumps(recipe, sort_keys=True)
            parent = hashlib.sha256(recipe.encode()).hexdigest()[:16]
            upper = os.path.join(CACHE_DIR, "layers", f"{name}-{parent}")
            tar = upper + ".tar"
            with self._lock(tar):
                if not os.path.exists(tar):
                    progress(f"building the {name} layer ({' '.join(packages)}"
                             + "".join(f"; {' '.join(c)}" for c in commands) + ")")
                    self._build(name, packages, lowers, upper, tar, progress, commands)
                else:
                    progress(f"the {name} layer is current ({parent})")
            done.append((name, tar))
            lowers.insert(0, upper)
        return done

    def rootfs(self):
        """The root file system's folder in the cache (exported from the image when the
        cache lost it)."""
        with self._guard:
            if self._rootfs is None:
                path = os.path.join(CACHE_DIR, f"rootfs-{base_recipe_hash()}")
                if not os.path.isdir(path):
                    self.progress(f"unpacking {ROOTFS_IMAGE} into {path} for the layers")
                    export_image(self.client, ROOTFS_IMAGE, path)
                self._rootfs = path
            return self._rootfs

    def _build(self, name, packages, lowers, upper, tar, progress, commands=()):
        t0 = time.monotonic()
        work = tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE_DIR)
        merged, scratch, fresh = (os.path.join(work, d) for d in ("merged", "work", "upper"))
        for folder in (merged, scratch, fresh):
            os.makedirs(folder)
        lowerdir = ":".join(lowers + [self.rootfs()])
        try:
            mount(["-t", "overlay", "overlay", "-o",
                    f"lowerdir={lowerdir},upperdir={fresh},workdir={scratch}", merged])
            try:
                # apt needs /proc and the host's resolver; neither goes into the layer.
                resolv = os.path.join(merged, "etc", "resolv.conf")
                open(resolv, "w").close()
                # Some maintainer scripts (Java's) link their man pages and fail
                # without the folder the root file system was cleaned of.
                os.makedirs(os.path.join(merged, "usr/share/man/man1"), exist_ok=True)
                archives = os.path.join(merged, "var/cache/apt/archives")
                os.makedirs(archives, exist_ok=True)
                debs = _reused_debs(work)
                mount(["-t", "proc", "proc", os.path.join(merged, "proc")])
                mount(["--bind", "/etc/resolv.conf", resolv])
                mount(["--bind", debs, archives])
                try:
                    _install(merged, packages, self.mirror, progress,
                             lambda: _keep_debs(debs))
                    if commands:  # an operator's packages from another source
                        _run_installers(merged, commands, progress)
                finally:
                    for point in (archives, resolv, os.path.join(merged, "proc")):
                        subprocess.run(["umount", "-l", point])
                os.unlink(resolv)
                clean(merged)
            finally:
                subprocess.run(["umount", "-l", merged])
            os.makedirs(os.path.dirname(upper), exist_ok=True)
            shutil.rmtree(upper, ignore_errors=True)
            os.rename(fresh, upper)
            skipped = _tar_layer(upper, tar + ".part")
            os.rename(tar + ".part", tar)
        finally:
            remove_root(work, lambda message: None)
        size = os.path.getsize(tar) / 1e6
        progress(f"built the {name} layer in {time.monotonic() - t0:.1f}s ({size:.0f} "
                      f"MB" + (f"; {skipped} deletions of lower files left out)" if skipped
                               else ")"))


HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _run_installers(root, commands, progress):
    """Run the installers of packages from other sources (pip, ...) in the chroot, with
    the build host's CA bundle in place of the image's for as long as they run: a
    network that inspects TLS with a CA of its own has it in the host's bundle only."""
    bundle = os.path.join(root, HOST_CA_BUNDLE.lstrip("/"))
    swapped = os.path.exists(HOST_CA_BUNDLE) and os.path.exists(bundle)
    if swapped:
        mount(["--bind", "-o", "ro", HOST_CA_BUNDLE, bundle])
    try:
        env = dict(os.environ, **apt_proxy_env(), PATH=CHROOT_PATH, HOME="/root")
        for argv in commands:
            chroot(root, argv, env, progress, " ".join(argv[:3]))
    finally:
        if swapped:
            subprocess.run(["umount", "-l", bundle])


def _reused_debs(work):
    """A folder for apt's downloads, holding every package an earlier build downloaded
    (hard links to the pool in the cache): apt fetches only what is new."""
    pool = os.path.join(CACHE_DIR, "debs")
    os.makedirs(pool, exist_ok=True)
    folder = os.path.join(work, "archives")
    os.makedirs(os.path.join(folder, "partial"))
    for name in os.listdir(pool):
        if name.endswith(".deb"):
            os.link(os.path.join(pool, name), os.path.join(folder, name))
    return folder


def _keep_debs(folder):
    """Add what apt downloaded into `folder` to the pool."""
    pool = os.path.join(CACHE_DIR, "debs")
    for name in os.listdir(folder):
        if name.endswith(".deb") and not os.path.exists(os.path.join(pool, name)):
            try:
                os.link(os.path.join(folder, name), os.path.join(pool, name))
            except FileExistsError:  # another layer's build kept it meanwhile
                pass


def _install(root, packages, mirror, progress, downloaded=None):
    """apt-get install `packages` in the chroot, from the machine's own mirror."""
    try:
        mirror = mirror or find_debian_mirror(RELEASE)
    except MirrorNotFound as e:
        raise ImageBuildError(str(e)) from e
    with open(os.path.join(root, "etc/apt/sources.list"), "w") as f:
        f.write(f"deb {mirror} {RELEASE} main\n")
    apt_install(root, packages, dict(os.environ, **apt_proxy_env()), progress, "the layer",
                downloaded)


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
