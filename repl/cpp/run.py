"""Sorna's C and C++ snippet driver: every run that is not a whole program (the runner
compiles those with gcc or g++) goes, a top-level chunk at a time, to one clang-repl,
so declarations and variables stay for the next run (`int x = 41;` then
`printf("%d\\n", x + 1);`). Driven by the runner over fds 3 (runs in) and 4 (their ends
out); see "Runner <-> driver" in docs/PROTOCOL.md.

clang-repl reads its lines from standard input, one byte at a time, so this driver
feeds it a chunk and waits until it reads again: a read of one byte is clang-repl
waiting for its next line (the chunk is done); a larger read is the snippet's own code
reading standard input, so this driver reads a line of the kernel's standard input (the
runner sees that read and asks the user) and passes it on. clang-repl's messages come
through here on their way to stderr: an `error:` among them makes the run's error.
clang-repl (LLVM 16) parses C++ only, so C snippets are compiled as C++.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time

CLANG_REPL = os.environ.get("SORNA_CLANG_REPL", "clang-repl-16")
PRELUDE = ["#include <cstdio>", "#include <cstdlib>", "#include <cstring>",
           "#include <cmath>", "#include <iostream>", "#include <string>",
           "#include <vector>"]
FLUSH = "fflush(nullptr);"  # the snippet's buffered output, out before its end
POLL = 0.002
READ_SYSCALLS = {"x86_64": 0, "aarch64": 63}
ERROR = re.compile(r"(^|: )error: ")


def main():
    runs = os.fdopen(3, "rb", buffering=0)
    ends = os.fdopen(4, "wb", buffering=0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's clang-repl takes it
    repl = ClangRepl()
    for line in PRELUDE:
        repl.send(line)
    while True:
        header = _read_line(runs)
        if not header:
            return
        kind, size = header.decode().split()
        code = _read_exactly(runs, int(size)).decode("utf-8", "replace")
        if kind in ("complete", "inspect"):
            _emit(ends, {"complete": "matches", "inspect": "found"}[kind], "")
            continue
        repl.errors.clear()
        failed_first = None
        for number, chunk in enumerate(chunks(code)):
            repl.send(chunk)
            if repl.errors and failed_first is None:
                failed_first = number == 0
                break
        repl.send(FLUSH)
        if repl.errors:
            text = "".join(repl.errors).strip()
            _emit(ends, "error", "CompileError", text, text + "\n",
                  "1" if failed_first else "0")
        _emit(ends, "done")


class ClangRepl:
    """One clang-repl, fed a line at a time; its stderr relayed (and its errors kept)."""

    def __init__(self):
        self.proc = subprocess.Popen([CLANG_REPL], stdin=subprocess.PIPE,
                                     stderr=subprocess.PIPE, bufsize=0)
        self.pipe = os.readlink(f"/proc/self/fd/{self.proc.stdin.fileno()}")
        self.errors = []
        self._relay = threading.Thread(target=self._relay_stderr, daemon=True)
        self._relay.start()

    def _relay_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            text = line.decode("utf-8", "replace")
            if ERROR.search(text):
                self.errors.append(text)
            elif self.errors:  # the rest of a message: where, and a caret
                self.errors.append(text)
            os.write(2, line)

    def send(self, line):
        self.proc.stdin.write(line.encode("utf-8", "surrogateescape") + b"\n")
        self.wait_for_next_line()

    def wait_for_next_line(self):
        """Until clang-repl reads again: the line ran. Input its code asks for on the
        way is read from ours and passed on."""
        while True:
            count = self._reading()
            if count == 1:
                time.sleep(POLL)  # its stderr (the relay) catches up
                return
            if count and count > 1:
                text = os.read(0, 65536)
                if not text:  # end of our input: close theirs for this read
                    text = b"\x04"
                self.proc.stdin.write(text)
            if self.proc.poll() is not None:
                sys.exit(f"clang-repl ended (status {self.proc.returncode})")
            time.sleep(POLL)

    def _reading(self):
        """The byte count of clang-repl's blocked read of our pipe, or None."""
        number = READ_SYSCALLS.get(os.uname().machine)
        try:
            for tid in os.listdir(f"/proc/{self.proc.pid}/task"):
                with open(f"/proc/{self.proc.pid}/task/{tid}/syscall") as f:
                    fields = f.read().split()
                if len(fields) > 3 and fields[0] == str(number) and os.readlink(
                        f"/proc/{self.proc.pid}/fd/{int(fields[1], 16)}") == self.pipe:
                    return int(fields[3], 16)
        except (OSError, ValueError):
            pass
        return None


def chunks(code):
    """The top-level pieces of `code`, one line each (clang-repl takes a line at a
    time): a preprocessor line, or the lines up to where the brackets close and a
    statement or definition ends; comments dropped."""
    pieces, current, depth = [], [], 0
    for line in _without_comments(code).split("\n"):
        stripped = line.strip()
        if not stripped:
            continue
        if not current and stripped.startswith("#"):
            pieces.append(stripped)
            continue
        current.append(stripped)
        depth += _depth_change(stripped)
        if depth <= 0 and stripped[-1] in ";}":
            pieces.append(" ".join(current))
            current, depth = [], 0
    if current:
        pieces.append(" ".join(current))
    return pieces


_TOKENS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|//[^\n]*|/\*.*?\*/|[^"\'/]+|/',
                     re.S)


def _without_comments(code):
    return "".join(" " if t.startswith(("//", "/*")) else t for t in _TOKENS.findall(code))


def _depth_change(line):
    change = 0
    for token in _TOKENS.findall(line):
        if token[0] not in "\"'":
            change += token.count("{") + token.count("(") - token.count("}") - token.count(")")
    return change


def _read_line(stream):
    line = b""
    while not line.endswith(b"\n"):
        byte = stream.read(1)
        if not byte:
            return b""
        line += byte
    return line


def _read_exactly(stream, size):
    data = b""
    while len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data


def _emit(stream, kind, *fields):
    data = [f.encode("utf-8", "replace") for f in fields]
    stream.write(" ".join([kind] + [str(len(d)) for d in data]).encode() + b"\n"
                 + b"".join(data))


if __name__ == "__main__":
    main()
