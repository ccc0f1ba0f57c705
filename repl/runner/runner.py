"""Sorna's kernel runner (REPL protocol v2): the one program that speaks the protocol in
every kernel, whatever its language. A *driver* runs the code:

- `python_driver.PythonDriver` runs Python in this process;
- `process_driver.InterpreterDriver` keeps a language's interpreter running as a child
  (`repl/<lang>/run.<ext>`) and talks to it over the pipe protocol of docs/PROTOCOL.md;
- `process_driver.CompiledDriver` compiles each run into a program and runs it.

An execute with `program` runs its code as a program file instead, with arguments
(`process_driver.ProgramDriver`: the compiled driver itself, or the interpreted
language's program command).

The environment chooses: `SORNA_DRIVER` (`python`, `interpreter`, `compiled`) and the
driver's own variables (`SORNA_COMMAND`, `SORNA_PROGRAM`, `SORNA_SOURCE`,
`SORNA_SOURCES`, `SORNA_BUILD`, `SORNA_RUN`: command lines, split as a shell would,
without one).

The agent connects to the Unix stream socket bound here (in a folder shared with the
host, since kernels have no network) and exchanges frames of a 4-byte big-endian length
and one msgpack map; see "Agent <-> REPL daemon" in docs/PROTOCOL.md. Only the standard
library and msgpack are used: these files are copied into the kernel image alone,
without the sorna package.

Layers, so that each can be tested on its own:

- `Session` keeps the run's state (busy, interrupts, pending reads) and reports through
  an injected `emit`: `output` events (buffered records), `waiting-input`, `finished`;
  it is thread-safe where the I/O side calls it.
- `FileStore` answers upload/download/list inside the work folder.
- `Daemon` is the plumbing: code runs in the main thread (so signals and
  KeyboardInterrupt work), one I/O thread owns the socket and answers every request
  while code runs, and fds 1 and 2 are pipes read by a thread so that the output of
  children (subprocesses, a language's interpreter) is captured too. `LocalDaemon`
  drives a Session with the Python driver in-process, without sockets, threads or
  signals, for fakes and tests.
"""

import _thread
import codecs
import collections
import errno
import os
import queue
import select
import shlex
import signal
import socket
import stat
import struct
import sys
import threading
import time

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the drivers beside this file (python -I leaves it out)
    sys.path.insert(0, HERE)

SOCKET_PATH = os.environ.get("SORNA_REPL_SOCKET", "/ipc/repl")
HEADER = struct.Struct(">I")
MAX_CONNECTIONS = 4  # the agent, and a tool or test beside it
MAX_UNSENT = 64 * 1024 * 1024  # what waits for a peer that does not read: then it goes
MAX_FILE_SIZE = 16 * 1024 * 1024
FLUSH_INTERVAL = 0.05  # at most one output event per 50 ms...
FLUSH_LINGER = 0.005  # ...and a first record waits 5 ms, so "0" and "\n" go together
MAX_PENDING = 1024 * 1024  # a writer waits for the next flush beyond this
# Output kept per run (the agent keeps no more than this anyway): the rest is dropped
# here, before it costs the kernel memory, and the run's end says `truncated`.
MAX_RUN_OUTPUT = int(os.environ.get("SORNA_MAX_OUTPUT", 1 << 20))
INTERRUPT_RETRY = 0.2  # seconds between SIGINTs until the run sees one
STDIN_POLL = 0.05  # seconds between looks at whether a child blocks reading stdin
MAX_WALK = 10000  # entries looked at when listing a folder or the files a run changed
RUNNER_FILE = (lambda: None).__code__.co_filename


class Terminate(BaseException):
    """Raised by the SIGTERM handler; never reported as the user's exception."""


class RequestError(Exception):
    """A request the daemon refuses; becomes `{reply: code, error, cause}`."""

    def __init__(self, code, error, cause):
        super().__init__(cause)
        self.code, self.error, self.cause = code, error, cause
        self.request_id = None  # the refused request's id, when it could be read


def _text(value):
    """A str msgpack can encode (lone surrogates would make packing fail)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


# The end of a run (its exceptions and changed files) and a prompt count against the
# run's output budget; they may use at least this much, even after a full run.
END_ROOM = 64 * 1024
MAX_NAME = 256  # an exception's name


def _clip(text, room):
    """`text` within `room` characters, and whether it had to be cut."""
    return (text, False) if len(text) <= room else (text[:max(room, 0)], True)


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
        name, c1 = _clip(name, min(MAX_NAME, room - used))
        used += len(name)
        kept = []
        for arg in args:
            if isinstance(arg, str):
                arg, c2 = _clip(arg, room - used)
                cut = cut or c2
                used += len(arg)
            kept.append(arg)
        tb, c3 = _clip(tb, room - used)
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


# ---------------------------------------------------------------------------- output

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
        _block_signals()
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


# ---------------------------------------------------------------------------- session

class EndOfInput(str):
    """What `read_input` returns for an `input` with `eof: true`: this text is the rest
    of the run's standard input, end-of-file comes after it."""

    end_of_input = True


