"""The agent's identity: EC2 detection from local files, the instance metadata client
(against a stand-in metadata service on 127.0.0.1), the precedence rules and the tap.

Nothing here may reach the real metadata address: every lookup names a loopback URL,
or runs with a fetch function that fails the test when called.
"""

import functools
import http.server
import os
import shutil
import tempfile
import threading
import time

from twisted.internet import task
from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from sorna.agent import identity, tap
from sorna.testing.docker import FakeDockerClient
from sorna.testing.transport import FakeNetwork
from sorna.threadpool import WorkerPool

INSTANCE_ID = "i-0abc1234def567890"
TOKEN = "AQAEAKz-token_value=="
ANSWERS = {
    "instance-id": INSTANCE_ID,
    "instance-type": "c5.xlarge",
    "local-ipv4": "10.1.2.3",
    "placement/availability-zone": "ap-northeast-2a",
}
TIMEOUT = 0.5


class FakeMetadataService:
    """An HTTP server on 127.0.0.1 that answers like the EC2 metadata service.

    `mode`: "v2" (tokens required), "v1" (PUT refused with `put_status`), "slow" (every
    answer waits longer than the client's timeout), "404" (nothing is known), "garbage".
    """

    def __init__(self, mode="v2", put_status=405, answers=None):
        self.mode = mode
        self.put_status = put_status
        self.answers = dict(ANSWERS if answers is None else answers)
        self.requests = []  # (method, path, token header)
        self.release = threading.Event()  # lets "slow" answers go at shutdown
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=b""):
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the slow mode), as it should

            def do_PUT(self):
                service.requests.append(("PUT", self.path, None))
                if service.mode == "slow":
                    service.release.wait(10)
                if self.path != "/latest/api/token" or service.mode == "v1":
                    return self.reply(service.put_status)
                if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    return self.reply(400)
                self.reply(200, TOKEN.encode())

            def do_GET(self):
                token = self.headers.get("X-aws-ec2-metadata-token")
                service.requests.append(("GET", self.path, token))
                if service.mode == "slow":
                    service.release.wait(10)
                if service.mode == "v2" and token != TOKEN:
                    return self.reply(401)
                if service.mode == "garbage":
                    return self.reply(200, b"<html>captive portal</html>")
                prefix = "/latest/meta-data/"
                answer = service.answers.get(self.path[len(prefix):])
                if service.mode == "404" or not self.path.startswith(prefix) or answer is None:
                    return self.reply(404)
                self.reply(200, answer.encode())

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)

    def start(self, testcase):
        self.thread.start()
        testcase.addCleanup(self.stop)
        return self

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def must_not_fetch(url, timeout):
    raise AssertionError(f"the instance metadata service was asked ({url})")


