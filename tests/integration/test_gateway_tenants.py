"""Two tokens at one gateway, one of them hostile, against real manager, agent and
gateway processes and the real Docker engine: `bob` can neither see nor touch `alice`'s
kernels, cannot take the capacity she needs, cannot grow the gateway without bound by
not reading, and his bad input is a 4xx that changes nothing."""

import json
import threading
import urllib.request

import websocket

from sorna.gateway import tokens
from sorna.testing.gateway import FloodProbe, Http, JupyterSocket, stdout_of
from sorna.testing.processes import wait_until
from tests.integration import ClusterTestCase

UNKNOWN = "0" * 8 + "-0000-0000-0000-" + "0" * 12
MIB = 1 << 20


class TenantsCase(ClusterTestCase):
    gateway_args = ["--max-kernels-per-token", "2", "--max-runs-per-token", "1",
                    "--max-streams-per-token", "2"]

    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster(max_kernels=4)
        self.gateway = self.start_gateway(self.manager, extra_args=self.gateway_args)
        self.tokens = {name: self.gateway.add_token(name) for name in ("alice", "bob")}
        self.alice = Http(self.gateway.url, self.tokens["alice"])
        self.bob = Http(self.gateway.url, self.tokens["bob"])

    def start_kernel(self, http, name="python3"):
        status, kernel, _ = http.post("/api/kernels", {"name": name})
        self.assertEqual(status, 201, kernel)
        self.addCleanup(lambda: http.delete(f"/api/kernels/{kernel['id']}"))
        return kernel

    def channels(self, kernel, token):
        sock = JupyterSocket(self.gateway.url, kernel["id"], token)
        self.addCleanup(sock.close)
        return sock

    def close_code(self, sock):
        """The close code the gateway sent on `sock`."""
        frame = websocket.ABNF()
        while frame.opcode != websocket.ABNF.OPCODE_CLOSE:
            frame = sock.ws.recv_frame()
        return int.from_bytes(frame.data[:2], "big")

    def assertNoTraceback(self):
        self.assertNotIn("Traceback", self.gateway.log())


class IsolationTests(TenantsCase):
    def test_another_tokens_kernel_does_not_exist(self):
        kernel = self.start_kernel(self.alice)
        mine = self.channels(kernel, self.tokens["alice"])
        mine.execute("secret = 'hunter2'")
        path = f"/api/kernels/{kernel['id']}"
        self.assertEqual(self.bob.get("/api/kernels")[1], [])
        for method, suffix in (("GET", ""), ("POST", "/interrupt"), ("POST", "/restart"),
                               ("DELETE", "")):
            status, body, _ = self.bob.call(method, path + suffix,
                                            body={} if method == "POST" else None)
            unknown = self.bob.call(method, f"/api/kernels/{UNKNOWN}{suffix}",
                                    body={} if method == "POST" else None)
            self.assertEqual((status, body["reason"]), (404, "kernel-not-found"))
            self.assertEqual((unknown[0], body["message"].replace(kernel["id"], UNKNOWN)),
                             (404, unknown[1]["message"]))
        for attach in (lambda: JupyterSocket(self.gateway.url, kernel["id"],
                                             self.tokens["bob"]),
                       lambda: websocket.create_connection(
                           self.gateway.url.replace("http", "ws") + path
                           + f"/channels?token={self.tokens['bob']}")):
            with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
                attach()
            self.assertEqual(caught.exception.status_code, 404)
        # Her kernel, her state and her socket are untouched.
        self.assertEqual(stdout_of(mine.execute("print(secret)")), "hunter2\n")
        self.assertEqual([k["id"] for k in self.alice.get("/api/kernels")[1]],
                         [kernel["id"]])
        state = self.bob.get("/api/dashboard")[1]
        self.assertEqual((state["role"], state["agents"], state["gateway"]["kernels"],
                          state["by_lang"]), ("user", [], 0, {}))
        admin = Http(self.gateway.url, self.gateway.token).get("/api/dashboard")[1]
        self.assertEqual(admin["gateway"]["by_token"], {"alice": 1})

    def test_an_admin_token_manages_every_kernel(self):
        kernel = self.start_kernel(self.alice)
        admin = Http(self.gateway.url, self.gateway.token)
        self.assertEqual([k["id"] for k in admin.get("/api/kernels")[1]], [kernel["id"]])
        self.assertEqual(admin.delete(f"/api/kernels/{kernel['id']}")[0], 204)
        self.assertEqual(self.alice.get(f"/api/kernels/{kernel['id']}")[0], 404)

    def test_a_removed_token_loses_its_open_socket(self):
        sock = self.channels(self.start_kernel(self.alice), self.tokens["alice"])
        tokens.remove(self.gateway.tokens_path, "alice")
        self.assertEqual(self.close_code(sock), 4401)
        wait_until(lambda: self.alice.get("/api/kernels")[0] == 401, 10,
                   "the removed token refused")


