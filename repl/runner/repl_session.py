"""One kernel's runs, whatever the language: busy or not, interrupts, reads of standard
input, and each run's events."""

import os
import threading
import time

from repl_files import walk_files
from repl_output import Output, fit_exceptions, fit_paths
from repl_wire import END_ROOM, clip, sendable

INTERRUPT_RETRY = 0.2  # seconds between SIGINTs until the run sees one


class Terminate(BaseException):
    """Raised by the SIGTERM handler; never reported as the user's exception."""


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
        prompt, cut = clip(sendable(prompt), max(self.output.room, END_ROOM))
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
        return walk_files(self.work_dir) if self.work_dir else {}

    def _changed(self, before):
        if not self.work_dir:
            return []
        after = walk_files(self.work_dir)
        # A name that is not UTF-8 (surrogate-escaped by os) is reported backslash-escaped:
        # as it is, it could not be sent.
        return sorted(sendable(path) for path, state in after.items()
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
