"""The IPython syntax that real notebooks start with, in a plain Python kernel: shell
escapes (`!ls`), `%matplotlib inline`, `%time`, `%timeit`, `%%time`, `%cd`, `%pwd`,
`%env`, `%who`, `%%writefile`, `%%bash`, `%%html` and its kind, help (`obj?`,
`?obj`, `obj??`: the driver pages what inspection finds), and `%pip` /
`!pip install`, which say where packages come from. Code that is valid Python is never
touched: the driver rewrites a cell only when it does not parse as it is."""

import ast
import builtins
import os
import re
import subprocess
import sys
import time
import timeit
import types

PACKAGES = ("packages come with the kernel's image: this kernel cannot install any (it "
            "has no network). The python3 image has numpy and matplotlib; ask the "
            "operator for others (repl/python3/packages).")
CALL = "_sorna_magic"  # the name the rewritten code calls `magic` by (a builtin)
_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<kind>!|%{1,2})(?P<rest>.*)$")
_HELP = re.compile(r"^(?P<indent>[ \t]*)(?:\?{1,2}(?P<before>[\w.]+)|(?P<after>[\w.]+)\?{1,2})"
                   r"[ \t]*$")


class UsageError(Exception):
    """A magic this kernel does not have (IPython's name for the error)."""


def rewrite(code):
    """`code`, which does not parse as Python, with its magics and shell escapes turned
    into calls of `magic()` (as `_sorna_magic`)."""
    lines = code.split("\n")
    first = _LINE.match(lines[0])
    if first and first["kind"] == "%%":  # a cell magic: the rest of the cell is its body
        body = "\n".join(lines[1:])
        return f"{CALL}({first['rest'].strip()!r}, {body!r}, cell=True)"
    rewritten = []
    for line in lines:
        match = _LINE.match(line)
        asked = _HELP.match(line)
        if asked:
            name = asked["before"] or asked["after"]
            rewritten.append(f"{asked['indent']}{CALL}('?', {name!r})")
        elif match is None:
            rewritten.append(line)
        elif match["kind"] == "!":
            rewritten.append(f"{match['indent']}{CALL}('!', {match['rest']!r})")
        else:
            rewritten.append(f"{match['indent']}{CALL}({match['rest'].strip()!r})")
    return "\n".join(rewritten)


def magic(line, body=None, cell=False, namespace=None):
    """Run one magic: `line` is what follows `%` (or `!`, with `body` the command)."""
    if line == "!":
        return _shell(body)
    name, _, argument = line.partition(" ")
    argument = argument.strip()
    if name in ("pip", "conda", "mamba"):
        print(f"%{name}: {PACKAGES}", file=sys.stderr)
        return None
    if name == "matplotlib":
        return None  # figures are always shown, inline
    if name == "time":
        return _time(body if cell else argument, namespace)
    if name == "timeit":
        return _timeit(body if cell else argument, namespace)
    if cell and name in ("bash", "sh"):
        return _shell(body)
    if cell and name == "writefile":
        return _writefile(argument, body)
    if cell and name in SHOWN:
        return builtins.display({SHOWN[name]: body, "text/plain": body}, raw=True)
    if not cell and name in LINE_MAGICS:
        return LINE_MAGICS[name](argument, namespace)
    raise UsageError(f"{'Cell' if cell else 'Line'} magic function `%{'%' if cell else ''}"
                     f"{name}` not found: this kernel has {', '.join(KNOWN)}, and "
                     f"!commands")


def _writefile(argument, body):
    append = argument.startswith("-a ")
    path = argument[3:].strip() if append else argument.strip()
    if not path:
        raise UsageError("%%writefile needs a file name: %%writefile [-a] FILE")
    existed = os.path.exists(path)
    with open(path, "a" if append else "w") as f:
        f.write(body if body.endswith("\n") or not body else body + "\n")
    print(f"{'Appending to' if append else 'Overwriting' if existed else 'Writing'} {path}")


def _cd(argument, namespace):
    os.chdir(os.path.expanduser(argument.strip() or "~"))
    print(os.getcwd())


def _env(argument, namespace):
    if not argument:
        return dict(os.environ)
    name, equals, value = argument.replace(" ", "=", 1).partition("=") if (
        " " in argument and "=" not in argument) else argument.partition("=")
    if equals:
        os.environ[name.strip()] = value.strip()
        print(f"env: {name.strip()}={value.strip()}")
        return None
    return os.environ.get(name.strip(), "")


def _who(argument, namespace):
    names = sorted(n for n, v in (namespace or {}).items() if not n.startswith("_")
                   and not isinstance(v, types.ModuleType) and n not in ("In", "Out"))
    print("  ".join(names) if names else "Interactive namespace is empty.")


LINE_MAGICS = {"cd": _cd, "pwd": lambda argument, namespace: os.getcwd(), "env": _env,
               "who": _who}
SHOWN = {"html": "text/html", "markdown": "text/markdown", "latex": "text/latex",
         "svg": "image/svg+xml", "javascript": "application/javascript",
         "js": "application/javascript"}
KNOWN = ("%time", "%timeit", "%%time", "%%timeit", "%matplotlib", "%cd", "%pwd", "%env",
         "%who", "%%writefile", "%%bash", "%%sh", "%%html", "%%markdown", "%%latex",
         "%%svg", "%%javascript", "%pip (which says where packages come from)")


def _shell(command):
    if command.strip().startswith("pip"):
        print(f"!pip: {PACKAGES}", file=sys.stderr)
        return None
    try:  # in a kernel, straight to file descriptors 1 and 2, which the runner reads
        out, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (OSError, ValueError):  # an in-process kernel without them (tests)
        done = subprocess.run(command, shell=True, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, errors="replace")
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        return None
    subprocess.run(command, shell=True, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    return None


def _time(code, namespace):
    tree = ast.parse(code, "<magic>", "exec")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), "<magic>", "eval")
    body = compile(tree, "<magic>", "exec")
    started, cpu = time.perf_counter(), time.process_time()
    exec(body, namespace)
    value = eval(last, namespace) if last is not None else None
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"CPU times: total: {_duration(cpu)}\nWall time: {_duration(wall)}")
    return value


def _timeit(code, namespace):
    timer = timeit.Timer(code, globals=namespace)
    number, _ = timer.autorange()
    runs = [t / number for t in timer.repeat(repeat=5, number=number)]
    mean = sum(runs) / len(runs)
    print(f"{_duration(mean)} per loop (mean of {len(runs)} runs, {number} loops each)")


def _duration(seconds):
    for unit, scale in (("s", 1), ("ms", 1e3), ("µs", 1e6)):
        if seconds * scale >= 1:
            return f"{seconds * scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"
