"""Which driver runs the code, as the environment asks (SORNA_DRIVER and the driver's
own variables), and which runs whole programs."""

import json
import os
import shlex
import sys

from repl_session import Terminate


def python_driver(capture=False):
    from python_driver import PythonDriver

    return PythonDriver(terminate=Terminate, capture=capture)


def make_driver(capture=True):
    """The driver the environment asks for (SORNA_DRIVER, python by default)."""
    kind = os.environ.get("SORNA_DRIVER", "python")
    if kind == "python":
        return python_driver(capture)
    import process_driver

    env = {name: os.environ.get(name) for name in
           ("SORNA_LANG", "SORNA_COMMAND", "SORNA_SOURCE", "SORNA_BUILD", "SORNA_RUN",
            "SORNA_BUILD_DIR", "SORNA_SOURCES")}

    def interpreter():
        return process_driver.InterpreterDriver(
            env["SORNA_LANG"], shlex.split(env["SORNA_COMMAND"]), Terminate,
            shape=json.loads(os.environ.get("SORNA_SHAPE") or "{}"),
            interrupt_signal=_signal_named(os.environ.get("SORNA_INTERRUPT_SIGNAL")))

    if kind == "interpreter":
        return interpreter()
    if kind == "compiled":
        programs = process_driver.CompiledDriver(
            env["SORNA_LANG"], shlex.split(env["SORNA_RUN"]), Terminate,
            build=shlex.split(env["SORNA_BUILD"]),
            build_root=env["SORNA_BUILD_DIR"] or "/build",
            sources=shlex.split(env["SORNA_SOURCES"] or ""), source=env["SORNA_SOURCE"],
            main_last=os.environ.get("SORNA_MAIN_LAST") == "1")
        whole_program = os.environ.get("SORNA_WHOLE_PROGRAM")
        if env["SORNA_COMMAND"] and whole_program:  # snippets keep their state
            return process_driver.SnippetDriver(interpreter(), programs, whole_program)
        return programs
    raise SystemExit(f"sorna-runner: unknown SORNA_DRIVER {kind!r}")


def _signal_named(name):
    import signal

    return getattr(signal, name) if name else None


def make_program_driver(driver, work_dir, standalone=False):
    """What runs `program` runs: a compiled language's own driver; for an interpreted
    one, its program command (`SORNA_PROGRAM`, with `{source}` for the file; Python's
    own interpreter for the Python driver); None when the language has none."""
    import process_driver

    if isinstance(driver, process_driver.ProgramDriver):
        return driver
    if isinstance(driver, process_driver.SnippetDriver):
        return driver.programs
    python = os.environ.get("SORNA_DRIVER", "python") == "python"
    command = os.environ.get("SORNA_PROGRAM")
    if command:
        argv = shlex.split(command)
    elif python:
        argv = [sys.executable, "{source}"]
    else:
        return None
    return process_driver.ProgramDriver(
        driver.language, argv, Terminate, work_dir=work_dir, standalone=standalone,
        source=os.environ.get("SORNA_SOURCE") or ("main.py" if python else "main"))