class Session:
    """One kernel's runs, whatever the language: the bookkeeping of the protocol.

    The `driver` runs the code (sorna.runner drivers: python_driver.PythonDriver in this
    process, process_driver.* in a child). `emit(event)` receives every event of a run
    (maps with `id` and `event`). `execute()` runs in the calling thread (the main one);
    `reserve()`, `provide_input()`, `interrupt()`, `poll_stdin()` and `output.tick()` are
    safe to call from another thread meanwhile.

    Reads of standard input: an in-process driver calls `read_input(prompt, password)`,
    which waits for `provide_input()` (or calls the `read_input` hook given here, for
    in-process use without threads); a driver whose program runs in a child process is
    watched by `poll_stdin()`, which announces a read it sees blocked on the program's
    standard input, and `provide_input()` then writes the text there.
    """

    def __init__(self, emit, driver, work_dir=None, read_input=None, capture=None,
                 wake=None, program_driver=None):
        self.driver = driver
        self.program_driver = program_driver  # runs `program` runs, when there are any
        self.current = driver  # the driver of the run going on
        self.work_dir = os.path.realpath(work_dir) if work_dir else None
        self.output = Output(emit, wake=wake)
        self.capture = capture
        self._read_input_hook = read_input
        self._lock = threading.Lock()  # busy, interruptible, pending interrupt
        self.busy = False
        self.run_id = None
        self.interruptible = False  # the driver runs user code now
        self._interrupt_pending = False  # asked for before user code started
        self._signal = None  # set while an interrupt has not been seen yet
        self._signalled_at = 0.0
        self._input = threading.Condition()
        self._input_waiting = False
        self._input_text = None
        self._stdin_ended = False  # an `eof` input ended this run's standard input
        self.reading = False  # poll_stdin announced a blocked read of the program's
        self._wake = wake
        driver.bind(self)
        if program_driver is not None:
            program_driver.bind(self)

    # -- the I/O side

    def reserve(self, run_id=None):
        """Mark run `run_id` as accepted; False when one is going on already (409)."""
        with self._lock:
            if self.busy:
                return False
            self.busy, self._interrupt_pending, self._signal = True, False, None
            self.run_id = run_id
            return True

    def interrupt(self, signal_main, run_id=None):
        """Stop the current run with the language's interrupt; False when nothing runs,
        or when `run_id` names another run than the current one (an interrupt meant for
        a run that has ended must not stop the next).

        While user code runs, the driver's `signal()` (or else `signal_main()`, which
        must deliver SIGINT to the main thread, whose handler calls `on_sigint`) is
        called; a run not started yet is stopped as soon as it starts.
        """
        with self._lock:
            if not self.busy or (run_id is not None and run_id != self.run_id):
                return False
            if self.interruptible:
                self._signal = getattr(self.current, "signal", None) or signal_main
                self._signalled_at = time.monotonic()
                self._signal()
            else:
                self._interrupt_pending = True
            return True

    @property
    def interrupt_unanswered(self):
        return self._signal is not None and self.current.retries_interrupts

    def retry_interrupt(self):
        """Signal again while an interrupt has not taken effect: a signal that lands
        just before a blocking call, or while os.system() ignores SIGINT, is lost."""
        with self._lock:
            if (self._signal is not None and self.busy and self.interruptible
                    and time.monotonic() - self._signalled_at >= INTERRUPT_RETRY):
                self._signalled_at = time.monotonic()
                self._signal()

    def on_sigint(self):
        """The SIGINT handler's body: interrupts user code only, never the daemon."""
        if self.interruptible:
            self._signal = None
            raise KeyboardInterrupt()

    def provide_input(self, text, eof=False):
        """Hand `text` to the pending read; False when no read is waiting (409). With
        `eof`, `text` is the rest of the run's standard input: reads take from it, then
        get end-of-file."""
        with self._input:
            if self._input_waiting and self._input_text is None:
                self._input_text = EndOfInput(text) if eof else text
                self._stdin_ended = self._stdin_ended or eof
                self._input.notify_all()
                return True
        with self._lock:
            if not (self.busy and self.reading):
                return False
            self.reading = False
        self.current.feed(text, eof)
        return True

    def poll_stdin(self):
        """Announce (`waiting-input`, no prompt) a read of the program's standard input
        that the driver sees blocked; True while one is announced."""
        with self._lock:
            if not (self.busy and self.interruptible) or self.reading:
                return self.reading
            if not self.current.reading_stdin():
                return False
            self.reading = True
        if self.capture:
            self.capture.drain()  # what the program printed before it reads comes first
        self.output.emit_after({"id": self.output.run_id, "event": "waiting-input",
                                "prompt": "", "password": False})
        return True

    @property
    def watches_stdin(self):
        return self.busy and self.interruptible and self.current.watches_stdin

    # -- the run

    def release(self):
        """Give back a reservation whose run could not start."""
        with self._lock:
            self.busy = False

    def execute(self, run_id, code, program=None):
        """Run `code` as run `run_id`, emit its events, and return the finished event.
        With `program` ({path, args, stdin}, from `place_program`), the program file at
        `path`, which holds `code`, runs instead, with its arguments (and `stdin`, when
        given, as its whole standard input)."""
        before = self._snapshot()
        self._stdin_ended = False
        self.output.begin(run_id)
        if program is None:
            exceptions = self.driver.run(code)
        else:
            self.current = self.program_driver
            try:
                exceptions = self.current.run_program(program["path"], program["args"],
                                                      program["stdin"])
            finally:
                self.current = self.driver
        if self.capture:
            self.capture.drain()
        room = max(self.output.room, END_ROOM)
        exceptions, used, cut = fit_exceptions(exceptions, room)
        files, cut_files = fit_paths(self._changed(before), room - used)
        finished = {"id": run_id, "event": "finished", "reply": 200,
                    "exceptions": exceptions, "files": files,
                    "truncated": self.output.truncated or cut or cut_files}
        with self._lock:
            self.output.emit_after(finished, end=True)
            self.busy = self.interruptible = self.reading = False
            self._signal = None
        return finished

    def user_code(self):
        """A context for the driver around running user code: interrupts reach it
        inside (one asked for before it began raises KeyboardInterrupt on entry)."""
        return _UserCode(self)

    # -- output and input

    def add(self, kind, data):
        if self.capture:
            self.capture.drain()
        self.output.add(kind, data)

    def add_media(self, mime, content):
        if self.capture:
            self.capture.drain()
        self.output.add("media", [mime, content])

    def add_bundle(self, kind, bundle):
        """`kind`: display (an object shown) or result (a run's value); `bundle`: its
        representations, `[[mime, content], ...]`."""
        if self.capture:
            self.capture.drain()
        self.output.add(kind, bundle)

    def read_input(self, prompt, password):
        """For in-process drivers: announce the read and wait for the text."""
        if not self.output.active:
            raise EOFError("standard input is readable during a run only")
        if self._stdin_ended:
            return EndOfInput("")
        prompt, cut = _clip(_text(prompt), max(self.output.room, END_ROOM))
        self.output.truncated = self.output.truncated or cut
        event = {"id": self.output.run_id, "event": "waiting-input",
                 "prompt": prompt, "password": password}
        if self._read_input_hook is not None:
            self.output.emit_after(event)
            return self._read_input_hook(prompt, password)
        with self._input:
            if self._input_waiting:
                raise RuntimeError("another thread is already reading standard input")
            self._input_waiting, self._input_text = True, None
        try:
            self.output.emit_after(event)
            with self._input:
                while self._input_text is None:
                    # SIGINT's KeyboardInterrupt ends the wait; the timeout covers a
                    # signal that lands just before the wait begins (then it is not
                    # seen until Python code runs again).
                    self._input.wait(0.2)
                return self._input_text
        finally:
            with self._input:
                self._input_waiting, self._input_text = False, None

    # -- files

    def _snapshot(self):
        return _walk_files(self.work_dir) if self.work_dir else {}

    def _changed(self, before):
        if not self.work_dir:
            return []
        after = _walk_files(self.work_dir)
        # A name that is not UTF-8 (surrogate-escaped by os) is reported backslash-escaped:
        # as it is, it could not be sent.
        return sorted(_text(path) for path, state in after.items()
                      if before.get(path) != state)