class FetchTests(SynchronousTestCase):
    def serve(self, *args, **kw):
        return FakeMetadataService(*args, **kw).start(self)

    def fetch(self, service):
        return identity.fetch_instance_info(service.url, timeout=TIMEOUT)

    def test_imdsv2(self):
        service = self.serve("v2")
        self.assertEqual(self.fetch(service), {
            "id": INSTANCE_ID, "type": "c5.xlarge", "local_ipv4": "10.1.2.3",
            "zone": "ap-northeast-2a"})
        self.assertEqual(service.requests[0], ("PUT", "/latest/api/token", None))
        gets = service.requests[1:]
        self.assertEqual(len(gets), 4)
        self.assertTrue(all(method == "GET" and token == TOKEN
                            for method, _, token in gets), gets)

    def test_imdsv1_when_the_token_is_refused(self):
        for status in (405, 403):
            service = self.serve("v1", put_status=status)
            self.assertEqual(self.fetch(service)["id"], INSTANCE_ID)
            self.assertTrue(all(token is None for method, _, token in service.requests
                                if method == "GET"))

    def test_optional_fields_may_be_missing(self):
        answers = dict(ANSWERS)
        del answers["local-ipv4"]
        info = self.fetch(self.serve("v2", answers=answers))
        self.assertEqual((info["id"], info["local_ipv4"]), (INSTANCE_ID, None))

    def test_a_slow_service_fails_within_the_timeout(self):
        service = self.serve("slow")
        started = time.monotonic()
        with self.assertRaises(identity.MetadataError) as caught:
            self.fetch(service)
        self.assertLess(time.monotonic() - started, TIMEOUT + 1.0)
        self.assertIn(f"no answer within {TIMEOUT:g} s", str(caught.exception))
        self.assertEqual(len(service.requests), 1, "a timeout must end the lookup")

    def test_unknown_or_nonsense_answers_fail(self):
        for mode, words in (("404", "HTTP 404"), ("garbage", "not a valid instance-id")):
            with self.assertRaises(identity.MetadataError) as caught:
                self.fetch(self.serve(mode))
            self.assertIn(words, str(caught.exception))
        answers = dict(ANSWERS, **{"local-ipv4": "10.1.2"})
        with self.assertRaises(identity.MetadataError):
            self.fetch(self.serve("v2", answers=answers))

    def test_nobody_listening_fails(self):
        service = self.serve("v2")
        url = service.url
        service.stop()
        with self.assertRaises(identity.MetadataError):
            identity.fetch_instance_info(url, timeout=TIMEOUT)

    def test_proxy_variables_are_ignored(self):
        service = self.serve("v2")
        saved = {k: os.environ.get(k) for k in ("http_proxy", "HTTP_PROXY", "no_proxy")}
        self.addCleanup(lambda: [os.environ.pop(k, None) if v is None
                                 else os.environ.__setitem__(k, v)
                                 for k, v in saved.items()])
        os.environ.pop("no_proxy", None)
        os.environ["http_proxy"] = os.environ["HTTP_PROXY"] = "http://127.0.0.1:9"
        self.assertEqual(self.fetch(service)["id"], INSTANCE_ID)


class DetectionTests(SynchronousTestCase):
    def files(self, **contents):
        folder = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, folder, True)
        paths = {key: os.path.join(folder, key) for key in identity.EC2_FILES}
        for key, text in contents.items():
            with open(paths[key], "w") as f:
                f.write(text)
        return paths

    def test_ec2_signs(self):
        for contents in ({"hypervisor_uuid": "ec2e1916-9099-7caf-fd21-012345abcdef\n"},
                         {"product_uuid": "EC2E1916-9099-7CAF-FD21-012345ABCDEF\n"},
                         {"board_vendor": "Amazon EC2\n"},
                         {"sys_vendor": "Amazon EC2\n", "board_vendor": "Amazon EC2\n"}):
            paths = self.files(**contents)
            self.assertIn(identity.ec2_evidence(paths), paths.values(), contents)

    def test_other_machines(self):
        for contents in ({}, {"hypervisor_uuid": "4f1e3c2a-0000-1111-2222-333344445555"},
                         {"sys_vendor": "QEMU\n", "board_vendor": "Amazon EC2 lookalike\n"},
                         {"product_uuid": "12345678-ec20-0000-0000-000000000000"}):
            self.assertIsNone(identity.ec2_evidence(self.files(**contents)), contents)

    def test_auto_on_this_machine_asks_nobody(self):
        if identity.ec2_evidence():
            raise SkipTest("this machine is an EC2 instance")
        info, how, failed = identity.instance_info("auto", fetch=must_not_fetch)
        self.assertEqual((info, failed), ({}, False))
        self.assertIn("not an EC2 instance", how)

    def test_auto_asks_the_link_local_service_on_ec2_and_off_never(self):
        asked = []
        info, _, _ = identity.instance_info(
            "auto", evidence=lambda: "/sys/hypervisor/uuid",
            fetch=lambda url, timeout: asked.append(url) or {"id": INSTANCE_ID})
        self.assertEqual((asked, info["id"]), ([identity.METADATA_URL], INSTANCE_ID))
        self.assertEqual(identity.instance_info("off", evidence=lambda: "yes",
                                                fetch=must_not_fetch)[0], {})

    def test_a_failure_is_explained(self):
        def fail(url, timeout):
            raise identity.MetadataError("GET instance-id answered HTTP 404")
        info, how, failed = identity.instance_info("http://127.0.0.1:9", fetch=fail)
        self.assertEqual((info, failed), ({}, True))
        self.assertIn("unavailable: GET instance-id answered HTTP 404", how)


