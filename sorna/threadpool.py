"""A named, bounded thread pool of our own for blocking calls (Docker), never the reactor's.

With `inline=True` work runs synchronously on the calling thread, for unit tests.
"""

from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool


class WorkerPool:
    def __init__(self, name, size=4, reactor=None, inline=False):
        self.name = name
        self.size = size
        self.inline = inline
        self._reactor = reactor
        self._pool = None

    def start(self):
        if self.inline or self._pool is not None:
            return
        self._pool = ThreadPool(minthreads=0, maxthreads=self.size, name=self.name)
        self._pool.start()

    def stop(self):
        """Join the threads; call after the work that uses them has finished."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.stop()

    def run(self, fn, *args, **kwargs):
        if self.inline:
            return defer.maybeDeferred(fn, *args, **kwargs)
        if self._pool is None:
            return defer.fail(RuntimeError(f"thread pool {self.name} is not running"))
        if self._reactor is None:
            from twisted.internet import reactor as default
            self._reactor = default
        return threads.deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)