class _UserCode:
    def __init__(self, session):
        self.session = session

    def __enter__(self):
        session = self.session
        with session._lock:
            session.interruptible = True
            pending, session._interrupt_pending = session._interrupt_pending, False
        if pending:
            session.interruptible = False
            raise KeyboardInterrupt()
        if session.current.watches_stdin and session._wake:
            session._wake()  # the I/O thread starts watching the program's reads

    def __exit__(self, *exc):
        self.session.interruptible = False
        return False


def _walk_files(root, limit=MAX_WALK):
    """{relative path: (mtime_ns, size)} of regular, non-hidden files under root;
    hidden folders and symlinks are skipped, and at most `limit` entries are seen."""
    found, seen, stack = {}, 0, [""]
    while stack and seen < limit:
        rel = stack.pop()
        try:
            entries = os.scandir(os.path.join(root, rel) if rel else root)
        except OSError:
            continue
        with entries:
            for entry in entries:
                seen += 1
                if seen > limit:
                    break
                if entry.name.startswith("."):
                    continue
                path = f"{rel}/{entry.name}" if rel else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(path)
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found[path] = (st.st_mtime_ns, st.st_size)
                except OSError:
                    continue
    return found


# ---------------------------------------------------------------------------- files

class FileStore:
    """Upload, download and list under the work folder, never leaving it.

    A path is refused when it is absolute, holds NUL or `..`, or resolves (realpath)
    outside the folder; the resolved path is then opened one component at a time with
    O_NOFOLLOW, so a symlink swapped in meanwhile is refused too.
    """

    def __init__(self, root, max_size=MAX_FILE_SIZE):
        self.root = os.path.realpath(root)
        self.max_size = max_size

    def resolve(self, path, allow_root=False):
        """The path's components relative to the root, after the checks above."""
        if not isinstance(path, str):
            raise RequestError(400, "invalid-input",
                               f"'path' must be a string, not {type(path).__name__}.")
        if "\x00" in path:
            raise RequestError(400, "bad-path", "The path contains a NUL character.")
        if path.startswith("/"):
            raise RequestError(400, "bad-path", "The path must be relative to the work "
                                                "folder, not absolute.")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise RequestError(400, "bad-path", "The path must not contain '..'.")
        if not parts and not allow_root:
            raise RequestError(400, "bad-path", "The path names the work folder itself; "
                                                "give a file name.")
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise RequestError(400, "bad-path", f"{path!r} leads outside the work folder.")
        rel = os.path.relpath(real, self.root)
        return [] if rel == "." else rel.split(os.sep)

    def _open(self, parts, flags, mode=0o644, make_dirs=False):
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in parts[:-1]:
                if make_dirs:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                dir_fd=fd)
                os.close(fd)
                fd = child
            if not parts:
                return os.dup(fd)
            return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=fd)
        finally:
            os.close(fd)

    def upload(self, path, data):
        if not isinstance(data, (bytes, bytearray)):
            raise RequestError(400, "invalid-input",
                               f"'data' must be binary, not {type(data).__name__}.")
        if len(data) > self.max_size:
            raise RequestError(413, "too-large", f"The file has {len(data)} bytes; the "
                                                 f"limit is {self.max_size}.")
        parts = self.resolve(path)
        with _os_errors(path):
            fd = self._open(parts, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NONBLOCK,
                            make_dirs=True)
            with open(fd, "wb") as fh:
                fh.write(data)
        return {"path": "/".join(parts), "size": len(data)}

    def download(self, path):
        parts = self.resolve(path)
        with _os_errors(path):
            fd = self._open(parts, os.O_RDONLY | os.O_NONBLOCK)
            with open(fd, "rb") as fh:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise RequestError(400, "bad-path", f"{path!r} is not a regular file.")
                data = b"" if st.st_size > self.max_size else fh.read(self.max_size + 1)
        if st.st_size > self.max_size or len(data) > self.max_size:
            raise RequestError(413, "too-large",
                               f"{path!r} is larger than {self.max_size} bytes.")
        return {"path": "/".join(parts), "data": data}

    def list(self, path=""):
        parts = self.resolve(path, allow_root=True)
        entries, truncated = [], False
        with _os_errors(path):
            fd = self._open(parts, os.O_RDONLY | os.O_DIRECTORY)
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        if len(entries) >= MAX_WALK:
                            truncated = True
                            break
                        st = entry.stat(follow_symlinks=False)
                        entries.append({"name": _text(entry.name),
                                        "type": _file_type(st.st_mode),
                                        "size": st.st_size, "mtime": st.st_mtime})
            finally:
                os.close(fd)
        entries.sort(key=lambda e: e["name"])
        reply = {"path": "/".join(parts), "entries": entries}
        if truncated:
            reply["truncated"] = True
        return reply


