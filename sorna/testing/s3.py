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
import urllib.error
import urllib.request

from sorna.testing.processes import LOOPBACK
from sorna.testing.servers import ServerProcess

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer(ServerProcess):
    name = "moto_server"
    install_hint = "pip install -e '.[test]'"
    short_name = "moto"
    start_timeout = 20.0

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.port}"

    def command(self):
        return [self.executable, "-H", LOOPBACK, "-p", str(self.port)]

    def ready(self):
        return self.answers()

    def env(self):
        """Variables for a process that should use this server: dummy credentials, a region,
        and no proxy for the loopback address."""
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), LOOPBACK]))
        return dict(CREDENTIALS, NO_PROXY=no_proxy, no_proxy=no_proxy)

    def popen_env(self):
        return dict(os.environ, **self.env())

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


def moto_server_path():
    """The moto_server executable, or None when moto[server] is not installed."""
    return MotoServer.executable_path()


__all__ = ["MotoServer", "CREDENTIALS", "moto_server_path"]
