"""Drivers whose code runs in a child process, for every language but Python.

`InterpreterDriver` keeps one interpreter running for the whole session
(`repl/<lang>/run.<ext>`), so state carries over between runs; it sends each run's code
over a pipe and reads the run's end back (the driver protocol of docs/PROTOCOL.md):

    fd 3, runner -> driver:   run <n>\\n<n bytes of UTF-8 code>
    fd 4, driver -> runner:   error <a> <b> <c> <d>\\n<name><message><traceback><0|1>
                              media <a> <b>\\n<mime type><content>
                              done\\n

(`<a> <b> ...` are the byte lengths of the fields that follow; the last field of
`error` is 1 when the code never started, a syntax error.) Fds 1 and 2 are the
runner's captured output; fd 0 is a pipe the runner writes `input` text to.

`CompiledDriver` compiles each run into a program in a folder of its own under the
exec-allowed build folder, runs it, and removes the folder: only files in the work
folder carry over.

Both find out that the program waits for input by looking, while a run goes on, at
what every process of the kernel is blocked in (stdin_wait.py): a read of the pipe that
is its standard input, or a wait for it to be readable, is one nobody can answer but the
user.
"""

import base64
import codecs
import fcntl
import fnmatch
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time

import code_shape
import stdin_wait

MAX_FIELD = 64 * 1024 * 1024  # a driver message field; the output cap cuts it further
# Seconds a driver has to answer a completion or an inspection (between runs: it is
# idle, but a JVM's answers can take seconds on a loaded machine), below the agent's
# 10 s for the daemon's answer; and the message it answers each with.
ASK_TIMEOUT = 6.0
ANSWERS = {"complete": "matches", "inspect": "found"}
# Seconds an interpreter whose session ended may take to finish exiting before its group
# is killed: it closes its pipes before its exit status is set, and killing it then
# would report `exit 3` as SIGKILL.
EXIT_GRACE = 1.0


class DriverError(Exception):
    """The driver broke the protocol or ended: the session starts a fresh one."""