class PrecedenceTests(SynchronousTestCase):
    instance = {"id": INSTANCE_ID, "type": "c5.xlarge", "local_ipv4": "10.1.2.3",
                "zone": "ap-northeast-2a"}

    def choose(self, agent_id=None, instance=None, advertise=None, listen="*"):
        return identity.choose(agent_id, 6001, instance or {}, advertise, listen,
                               route_host=lambda: "192.0.2.7", hostname="box")

    def test_agent_id(self):
        self.assertEqual(self.choose("mine", self.instance).agent_id, "mine")
        self.assertEqual(self.choose(None, self.instance).agent_id, INSTANCE_ID)
        self.assertEqual(self.choose(None, {}).agent_id, "box:6001")

    def test_advertised_host(self):
        self.assertEqual(self.choose(instance=self.instance, advertise="a.example").host,
                         "a.example")
        self.assertEqual(self.choose(instance=self.instance, listen="127.0.0.1").host,
                         "127.0.0.1")
        self.assertEqual(self.choose(instance=self.instance).host, "10.1.2.3")
        self.assertEqual(self.choose(instance={"id": INSTANCE_ID,
                                               "local_ipv4": None}).host, "192.0.2.7")
        self.assertEqual(self.choose().host, "192.0.2.7")

    def test_instance_is_carried(self):
        self.assertEqual(self.choose("mine", self.instance).instance, self.instance)
        self.assertEqual(self.choose().instance, {})


class TapTests(SynchronousTestCase):
    def options(self, *argv):
        options = tap.Options()
        options.parseOptions(["--manager-addr", "tcp://127.0.0.1:5001", *argv])
        return options

    def make(self, options, **kw):
        return tap.makeService(options, clock=task.Clock(), transport=FakeNetwork(),
                               client_factory=FakeDockerClient,
                               pool=WorkerPool("test-docker", inline=True), **kw)

    def test_the_instance_id_becomes_the_agent_id(self):
        service = FakeMetadataService("v2").start(self)
        agent = self.make(self.options("--instance-metadata", service.url,
                                       "--instance-metadata-timeout", str(TIMEOUT)))
        self.assertEqual(agent.agent_id, INSTANCE_ID)
        self.assertEqual(agent.advertised_addr, "tcp://10.1.2.3:6001")
        self.assertEqual(agent.instance["type"], "c5.xlarge")
        self.assertEqual(agent.kernels.containers.agent_id, INSTANCE_ID)

    def test_an_explicit_agent_id_wins(self):
        service = FakeMetadataService("v2").start(self)
        agent = self.make(self.options("--instance-metadata", service.url,
                                       "--agent-id", "mine", "--listen", "127.0.0.1"))
        self.assertEqual((agent.agent_id, agent.advertised_addr),
                         ("mine", "tcp://127.0.0.1:6001"))
        self.assertEqual(agent.instance["id"], INSTANCE_ID)

    def test_without_metadata_the_host_name_and_port(self):
        fail = functools.partial(identity.identify, fetch=must_not_fetch,
                                 evidence=lambda: None, hostname="box")
        agent = self.make(self.options("--port", "6123"), identify=fail)
        self.assertEqual((agent.agent_id, agent.instance), ("box:6123", {}))

    def test_a_failed_lookup_falls_back(self):
        service = FakeMetadataService("404").start(self)
        agent = self.make(self.options("--instance-metadata", service.url, "--port", "6123"))
        self.assertTrue(agent.agent_id.endswith(":6123"), agent.agent_id)
        self.assertEqual(agent.instance, {})

    def test_the_default_on_this_machine_asks_nobody(self):
        if identity.ec2_evidence():
            raise SkipTest("this machine is an EC2 instance")
        agent = self.make(self.options(), identify=functools.partial(
            identity.identify, fetch=must_not_fetch))
        self.assertEqual(agent.instance, {})

    def test_options_are_validated(self):
        for argv in (["--instance-metadata", "sometimes"],
                     ["--instance-metadata", "ftp://127.0.0.1/"],
                     ["--instance-metadata-timeout", "0"],
                     ["--agent-id", "no spaces"], ["--metrics-port", "0"]):
            self.assertRaises(usage.UsageError, self.options, *argv)
        self.assertEqual(self.options()["instance-metadata"], "auto")
