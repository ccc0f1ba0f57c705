"""The life cycle shared by the real third-party servers that tests start (`redis-server`,
`moto_server`): find the executable, pick a free 127.0.0.1 port, give the process a
folder and a log file of its own, start it in a new session and poll a readiness probe
until a deadline, stop it (SIGTERM, then SIGKILL), and read the end of its log.

A subclass gives the executable's name, an install hint, `command()`, the readiness probe
`ready()` and whatever else it offers. It can be stopped and started again on the same
port. An early exit or a timeout raises `ProcessError` with the end of the log; nothing
sleeps for luck.
"""

import os
import shutil
import subprocess
import tempfile
import time

from sorna.testing.processes import ProcessError, free_port


class ServerProcess:
    """One server process on a free loopback port, restartable on that port."""

    name = None  # the executable, e.g. "redis-server"
    install_hint = None  # how to install it, shown when it is missing
    short_name = None  # names the folder (sorna-<short_name>-...) and <short_name>.log
    ready_what = "answer"  # what `ready()` waits for, for the timeout message
    start_timeout = 10.0  # `start`'s default deadline, in seconds
    poll_interval = 0.05  # how often `start` asks `ready()`, in seconds
    # Whether the process's stdout and stderr go to the log file; a server that writes
    # its own log there (told so in `command()`) has them discarded instead.
    output_to_log = True

    def __init__(self, port=None, executable=None):
        self.executable = executable or self.executable_path()
        if self.executable is None:
            raise ProcessError(f"{self.name} is not installed ({self.install_hint})")
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix=f"sorna-{self.short_name}-")
        self.log_path = os.path.join(self.workdir, f"{self.short_name}.log")
        self.process = None
        self._log_file = None

    @classmethod
    def executable_path(cls):
        """The executable found on PATH, or None when it is not installed."""
        return shutil.which(cls.name)

    def command(self):
        """The argument vector that starts the server on `self.port`."""
        raise NotImplementedError

    def ready(self):
        """Whether the server answers now (the readiness probe)."""
        raise NotImplementedError

    def popen_env(self):
        """The environment to start the server in; None inherits this process's."""
        return None

    # -- life cycle
    def start(self, timeout=None):
        """Start (again, on the same port after `stop`) and wait until `ready()` holds,
        for up to `timeout` s (default: `start_timeout`). Return self."""
        if timeout is None:
            timeout = self.start_timeout
        if self.alive():
            raise ProcessError(f"{self.name} on port {self.port} is already running")
        if self.output_to_log:
            if self._log_file is not None:
                self._log_file.close()
            self._log_file = open(self.log_path, "ab")
            output = self._log_file
        else:
            output = subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, env=self.popen_env(),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None:
                raise ProcessError(f"{self.name} exited with status "
                                   f"{self.process.returncode} on port {self.port}; "
                                   f"log:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise ProcessError(f"{self.name} did not {self.ready_what} on port "
                                   f"{self.port} within {timeout:g} s; log:\n"
                                   f"{self.log_tail()}")
            time.sleep(self.poll_interval)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL; once it returns, the port refuses
        connections. Return the exit status. Safe to call more than once."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def remove(self):
        """Stop and delete the folder."""
        self.stop()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except FileNotFoundError:
            return ""