def _file_type(mode):
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


class _os_errors:
    """Turns the OSErrors of a file action into replies."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if not isinstance(exc, OSError):
            return False
        path = self.path
        if isinstance(exc, FileNotFoundError):
            raise RequestError(404, "no-such-file", f"There is no {path!r}.")
        if isinstance(exc, IsADirectoryError):
            raise RequestError(400, "bad-path", f"{path!r} is a folder.")
        if isinstance(exc, NotADirectoryError):
            raise RequestError(400, "bad-path", f"Part of {path!r} is not a folder.")
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise RequestError(400, "bad-path", f"{path!r} is a symbolic link.")
        if exc.errno == errno.ENXIO:
            raise RequestError(400, "bad-path", f"{path!r} is not a regular file.")
        if isinstance(exc, PermissionError):
            raise RequestError(403, "permission-denied", f"{path!r} is not accessible.")
        raise RequestError(500, "io-error", _text(f"{path!r}: {exc.strerror or exc}"))


# ---------------------------------------------------------------------------- requests

ACTIONS = ("ping", "execute", "input", "interrupt", "restart", "upload", "download",
           "list", "complete", "inspect", "is_complete")
# Asked of the driver, answered at once by whichever thread reads the request.
ASSIST_ACTIONS = ("complete", "inspect", "is_complete")
MAX_MATCHES = 500  # completions in one reply
# A program's command-line arguments: Linux takes at most 128 KiB per argument and about
# 2 MiB in all (with the environment).
MAX_ARGS = 4096
MAX_PROGRAM_NAME = 1024
MAX_ARGS_SIZE = 256 << 10
# msgpack's C unpacker before 1.2 leaks memory on every frame it refuses as nested too
# deep (about 80 KiB each) or as bad UTF-8: garbage on the socket would fill the kernel's
# memory. Its pure-Python twin refuses the same frames without leaking (Debian's
# python3-msgpack is 1.0.3).
if msgpack.version >= (1, 2):
    unpack = msgpack.unpackb
else:
    from msgpack.fallback import unpackb as unpack


def parse_request(payload):
    """The request map in `payload`; RequestError 400 when it is not one (with the
    request's id when the map could be read, so that it is decoded once)."""
    try:
        request = unpack(payload, raw=False)
    except Exception:
        raise RequestError(400, "invalid-input", "The message is not a valid msgpack "
                                                 "document.")
    if not isinstance(request, dict):
        raise RequestError(400, "invalid-input", f"The message must be a msgpack map, "
                                                 f"not a {type(request).__name__}.")
    try:
        return _checked(request)
    except RequestError as e:
        e.request_id = request.get("id")
        raise


def _checked(request):
    action = request.get("action")
    if action not in ACTIONS:
        raise RequestError(400, "invalid-input", f"Unknown action {action!r}; expected "
                                                 f"one of {', '.join(ACTIONS)}.")
    if action == "execute" and not isinstance(request.get("code"), str):
        raise RequestError(400, "invalid-input", f"'code' must be a string, not "
                                                 f"{type(request.get('code')).__name__}.")
    if action == "execute" and request.get("program") is not None:
        _check_program(request["program"])
    if action == "input" and not isinstance(request.get("text"), str):
        raise RequestError(400, "invalid-input", f"'text' must be a string, not "
                                                 f"{type(request.get('text')).__name__}.")
    if action == "input" and not isinstance(request.get("eof", False), bool):
        raise RequestError(400, "invalid-input", "'eof' must be true or false.")
    if action in ASSIST_ACTIONS:
        if not isinstance(request.get("code"), str):
            raise RequestError(400, "invalid-input", "'code' must be a string.")
        cursor = request.get("cursor_pos", len(request["code"]))
        if type(cursor) is not int or not 0 <= cursor <= len(request["code"]):
            raise RequestError(400, "invalid-input", "'cursor_pos' must be a position in "
                                                     "'code'.")
    return request


def _check_program(program):
    if not isinstance(program, dict):
        raise RequestError(400, "invalid-input", "'program' must be a map of 'name' and "
                                                 "'args'.")
    name, args = program.get("name"), program.get("args", [])
    if program.get("stdin") is not None and not isinstance(program["stdin"], str):
        raise RequestError(400, "invalid-input", "'program.stdin' must be a string.")
    if name is not None and (not isinstance(name, str)
                             or not 0 < len(name) <= MAX_PROGRAM_NAME):
        raise RequestError(400, "invalid-input", f"'program.name' must be a path of 1 to "
                                                 f"{MAX_PROGRAM_NAME} characters.")
    if not isinstance(args, list) or len(args) > MAX_ARGS or not all(
            isinstance(a, str) and "\x00" not in a for a in args):
        raise RequestError(400, "invalid-input", f"'program.args' must be a list of at "
                                                 f"most {MAX_ARGS} strings without NUL.")
    if sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in args) > MAX_ARGS_SIZE:
        raise RequestError(400, "invalid-input", f"'program.args' take more than "
                                                 f"{MAX_ARGS_SIZE} bytes.")


