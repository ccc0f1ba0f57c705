"""Sorna's C and C++ snippet driver: every run that is not a whole program (the runner
compiles those with gcc or g++) goes, a top-level chunk at a time, to one clang-repl,
so declarations and variables stay for the next run (`int x = 41;` then
`printf("%d\\n", x + 1);`).

clang-repl reads its lines from standard input one byte at a time, so this driver
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
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import stdin_wait  # noqa: E402
from relay_repl import ANSWERS, Relayed, chunks, emit, requests  # noqa: E402

CLANG_REPL = "clang-repl-16"
PRELUDE = ["#include <cstdio>", "#include <cstdlib>", "#include <cstring>",
           "#include <cmath>", "#include <iostream>", "#include <string>",
           "#include <vector>"]
FLUSH = "fflush(nullptr);"  # the snippet's buffered output, out before its end
POLL = 0.002
ERROR = re.compile(r"(^|: )error: ")


class ClangRepl:
    """One clang-repl, fed a line at a time; the errors it printed for the run kept."""

    def __init__(self):
        self.errors = []
        self.repl = Relayed([CLANG_REPL], self._on_stderr)

    def _on_stderr(self, text):
        if text is not None and (ERROR.search(text) or self.errors):
            self.errors.append(text)  # an error, and the rest of its message

    def send(self, line):
        self.repl.write(line + "\n")
        self.wait_for_next_line()

    def wait_for_next_line(self):
        """Until clang-repl reads again: the line ran. Input its code asks for on the
        way is read from ours and passed on."""
        proc = self.repl.proc
        while True:
            count = stdin_wait.read_size(proc.pid, self.repl.pipe)
            if count == 1:
                time.sleep(POLL)  # its stderr (the relay) catches up
                return
            if count and count > 1:
                self.repl.write(os.read(0, 65536).decode("utf-8", "surrogateescape")
                                or "\x04")
            if proc.poll() is not None:
                sys.exit(f"clang-repl ended (status {proc.returncode})")
            time.sleep(POLL)


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's clang-repl takes it
    clang = ClangRepl()
    for line in PRELUDE:
        clang.send(line)
    for kind, code in requests():
        if kind in ANSWERS:
            emit(ANSWERS[kind], "")
            continue
        clang.errors.clear()
        failed_first = False
        for number, chunk in enumerate(chunks(code)):
            clang.send(chunk)
            if clang.errors:
                failed_first = number == 0
                break
        clang.send(FLUSH)
        if clang.errors:
            text = "".join(clang.errors).strip()
            emit("error", "CompileError", text, text + "\n", "1" if failed_first else "0")
        emit("done")


if __name__ == "__main__":
    main()