class _Child:
    """What both drivers share: a program in a session (process group) of its own,
    fed on a stdin pipe, interrupted with SIGINT, killed with its group."""

    watches_stdin = True
    retries_interrupts = False
    interrupt_signal = signal.SIGINT  # what `signal()` sends the program's group

    def __init__(self, language, terminate):
        self.language = language
        self.terminate = terminate
        self.session = None
        self.pid = None
        self._stdin_w = None
        self._stdin_link = None
        # A read end of the program's stdin pipe kept here: after an `eof` input closed
        # the write end, /proc/self/fd/<it> opens a new one for the next run.
        self._stdin_keep = None
        self._feeding = 0  # writers of input text still at work
        self._feeding_lock = threading.Lock()

    def bind(self, session):
        self.session = session

    def _spawn(self, argv, cwd, fds=(), env=None):
        """Start `argv` with a fresh stdin pipe; `fds` are (fd, child's number) pairs."""
        stdin_r, stdin_w = os.pipe()
        actions = [(os.POSIX_SPAWN_DUP2, stdin_r, 0)]
        actions += [(os.POSIX_SPAWN_DUP2, fd, number) for fd, number in fds]
        try:
            # Signals as a fresh process has them: the runner's I/O threads block
            # SIGINT, and an interrupt must reach the program.
            self.pid = os.posix_spawnp(argv[0], argv, env or os.environ,
                                       file_actions=actions, setsid=True, setsigmask=(),
                                       setsigdef=(signal.SIGINT, signal.SIGTERM,
                                                  signal.SIGPIPE))
        except BaseException:
            os.close(stdin_r)
            raise
        self._stdin_keep = stdin_r
        self._stdin_link = os.readlink(f"/proc/self/fd/{stdin_w}")
        self._stdin_w = stdin_w
        return self.pid

    def reopen_stdin(self):
        """Give the program a writable standard input again after an `eof` input
        ended it (an interpreter's next run reads from it again)."""
        with self._feeding_lock:
            if self._stdin_w is None and self._stdin_keep is not None and not self._feeding:
                try:
                    self._stdin_w = os.open(f"/proc/self/fd/{self._stdin_keep}",
                                            os.O_WRONLY | os.O_CLOEXEC)
                except OSError:
                    pass

    # -- called from the runner's I/O thread

    def signal(self):
        if self.pid is not None:
            try:
                os.killpg(self.pid, self.interrupt_signal)
            except OSError:
                pass

    def feed(self, text, eof=False):
        """Write `text` to the program's standard input as one line (a newline is added
        unless it ends with one, as Python's readline adds it), in a thread of its own
        (the program may read it slowly). With `eof`, `text` as it is and then
        end-of-file: the write end is closed once the text is written."""
        if not eof:
            text = text if text.endswith("\n") else text + "\n"
        data = text.encode("utf-8", "surrogatepass")
        with self._feeding_lock:
            fd = self._stdin_w
            if fd is None:
                return
            if eof:
                self._stdin_w = None  # the writer thread closes it
            self._feeding += 1

        def write():
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            except OSError:
                pass
            finally:
                if eof:
                    os.close(fd)
                with self._feeding_lock:
                    self._feeding -= 1

        threading.Thread(target=write, name="sorna-stdin", daemon=True).start()

    def reading_stdin(self):
        """Whether some process of the kernel is blocked reading our stdin pipe, with
        nothing left to read in it (a read of text we gave is not a new one)."""
        if (self._stdin_link is None or self._stdin_w is None or not stdin_wait.supported()
                or self._feeding):
            return False
        try:
            unread = struct.unpack("i", fcntl.ioctl(self._stdin_w, termios.FIONREAD,
                                                    b"\0\0\0\0"))[0]
        except OSError:
            return False
        if unread:
            return False
        me = os.getpid()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            if any(stdin_wait.waits_for(pid, tid, self._stdin_link) for tid in tasks):
                return True
        return False

    def _reap(self, grace=0.0):
        """Kill the program's whole group and collect its status (None if gone).
        `grace`: seconds the program may take to finish exiting on its own first (an
        interpreter closes its pipes before its exit status is set)."""
        pid, self.pid = self.pid, None
        with self._feeding_lock:
            for fd in (self._stdin_w, self._stdin_keep):
                if fd is not None:
                    os.close(fd)
            self._stdin_w = self._stdin_keep = self._stdin_link = None
        if pid is None:
            return None
        status = None
        deadline = time.monotonic() + grace
        try:
            while status is None:
                done, exited = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = exited
                elif time.monotonic() >= deadline:
                    break
                else:
                    time.sleep(0.005)
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, signal.SIGKILL)  # the group: whatever it started goes too
        except OSError:
            pass
        if status is not None:
            return status
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None

    def stop(self):
        self._reap()


