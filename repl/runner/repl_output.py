"""A run's output: records in order, merged where they are text, sent as `output` events
at most every FLUSH_INTERVAL, within the run's output budget; and the fitting of a run's
end (exceptions, changed files) into what the budget leaves."""

import os
import threading
import time

from repl_wire import MAX_NAME, clip

FLUSH_INTERVAL = 0.05  # at most one output event per 50 ms...
FLUSH_LINGER = 0.005  # ...and a first record waits 5 ms, so "0" and "\n" go together
MAX_PENDING = 1024 * 1024  # a writer waits for the next flush beyond this
# Output kept per run (the agent keeps no more than this anyway): the rest is dropped
# here, before it costs the kernel memory, and the run's end says `truncated`.
MAX_RUN_OUTPUT = int(os.environ.get("SORNA_MAX_OUTPUT", 1 << 20))
TEXT_KINDS = ("stdout", "stderr")
ID_KINDS = ("show", "update")  # a display that can be updated, and its updates


def record_size(kind, data):
    """Characters an output record counts against a run's output cap."""
    if kind in TEXT_KINDS:
        return len(data)
    if kind == "media":
        return len(data[1])
    if kind == "clear":
        return 1
    if kind in ID_KINDS:  # [display id, bundle]
        return len(data[0]) + record_size("display", data[1])
    return sum(len(mime) + len(content) for mime, content in data)


def _joined(records):
    return [[kind, "".join(data) if kind in TEXT_KINDS else data]
            for kind, data in records]


def fit_exceptions(exceptions, room):
    """Exceptions within `room` characters in all (names, arguments, tracebacks are
    cut, in that order of priority): (exceptions, characters used, cut?)."""
    fitted, used, cut = [], 0, False
    for name, args, before, tb in exceptions:
        name, c1 = clip(name, min(MAX_NAME, room - used))
        used += len(name)
        kept = []
        for arg in args:
            if isinstance(arg, str):
                arg, c2 = clip(arg, room - used)
                cut = cut or c2
                used += len(arg)
            kept.append(arg)
        tb, c3 = clip(tb, room - used)
        used += len(tb)
        cut = cut or c1 or c3
        fitted.append([name, kept, before, tb])
    return fitted, used, cut


def fit_paths(paths, room):
    """The paths that fit in `room` characters (whole paths only): (paths, cut?)."""
    kept, used = [], 0
    for path in paths:
        used += len(path)
        if used > room:
            return kept, True
        kept.append(path)
    return kept, False


class Output:
    """Records of one run, sent as `output` events: in order, adjacent text merged.

    `tick()` (the I/O thread's timer) flushes when due; `emit_after()` flushes and then
    emits another event atomically, so output always precedes the run's other events.
    Records written while no run is active wait for the next run (up to MAX_PENDING).
    """

    def __init__(self, emit, wake=None, interval=FLUSH_INTERVAL, linger=FLUSH_LINGER,
                 max_pending=MAX_PENDING, clock=time.monotonic, max_run=MAX_RUN_OUTPUT):
        self._emit, self._wake, self._clock = emit, wake, clock
        self.interval, self.linger, self.max_pending = interval, linger, max_pending
        self.max_run = max_run
        self.run_size = 0
        self.truncated = False
        self._lock = threading.RLock()
        self._records = []  # [kind, [chunks]] of text, or [kind, data] (see `add`)
        self._size = 0
        self._first = 0.0  # when the oldest pending record arrived
        self._last = float("-inf")  # when the last output event was emitted
        self._watched_until = float("-inf")  # the I/O thread looks by then anyway
        self.run_id = None
        self.active = False

    def add(self, kind, data):
        """`kind`: stdout or stderr (`data` text, merged with the text before it),
        media (`[mime, content]`), display or result (a MIME bundle,
        `[[mime, content], ...]`), show or update (`[display id, bundle]`: a display
        that may be updated, an update of it), or clear (`{wait}`: the outputs shown
        so far are cleared); each but text is one record."""
        if not data:
            return
        text = kind in TEXT_KINDS
        with self._lock:
            if self.active:
                size = record_size(kind, data)
                room = self.max_run - self.run_size
                if size > room:
                    self.truncated = True
                    if not text or room <= 0:
                        return
                    data = data[:room]
                self.run_size += record_size(kind, data)
            empty = not self._records
            if text and not empty and self._records[-1][0] == kind:
                self._records[-1][1].append(data)
            else:
                self._records.append([kind, [data] if text else data])
            self._size += record_size(kind, data)
            if empty:
                self._first = self._clock()
            if not self.active:
                if self._size > self.max_pending:  # nobody reads: keep the oldest
                    self._drop_last(kind, data)
                return
            over = self._size > self.max_pending
        if over:  # backpressure: wait for the next flush slot, then flush ourselves
            wait = self.due_in()
            if wait:
                time.sleep(wait)
            self.flush()
        elif empty and self._wake and self._clock() >= self._watched_until:
            self._wake()

    def _drop_last(self, kind, data):
        record = self._records[-1]
        if kind not in TEXT_KINDS or len(record[1]) == 1:
            self._records.pop()
        else:
            record[1].pop()
        self._size -= record_size(kind, data)

    @property
    def room(self):
        """Characters of output the current run may still send."""
        return max(0, self.max_run - self.run_size)

    def watch(self):
        """A run is about to begin: the I/O thread will look within `linger` seconds
        (`due_in` says so), so the run's first output need not wake it. A short run
        then ends without a hand-off to the I/O thread."""
        with self._lock:
            self._watched_until = self._clock() + self.linger

    def due_in(self):
        """Seconds until pending records should go out (or until the look `watch`
        promised); None when there is nothing to look for."""
        with self._lock:
            now = self._clock()
            if not self._records or not self.active:
                return self._watched_until - now if self._watched_until > now else None
            due = max(self._first + self.linger, self._last + self.interval)
            return max(0.0, due - now)

    def tick(self):
        with self._lock:
            if self.due_in() == 0.0:
                self.flush()

    def flush(self):
        with self._lock:
            if not self._records or not self.active:
                return
            records = _joined(self._records)
            self._records, self._size = [], 0
            self._last = self._clock()
            self._emit({"id": self.run_id, "event": "output", "records": records})

    def begin(self, run_id):
        with self._lock:
            self.run_id, self.active = run_id, True
            self.run_size, self.truncated = 0, False
            self._last = float("-inf")
            pending = bool(self._records)
        if pending and self._wake:
            self._wake()

    def emit_after(self, event, end=False):
        """Flush, then emit `event`; with `end`, the run is over afterwards, and the
        output still pending travels in `event` itself (one message, not two)."""
        with self._lock:
            if end and self._records and self.active:
                event["records"] = _joined(self._records)
                self._records, self._size = [], 0
            else:
                self.flush()
            self._emit(event)
            if end:
                self.active = False
