"""What a notebook asks of a Python kernel besides running code: whether a cell is
complete, the completions at the cursor, an object's signature and docstring.

These are answered by the runner's I/O thread, also while code runs, so they never run
the user's code: names are looked up statically (`inspect.getattr_static`: no property,
`__getattr__` or `__dir__` of the user's runs), and a namespace that changes meanwhile
gives an empty answer, not an error."""

import builtins
import codeop
import inspect
import keyword
import re
import warnings

MAX_MATCHES = 500
MAX_DOC = 20000
_NAME_BEFORE = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*\.?$|$")
_NAME_AROUND = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


def is_complete(code):
    """(status, indent): `complete`, `incomplete` (with the next line's indent) or
    `invalid`, as a console decides whether Enter runs the cell."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(code, "<input>", "exec")
    except (SyntaxError, OverflowError, ValueError, MemoryError, RecursionError):
        return "invalid", ""
    lines = code.rstrip("\n").splitlines() or [""]
    if compiled is not None and not (lines[-1][:1] in (" ", "\t")
                                     and not code.endswith("\n\n")):
        return "complete", ""
    # Unfinished, or a block whose end a blank line has not marked yet (as IPython).
    indent = re.match(r"[ \t]*", lines[-1]).group()
    if lines[-1].rstrip().endswith(":"):
        indent += "    "
    return "incomplete", indent


def complete(namespace, code, cursor):
    """(matches, start, end): names (and attributes, after a dot) that complete the
    dotted name ending at `cursor`."""
    cursor = _cursor(code, cursor)
    token = _NAME_BEFORE.search(code[:cursor]).group()
    base, dot, prefix = token.rpartition(".")
    try:
        if dot:
            found, obj = _lookup(namespace, base)
            names = _attributes(obj) if found else []
        else:
            names = (list(namespace) + dir(builtins) + keyword.kwlist)
    except RuntimeError:  # the namespace changed size while a run went on
        names = []
    matches = sorted({n for n in names if isinstance(n, str) and n.startswith(prefix)
                      and (prefix.startswith("_") or not n.startswith("_"))})
    return matches[:MAX_MATCHES], cursor - len(prefix), cursor


def inspect_at(namespace, code, cursor):
    """(found, text): the object named at `cursor` (or the function whose call the
    cursor is in) with its type, signature and docstring."""
    cursor = _cursor(code, cursor)
    name = _name_at(code, cursor)
    if not name:
        return False, ""
    try:
        found, obj = _lookup(namespace, name)
    except RuntimeError:
        return False, ""
    if not found:
        return False, ""
    lines = [f"Type:      {type(obj).__name__}"]
    if inspect.isroutine(obj) or inspect.isclass(obj):
        try:
            lines.append(f"Signature: {name}{inspect.signature(obj)}")
        except (TypeError, ValueError):
            pass
    if inspect.isroutine(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
        doc = inspect.getdoc(obj)  # of Python's own types: runs none of the user's code
    else:  # an instance: its class's docstring, read statically
        doc = inspect.getattr_static(type(obj), "__doc__", None)
    if isinstance(doc, str):
        lines.append("Docstring:\n" + inspect.cleandoc(doc)[:MAX_DOC])
    return True, "\n".join(lines)


def _cursor(code, cursor):
    return len(code) if not isinstance(cursor, int) or not 0 <= cursor <= len(code) \
        else cursor


def _name_at(code, cursor):
    for match in _NAME_AROUND.finditer(code):
        if match.start() <= cursor <= match.end():
            return match.group()
    # Inside a call's parentheses: the function being called.
    depth = 0
    for i in range(cursor - 1, -1, -1):
        if code[i] == ")":
            depth += 1
        elif code[i] == "(":
            if depth == 0:
                match = re.search(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*\s*$", code[:i])
                return match.group().strip() if match else ""
            depth -= 1
    return ""


def _lookup(namespace, dotted):
    """(found, object) for a dotted name, without running any of the user's code."""
    first, *rest = dotted.split(".")
    if first in namespace:
        obj = namespace[first]
    elif hasattr(builtins, first):
        obj = getattr(builtins, first)
    else:
        return False, None
    for part in rest:
        try:
            obj = inspect.getattr_static(obj, part)
        except AttributeError:
            return False, None
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
    return True, obj


def _attributes(obj):
    names = set()
    own = _instance_dict(obj)
    if isinstance(own, dict):
        names.update(own)
    for klass in inspect.getmro(obj if inspect.isclass(obj) else type(obj)):
        names.update(vars(klass))
    return list(names)


def _instance_dict(obj):
    """The object's own `__dict__`, read the way inspect.getattr_static reads it: not
    when its class puts anything but the standard descriptor there."""
    for klass in type(obj).__mro__:
        entry = klass.__dict__.get("__dict__")
        if entry is not None:
            if type(entry).__name__ not in ("getset_descriptor", "member_descriptor"):
                return None
            break
    try:
        return object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