class QuotaTests(TenantsCase):
    def test_one_token_cannot_take_the_capacity(self):
        for _ in range(2):
            self.start_kernel(self.alice)
        status, body, _ = self.alice.post("/api/kernels", {"name": "python3"})
        self.assertEqual((status, body["quota"], body["limit"]), (429, "max-kernels", 2))
        self.assertIn("--max-kernels-per-token", body["message"])
        kernel = self.start_kernel(self.bob)  # the cluster had room for him
        self.assertEqual(stdout_of(self.channels(kernel, self.tokens["bob"]).execute(
            "print(6 * 7)")), "42\n")

    def test_piston_runs_past_the_quota_get_429_and_the_neighbour_runs(self):
        slow = {"language": "python", "version": "*",
                "files": [{"content": "import time\ntime.sleep(4)\nprint('slow')"}]}
        answers = []
        thread = threading.Thread(target=lambda: answers.append(
            self.alice.post("/api/v2/execute", slow)))
        thread.start()
        self.addCleanup(thread.join)
        wait_until(lambda: self.client(self.manager).status()["kernels"] >= 1, 10,
                   "alice's first run started")
        status, body, _ = self.alice.post("/api/v2/execute", slow)
        self.assertEqual((status, body["quota"]), (429, "max-runs"))
        status, body, _ = self.bob.post("/api/v2/execute", {
            "language": "python", "version": "*", "files": [{"content": "print(1)"}]})
        self.assertEqual((status, body["run"]["stdout"]), (200, "1\n"))
        thread.join()
        self.assertEqual(answers[0][1]["run"]["stdout"], "slow\n")

    def test_event_streams_are_bounded_per_token_and_an_admin_still_gets_one(self):
        def stream(token):
            return urllib.request.urlopen(
                f"{self.gateway.url}/api/dashboard/events?token={token}", timeout=10)

        held = [stream(self.tokens["bob"]) for _ in range(2)]
        for response in held:
            self.addCleanup(response.close)
        with self.assertRaises(urllib.error.HTTPError) as caught:
            stream(self.tokens["bob"])
        self.assertEqual(caught.exception.code, 429)
        self.assertEqual(json.loads(caught.exception.read())["quota"], "max-streams")
        with stream(self.gateway.token) as admin:
            self.assertEqual(admin.status, 200)


class BadInputTests(TenantsCase):
    def test_bodies_and_numbers_that_broke_the_gateway_are_400(self):
        deep = b"[" * 100_000 + b"]" * 100_000
        for path, raw in (("/api/kernels", deep), ("/api/v2/execute", deep),
                          ("/api/v2/execute", b'{"language": "python", "version": "*", '
                                              b'"files": [{"content": "1"}], '
                                              b'"run_memory_limit": Infinity}'),
                          ("/api/v2/execute", b'{"language": "python", "version": "*", '
                                              b'"files": [{"content": "1"}], '
                                              b'"run_memory_limit": 1e400}')):
            status, body, _ = self.bob.call("POST", path, raw=raw, headers={
                "Content-Type": "application/json"})
            self.assertEqual(status, 400, body)
        admin = Http(self.gateway.url, self.gateway.token).get("/api/dashboard")[1]
        self.assertEqual(admin["errors"], [])
        self.assertNoTraceback()

    def test_websocket_messages_of_the_wrong_shape_close_with_4400(self):
        kernel = self.start_kernel(self.bob)
        valid = {"header": {"msg_id": "1", "msg_type": "input_reply"}, "content": {},
                 "channel": "stdin"}
        for frame in ('{"header": ' * 5000 + "1" + "}" * 5000,
                      json.dumps(dict(valid, parent_header="x")),
                      json.dumps(dict(valid, parent_header={"msg_id": ["x"]})),
                      json.dumps(dict(valid, content=[1]))):
            sock = self.channels(kernel, self.tokens["bob"])
            sock.ws.send(frame)
            self.assertEqual(self.close_code(sock), 4400)
        self.assertEqual(stdout_of(self.channels(kernel, self.tokens["bob"]).execute(
            "print(1)")), "1\n")
        self.assertNoTraceback()


class FloodTests(TenantsCase):
    """The memory probes at a bounded size (bench/gateway_tenants.py runs them at full
    size): the gateway's RSS grows by at most 256 MiB and comes back, the sockets that
    do not read are closed, and the neighbour's median round trip stays under 0.5 s."""

    gateway_args = TenantsCase.gateway_args + ["--max-sockets-per-kernel", "12"]

    def probe(self, flood, sockets, seconds):
        result = FloodProbe(self.gateway.url, self.gateway.process.pid,
                            self.tokens["bob"], self.tokens["alice"], sockets=sockets,
                            seconds=seconds, flood=flood).run()
        rss = result["rss_mib"]
        self.assertLess(rss["peak"] - rss["before"], 256, result)
        self.assertLess(rss["after"] - rss["before"], 32, result)
        self.assertLess(result["neighbour_ms"]["p50"], 500, result)
        self.assertGreater(result["closed_by_gateway"], 0, result)
        return result

    def test_silent_sockets_under_large_outputs(self):
        result = self.probe("output", sockets=12, seconds=8)
        self.assertEqual(result["upgrades"], {"101": 11, "429": 1}, result)

    def test_silent_sockets_sending_kernel_info_requests(self):
        self.probe("kernel_info", sockets=10, seconds=8)
