"""The daemon: code runs in the main thread (so signals and KeyboardInterrupt work), one
I/O thread owns the Unix socket and answers every request while code runs."""

import _thread
import collections
import os
import queue
import select
import signal
import socket
import sys
import threading

from repl_capture import FdCapture, block_signals
from repl_dispatch import answer
from repl_drivers import make_driver, make_program_driver
from repl_files import FileStore
from repl_session import INTERRUPT_RETRY, Session, Terminate
from repl_wire import (HEADER, MAX_FILE_SIZE, RequestError, error_reply, pack, parse_request,
                       sendable)

SOCKET_PATH = os.environ.get("SORNA_REPL_SOCKET", "/ipc/repl")
MAX_CONNECTIONS = 4  # the agent, and a tool or test beside it
MAX_UNSENT = 64 * 1024 * 1024  # what waits for a peer that does not read: then it goes
STDIN_POLL = 0.05  # seconds between looks at whether a child blocks reading stdin


def _max_file_size():
    try:
        return int(os.environ.get("SORNA_MAX_FILE_SIZE", MAX_FILE_SIZE))
    except ValueError:
        return MAX_FILE_SIZE


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
                connection.send(pack(event))
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
        block_signals()
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
                    connection.send(pack(message))

    def _on_payload(self, connection, payload):
        try:
            request = parse_request(payload)
        except RequestError as e:
            connection.send(pack(error_reply(e.request_id, e)))
            return
        try:
            reply = self._answer(request, connection)
        except RequestError as e:
            reply = error_reply(request.get("id"), e)
        except Exception as e:
            self.log(f"{request['action']} failed: {type(e).__name__}: {e}")
            reply = {"id": request.get("id"), "reply": 500, "error": "internal-error",
                     "cause": sendable(f"{type(e).__name__}: {e}")}
        if reply is not None:
            connection.send(pack(reply))
            if request["action"] == "restart":
                connection.flush(blocking=True)
                self._restart()

    def _answer(self, request, connection):
        def start_run(run_id, code, program):
            self._run_connection = connection
            self.session.output.watch()
            self.jobs.put((run_id, code, program))
            try:
                os.write(self._doorbell_w, b"j")
            except BlockingIOError:
                pass  # full: main has plenty of reasons to look already

        return answer(request, self.session, self.files, start_run, self._signal_main)

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
