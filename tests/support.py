"""Helpers shared by the test modules."""

import os

from twisted.trial.unittest import SkipTest


def require_docker(testcase=None):
    """Return a docker-py client, or skip; under SORNA_REQUIRE_DOCKER=1 fail instead."""
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
        return client
    except Exception as e:
        reason = f"the Docker engine is not reachable: {e}"
        if os.environ.get("SORNA_REQUIRE_DOCKER") == "1":
            raise AssertionError(reason + " (SORNA_REQUIRE_DOCKER=1)")
        raise SkipTest(reason)


def require_image(client, tag):
    """Skip (or fail under SORNA_REQUIRE_DOCKER=1) when a kernel image is missing."""
    import docker

    try:
        return client.images.get(tag)
    except docker.errors.ImageNotFound:
        reason = f"image {tag} is missing: run `sorna images build`"
        if os.environ.get("SORNA_REQUIRE_DOCKER") == "1":
            raise AssertionError(reason)
        raise SkipTest(reason)


def require_browser():
    """Skip (or fail under SORNA_REQUIRE_DOCKER=1, as CI runs) when Chromium, its driver,
    Selenium or JupyterLab is missing."""
    from sorna.testing.browser import browser_missing

    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get("SORNA_REQUIRE_DOCKER") == "1":
        raise AssertionError(reason + " (SORNA_REQUIRE_DOCKER=1)")
    raise SkipTest(reason)


def temp_folder(testcase):
    """A new, empty folder in the test's trial temp folder (removed with it)."""
    path = os.path.abspath(testcase.mktemp())
    os.makedirs(path)
    return path


def interleaves(merged, first, second):
    """Whether `merged` is `first` and `second` interleaved, each kept in its order (as
    two pipes read together give them, down to a single write)."""
    if len(merged) != len(first) + len(second):
        return False
    # can[j]: merged[:i + j] is first[:i] and second[:j] interleaved, for the current i
    can = [True] + [False] * len(second)
    for j in range(1, len(second) + 1):
        can[j] = can[j - 1] and second[j - 1] == merged[j - 1]
    for i in range(1, len(first) + 1):
        can[0] = can[0] and first[i - 1] == merged[i - 1]
        for j in range(1, len(second) + 1):
            can[j] = ((can[j] and first[i - 1] == merged[i + j - 1])
                      or (can[j - 1] and second[j - 1] == merged[i + j - 1]))
    return can[len(second)]
