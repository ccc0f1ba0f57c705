"""Sorna's kernel runner (REPL protocol v2): the one program that speaks the protocol in
every kernel, whatever its language. A *driver* runs the code:

- `python_driver.PythonDriver` runs Python in this process;
- `process_driver.InterpreterDriver` keeps a language's interpreter running as a child
  (`repl/<lang>/run.<ext>`) and talks to it over the pipe protocol of docs/PROTOCOL.md;
- `process_driver.CompiledDriver` compiles each run into a program and runs it.

An execute with `program` runs its code as a program file instead, with arguments
(`process_driver.ProgramDriver`: the compiled driver itself, or the interpreted
language's program command).

The environment chooses: `SORNA_DRIVER` (`python`, `interpreter`, `compiled`) and the
driver's own variables (`SORNA_COMMAND`, `SORNA_PROGRAM`, `SORNA_SOURCE`,
`SORNA_SOURCES`, `SORNA_BUILD`, `SORNA_RUN`: command lines, split as a shell would,
without one).

The agent connects to the Unix stream socket bound here (in a folder shared with the
host, since kernels have no network) and exchanges frames of a 4-byte big-endian length
and one msgpack map; see "Agent <-> REPL daemon" in docs/PROTOCOL.md. Only the standard
library and msgpack are used: these files are copied into the kernel image alone,
without the sorna package.

Its parts, each a module beside this file with its own tests:

- `repl_wire`: frames, requests and their checks, replies, the limits;
- `repl_output`: a run's output records, its budget, fitting a run's end into it;
- `repl_capture`: fds 1 and 2 as pipes, so that children's output is captured too;
- `repl_session`: `Session`, the run's state (busy, interrupts, pending reads), which
  reports through an injected `emit`: `output` events, `waiting-input`, `finished`;
  thread-safe where the I/O side calls it;
- `repl_files`: `FileStore`, upload/download/list inside the work folder;
- `repl_dispatch`: the one dispatch of requests;
- `repl_daemon`: `Daemon`, the plumbing: code runs in the main thread, one I/O thread
  owns the socket and answers every request while code runs;
- `repl_local`: `LocalDaemon`, the same answers in-process, without sockets, threads
  or signals, for fakes and tests;
- `repl_sandbox`: the seccomp filter against tracing;
- `repl_drivers`: which driver the environment asks for.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:  # the modules beside this file (python -I leaves it out)
    sys.path.insert(0, HERE)

# What in-process users (sorna.testing.cluster, the tests) take from the runner.
from repl_daemon import Daemon  # noqa: E402
from repl_drivers import python_driver  # noqa: E402
from repl_local import LocalDaemon  # noqa: E402
from repl_output import FLUSH_INTERVAL, FLUSH_LINGER, Output  # noqa: E402
from repl_sandbox import forbid_tracing  # noqa: E402
from repl_session import Session  # noqa: E402

__all__ = ["Daemon", "FLUSH_INTERVAL", "FLUSH_LINGER", "LocalDaemon", "Output", "Session",
           "main", "python_driver"]


def main():
    forbid_tracing()
    Daemon().serve()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)  # user threads must not keep a stopped daemon alive


if __name__ == "__main__":
    main()
