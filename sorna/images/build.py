"""Build the kernel images: a Debian root file system from scratch (rootfs.py), the
package layers of each language on it (layers.py), then the language's image.

No image registry may be reachable, so nothing is pulled. `sorna/kernel-base` is the
root file system plus the runner (`repl/runner/`); `sorna/kernel-<lang>` is the root
file system, the language's package layers, then its driver, the runner and its
settings (made from `repl/<lang>/language.toml`, config.py) committed as one thin layer,
so that changing the runner remakes thin layers only. Languages are built several at a
time.
"""

import concurrent.futures
import os
import sys
import time
from pathlib import Path

from sorna import language_spec
from sorna.images import config
from sorna.images.engine import (build_docker_image, commit_image, docker_client,
                                 files_tar, image_id, image_labels, language_version)
from sorna.images.host import ImageBuildError, Progress
from sorna.images.layers import Layers
from sorna.images.rootfs import (ROOTFS_IMAGE, base_rebuild_reason, base_recipe_hash,
                                 build_base_image)

BASE_IMAGE = "sorna/kernel-base:latest"
# The language's own version, as its language.toml's `version` prints it in the image.
VERSION_LABEL = "io.sorna.version"
# The packages an operator added (`--with`), comma-separated; kept by later builds.
PACKAGES_LABEL = "io.sorna.packages"


def default_repl_dir():
    return language_spec.repl_dir()


def available_langs(repl_dir=None):
    """The languages that have a folder (`repl/<lang>/language.toml`), sorted."""
    return language_spec.folders(repl_dir)


def build_images(langs=None, mirror=None, rebuild_base=False, out=sys.stdout,
                 repl_dir=None, client=None, jobs=None, add=(), remove=()):
    """Build the root file system if needed, the base, then every requested language
    image (all of them by default), `jobs` languages at a time. Returns the tags built.

    `add` and `remove`: packages an operator adds to (or takes from) the images of
    `langs`, on top of what their folders name; an image keeps the ones added before.

    The root file system and the package layers are built only when their recipe
    changed (or they are missing); the images themselves are always remade, which takes
    a second or two, so that edits to `repl/` count.
    """
    repl_dir = Path(repl_dir or default_repl_dir())
    known = available_langs(repl_dir)
    named, langs = langs, known if langs is None else list(langs)
    unknown = [lang for lang in langs if lang not in known]
    if unknown:
        raise ImageBuildError(
            f"no language folder (language.toml) for {', '.join(unknown)} under "
            f"{repl_dir}; known languages: {', '.join(known) or 'none'}")
    try:
        specs = language_spec.languages(repl_dir)
    except language_spec.LanguageError as e:
        raise ImageBuildError(f"{e}; fix the file and build again") from e
    if (add or remove) and named is None:
        raise ImageBuildError("name the languages whose images get the packages "
                              "(sorna images build LANG --with PACKAGE)")
    progress = Progress(out)
    client = client or docker_client()
    added = {name: _added_packages(client, name, add, remove) for name in langs}
    for name, packages in added.items():  # a name no folder can take: refused now
        try:
            language_spec.added_packages(specs[name], packages)
        except language_spec.LanguageError as e:
            raise ImageBuildError(str(e)) from e
    tags = [f"sorna/kernel-{lang}:latest" for lang in langs]
    previous = {tag: image_id(client, tag) for tag in tags + [BASE_IMAGE, ROOTFS_IMAGE]}
    built = []
    reason = ("--rebuild-base was given" if rebuild_base
              else base_rebuild_reason(image_labels(client, ROOTFS_IMAGE)))
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
    jobs = max(1, jobs or default_jobs())
    progress(f"building {len(langs)} language image(s), {jobs} at a time")
    failed = {}
    with concurrent.futures.ThreadPoolExecutor(jobs, "sorna-image") as pool:
        running = {pool.submit(_language_image, client, layers, specs[name], repl_dir,
                               progress.prefixed(name), added[name]): name
                   for name in heaviest_first(langs, specs)}
        for future in concurrent.futures.as_completed(running):
            try:
                built.append(future.result())
            except ImageBuildError as e:
                failed[running[future]] = str(e)
                progress(f"{running[future]} failed: {e}")
    if failed:
        raise ImageBuildError("\n".join(f"{name}: {why}" for name, why in sorted(
            failed.items())) + f"\n{len(failed)} of {len(langs)} language image(s) "
            f"failed; the others are built")
    _remove_replaced(client, previous, progress)
    progress(f"done: {', '.join(built) or 'nothing to build'}")
    return built


def default_jobs():
    """Languages built at once: their apt downloads wait on the network, so one more
    than the cores."""
    return (os.cpu_count() or 1) + 1


def heaviest_first(langs, specs):
    """The languages with the most Debian packages first (python3's scientific stack
    takes minutes): started last, one would finish long after the others."""
    def packages(name):
        lang = specs[name]
        return sum(len(language_spec.layer_packages(lang, layer)) for layer in lang.stack)
    return sorted(langs, key=lambda name: (-packages(name), name))


def _added_packages(client, lang, add, remove):
    """The packages the operator added to `lang`'s image: those its current image
    records, plus `add`, less `remove` (sorted)."""
    labels = image_labels(client, f"sorna/kernel-{lang}:latest") or {}
    had = [p for p in labels.get(PACKAGES_LABEL, "").split(",") if p]
    return sorted((set(had) | set(add)) - set(remove))


def _language_image(client, layers, lang, repl_dir, progress, added=()):
    """`sorna/kernel-<lang>`: its package layers (and the packages an operator added),
    then the runner and the driver and the image's settings, committed as one layer."""
    below = layers.image(lang, progress, added)
    version = language_version(client, below, lang, progress)
    tag = f"sorna/kernel-{lang.name}:latest"
    labels = {VERSION_LABEL: version}
    if added:
        labels[PACKAGES_LABEL] = ",".join(added)
        progress(f"with the added packages {', '.join(added)}")
    t0 = time.monotonic()
    commit_image(client, below, tag, config.changes(lang, labels),
                 tar=files_tar(config.files(lang, repl_dir)))
    progress(f"made {tag} in {time.monotonic() - t0:.1f}s")
    return tag


def _remove_replaced(client, previous, progress):
    """Delete the images our tags pointed at before, so rebuilds leave no <none>s.

    Children first (language images, then the base); an image still used by a
    container or by anything else is kept.
    """
    import docker

    order = {ROOTFS_IMAGE: 2, BASE_IMAGE: 1}  # children first
    for tag, old in sorted(previous.items(), key=lambda item: order.get(item[0], 0)):
        if old and old != image_id(client, tag):
            try:
                client.images.remove(old)
                progress(f"removed the previous {tag} ({old[7:19]})")
            except docker.errors.APIError:
                pass
