"""What the drivers that relay a REPL program share (repl/cpp/run.py for clang-repl,
repl/go/run.py for yaegi): the driver's end of the runner's pipes (fds 3 and 4; see
"Runner <-> driver" in docs/PROTOCOL.md), the REPL program fed on its standard input
with its stderr passed on a line at a time, and the brackets of C-family code."""

import os
import re
import subprocess
import threading

ANSWERS = {"complete": "matches", "inspect": "found"}


def requests():
    """(kind, code) of each request the runner sends, until it closes the pipe."""
    runs = os.fdopen(3, "rb", buffering=0)
    while True:
        header = b""
        while not header.endswith(b"\n"):
            byte = runs.read(1)
            if not byte:
                return
            header += byte
        kind, size = header.decode().split()
        data = b""
        while len(data) < int(size):
            more = runs.read(int(size) - len(data))
            if not more:
                return
            data += more
        yield kind, data.decode("utf-8", "replace")


def emit(kind, *fields):
    data = [f.encode("utf-8", "replace") for f in fields]
    os.write(4, " ".join([kind] + [str(len(d)) for d in data]).encode() + b"\n"
             + b"".join(data))


class Relayed:
    """A REPL program with its standard input ours to write and its stderr read here:
    each line goes to `on_stderr(text)`, and on to our stderr unless it answers False."""

    def __init__(self, argv, on_stderr):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                                     bufsize=0)
        self.pipe = os.readlink(f"/proc/self/fd/{self.proc.stdin.fileno()}")
        self._on_stderr = on_stderr
        threading.Thread(target=self._relay, daemon=True).start()

    def _relay(self):
        for line in iter(self.proc.stderr.readline, b""):
            if self._on_stderr(line.decode("utf-8", "replace")) is not False:
                os.write(2, line)
        self._on_stderr(None)  # the program ended

    def write(self, text):
        self.proc.stdin.write(text.encode("utf-8", "surrogateescape"))


# A C-family token: a string, a character, a comment, or a run of anything else.
_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|//[^\n]*|/\*.*?\*/|[^"\'/]+|/',
                     re.S)


def without_comments(code):
    return "".join(" " if t.startswith(("//", "/*")) else t for t in _TOKENS.findall(code))


def depth(code):
    """How many brackets `code` leaves open (strings and characters skipped)."""
    change = 0
    for token in _TOKENS.findall(code):
        if token[0] not in "\"'":
            change += sum(token.count(c) for c in "{([") - sum(token.count(c) for c in "})]")
    return change


def chunks(code):
    """The top-level pieces of C-family `code`, one line each: a preprocessor line, or
    the lines up to where the brackets close and a statement or definition ends;
    comments dropped."""
    pieces, current, open_brackets = [], [], 0
    for line in without_comments(code).split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not current and stripped.startswith("#"):
            pieces.append(stripped)
            continue
        current.append(stripped)
        open_brackets += depth(stripped)
        if open_brackets <= 0 and stripped[-1] in ";}":
            pieces.append(" ".join(current))
            current, open_brackets = [], 0
    if current:
        pieces.append(" ".join(current))
    return pieces
