"""Python, run in the runner's own process: one persistent namespace, like a notebook's
cells. The runner (runner.py) owns the protocol; this module only runs code.

Standard output and error are the session's writers while code runs, `input()` and
`getpass()` ask the session (`waiting-input`), the value of a last expression is a
`result` record (a MIME bundle: its repr and what IPython's display protocol gives),
`display(obj)` a `display` record, and each matplotlib figure one `display` record with
its PNG, SVG and text.
"""

import ast
import base64
import builtins
import codecs
import getpass
import io
import os
import sys
import tokenize
import traceback
import types
import uuid

import python_assist
import python_magics
from python_display import mime_bundle
from repl_wire import sendable as _text

INPUT_NAME = "<input>"
_RUNNER_DIR = os.path.dirname(os.path.abspath(__file__))


def _daemon_frame(filename):
    """A frame of the runner's plumbing or of this file: a user's traceback ends there
    (user code that python_display or python_magics calls back stays in it)."""
    folder, name = os.path.split(filename)
    return folder == _RUNNER_DIR and (name in ("runner.py", "python_driver.py")
                                      or name.startswith("repl_"))


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
    """The traceback from the user's first `<input>` frame, cut where the daemon's own
    code begins again (an interrupted `input()` or `print` ends in this file)."""
    while tb is not None and tb.tb_frame.f_code.co_filename != INPUT_NAME:
        tb = tb.tb_next
    node = tb
    while node is not None and node.tb_next is not None:
        if _daemon_frame(node.tb_next.tb_frame.f_code.co_filename):
            node.tb_next = None
            break
        node = node.tb_next
    return tb


def _report(exc, raised_before_exec):
    tb = None if raised_before_exec else _user_traceback(exc.__traceback__)
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    return [type(exc).__name__, [_safe_arg(a) for a in exc.args],
            raised_before_exec, _text(text)]


