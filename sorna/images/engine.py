"""The Docker engine's side of the image builder: the client, images' ids and labels,
`docker build` of a context made of a repl/ folder, the runner and layer tars, unpacking
an image, and asking an image for its language's version."""

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from sorna.images.host import CACHE_DIR, ImageBuildError

DOCKER_TIMEOUT = 600


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


def image_id(client, tag):
    import docker

    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def image_labels(client, tag):
    """The image's labels ({} when it has none), or None when it does not exist."""
    import docker

    try:
        return client.images.get(tag).labels or {}
    except docker.errors.ImageNotFound:
        return None


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


def export_image(client, tag, path):
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


def language_version(client, image, lang, progress):
    """What the language's `version` command prints in `image`, the image of its
    packages: its first line, at most 64 characters."""
    import docker

    where = f"the version command of repl/{lang.name}/language.toml"
    # Not containers.run(remove=True): it reads the logs' stream after removing the
    # container, and a fast command's output (R's) was sometimes lost.
    container = None
    try:
        container = client.containers.create(image, ["sh", "-c", lang.version],
                                             network_disabled=True)
        container.start()
        status = container.wait()["StatusCode"]
        output = container.logs(stdout=True, stderr=True)
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"{where} failed in {image}: {e}") from e
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.DockerException:
                pass
    if status != 0:
        raise ImageBuildError(f"{where} exited with status {status} in {image}: "
                              f"{output.decode('utf-8', 'replace')[-500:]}")
    lines = output.decode("utf-8", "replace").strip().splitlines()
    version = lines[0].strip()[:64] if lines else ""
    if not version:
        raise ImageBuildError(f"{where} printed no version in {image}")
    progress(f"{lang.name} version: {version}")
    return version


def files_tar(placed):
    """A tar (bytes) of `placed`, [(absolute path in the image, file here)]: owned by
    root, read-only for everyone else (folders 0755, files 0644)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folders = set()
        for target, source in placed:
            parts = target.strip("/").split("/")
            for depth in range(1, len(parts)):
                folder = "/".join(parts[:depth])
                if folder not in folders:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            data = Path(source).read_bytes()
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def commit_image(client, base, tag, changes=(), tar=None):
    """`tag`: `base` with `tar` (bytes, or the path of a tar file) unpacked at / and the
    Dockerfile instructions `changes` applied, as one layer: no build context to send,
    no intermediate container per instruction."""
    import docker

    repository, name = tag.rsplit(":", 1)
    container = None
    try:
        container = client.api.create_container(base, command=["true"],
                                                network_disabled=True)["Id"]
        if isinstance(tar, (str, os.PathLike)):
            with open(tar, "rb") as stream:
                client.api.put_archive(container, "/", stream)
        elif tar is not None:
            client.api.put_archive(container, "/", tar)
        client.api.commit(container, repository=repository, tag=name,
                          changes=list(changes), pause=False)
    except docker.errors.DockerException as e:
        raise ImageBuildError(f"making {tag} from {base} failed: {e}") from e
    finally:
        if container is not None:
            try:
                client.api.remove_container(container, force=True)
            except docker.errors.DockerException:
                pass
    return tag
