"""Output written below Python (children, os.system, C libraries): fds 1 and 2 made
pipes that a thread reads into the run's records."""

import codecs
import os
import select
import signal
import threading


def block_signals():
    """SIGINT and SIGTERM must reach the main thread (which runs the code), not us."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class FdCapture:
    """Makes fds 1 and 2 pipes read by a thread, so that output written below Python
    (subprocesses, os.system, C libraries) becomes records too.

    `drain()` reads whatever is already in the pipes; Python-level writers call it
    first, which keeps `print`, `os.system('echo')` and `print` in order. The original
    fds are kept (`saved`) for the daemon's own diagnostics and restored by `restore()`.
    """

    def __init__(self, sink):
        self._sink = sink
        self._lock = threading.Lock()
        self._pipes = {}  # read fd -> (kind, decoder)
        self._ready = select.poll()  # used under the lock only (poll is not reentrant)
        self.saved = {}
        self._stop = False

    def start(self):
        for fd, kind in ((1, "stdout"), (2, "stderr")):
            read_fd, write_fd = os.pipe()
            self.saved[fd] = os.dup(fd)
            os.dup2(write_fd, fd)
            os.close(write_fd)
            os.set_blocking(read_fd, False)
            self._pipes[read_fd] = (kind, codecs.getincrementaldecoder("utf-8")("replace"))
            self._ready.register(read_fd, select.POLLIN)
        threading.Thread(target=self._run, name="sorna-fd-capture", daemon=True).start()

    def drain(self):
        with self._lock:
            if not self._ready.poll(0):  # one syscall when (as usual) nothing is there
                return
            for read_fd, (kind, decoder) in self._pipes.items():
                while True:
                    try:
                        data = os.read(read_fd, 65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if not data:
                        break
                    self._sink(kind, decoder.decode(data))

    def _run(self):
        block_signals()
        poller = select.poll()
        for read_fd in self._pipes:
            poller.register(read_fd, select.POLLIN)
        while not self._stop:
            try:
                poller.poll(500)
            except InterruptedError:
                continue
            self.drain()

    def restore(self):
        self._stop = True
        for fd, saved in self.saved.items():
            os.dup2(saved, fd)