class _Writer(io.TextIOBase):
    """sys.stdout/sys.stderr during a run: text becomes records of `kind`."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, add, kind, fd=None):
        super().__init__()
        self._add, self._kind, self._fd = add, kind, fd
        self.buffer = _BinaryWriter(add, kind)

    name = property(lambda self: f"<{self._kind}>")

    def writable(self):
        return True

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self._add(self._kind, _text(text))
        return len(text)

    def isatty(self):
        return False

    def fileno(self):
        if self._fd is None:
            raise io.UnsupportedOperation("fileno")
        return self._fd


class _BinaryWriter(io.RawIOBase):
    """`sys.stdout.buffer`: bytes are decoded as UTF-8 (bad bytes replaced)."""

    def __init__(self, add, kind):
        super().__init__()
        self._add, self._kind = add, kind
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def writable(self):
        return True

    def write(self, data):
        data = bytes(data)
        self._add(self._kind, self._decoder.decode(data))
        return len(data)


def _ends_input(text):
    return getattr(text, "end_of_input", False)


class _Reader(io.TextIOBase):
    """sys.stdin during a run: every read asks the agent for text (`waiting-input`),
    until an input with `eof` gives the rest of it; then reads take from that, and
    end-of-file comes after it."""

    encoding = "utf-8"
    errors = "strict"
    name = "<stdin>"

    def __init__(self, read_input):
        super().__init__()
        self._read_input = read_input
        self._pending = ""
        self.ended = False

    def begin_run(self):
        if self.ended:
            self._pending, self.ended = "", False

    def _ask(self, prompt="", password=False, line=True):
        """Fill the buffer with the next answer (False at end-of-file)."""
        if self._pending:
            return True
        if self.ended:
            return False
        text = self._read_input(prompt, password)
        if _ends_input(text):
            self.ended = True
            self._pending = str(text)
        else:
            self._pending = text + "\n" if line else text
        return bool(self._pending)

    def answer(self, prompt, password, write_prompt):
        """input()'s and getpass()'s answer, without one trailing newline: the text of
        one input, or after an `eof` input its next line (EOFError past the end)."""
        if not self.ended:
            text = self._read_input(prompt, password)
            if not _ends_input(text):
                return text[:-1] if text.endswith("\n") else text
            self.ended, self._pending = True, self._pending + str(text)
        else:
            write_prompt(prompt)  # no waiting-input event shows it
        line = self.readline()
        if not line:
            raise EOFError("EOF when reading a line")
        return line[:-1] if line.endswith("\n") else line

    def readable(self):
        return True

    def isatty(self):
        return False

    def readline(self, size=-1):
        if not self._ask():
            return ""
        end = self._pending.find("\n") + 1 or len(self._pending)
        if size is not None and 0 <= size < end:
            end = size
        line, self._pending = self._pending[:end], self._pending[end:]
        return line

    def read(self, size=-1):
        if not self._ask(line=False):
            return ""
        if size is None or size < 0:
            size = len(self._pending)
        text, self._pending = self._pending[:size], self._pending[size:]
        return text



_current = None  # the driver that ran last: sorna_display and plt.show() report to it


def _display_image(mime, data):
    """Show `data` (bytes, or text for SVG/HTML) as media of type `mime`."""
    if not isinstance(mime, str) or not mime:
        raise TypeError("mime must be a non-empty string such as 'image/png'")
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = base64.b64encode(bytes(data)).decode("ascii")
    elif not isinstance(data, str):
        raise TypeError(f"data must be bytes or str, not {type(data).__name__}")
    if _current is None:
        raise RuntimeError("sorna_display works inside a Sorna kernel only")
    _current.session.add_bundle("display", [[mime, data], ["text/plain", f"<{mime}>"]])


def _display_html(text):
    """Show `text` as HTML."""
    _display_image("text/html", str(text))


def _make_display_module():
    module = types.ModuleType("sorna_display", (
        "Rich output for Sorna kernels.\n\n"
        "    html(text)         show HTML\n"
        "    image(mime, data)  show media: bytes (sent as base64) or text (SVG)\n"))
    module.html, module.image = _display_html, _display_image
    return module


class _PatchOnImport:
    """A meta path finder that patches a module as the user imports it (pyplot's
    show, IPython's display), so that the daemon never imports those itself (runs
    without them stay fast)."""

    def find_spec(self, fullname, path, target=None):
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


def _patch_pyplot(plt):
    if getattr(plt, "_sorna_patched", False):
        return
    original = plt.show

    def show(*args, **kwargs):
        """Send the open figures to the Sorna front-end (and close them)."""
        if _current is None:
            return original(*args, **kwargs)
        _current.show_figures()

    plt.show, plt._sorna_patched = show, True


IPYTHON_DISPLAY = ("IPython.core.display_functions", "IPython.core.display",
                   "IPython.display")


def _patch_ipython_display(_module=None):
    """IPython's display() and clear_output() show nothing (or print escape codes)
    outside an IPython shell: in a Sorna kernel they are the kernel's own (so `from
    IPython.display import display, HTML, clear_output` works, and update_display and
    display handles with them), in each of IPython's modules that holds them, whenever
    they were imported."""
    for name in IPYTHON_DISPLAY:
        module = sys.modules.get(name)
        for function, wrap in (("display", _kernel_display),
                               ("clear_output", _kernel_clear_output)):
            original = getattr(module, function, None)
            if original is not None and not getattr(original, "sorna", False):
                setattr(module, function, wrap(original))


def _kernel_display(original=None):
    """display() as IPython's: every object shown with its representations (`raw`: a
    MIME bundle given as a dict); with `display_id` (True: a new one) the output can be
    updated later (`update=True`, or the returned handle's `update()`)."""
    def display(*objs, raw=False, display_id=None, update=False, **kwargs):
        if _current is None:
            if original is None:
                raise RuntimeError("display() works inside a Sorna kernel only")
            return original(*objs, raw=raw, display_id=display_id, update=update,
                            **kwargs)
        if display_id is True:
            display_id = uuid.uuid4().hex
        for obj in objs:
            if raw and isinstance(obj, dict):  # a MIME bundle already
                bundle = [[mime, data if isinstance(data, str) else str(data)]
                          for mime, data in obj.items() if isinstance(mime, str)][:16]
            else:
                bundle = mime_bundle(obj)
            if display_id is None:
                _current.session.add_bundle("display", bundle)
            else:
                _current.session.add_bundle("update" if update else "show",
                                            [str(display_id), bundle])
        if display_id is not None and not update:
            handle = getattr(sys.modules.get("IPython.core.display_functions"),
                             "DisplayHandle", None)
            return handle(display_id) if handle else display_id
        return None

    display.sorna = True
    return display


def _kernel_clear_output(original):
    def clear_output(wait=False):
        if _current is None:
            return original(wait=wait)
        _current.session.add("clear", {"wait": bool(wait)})

    clear_output.sorna = True
    return clear_output


BUILTIN_DISPLAY = _kernel_display()


def _quieted(code):
    """Whether the cell ends with `;`, which hides its value in IPython."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(code).readline)
                  if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE,
                                    tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)]
    except (tokenize.TokenError, SyntaxError):
        return False
    return bool(tokens) and tokens[-1].string == ";"

PATCHES = {"matplotlib.pyplot": _patch_pyplot,
           "IPython.core.display_functions": _patch_ipython_display}


def _install_import_patches():
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())


class PythonDriver:
    """`terminate` is the runner's exception for SIGTERM (never reported as the user's)."""

    language = "python3"
    watches_stdin = False  # reads go through input()/sys.stdin, which ask the session
    retries_interrupts = True

    def __init__(self, terminate=SystemExit, capture=False):
        self.terminate = terminate
        self.namespace = {"__name__": "__main__", "__builtins__": builtins}
        self.capture = capture
        self.session = None
        self.display_module = _make_display_module()
        _install_import_patches()

    def bind(self, session):
        self.session = session
        add = session.add
        self.stdout = _Writer(add, "stdout", 1 if self.capture else None)
        self.stderr = _Writer(add, "stderr", 2 if self.capture else None)
        self.stdin = _Reader(session.read_input)

    def start(self):
        pass

    def stop(self):
        pass

    def run(self, code):
        """Run `code`; return its exceptions as `[name, args, before, traceback]`."""
        global _current
        _current = self
        self.stdin.begin_run()
        exceptions = []
        saved = self._install()
        try:
            try:
                body, last = self._compile(code)
            except self.terminate:
                raise
            except Exception as e:  # SyntaxError, ValueError (null bytes), ...
                exceptions.append(_report(e, raised_before_exec=True))
            else:
                self._run(body, last, exceptions)
            self._figures(exceptions)
        finally:
            self._uninstall(saved)
        return exceptions

    def _run(self, body, last, exceptions):
        try:
            with self.session.user_code():
                exec(body, self.namespace)
                if last is not None:
                    self._display(eval(last, self.namespace))
        except self.terminate:
            raise
        except BaseException as e:  # SystemExit, KeyboardInterrupt too
            exceptions.append(_report(e, raised_before_exec=False))

    def _install(self):
        saved = (sys.stdout, sys.stderr, sys.stdin, builtins.input, getpass.getpass,
                 getattr(builtins, "display", None), sys.modules.get("sorna_display"))
        sys.stdout, sys.stderr, sys.stdin = self.stdout, self.stderr, self.stdin
        builtins.input, getpass.getpass = self._builtin_input, self._getpass
        builtins.display = BUILTIN_DISPLAY  # as in IPython, a builtin
        builtins._sorna_magic = self._magic
        sys.modules["sorna_display"] = self.display_module
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            _patch_pyplot(plt)
        _patch_ipython_display()  # imported before, outside the hook's sight
        return saved

    def _uninstall(self, saved):
        for stream in (getattr(sys, "stdout", None), getattr(sys, "stderr", None)):
            try:
                stream.flush()
            except Exception:
                pass
        (sys.stdout, sys.stderr, sys.stdin, builtins.input, getpass.getpass,
         builtin_display, display) = saved
        builtins.__dict__.pop("_sorna_magic", None)
        if builtin_display is None:
            builtins.__dict__.pop("display", None)
        else:
            builtins.display = builtin_display
        if display is not None:
            sys.modules["sorna_display"] = display

    @staticmethod
    def _compile(code):
        """Split off a trailing expression so its value can be shown. Code that does not
        parse gets a second chance with IPython's magics rewritten (python_magics)."""
        try:
            tree = ast.parse(code, INPUT_NAME, "exec")
        except SyntaxError as original:
            try:
                tree = ast.parse(python_magics.rewrite(code), INPUT_NAME, "exec")
            except SyntaxError:
                raise original from None
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr) and not _quieted(code):
            last = compile(ast.Expression(tree.body.pop().value), INPUT_NAME, "eval")
        return compile(tree, INPUT_NAME, "exec"), last

    def _display(self, value):
        """What sys.displayhook does, without touching builtins._: the value becomes
        the run's result."""
        if value is not None:
            self.namespace["_"] = value
            self.session.add_bundle("result", mime_bundle(value))

    def _magic(self, line, body=None, cell=False):
        if line == "?":  # help on `body`, a name: a page, as IPython's pager shows it
            found, text = python_assist.inspect_at(self.namespace, body, len(body))
            if found:
                self.session.add_bundle("page", [["text/plain", text]])
            else:
                print(f"Object `{body}` not found.")
            return None
        return python_magics.magic(line, body, cell, self.namespace)


    # -- what a notebook asks besides runs (python_assist: they never run user code)

    def is_complete(self, code):
        return python_assist.is_complete(code)

    def complete(self, code, cursor):
        return python_assist.complete(self.namespace, code, cursor)

    def inspect(self, code, cursor):
        return python_assist.inspect_at(self.namespace, code, cursor)

    def _builtin_input(self, prompt=""):
        return self.stdin.answer(str(prompt), False, self.stdout.write)

    def _getpass(self, prompt="Password: ", stream=None):
        return self.stdin.answer(str(prompt), True, lambda prompt: None)

    # -- matplotlib

    def show_figures(self):
        """Every open pyplot figure is shown (PNG, SVG and text in one bundle), then
        closed."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for number in plt.get_fignums():
            figure = plt.figure(number)
            try:
                png, svg = io.BytesIO(), io.BytesIO()
                figure.savefig(png, format="png")
                figure.savefig(svg, format="svg")
                self.session.add_bundle("display", [
                    ["image/png", base64.b64encode(png.getvalue()).decode()],
                    ["image/svg+xml", svg.getvalue().decode("utf-8", "replace")],
                    ["text/plain", repr(figure)]])
            finally:
                plt.close(figure)

    def _figures(self, exceptions):
        if "matplotlib.pyplot" not in sys.modules:
            return
        try:
            self.show_figures()
        except self.terminate:
            raise
        except Exception as e:
            self.stderr.write(f"The figures could not be drawn: "
                              f"{type(e).__name__}: {e}\n")