def place_program(files, driver, request):
    """Write an execute's program file (its code, under `program.name` or the
    language's source name) into the work folder; the Session's `program` for it."""
    program = request.get("program")
    if program is None:
        return None
    if driver is None:
        raise RequestError(400, "programs-unsupported", "This kernel's language does not "
                                                        "run programs.")
    code = request["code"]
    name = driver.entry_name(code, program.get("name"))
    placed = files.upload(name, code.encode("utf-8", "surrogatepass"))
    return {"path": os.path.join(files.root, *placed["path"].split("/")),
            "args": list(program.get("args", [])), "stdin": program.get("stdin")}


def error_reply(request_id, e):
    return {"id": request_id, "reply": e.code, "error": e.error, "cause": e.cause}


def answer_request(files, driver, request):
    """The reply to upload/download/list and to the driver's assists (raising
    RequestError for refusals)."""
    action = request["action"]
    if action in ASSIST_ACTIONS:
        return dict(answer_assist(driver, request), reply=200)
    if action == "upload":
        return dict(files.upload(request.get("path"), request.get("data")), reply=200)
    if action == "download":
        return dict(files.download(request.get("path")), reply=200)
    return dict(files.list(request.get("path", "")), reply=200)


def answer_assist(driver, request):
    """complete, inspect and is_complete, from the driver where it knows how (else: no
    matches, not found, unknown)."""
    action, code = request["action"], request["code"]
    cursor = request.get("cursor_pos", len(code))
    ask = getattr(driver, action, None)
    if action == "is_complete":
        status, indent = ask(code) if ask else ("unknown", "")
        return {"status": status, "indent": indent}
    if action == "complete":
        matches, start, end = ask(code, cursor) if ask else ([], cursor, cursor)
        return {"matches": [_text(m) for m in matches[:MAX_MATCHES]],
                "cursor_start": start, "cursor_end": end}
    found, text = ask(code, cursor) if ask else (False, "")
    return {"found": found, "data": [["text/plain", _text(text)]] if found else []}


def _pack(reply):
    """msgpack bytes of `reply`; one that cannot be encoded becomes a 500 error reply
    that keeps its id (when the id itself can be sent), so whoever waits on the
    request hears of it."""
    try:
        return msgpack.packb(reply, use_bin_type=True)
    except Exception as e:
        request_id = reply.get("id")
        if not (isinstance(request_id, str) or (isinstance(request_id, int)
                                                and -2**63 <= request_id < 2**64)):
            request_id = None
        return msgpack.packb({"id": _text(request_id) if isinstance(request_id, str)
                              else request_id, "reply": 500, "error": "internal-error",
                              "cause": _text(f"The reply could not be encoded: {e}")},
                             use_bin_type=True)


def _max_file_size():
    try:
        return int(os.environ.get("SORNA_MAX_FILE_SIZE", MAX_FILE_SIZE))
    except ValueError:
        return MAX_FILE_SIZE