def describe_status(status):
    """(exception name, args, message) of a program's wait status, or None when it
    exited with 0."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals._value2member_map_ \
            else f"signal {number}"
        if number == signal.SIGINT:
            return "Interrupt", [], "the program was interrupted (SIGINT)"
        return "Signal", [name], f"the program was killed by {name}"
    code = os.WEXITSTATUS(status)
    if code:
        return "ExitStatus", [code], f"the program exited with status {code}"
    return None


class InterpreterDriver(_Child):
    def __init__(self, language, command, terminate, work_dir=None, shape=None,
                 interrupt_signal=None):
        super().__init__(language, terminate)
        if interrupt_signal is not None:  # an interpreter that cannot take SIGINT
            self.interrupt_signal = interrupt_signal
        self.command = command
        self.shape = shape or {}  # the code_shape rules its cells follow
        self.work_dir = work_dir or os.getcwd()
        self._to = self._from = None
        self._buffer = b""
        # The pipes carry one exchange at a time: a run (the main thread), or a
        # completion asked between runs (the I/O thread).
        self._pipes = threading.Lock()

    def start(self):
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        try:
            self._spawn(self.command, self.work_dir, fds=((to_r, 3), (from_w, 4)))
        finally:
            os.close(to_r)
            os.close(from_w)
        self._to, self._from, self._buffer = to_w, from_r, b""

    def stop(self, grace=0.0):
        for fd in (self._to, self._from):
            if fd is not None:
                os.close(fd)
        self._to = self._from = None
        return self._reap(grace)

    def is_complete(self, code):
        """Whether Enter would run `code` in a console (code_shape: scanned, not run)."""
        return code_shape.is_complete(self.shape, code)

    def complete(self, code, cursor):
        """The names that complete the token before `cursor`, as the language's driver
        finds them in the session (`complete` of the pipe protocol). Asked between runs
        only: during a run the interpreter is busy, and the answer is no matches."""
        token = code_shape.completion_token(self.shape, code[:cursor])
        answer = self._ask("complete", token)
        if answer is None:
            return [], cursor, cursor
        return [m for m in answer.split("\n") if m], cursor - len(token), cursor

    def inspect(self, code, cursor):
        """(found, text): what the driver tells of the name at `cursor` (`inspect` of the
        pipe protocol: its type, value or signature, as the language can say)."""
        token = code_shape.completion_token(self.shape, code[:cursor]) + \
            code_shape.NAME_REST.match(code, cursor).group()
        answer = self._ask("inspect", token) if token else None
        return bool(answer), answer or ""

    def _ask(self, kind, token):
        """The driver's one-field answer to `kind` about `token`, or None when a run
        holds the pipes or the driver is not running."""
        if not self._pipes.acquire(blocking=False):
            return None
        try:
            if self.pid is None:
                return None
            data = token.encode("utf-8", "surrogatepass")
            self._write(b"%s %d\n" % (kind.encode(), len(data)) + data)
            answer, fields = self._read_message(time.monotonic() + ASK_TIMEOUT)
            if answer != ANSWERS[kind] or len(fields) != 1:
                raise DriverError(f"the {self.language} driver answered {answer!r}")
            return fields[0].decode("utf-8", "replace")
        except DriverError:
            self.stop()  # out of step with us: the next run starts a fresh one
            return None
        finally:
            self._pipes.release()

    def run(self, code):
        with self._pipes:
            return self._run(code)

    def _run(self, code):
        if self.pid is None:
            self.start()
        self.reopen_stdin()
        data = code.encode("utf-8", "surrogatepass")
        exceptions = []
        try:
            with self.session.user_code():
                self._write(b"run %d\n" % len(data) + data)
                while True:
                    kind, fields = self._read_message()
                    if kind == "done":
                        break
                    if kind == "error" and len(fields) == 4:
                        name, message, tb, before = (f.decode("utf-8", "replace")
                                                     for f in fields)
                        exceptions.append([name, [message] if message else [],
                                           before == "1", tb])
                    elif kind == "media" and len(fields) == 2:
                        mime = fields[0].decode("utf-8", "replace")
                        self.session.add_media(mime, media_content(mime, fields[1]))
                    elif kind == "result" and len(fields) == 1:
                        self.session.add_bundle("result", [
                            ["text/plain", fields[0].decode("utf-8", "replace")]])
                    else:
                        raise DriverError(f"the {self.language} driver sent {kind!r}")
        except KeyboardInterrupt:  # asked for before the code was sent
            exceptions.append(["Interrupt", [], True, "interrupted before it started"])
        except DriverError as e:
            status = self.stop(grace=EXIT_GRACE)
            why = str(e) if status is None else _ended(status)
            exceptions.append(["SessionEnded", [why], False,
                               f"The {self.language} session ended ({why}); a fresh one "
                               f"starts with the next run, without the old state.\n"])
        return exceptions

    def _write(self, data):
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self._to, view):]
        except OSError as e:
            raise DriverError(f"it stopped reading ({e.strerror})")

    def _read(self, size, deadline=None):
        while len(self._buffer) < size:
            self._fill(deadline)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _fill(self, deadline):
        if deadline is not None and not select.select(
                [self._from], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise DriverError("it did not answer in time")
        chunk = os.read(self._from, 1 << 16)
        if not chunk:
            raise DriverError("it ended")
        self._buffer += chunk

    def _read_message(self, deadline=None):
        """The next message; by `deadline` (time.monotonic()) when one is given."""
        while b"\n" not in self._buffer:
            if len(self._buffer) > 256:
                raise DriverError("it sent a header line that never ends")
            self._fill(deadline)
        line, self._buffer = self._buffer.split(b"\n", 1)
        words = line.decode("ascii", "replace").split()
        if not words or not all(w.isdigit() and int(w) <= MAX_FIELD for w in words[1:]):
            raise DriverError(f"it sent a bad header {line[:80]!r}")
        return words[0], [self._read(int(n), deadline) for n in words[1:]]


def media_content(mime, data):
    """Media as the protocol carries it: text types as text, the rest base64."""
    if mime.startswith("text/") or mime in ("image/svg+xml", "application/json"):
        return data.decode("utf-8", "replace")
    return base64.b64encode(data).decode("ascii")


def _ended(status):
    described = describe_status(status)
    return described[2] if described else "the program exited with status 0"


class ProgramDriver(_Child):
    """Runs a program file of the work folder with its arguments, as a shell would: the
    program's exit status is its end. `run` and `build` (compiled languages only) are
    argv lists in which `{dir}` stands for the build's folder, `{source}` for the
    program's file, `{main}` for its main class (below), and an item `{sources}` for
    the program's file and every other source file of its folder that matches
    `sources` (glob patterns), so that a program of several files compiles whole (the
    program's file first, or last with `main_last`: Fortran compiles the modules a
    program uses before it).
    A build happens in a folder of its own under the exec-allowed `build_root`, removed
    after the run.

    `standalone`: no daemon captures fds 1 and 2 or answers reads around it (an
    in-process daemon): the driver passes the program's output to the session itself,
    and the program's standard input is at its end."""

    def __init__(self, language, run, terminate, build=None, build_root="/build",
                 sources=(), source="main", work_dir=None, standalone=False,
                 main_last=False):
        super().__init__(language, terminate)
        self.main_last = main_last
        self.standalone = standalone
        self.run_argv = run
        self.build = build
        self.build_root = build_root
        self.sources = sources
        self.source = source  # the program file's name; `{main}` in it is its main class
        self.work_dir = work_dir or os.getcwd()
        self._count = 0
        self.env = dict(os.environ)
        if build:
            self.env["TMPDIR"] = os.path.join(build_root, "tmp")

    def start(self):
        if self.build:
            os.makedirs(self.env["TMPDIR"], exist_ok=True)

    def entry_name(self, code, name=None):
        """The name a program's file takes: `name` (the default source name without
        one), except that a language whose source names its main class (Java) keeps
        the folder of `name` and takes the class's name."""
        if "{main}" not in self.source:
            return name or self.source
        folder = os.path.dirname(name) if name else ""
        return os.path.join(folder, self.source.format(main=main_class(code)))

    def run_program(self, path, args=(), stdin=None):
        """Build (when the language compiles) and run the program at `path`, with
        `args` (and `stdin`, when given, as its whole standard input, then end-of-file:
        it never waits for input); the exceptions of the run, as `run` of every driver
        gives them."""
        folder = os.path.dirname(path)
        others = sorted(
            os.path.join(folder, n) for n in os.listdir(folder)
            if n != os.path.basename(path) and not n.startswith(".")
            and any(fnmatch.fnmatchcase(n, p) for p in self.sources)
            and os.path.isfile(os.path.join(folder, n)))
        sources = others + [path] if self.main_last else [path] + others
        main = main_class(_read(path)) if "{main}" in self.source else ""
        return self._build_and_run(self._new_folder(), path, sources, main, list(args),
                                   stdin)

    def _new_folder(self):
        """A fresh folder to build in (None for a language that does not build)."""
        if not self.build:
            return None
        self._count += 1
        folder = os.path.join(self.build_root, f"run-{self._count}")
        os.makedirs(folder)
        return folder

    def _build_and_run(self, folder, source, sources, main, args, stdin=None):
        """Build in `folder` and run; `folder` is removed after."""
        readers = ()
        try:
            values = {"dir": folder, "source": source, "main": main}

            def argv(template):
                words = []
                for word in template:
                    words += sources if word == "{sources}" else [word.format(**values)]
                return words

            with self.session.user_code():
                if self.build:
                    failed = self._compile(argv(self.build), folder)
                    if failed:
                        return [["CompileError", [failed], True, failed]]
                if self.standalone:
                    readers = self._spawn_standalone(argv(self.run_argv) + args)
                else:
                    self._spawn(argv(self.run_argv) + args, self.work_dir, env=self.env)
                if stdin is not None or self.standalone:
                    self.feed(stdin or "", eof=True)
                status = os.waitpid(self.pid, 0)[1]
                self.pid = None
            described = describe_status(status)
            if described is None:
                return []
            name, args, message = described
            return [[name, args, False, message + "\n"]]
        except KeyboardInterrupt:
            return [["Interrupt", [], True, "interrupted before it started"]]
        finally:
            self._reap()  # whatever it started in its group goes with it
            for reader in readers:
                reader.join(5)
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    def _spawn_standalone(self, argv):
        """Start the program with its output read here (the readers, started)."""
        pipes = [os.pipe() for _ in range(2)]
        try:
            self._spawn(argv, self.work_dir, env=self.env,
                        fds=((pipes[0][1], 1), (pipes[1][1], 2)))
        finally:
            for _, write_fd in pipes:
                os.close(write_fd)
        readers = [threading.Thread(target=self._forward, args=(read_fd, kind), daemon=True)
                   for (read_fd, _), kind in zip(pipes, ("stdout", "stderr"))]
        for reader in readers:
            reader.start()
        return readers

    def _forward(self, fd, kind):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with open(fd, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(65536)
                text = decoder.decode(chunk, final=not chunk)
                if text:
                    self.session.add(kind, text)
                if not chunk:
                    return

    def _compile(self, argv, folder):
        """Run the compiler (in a group of its own, so that an interrupt reaches it);
        its messages when it fails, else None."""
        proc = subprocess.Popen(argv, cwd=folder, env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.pid = proc.pid
        try:
            out, _ = proc.communicate()
        finally:
            self.pid = None
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc.returncode == 0:
            return None
        text = out.decode("utf-8", "replace")[-64 * 1024:]
        if proc.returncode < 0 and -proc.returncode == signal.SIGINT:
            raise KeyboardInterrupt()
        return text or f"the compiler exited with status {proc.returncode}"


class CompiledDriver(ProgramDriver):
    """A compiled language's kernel: each run's code is a whole program, compiled in a
    folder of its own and run there (only files in the work folder carry over)."""

    def run(self, code):
        folder = self._new_folder()
        source = os.path.join(folder, self.entry_name(code))
        with open(source, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(code)
        main = main_class(code) if "{main}" in self.source else ""
        return self._build_and_run(folder, source, [source], main, [])


class SnippetDriver:
    """A compiled language's stateful kernel: a run that is a whole program (the
    language's `whole_program` pattern finds its main) compiles and runs on its own as
    CompiledDriver does; any other run is snippets for the language's REPL driver (an
    InterpreterDriver: Java's JShell), whose declarations live on for the next run.
    Input, interrupts and the rest go to whichever of the two runs."""

    watches_stdin = True
    retries_interrupts = False

    def __init__(self, snippets, programs, whole_program):
        self.snippets = snippets
        self.programs = programs
        self.language = snippets.language
        self._whole_program = re.compile(whole_program, re.M)
        self.active = snippets

    def is_whole_program(self, code):
        return bool(self._whole_program.search(code))

    def bind(self, session):
        self.snippets.bind(session)
        self.programs.bind(session)

    def start(self):
        self.programs.start()
        self.snippets.start()

    def stop(self, grace=0.0):
        self.programs.stop()
        return self.snippets.stop(grace)

    def run(self, code):
        self.active = self.programs if self.is_whole_program(code) else self.snippets
        return self.active.run(code)

    def feed(self, text, eof=False):
        self.active.feed(text, eof)

    def reading_stdin(self):
        return self.active.reading_stdin()

    def reopen_stdin(self):
        self.active.reopen_stdin()

    def signal(self):
        return self.active.signal()

    def is_complete(self, code):
        return self.snippets.is_complete(code)

    def complete(self, code, cursor):
        return self.snippets.complete(code, cursor)

    def inspect(self, code, cursor):
        return self.snippets.inspect(code, cursor)


# Java: the file of a public top-level class must bear its name, and the class to run
# is the one the program is named after. Comments and strings are not parsed; a class
# named in a comment before the real one is a rare miss.
_PUBLIC_TYPE = re.compile(r"^[ \t]*public\s+(?:(?:final|abstract|strictfp|sealed)\s+)*"
                          r"(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)", re.M)
_ANY_CLASS = re.compile(r"^[ \t]*(?:(?:final|abstract|strictfp)\s+)*class\s+"
                        r"([A-Za-z_$][\w$]*)", re.M)


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def main_class(code):
    """The main class of a Java program: its public top-level type, else its first
    class, else `Main`."""
    found = _PUBLIC_TYPE.search(code) or _ANY_CLASS.search(code)
    return found.group(1) if found else "Main"


__all__ = ["InterpreterDriver", "ProgramDriver", "CompiledDriver", "SnippetDriver",
           "describe_status",
           "main_class"]
