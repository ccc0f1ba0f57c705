"""An in-memory stand-in for the part of docker-py's client that Sorna uses.

`tests/test_docker_contract.py` runs one suite against it and against the real engine.
"""

import itertools
import uuid

from docker.errors import APIError, ImageNotFound, NotFound


class FakeImage:
    def __init__(self, tag, labels):
        self.tags = [tag]
        self.labels = dict(labels)
        self.id = "sha256:" + uuid.uuid4().hex


class FakeContainer:
    def __init__(self, client, name, image, labels, kwargs):
        self._client = client
        self.id = uuid.uuid4().hex + uuid.uuid4().hex
        self.name = name
        self.image = image
        self.labels = dict(labels or {})
        self.kwargs = kwargs
        self.status = "running"
        self.attrs = {"State": {"OOMKilled": False, "ExitCode": 0},
                      "HostConfig": {"Memory": _bytes(kwargs.get("mem_limit")),
                                     "MemorySwap": _bytes(kwargs.get("memswap_limit"))}}

    def die(self, exit_code=137, oom=False):
        """As if the kernel's process died (a test's doing)."""
        self.status = "exited"
        self.attrs["State"] = {"OOMKilled": oom, "ExitCode": exit_code}

    def remove(self, force=False):
        if self.id not in self._client._containers:
            raise NotFound(f"No such container: {self.id}")
        if self.status == "running" and not force:
            raise APIError("You cannot remove a running container; stop it or use force")
        del self._client._containers[self.id]
        if self._client.on_remove is not None:
            self._client.on_remove(self)

    def stop(self, timeout=10):
        self.status = "exited"

    def update(self, mem_limit=None, memswap_limit=None):
        if self.id not in self._client._containers:
            raise NotFound(f"No such container: {self.id}")
        if self.status != "running":
            raise APIError(f"Container {self.id} is not running")
        if mem_limit is not None:
            self.attrs["HostConfig"]["Memory"] = _bytes(mem_limit)
        if memswap_limit is not None:
            self.attrs["HostConfig"]["MemorySwap"] = _bytes(memswap_limit)

    def reload(self):
        if self.id not in self._client._containers:
            raise NotFound(f"No such container: {self.id}")


class _Containers:
    def __init__(self, client):
        self._client = client

    def run(self, image, command=None, detach=False, name=None, labels=None, **kwargs):
        if not detach:
            raise NotImplementedError("the fake runs detached containers only")
        self._client.images.get(image)
        name = name or f"fake_{next(self._client._names)}"
        if any(c.name == name for c in self._client._containers.values()):
            raise APIError(f'Conflict. The container name "/{name}" is already in use')
        if self._client.fail_next_run:
            self._client.fail_next_run = False
            raise APIError("injected failure")
        container = FakeContainer(self._client, name, image, labels, kwargs)
        self._client._containers[container.id] = container
        if self._client.on_run is not None:
            self._client.on_run(container)
        return container

    def get(self, container_id):
        for c in self._client._containers.values():
            if container_id in (c.id, c.name) or (len(container_id) >= 12
                                                   and c.id.startswith(container_id)):
                return c
        raise NotFound(f"No such container: {container_id}")

    def list(self, all=False, filters=None, ignore_removed=False):
        found = [c for c in self._client._containers.values()
                 if all or c.status == "running"]
        for label in _as_list((filters or {}).get("label")):
            key, _, value = label.partition("=")
            found = [c for c in found if key in c.labels and (not value or c.labels[key] == value)]
        return found


class _Images:
    def __init__(self, client):
        self._client = client

    def get(self, name):
        tag = name if ":" in name else name + ":latest"
        image = self._client._images.get(tag)
        if image is None:
            raise ImageNotFound(f"No such image: {name}")
        return image

    def list(self, filters=None):
        found = list(self._client._images.values())
        for label in _as_list((filters or {}).get("label")):
            key, _, value = label.partition("=")
            found = [i for i in found if key in i.labels and (not value or i.labels[key] == value)]
        return found


class _LowLevelApi:
    """docker-py's APIClient, for the calls that answer in one request."""

    def __init__(self, client):
        self._client = client

    def images(self, filters=None):
        return [{"Id": i.id, "RepoTags": list(i.tags), "Labels": dict(i.labels)}
                for i in self._client.images.list(filters=filters)]


class FakeDockerClient:
    def __init__(self):
        self._containers = {}
        self._images = {}
        self._names = itertools.count(1)
        self.containers = _Containers(self)
        self.images = _Images(self)
        self.api = _LowLevelApi(self)
        self.on_run = None
        self.on_remove = None
        self.fail_next_run = False
        # What `docker info` says the engine can enforce; tests take features away.
        self.engine = {"MemoryLimit": True, "SwapLimit": True, "PidsLimit": True,
                       "CpuCfsQuota": True, "Warnings": None,
                       "SecurityOptions": ["name=seccomp,profile=default"],
                       "Runtimes": {"runc": {"path": "runc"}}}

    def add_image(self, tag, labels=None):
        if ":" not in tag:
            tag += ":latest"
        self._images[tag] = FakeImage(tag, labels or {})

    def ping(self):
        return True

    def info(self):
        return dict(self.engine)

    def close(self):
        pass


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _bytes(size):
    """docker-py's memory sizes ("256m", or bytes) in bytes, as the engine reports them."""
    if size is None:
        return 0
    if isinstance(size, int):
        return size
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    if size[-1].lower() in units:
        return int(size[:-1]) * units[size[-1].lower()]
    return int(size)
