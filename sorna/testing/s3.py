"""A real S3-compatible server for tests: `moto_server` on a free 127.0.0.1 port. It holds
its buckets in memory, so stopping it loses them (and makes S3 unreachable for a while).

    s3 = MotoServer().start()
    s3.client().create_bucket(Bucket="results")
    agent = AgentProcess(..., env=s3.env(), extra_args=["--s3-bucket", "results",
                                                        "--s3-endpoint", s3.url])
    s3.stop()

The credentials are dummies and the endpoint is always given explicitly, so neither the
tests nor the agent they start ever reach AWS. Waits poll a condition until a deadline.
"""

import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from sorna.testing.processes import LOOPBACK, ProcessError, free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_server_path():
    """The moto_server executable, or None when moto[server] is not installed."""
    return shutil.which("moto_server")


class MotoServer:
    def __init__(self, port=None, executable=None):
        self.executable = executable or moto_server_path()
        if self.executable is None:
            raise ProcessError("moto_server is not installed (pip install -e '.[test]')")
        self.port = port or free_port()
        self.workdir = tempfile.mkdtemp(prefix="sorna-moto-")
        self.log_path = os.path.join(self.workdir, "moto.log")
        self.process = None
        self._log_file = None

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.port}"

    def command(self):
        return [self.executable, "-H", LOOPBACK, "-p", str(self.port)]

    def env(self):
        """Variables for a process that should use this server: dummy credentials, a region,
        and no proxy for the loopback address."""
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), LOOPBACK]))
        return dict(CREDENTIALS, NO_PROXY=no_proxy, no_proxy=no_proxy)

    # -- life cycle
    def start(self, timeout=20.0):
        """Start (again, on the same port after `stop`) and wait until it answers HTTP."""
        if self.alive():
            raise ProcessError(f"moto_server on port {self.port} is already running")
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.command(), cwd=self.workdir, env=dict(os.environ, **self.env()),
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None:
                raise ProcessError(f"moto_server exited with status "
                                   f"{self.process.returncode} on port {self.port}; "
                                   f"log:\n{self.log_tail()}")
            if time.monotonic() >= deadline:
                self.stop()
                raise ProcessError(f"moto_server did not answer on port {self.port} within "
                                   f"{timeout:g} s; log:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to `timeout` s, then SIGKILL; once it returns, the port refuses
        connections. Safe to call more than once."""
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

    # -- talking to it
    def answers(self):
        """Whether the server answers an HTTP request (any status will do)."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url + "/", timeout=1.0):
                return True
        except urllib.error.HTTPError:
            return True
        except (OSError, ValueError):
            return False

    def client(self):
        """A boto3 S3 client for this server only."""
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "\n".join(f.read().splitlines()[-lines:])
        except FileNotFoundError:
            return ""


__all__ = ["MotoServer", "CREDENTIALS", "moto_server_path"]
