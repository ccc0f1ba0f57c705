"""Sorna's Go snippet driver: every run that is not a whole program (one with a
`package` clause, which the runner compiles with go build) goes to one yaegi REPL, so
declarations and variables stay for the next run (`x := 41` then `fmt.Println(x + 1)`).

yaegi reads its lines on a goroutine of its own, ahead of the code it runs, so a run is
written whole and followed by a line that writes a mark on stderr (through an import
of os of its own, which no snippet shadows): the mark coming back through here is the
run's end. yaegi's own messages on stderr (`1:5: undefined:
x`, `1:28: panic` and its goroutines) make the run's error instead of being passed on.
As that reader shares the REPL's standard input with the code it runs, a snippet cannot
read input (a whole program can). SIGINT makes yaegi cancel the run; the session stays.
"""

import os
import re
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from relay_repl import ANSWERS, Relayed, depth, emit, requests, without_comments  # noqa: E402

MESSAGE = re.compile(r"^(\d+):(\d+): (.*)$")  # yaegi's: line:column: text
MARK = "\x01sorna-end-"
PRELUDE = 'import sornaos "os"\n'


class Yaegi:
    def __init__(self):
        self.ended = threading.Event()
        self.mark = None
        self.error = None  # (name, message) of the run
        self._in_panic = False
        self.repl = Relayed(["yaegi"], self._on_stderr)
        self.repl.write(PRELUDE)

    def _on_stderr(self, text):
        if text is None or text.rstrip("\n") == self.mark:
            self.ended.set()  # the run's end (or yaegi's)
            return False
        if self._in_panic:
            if self.error[1] is None:
                self.error = ("panic", text.strip())
            return False  # the rest is yaegi's goroutines
        found = MESSAGE.match(text.rstrip("\n"))
        if found and self.error is None:
            if found.group(3) == "panic":
                self._in_panic = True
                self.error = ("panic", None)
            else:
                self.error = ("CompileError", text.strip())
            return False
        return None

    def run(self, code, number):
        self.mark = f"{MARK}{number}"
        self.error, self._in_panic = None, False
        self.ended.clear()
        self.repl.write(code.rstrip("\n") + f'\nsornaos.Stderr.WriteString("{self.mark}\\n")\n')
        self.ended.wait()
        if self.repl.proc.poll() is not None:
            sys.exit(f"yaegi ended (status {self.repl.proc.returncode})")
        return self.error


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # yaegi cancels its run
    yaegi = Yaegi()
    for number, (kind, code) in enumerate(requests()):
        if kind in ANSWERS:
            emit(ANSWERS[kind], "")
            continue
        if depth(without_comments(code)) > 0:  # yaegi would wait for the rest
            text = "the code ends with a bracket open"
            emit("error", "CompileError", text, text + "\n", "1")
        elif code.strip():
            error = yaegi.run(code, number)
            if error:
                name, message = error
                # yaegi runs each statement as it reads it: those before ran
                emit("error", name, message or "", f"{name}: {message or ''}\n", "0")
        emit("done")


if __name__ == "__main__":
    main()
