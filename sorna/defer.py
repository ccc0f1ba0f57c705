"""Small Deferred helpers."""

import functools

from twisted.internet import defer


def deferred(fn):
    """Let an `async def` be called like a Deferred-returning function."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return defer.Deferred.fromCoroutine(fn(*args, **kwargs))

    return wrapper


def returns_deferred(fn):
    """A function that returns a Deferred, or raises: its errors come as a failed
    Deferred too. Cheaper than `deferred` on a path that awaits nothing itself."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return defer.maybeDeferred(fn, *args, **kwargs)

    return wrapper


class InFlight:
    """Tracks running Deferreds so that shutdown can wait for them."""

    def __init__(self):
        self._running = {}

    def track(self, d):
        finished = defer.Deferred()
        self._running[d] = finished

        def done(result):
            self._running.pop(d, None)
            finished.callback(None)
            return result

        d.addBoth(done)
        return d

    def __len__(self):
        return len(self._running)

    def wait(self):
        """Fire when everything running now has finished, without touching its results."""
        return defer.gatherResults(list(self._running.values()))


class KeyedLock:
    """One DeferredLock per key, dropped when nobody holds or waits for it."""

    def __init__(self):
        self._locks = {}

    def run(self, key, fn, *args, **kwargs):
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = defer.DeferredLock()
        d = lock.run(fn, *args, **kwargs)

        def cleanup(result):
            if not lock.locked and not lock.waiting and self._locks.get(key) is lock:
                del self._locks[key]
            return result

        d.addBoth(cleanup)
        return d