def _block_signals():
    """SIGINT and SIGTERM must reach the main thread (which runs the code), not us."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})


class LocalDaemon:
    """The daemon's answers and events in-process: no socket, thread or signal.

    `handle(request)` returns the messages the real daemon would send for it, in order.
    A run happens inside the `execute` call and its events are the answer, unless
    `hold` is set: then the run is accepted (further executes get 409, as while real
    code runs) and goes on until `release()` returns its events, or until an interrupt
    naming it ends it with KeyboardInterrupt (unless `ignore_interrupts`, code that
    catches KeyboardInterrupt). `restart` drops a held run, as the real daemon's exec
    does. Reads of standard input call `read_input(prompt, password)` (default:
    EOFError): user code cannot be suspended without a thread.
    """

    def __init__(self, work_dir, read_input=None, max_file_size=MAX_FILE_SIZE):
        self.work_dir = work_dir
        self.read_input = read_input or self._no_input
        self.files = FileStore(work_dir, max_file_size)
        self.hold = False
        self.ignore_interrupts = False
        self._held = None  # (run id, code, program) of a run in progress
        self._sent = []
        self.session = self._new_session()

    @staticmethod
    def _no_input(prompt, password):
        raise EOFError("no input is available in this kernel")

    def _new_session(self):
        driver = python_driver()
        return Session(self._collect, driver, work_dir=self.work_dir,
                       read_input=self.read_input,
                       program_driver=make_program_driver(driver, self.work_dir,
                                                          standalone=True))

    def _collect(self, event):
        self._sent.append(event)

    def handle_payload(self, payload):
        """Like `handle`, from and to msgpack bytes."""
        try:
            request = parse_request(payload)
        except RequestError as e:
            return [_pack(error_reply(e.request_id, e))]
        return [_pack(m) for m in self.handle(request)]

    @property
    def running(self):
        return self._held is not None

    def release(self):
        """The events of the held run, which ends now; [] when there is none."""
        if self._held is None:
            return []
        (run_id, code, program), self._held = self._held, None
        self._sent = []
        self.session.execute(run_id, code, program)
        sent, self._sent = self._sent, []
        return sent

    def handle(self, request):
        request_id, action = request.get("id"), request.get("action")
        try:
            if action == "ping":
                return [{"id": request_id, "reply": 0}]
            if action == "execute":
                if not self.session.reserve(request_id):
                    raise RequestError(409, "kernel-busy", "A run is going on already; "
                                                           "wait for its finished event.")
                try:
                    program = place_program(self.files, self.session.program_driver,
                                            request)
                except RequestError:
                    self.session.release()
                    raise
                self._held = (request_id, request["code"], program)
                return [] if self.hold else self.release()
            if action == "input":
                raise RequestError(409, "not-waiting-input", "No read is waiting for "
                                                             "input.")
            if action == "interrupt":
                run = request.get("run")
                if self.ignore_interrupts:  # signalled, and the code goes on
                    return [{"id": request_id, "reply": 200, "interrupted":
                             self._held is not None and run in (None, self._held[0])}]
                interrupted = self.session.interrupt(lambda: None, run)
                reply = [{"id": request_id, "reply": 200, "interrupted": interrupted}]
                return reply + self.release() if interrupted else reply
            if action == "restart":
                self._held = None
                self.session = self._new_session()
                return [{"id": request_id, "reply": 200}]
            return [dict(answer_request(self.files, self.session.driver, request),
                         id=request_id)]
        except RequestError as e:
            return [error_reply(request_id, e)]


class Daemon:
    """The real daemon: code in the main thread, the socket in one I/O thread."""

    def __init__(self, path=SOCKET_PATH, work_dir=None, max_file_size=None,
                 capture_fds=True, driver=None):
        self.path = path
        self.work_dir = os.path.realpath(work_dir or os.getcwd())
        self.environ = dict(os.environ)
        self.capture = FdCapture(self._capture_sink) if capture_fds else None
        self.driver = driver or make_driver(capture=self.capture is not None)
        self.session = Session(self._emit, self.driver, work_dir=self.work_dir,
                               capture=self.capture, wake=self._wake,
                               program_driver=make_program_driver(self.driver,
                                                                  self.work_dir))
        self.files = FileStore(self.work_dir, max_file_size or _max_file_size())
        # The largest frame a peer may send: an upload's file and its envelope.
        self.max_frame = self.files.max_size + 65536
        self.jobs = queue.Queue()
        self._outgoing = collections.deque()  # (connection, message)
        # Held while messages go out, by either thread: the queue's order is kept
        # when the main thread sends a run's events itself.
        self._send_lock = threading.Lock()
        self._run_connection = None
        self._stopping = False
        self._wake_r = self._wake_w = None
        self._doorbell_r = self._doorbell_w = None  # new jobs and signals wake main
        self._main_ident = threading.main_thread().ident
        self._io_thread = None
        self.diagnostics = sys.stderr

    def _capture_sink(self, kind, text):
        self.session.output.add(kind, text)

    # -- thread-safe hand-offs to the I/O thread

    def _emit(self, event):
        """Send a run's event. With nothing queued before it, the emitting thread sends
        it itself: a short run's end costs no hand-off to the I/O thread (which is woken
        only if the socket could not take it all)."""
        connection = self._run_connection
        with self._send_lock:
            if self._outgoing or connection is None or connection.closed:
                self._outgoing.append((connection, event))
            else:
                connection.send(_pack(event))
                if not connection.unsent:
                    return
        self._wake()

    def _wake(self):
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError, TypeError):
            pass

    def log(self, message):
        try:
            self.diagnostics.write(f"sorna-repl: {message}\n")
            self.diagnostics.flush()
        except Exception:
            pass

    # -- main thread

    def serve(self):
        """Answer requests until SIGTERM; returns after cleaning up."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        signal.signal(signal.SIGINT, lambda signum, frame: self.session.on_sigint())
        self._wake_r, self._wake_w = os.pipe()
        self._doorbell_r, self._doorbell_w = os.pipe()
        for fd in (self._wake_r, self._wake_w, self._doorbell_r, self._doorbell_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self._doorbell_w, warn_on_full_buffer=False)
        if self.capture:
            self.capture.start()
            self.diagnostics = open(os.dup(self.capture.saved[2]), "w", buffering=1,
                                    encoding="utf-8", errors="backslashreplace")
        if hasattr(self.driver, "stdout"):
            # Between runs too (user threads), Python-level output goes to the next run.
            sys.stdout, sys.stderr = self.driver.stdout, self.driver.stderr
        self.driver.start()
        listener = _listen(self.path)
        self._io_thread = threading.Thread(target=self._io_loop, args=(listener,),
                                           name="sorna-io", daemon=True)
        self._io_thread.start()
        self.log(f"{self.driver.language} runner {os.getpid()} serving {self.path} "
                 f"(work folder {self.work_dir})")
        try:
            while True:
                self._execute(*self._next_job())
        except Terminate:
            pass
        finally:
            self._shutdown()

    def _execute(self, run_id, code, program):
        try:
            self.session.execute(run_id, code, program)
        except KeyboardInterrupt:  # an interrupt that landed between user code and us
            if self.session.busy:
                finished = {"id": run_id, "event": "finished", "reply": 200,
                            "exceptions": [["KeyboardInterrupt", [], False,
                                            "KeyboardInterrupt\n"]], "files": []}
                with self.session._lock:
                    self.session.output.emit_after(finished, end=True)
                    self.session.busy = self.session.interruptible = False

    def _next_job(self):
        """Wait for a job in select(), not in a lock: a signal arriving just before a
        lock wait would go unnoticed, while the wakeup fd makes select() return."""
        while True:
            try:
                return self.jobs.get_nowait()
            except queue.Empty:
                pass
            select.select([self._doorbell_r], [], [], 5.0)
            try:
                while os.read(self._doorbell_r, 4096):
                    pass
            except BlockingIOError:
                pass

    def _on_sigterm(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut cleanup
        raise Terminate()

    def _shutdown(self):
        self._stopping = True
        self._wake()
        if self._io_thread is not None:
            self._io_thread.join(5)
        try:
            os.unlink(self.path)
        except OSError:
            pass
        self.driver.stop()
        if self.capture:
            self.capture.restore()
        self.log("stopped")

    # -- I/O thread

    def _io_loop(self, listener):
        _block_signals()
        self._connections = {}  # fd -> _Connection
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        try:
            while not self._stopping:
                due = self.session.output.due_in()
                if self.session.interrupt_unanswered:
                    due = min(due if due is not None else INTERRUPT_RETRY,
                              INTERRUPT_RETRY)
                if self.session.watches_stdin and not self.session.reading:
                    due = min(due if due is not None else STDIN_POLL, STDIN_POLL)
                timeout = None if due is None else max(1, int(due * 1000 + 0.999))
                ready = dict(poller.poll(timeout))
                if self.session.interrupt_unanswered:
                    self.session.retry_interrupt()
                if self.session.watches_stdin:
                    self.session.poll_stdin()
                if self._wake_r in ready:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                self.session.output.tick()
                self._send_outgoing()
                if listener.fileno() in ready:
                    self._accept(listener, poller)
                for fd, events in ready.items():
                    connection = self._connections.get(fd)
                    if connection is None:
                        continue
                    if events & select.POLLOUT:
                        connection.flush()
                    if events & (select.POLLIN | select.POLLHUP | select.POLLERR):
                        for payload in connection.receive(self.max_frame):
                            self._on_payload(connection, payload)
                            self._send_outgoing()
                for fd, connection in list(self._connections.items()):
                    if connection.closed:
                        poller.unregister(fd)
                        del self._connections[fd]
                    else:
                        poller.modify(fd, select.POLLIN | (select.POLLOUT
                                                           if connection.unsent else 0))
        except Exception as e:
            self.log(f"the I/O thread failed: {type(e).__name__}: {e}")
            os.kill(os.getpid(), signal.SIGTERM)
        finally:
            try:
                self._send_outgoing()
                for connection in self._connections.values():
                    connection.flush(blocking=True)
            except Exception as e:
                self.log(f"events lost at shutdown: {type(e).__name__}: {e}")
            for connection in self._connections.values():
                connection.close()
            listener.close()

    def _accept(self, listener, poller):
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self._connections) >= MAX_CONNECTIONS:
            sock.close()
            return
        connection = _Connection(sock, self.log)
        self._connections[sock.fileno()] = connection
        poller.register(sock.fileno(), select.POLLIN)

    def _send_outgoing(self):
        with self._send_lock:
            while self._outgoing:
                connection, message = self._outgoing.popleft()
                if connection is not None:
                    connection.send(_pack(message))

    def _on_payload(self, connection, payload):
        try:
            request = parse_request(payload)
        except RequestError as e:
            connection.send(_pack(error_reply(e.request_id, e)))
            return
        try:
            reply = self._answer(request, connection)
        except RequestError as e:
            reply = error_reply(request.get("id"), e)
        except Exception as e:
            self.log(f"{request['action']} failed: {type(e).__name__}: {e}")
            reply = {"id": request.get("id"), "reply": 500, "error": "internal-error",
                     "cause": _text(f"{type(e).__name__}: {e}")}
        if reply is not None:
            connection.send(_pack(reply))
            if request["action"] == "restart":
                connection.flush(blocking=True)
                self._restart()

    def _answer(self, request, connection):
        request_id, action = request.get("id"), request["action"]
        if action == "ping":
            return {"id": request_id, "reply": 0}
        if action == "execute":
            if not self.session.reserve(request_id):
                raise RequestError(409, "kernel-busy", "A run is going on already; "
                                                       "wait for its finished event.")
            try:
                program = place_program(self.files, self.session.program_driver, request)
            except RequestError:
                self.session.release()
                raise
            self._run_connection = connection
            self.session.output.watch()
            self.jobs.put((request_id, request["code"], program))
            try:
                os.write(self._doorbell_w, b"j")
            except BlockingIOError:
                pass  # full: main has plenty of reasons to look already
            return None  # the run's events are the answer
        if action == "input":
            if not self.session.provide_input(request["text"], request.get("eof") is True):
                raise RequestError(409, "not-waiting-input", "No read is waiting for "
                                                             "input.")
            return {"id": request_id, "reply": 200}
        if action == "interrupt":
            interrupted = self.session.interrupt(self._signal_main, request.get("run"))
            return {"id": request_id, "reply": 200, "interrupted": interrupted}
        if action == "restart":
            return {"id": request_id, "reply": 200}
        return dict(answer_request(self.files, self.driver, request), id=request_id)

    def _signal_main(self):
        """SIGINT for the main thread: the flag Python checks between bytecodes (set
        even while system() ignores the signal), and the signal itself, which ends a
        blocking call (sleep, a lock, select) with EINTR."""
        _thread.interrupt_main(signal.SIGINT)
        signal.pthread_kill(self._main_ident, signal.SIGINT)

    def _restart(self):
        """Replace this process with a fresh interpreter on the same socket path (every
        descriptor of ours is close-on-exec: the peers see their connection end)."""
        self.log("restarting")
        self.driver.stop()
        if self.capture:
            self.capture.restore()
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        argv = list(getattr(sys, "orig_argv", None) or [sys.executable] + sys.argv)
        try:
            os.chdir(self.work_dir)
            os.execve(sys.executable, argv, self.environ)
        except OSError as e:
            self.log(f"restart failed: {e}")
            os._exit(1)


