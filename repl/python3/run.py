"""Sorna's Python 3 REPL daemon: runs user code inside a kernel container.

The agent connects a ZMQ DEALER to the ROUTER bound here (an ipc:// endpoint in a
directory shared with the host, since kernels have no network) and sends one msgpack map
per message. Only the standard library, pyzmq and msgpack are used: this file is copied
into the kernel image alone, without the sorna package.

The `Executor` (running code, capturing output) is kept apart from the socket loop so
that streamed output, input requests and interrupts can be added to either side later.
"""

import ast
import builtins
import io
import os
import signal
import sys
import traceback

import msgpack
import zmq

ENDPOINT = os.environ.get("SORNA_REPL_ENDPOINT", "ipc:///ipc/repl")
INPUT_NAME = "<input>"


class Terminate(BaseException):
    """Raised by the SIGTERM handler; never reported as the user's exception."""


def _text(value):
    """A str msgpack can encode (lone surrogates would make packing fail)."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_arg(value):
    """Keep msgpack-native scalars; anything else becomes its repr."""
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int) and -2**63 <= value < 2**64:
        return value
    if isinstance(value, str):
        return _text(value)
    try:
        return _text(repr(value))
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


def _user_traceback(tb):
    """Drop the daemon's own frames, so the user sees their `<input>` lines only."""
    while tb is not None and tb.tb_frame.f_code.co_filename != INPUT_NAME:
        tb = tb.tb_next
    return tb


class _Capture(io.TextIOWrapper):
    """A text stream over a byte buffer: `print` and `sys.stdout.buffer` both work."""

    def __init__(self):
        super().__init__(io.BytesIO(), encoding="utf-8", errors="backslashreplace",
                         line_buffering=False, write_through=True)

    def text(self):
        self.flush()
        return self.buffer.getvalue().decode("utf-8", "replace")


class Executor:
    """Runs code in one persistent namespace, like a notebook's cells."""

    def __init__(self):
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}
        self.running = False

    def execute(self, code):
        """Run `code`; return its stdout, stderr and exceptions as a result map."""
        stdout, stderr = _Capture(), _Capture()
        saved = sys.stdout, sys.stderr
        exceptions = []
        sys.stdout, sys.stderr = stdout, stderr
        try:
            try:
                body, last = self._compile(code)
            except Terminate:
                raise
            except Exception as e:  # SyntaxError, ValueError (null bytes), ...
                exceptions.append(self._report(e, raised_before_exec=True))
            else:
                try:
                    self.running = True
                    exec(body, self.namespace)
                    if last is not None:
                        self._display(eval(last, self.namespace))
                except Terminate:
                    raise
                except BaseException as e:  # SystemExit, KeyboardInterrupt too
                    exceptions.append(self._report(e, raised_before_exec=False))
                finally:
                    self.running = False
        finally:
            for stream in (getattr(sys, "stdout", None), getattr(sys, "stderr", None)):
                try:
                    stream.flush()
                except Exception:
                    pass
            sys.stdout, sys.stderr = saved
        return {"stdout": stdout.text(), "stderr": stderr.text(),
                "exceptions": exceptions, "media": [], "files": []}

    @staticmethod
    def _compile(code):
        """Split off a trailing expression so its value can be shown."""
        tree = ast.parse(code, INPUT_NAME, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = compile(ast.Expression(tree.body.pop().value), INPUT_NAME, "eval")
        return compile(tree, INPUT_NAME, "exec"), last

    def _display(self, value):
        """What sys.displayhook does, without touching builtins._."""
        if value is not None:
            self.namespace["_"] = value
            print(repr(value), file=sys.stdout)

    @staticmethod
    def _report(exc, raised_before_exec):
        tb = None if raised_before_exec else _user_traceback(exc.__traceback__)
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return [type(exc).__name__, [_safe_arg(a) for a in exc.args],
                raised_before_exec, _text(text)]


class InvalidInput(Exception):
    """A request the daemon cannot act on; the message is the reply's cause."""


def handle(executor, payload):
    """Decode one request, act on it, and return the reply map."""
    request_id = None
    try:
        try:
            request = msgpack.unpackb(payload, raw=False)
        except Exception:
            raise InvalidInput("The message is not a valid msgpack document.")
        if not isinstance(request, dict):
            raise InvalidInput(f"The message must be a msgpack map, "
                               f"not a {type(request).__name__}.")
        request_id = request.get("id")
        action = request.get("action")
        if action == "ping":
            return {"id": request_id, "reply": 0}
        if action == "execute":
            code = request.get("code")
            if not isinstance(code, str):
                raise InvalidInput(f"'code' must be a string, "
                                   f"not {type(code).__name__}.")
            return dict(executor.execute(code), id=request_id, reply=200)
        raise InvalidInput(f"Unknown action {action!r}; expected 'ping' or 'execute'.")
    except InvalidInput as e:
        return {"id": request_id, "reply": 400, "error": "invalid-input",
                "cause": str(e)}


def _pack(reply):
    try:
        return msgpack.packb(reply, use_bin_type=True)
    except Exception as e:  # e.g. an id that does not survive the round trip
        return msgpack.packb({"id": None, "reply": 500, "error": "internal-error",
                              "cause": _text(f"The reply could not be encoded: {e}")},
                             use_bin_type=True)


def serve(endpoint=ENDPOINT, executor=None):
    """Answer requests one at a time until SIGTERM."""
    executor = executor or Executor()

    def on_sigterm(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut cleanup
        raise Terminate()

    def on_sigint(signum, frame):
        # Interrupts are meant for running code; an idle daemon ignores them.
        if executor.running:
            raise KeyboardInterrupt()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigint)
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    try:
        while True:
            frames = sock.recv_multipart()
            if len(frames) < 2:
                continue
            # [identity, payload] from a DEALER; REQ peers add an empty delimiter.
            reply = _pack(handle(executor, frames[-1]))
            sock.send_multipart(frames[:-1] + [reply])
    except Terminate:
        pass
    finally:
        sock.close()
        context.term()
        if endpoint.startswith("ipc://"):  # libzmq leaves the socket file behind
            try:
                os.unlink(endpoint[len("ipc://"):])
            except OSError:
                pass


if __name__ == "__main__":
    serve()