def _listen(path):
    """A listening Unix stream socket at `path` (what a previous process left there,
    socket or not, is replaced)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(MAX_CONNECTIONS)
    listener.setblocking(False)
    return listener


class _Connection:
    """One peer's connection: frames in and out, each a 4-byte big-endian length and
    its payload. The I/O thread reads; both threads may send (under the lock)."""

    def __init__(self, sock, log):
        sock.setblocking(False)
        self.sock = sock
        self.log = log
        self._in = bytearray()
        self._out = bytearray()
        self._lock = threading.RLock()
        self.closed = False

    @property
    def unsent(self):
        return len(self._out)

    def receive(self, max_frame):
        """The payloads of the complete frames that have arrived."""
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    self.close()
                    break
                self._in += data
                if len(data) < 262144:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.close()
        payloads, start = [], 0
        while len(self._in) - start >= HEADER.size:
            (size,) = HEADER.unpack_from(self._in, start)
            if size > max_frame:
                self.log(f"a peer sent a frame of {size} bytes; closing its connection")
                self.close()
                break
            if len(self._in) - start < HEADER.size + size:
                break
            payloads.append(bytes(self._in[start + HEADER.size:start + HEADER.size + size]))
            start += HEADER.size + size
        del self._in[:start]
        return payloads

    def send(self, payload):
        with self._lock:
            if self.closed:
                return
            if len(self._out) > MAX_UNSENT:
                self.log("a peer does not read what it is sent; closing its connection")
                self.close()
                return
            self._out += HEADER.pack(len(payload)) + payload
            self.flush()

    def flush(self, blocking=False):
        with self._lock:
            if blocking and not self.closed:
                self.sock.settimeout(5)
            try:
                while self._out and not self.closed:
                    sent = self.sock.send(self._out)
                    del self._out[:sent]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close()
            finally:
                if blocking and not self.closed:
                    self.sock.setblocking(False)

    def close(self):
        with self._lock:
            if not self.closed:
                self.closed = True
                self.sock.close()


# Tracing syscalls per architecture: (AUDIT_ARCH, ptrace, process_vm_readv, _writev).
_TRACING_SYSCALLS = {"x86_64": (0xC000003E, 101, 310, 311),
                     "aarch64": (0xC00000B7, 117, 270, 271)}


def forbid_tracing():
    """Install a seccomp filter (on top of the engine's) that makes ptrace and
    process_vm_readv/writev fail with EPERM for this process and everything it starts:
    kernel code cannot inspect or steer the kernel's other processes, its init included.
    Calls through another ABI (i386 or x32 on x86_64) are refused altogether, so they
    cannot go around it. Returns False where the architecture is unknown or the kernel refuses the filter."""
    import ctypes
    import platform

    numbers = _TRACING_SYSCALLS.get(platform.machine())
    if numbers is None:
        return False
    arch, *denied = numbers
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | 1  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO(EPERM)
    program = [(ld, 0, 0, 4),  # the architecture: another one is refused
               (jeq, 0, 3 + len(denied), arch),
               (ld, 0, 0, 0),  # the syscall number
               (jge, 1 + len(denied), 0, 0x40000000)]  # x32 calls: refused
    for i, number in enumerate(denied):
        program.append((jeq, len(denied) - i, 0, number))
    program += [(ret, 0, 0, allow), (ret, 0, 0, deny)]

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte),
                    ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    filters = (Filter * len(program))(*program)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p,
                           ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS, needed for a filter
        return False
    prog = Program(len(program), filters)
    return libc.prctl(22, 2, ctypes.addressof(prog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER


def python_driver(capture=False):
    from python_driver import PythonDriver

    return PythonDriver(terminate=Terminate, runner_file=RUNNER_FILE, capture=capture)


def make_driver(capture=True):
    """The driver the environment asks for (SORNA_DRIVER, python by default)."""
    kind = os.environ.get("SORNA_DRIVER", "python")
    if kind == "python":
        return python_driver(capture)
    import process_driver

    env = {name: os.environ.get(name) for name in
           ("SORNA_LANG", "SORNA_COMMAND", "SORNA_SOURCE", "SORNA_BUILD", "SORNA_RUN",
            "SORNA_BUILD_DIR", "SORNA_SOURCES")}
    if kind == "interpreter":
        return process_driver.InterpreterDriver(
            env["SORNA_LANG"], shlex.split(env["SORNA_COMMAND"]), Terminate)
    if kind == "compiled":
        return process_driver.CompiledDriver(
            env["SORNA_LANG"], shlex.split(env["SORNA_RUN"]), Terminate,
            build=shlex.split(env["SORNA_BUILD"]),
            build_root=env["SORNA_BUILD_DIR"] or "/build",
            sources=shlex.split(env["SORNA_SOURCES"] or ""), source=env["SORNA_SOURCE"])
    raise SystemExit(f"sorna-runner: unknown SORNA_DRIVER {kind!r}")


def make_program_driver(driver, work_dir, standalone=False):
    """What runs `program` runs: a compiled language's own driver; for an interpreted
    one, its program command (`SORNA_PROGRAM`, with `{source}` for the file; Python's
    own interpreter for the Python driver); None when the language has none."""
    import process_driver

    if isinstance(driver, process_driver.ProgramDriver):
        return driver
    python = os.environ.get("SORNA_DRIVER", "python") == "python"
    command = os.environ.get("SORNA_PROGRAM")
    if command:
        argv = shlex.split(command)
    elif python:
        argv = [sys.executable, "{source}"]
    else:
        return None
    return process_driver.ProgramDriver(
        driver.language, argv, Terminate, work_dir=work_dir, standalone=standalone,
        source=os.environ.get("SORNA_SOURCE") or ("main.py" if python else "main"))



def main():
    forbid_tracing()
    Daemon().serve()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)  # user threads must not keep a stopped daemon alive


if __name__ == "__main__":
    main()
