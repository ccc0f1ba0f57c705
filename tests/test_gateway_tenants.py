"""Tenants at the gateway, on a FakeCluster and a Clock: a kernel is its token's own (404
to every other token, like an unknown id), admins see all, quotas answer 429 naming
themselves, WebSockets and event streams are bounded, bad input is a 400."""

import io
import json
import os

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import server
from twisted.web.test.requesthelper import DummyRequest

from sorna.gateway import tokens
from sorna.gateway.backpressure import (
    SEND_BUDGET, drop_unsent, over_budget, unsent_bytes,
)
from sorna.gateway.channels import (
    CLOSE_REVOKED, CLOSE_TOO_MANY, REQUEST_BURST, ChannelsApi, Malformed, parse_message,
)
from sorna.gateway.dashboard import MAX_WATCHERS, RECENT_ERRORS, DashboardApi
from sorna.gateway.jupyter import REFRESH_INTERVAL, JupyterApi, Kernels
from sorna.gateway.piston import PistonApi
from sorna.gateway.tenants import Quotas, Tenant
from sorna.gateway.web import Api
from sorna.proto.codec import parse_json
from sorna.proto.errors import BadRequest
from sorna.testing.cluster import FakeCluster
from sorna.testing.gateway import jupyter_message
from tests.support import temp_folder
from tests.test_gateway import FakeConnection

QUOTAS = Quotas(kernels=2, runs=2, sockets=3, sockets_per_kernel=2, streams=2)


class GatewayCase(SynchronousTestCase):
    """The gateway's routes on a FakeCluster, with the tokens alice, bob (plain) and ops
    (admin), called with in-memory requests."""

    quotas = QUOTAS

    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock, max_kernels=8)
        self.cluster.start()
        self.client = self.cluster.client()
        self.path = os.path.join(temp_folder(self), "tokens")
        self.token = {"alice": tokens.add(self.path, "alice"),
                      "bob": tokens.add(self.path, "bob"),
                      "ops": tokens.add(self.path, "ops", admin=True)}
        self.ring = tokens.TokenRing(self.path)
        self.kernels = Kernels(self.client, self.clock, quotas=self.quotas)
        self.channels = ChannelsApi(self.kernels, self.clock, self.quotas, self.ring)
        self.dashboard = DashboardApi(self.client, self.kernels, self.clock,
                                      quotas=self.quotas)
        self.piston = PistonApi(self.client, self.clock, self.kernels, self.quotas)
        self.ring.listeners += [self.channels.revoke, self.dashboard.revoke]
        self.api = Api(JupyterApi(self.kernels).routes() + self.channels.routes()
                       + self.piston.routes() + self.dashboard.routes(), self.ring,
                       on_error=self.dashboard.record_error)

    def tearDown(self):
        self.dashboard.stop()
        self.client.close()
        self.successResultOf(self.cluster.stop())

    def tenant(self, name):
        return self.ring.tenant_of(self.token[name])

    def request(self, method, path, who=None, body=None, raw=None, headers=()):
        request = DummyRequest(path.strip("/").split("/"))
        request.method = method.encode()
        request.path = path.encode()
        request.too_large = False
        request._disconnected = False
        request.transport = None
        data = raw if raw is not None else (b"" if body is None else json.dumps(body)
                                            .encode())
        request.content = io.BytesIO(data)
        if data:
            request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
        if who:
            request.requestHeaders.setRawHeaders(
                b"authorization", [f"token {self.token[who]}".encode()])
        for name, value in headers:
            request.requestHeaders.setRawHeaders(name, [value])
        return request

    def call(self, method, path, who=None, body=None, **kw):
        """(status, JSON answer) of a request."""
        request = self.request(method, path, who, body, **kw)
        result = self.api.render(request)
        data = b"".join(request.written) if result is server.NOT_DONE_YET else result
        return request.responseCode or 200, json.loads(data) if data else None

    def start(self, who, lang="python3"):
        status, kernel = self.call("POST", "/api/kernels", who, {"name": lang})
        self.assertEqual(status, 201, kernel)
        return kernel


class OwnershipTests(GatewayCase):
    def test_another_tokens_kernel_answers_as_an_unknown_id(self):
        kernel = self.start("alice")
        path = f"/api/kernels/{kernel['id']}"
        unknown = "0" * 8 + "-0000-0000-0000-" + "0" * 12
        for method, suffix in (("GET", ""), ("POST", "/interrupt"), ("POST", "/restart"),
                               ("DELETE", ""), ("GET", "/channels")):
            status, answer = self.call(method, path + suffix, "bob")
            status_unknown, answer_unknown = self.call(
                method, f"/api/kernels/{unknown}{suffix}", "bob")
            self.assertEqual((status, answer["reason"]), (404, "kernel-not-found"))
            self.assertEqual(answer["message"].replace(kernel["id"], unknown),
                             answer_unknown["message"])
            self.assertEqual(status_unknown, 404)
        self.assertEqual(self.call("GET", "/api/kernels", "bob")[1], [])
        self.assertEqual([k["id"] for k in self.call("GET", "/api/kernels", "alice")[1]],
                         [kernel["id"]])
        self.assertEqual(self.call("GET", path, "alice")[0], 200)
        self.assertEqual(self.successResultOf(self.client.status())["kernels"], 1)

    def test_an_admin_sees_and_manages_every_kernel(self):
        alices, bobs = self.start("alice"), self.start("bob")
        listed = {k["id"] for k in self.call("GET", "/api/kernels", "ops")[1]}
        self.assertEqual(listed, {alices["id"], bobs["id"]})
        self.assertEqual(self.call("DELETE", f"/api/kernels/{alices['id']}", "ops")[0],
                         204)
        self.assertEqual(self.call("GET", f"/api/kernels/{alices['id']}", "alice")[0], 404)
        self.assertEqual(self.call("GET", f"/api/kernels/{bobs['id']}", "bob")[0], 200)


class QuotaTests(GatewayCase):
    def test_a_token_past_its_kernel_quota_gets_a_429_naming_it(self):
        first = self.start("alice")
        self.start("alice")
        status, answer = self.call("POST", "/api/kernels", "alice", {"name": "python3"})
        self.assertEqual((status, answer["reason"], answer["quota"], answer["limit"]),
                         (429, "quota-exceeded", "max-kernels", 2))
        self.assertIn("--max-kernels-per-token", answer["message"])
        self.assertIn("sorna tokens set alice --max-kernels", answer["message"])
        self.start("bob")  # the others are not held back
        self.call("DELETE", f"/api/kernels/{first['id']}", "alice")
        self.start("alice")

    def test_a_tokens_own_quota_overrides_the_default(self):
        tokens.update(self.path, "alice", max_kernels=3)
        tokens.update(self.path, "bob", max_kernels=0)
        self.ring.replace(self.ring.read())
        for _ in range(3):
            self.start("alice")
        self.assertEqual(self.call("POST", "/api/kernels", "alice", {})[1]["limit"], 3)
        self.assertEqual(self.call("POST", "/api/kernels", "bob", {})[0], 429)

    def test_a_kernel_sorna_lost_stops_counting(self):
        kernel = self.start("alice")
        self.start("alice")
        sorna_id = self.kernels.find(kernel["id"], self.tenant("alice")).sorna_id
        self.successResultOf(self.client.destroy(sorna_id))  # culled, say
        self.assertEqual(self.call("POST", "/api/kernels", "alice", {})[0], 429)
        self.clock.advance(REFRESH_INTERVAL)
        self.start("alice")

    def test_creations_under_way_count(self):
        pending = []

        def create(lang, **kw):
            pending.append(defer.Deferred())
            return pending[-1]

        self.patch(self.client, "create", create)
        for _ in range(2):
            request = self.request("POST", "/api/kernels", "alice", {"name": "python3"})
            self.assertIs(self.api.render(request), server.NOT_DONE_YET)
        self.assertEqual(self.call("POST", "/api/kernels", "alice", {})[0], 429)
        for d in pending:
            d.callback({"lang": "python3", "kernel_id": "k" * 22})
        self.assertEqual(len(self.kernels.owned_by("alice")), 2)
        self.assertEqual(self.kernels._starting, {})

    def test_piston_executes_past_the_run_quota_get_a_429(self):
        runs = []

        def run(*args):
            runs.append(defer.Deferred())
            return runs[-1]

        self.patch(self.piston, "_run", run)
        body = {"language": "python", "version": "*", "files": [{"content": "1"}]}
        for _ in range(2):
            self.api.render(self.request("POST", "/api/v2/execute", "alice", body))
        status, answer = self.call("POST", "/api/v2/execute", "alice", body)
        self.assertEqual((status, answer["quota"], answer["limit"]), (429, "max-runs", 2))
        self.api.render(self.request("POST", "/api/v2/execute", "bob", body))
        self.assertEqual(len(runs), 3)
        for d in runs:
            d.callback({})
        self.assertEqual(self.piston.running, {})


class BadInputTests(GatewayCase):
    def test_deep_or_non_finite_json_is_a_400(self):
        for raw in (b"[" * 100_000 + b"]" * 100_000, b'{"name": NaN}',
                    b'{"name": Infinity}', b'{"a": 1e400}',
                    b'{"a":' * 40 + b"1" + b"}" * 40):
            status, answer = self.call("POST", "/api/kernels", "alice", raw=raw)
            self.assertEqual((status, answer["reason"]), (400, "malformed-json"), raw[:20])
        self.assertEqual(self.dashboard.errors_of, {})

    def test_piston_numbers_out_of_range_are_a_400(self):
        body = {"language": "python", "version": "*", "files": [{"content": "1"}]}
        for field, value in (("run_memory_limit", 10 ** 30), ("run_timeout", 1e300),
                             ("compile_timeout", 10 ** 20)):
            status, answer = self.call("POST", "/api/v2/execute", "alice",
                                       dict(body, **{field: value}))
            self.assertEqual(status, 400, answer)
            self.assertIn(f"{field} must be at most", answer["message"])

    def test_parse_json_bounds_depth_and_numbers(self):
        self.assertEqual(parse_json(b'{"a": [1, 2.5]}'), {"a": [1, 2.5]})
        for text in ('[' * 33 + ']' * 33, '[NaN]', '-Infinity', '[1e999]', '{"a": '):
            with self.assertRaises(BadRequest):
                parse_json(text)


class ChannelsTests(GatewayCase):
    def open(self, kernel, who="alice"):
        conn = FakeConnection(self.kernels.find(kernel["id"], self.tenant(who)),
                              self.tenant(who), self.clock)
        self.channels.open(conn)
        return conn

    def send(self, conn, msg_type, content=None):
        message = jupyter_message(msg_type, content or {})
        self.channels.handle(conn, parse_message(json.dumps(message)), msg_type)
        return [m for m in conn.sent
                if m["parent_header"].get("msg_id") == message["header"]["msg_id"]]

    def test_malformed_messages_are_named(self):
        good = jupyter_message("kernel_info_request", {})
        cases = [[], {"header": 5}, {"header": {"msg_type": 7}},
                 dict(good, header=dict(good["header"], msg_id=["x"])),
                 dict(good, parent_header="x"),
                 dict(good, parent_header={"msg_id": ["x"]}),
                 dict(good, content=[1]), dict(good, channel=5),
                 dict(good, header=dict(good["header"], session="s" * 5000))]
        for message in cases:
            with self.assertRaises(Malformed):
                parse_message(json.dumps(message))
        for raw in (b"[" * 50_000, b'{"header": {"msg_type": "x"}, "content": NaN}',
                    b"\xff"):
            with self.assertRaises(Malformed):
                parse_message(raw)
        extra = dict(good, header=dict(good["header"], huge={"a": "b" * 100},
                                       date=1765000000.5))
        header = parse_message(json.dumps(extra))["header"]
        self.assertNotIn("huge", header)
        self.assertEqual(header["date"], 1765000000.5)

    def test_cheap_requests_are_rate_limited_per_socket(self):
        kernel = self.start("alice")
        conn, other = self.open(kernel), self.open(kernel)
        replies = [m for _ in range(REQUEST_BURST + 5)
                   for m in self.send(conn, "kernel_info_request")
                   if m["msg_type"] == "kernel_info_reply"]
        outcomes = [r["content"].get("ename", r["content"]["status"]) for r in replies]
        self.assertEqual(outcomes, ["ok"] * REQUEST_BURST + ["RateLimited"] * 5)
        [reply] = self.send(other, "complete_request", {"code": "x", "cursor_pos": 1})
        self.assertEqual(reply["content"]["status"], "ok")
        self.clock.advance(1)
        self.assertEqual(self.send(conn, "is_complete_request", {"code": "for x in y:"})[0][
            "content"], {"status": "incomplete", "indent": "    "})
        for _ in range(2 * REQUEST_BURST):
            self.send(conn, "kernel_info_request")
        self.assertEqual(conn.closed[0], CLOSE_TOO_MANY, "a socket that goes on")
        self.assertIsNone(other.closed)

    def test_sockets_past_a_quota_are_refused_before_the_upgrade(self):
        first, second = self.start("alice"), self.start("alice")
        self.open(first), self.open(first)
        headers = [(b"upgrade", b"websocket")]
        status, answer = self.call("GET", f"/api/kernels/{first['id']}/channels", "alice",
                                   headers=headers)
        self.assertEqual((status, answer["quota"]), (429, "max-sockets-per-kernel"))
        self.open(second)
        status, answer = self.call("GET", f"/api/kernels/{second['id']}/channels",
                                   "alice", headers=headers)
        self.assertEqual((status, answer["quota"], answer["limit"]),
                         (429, "max-sockets", 3))

    def test_a_socket_without_a_token_is_its_kernels_owners(self):
        """jupyter_server's gateway client opens the channels with no token: the
        kernel's id is the credential, and the socket counts for the owner."""
        kernel = self.start("alice")
        path = f"/api/kernels/{kernel['id']}/channels"
        self.assertEqual(self.call("GET", path)[1]["reason"], "not-websocket")
        self.assertEqual(self.channels._owner(kernel["id"]).name, "alice")
        unknown = "0" * 8 + "-0000-0000-0000-" + "0" * 12
        self.assertEqual(self.call("GET", f"/api/kernels/{unknown}/channels")[0], 404)
        self.assertEqual(self.call("GET", path, headers=[(b"authorization", b"token x")])[0],
                         401, "a wrong token is refused, not ignored")
        tokens.remove(self.path, "alice")
        self.ring.replace(self.ring.read())
        self.assertEqual(self.call("GET", path)[0], 404)

    def test_a_revoked_tokens_sockets_are_closed(self):
        alices = self.open(self.start("alice"))
        bobs = self.open(self.start("bob"), "bob")
        tokens.remove(self.path, "alice")
        self.ring.replace(self.ring.read())
        self.assertEqual(alices.closed, (CLOSE_REVOKED, "the token was revoked"))
        self.assertIsNone(bobs.closed)

    def test_the_send_budget(self):
        class Transport:
            dataBuffer, offset, _tempDataLen = b"x" * 1000, 200, 300

        self.assertEqual(unsent_bytes(Transport()), 1100)
        self.assertFalse(over_budget(Transport(), SEND_BUDGET - 1100))
        self.assertTrue(over_budget(Transport(), SEND_BUDGET))
        transport = Transport()
        drop_unsent(transport)
        self.assertEqual(unsent_bytes(transport), 0)
        self.assertFalse(over_budget(transport, 10 * SEND_BUDGET),
                         "a large message goes to a socket that has read everything")


class DashboardTests(GatewayCase):
    def watch(self, who):
        request = self.request("GET", "/api/dashboard/events", who)
        result = self.api.render(request)
        return request, result

    def test_a_plain_token_sees_the_clusters_size_and_its_own_kernels_and_errors(self):
        self.start("alice")
        self.start("bob", "python3")
        self.dashboard.record_error("manager status", "down")
        self.dashboard.record_error("POST /api/kernels", "bobs", self.tenant("bob"))
        self.clock.advance(3)
        status, state = self.call("GET", "/api/dashboard", "alice")
        self.assertEqual((state["role"], state["agents"], state["errors"], state["kernels"],
                          state["by_lang"], state["gateway"]["kernels"]),
                         ("user", [], [], 2, {"python3": 1}, 1))
        self.assertEqual(self.call("GET", "/api/dashboard", "bob")[1]["errors"][0]["message"],
                         "bobs")
        state = self.call("GET", "/api/dashboard", "ops")[1]
        self.assertEqual(state["gateway"]["by_token"], {"alice": 1, "bob": 1})
        self.assertEqual(len(state["agents"]), 1)

    def test_a_token_cannot_push_the_gateways_own_errors_off(self):
        self.dashboard.record_error("manager status", "the operator's")
        for i in range(3 * RECENT_ERRORS):
            self.dashboard.record_error("POST /api/kernels", f"bob {i}", self.tenant("bob"))
        errors = self.call("GET", "/api/dashboard", "ops")[1]["errors"]
        self.assertIn("the operator's", [e["message"] for e in errors])
        self.assertEqual(len(errors), RECENT_ERRORS + 1)

    def test_event_streams_are_bounded_per_token_and_admins_always_get_one(self):
        for _ in range(2):
            self.assertIs(self.watch("bob")[1], server.NOT_DONE_YET)
        request, answer = self.watch("bob")
        self.assertEqual((request.responseCode, json.loads(answer)["quota"]),
                         (429, "max-streams"))
        others = {object(): Tenant(f"t{i}") for i in range(MAX_WATCHERS - 2)}
        self.dashboard.watchers.update(others)  # the gateway's streams are all taken
        self.assertEqual(self.watch("alice")[0].responseCode, 503)
        self.assertIs(self.watch("ops")[1], server.NOT_DONE_YET)
        for placeholder in others:
            del self.dashboard.watchers[placeholder]

    def test_a_revoked_tokens_stream_ends(self):
        request, _ = self.watch("alice")
        tokens.remove(self.path, "alice")
        self.ring.replace(self.ring.read())
        self.assertEqual(request.finished, 1)
        self.assertEqual(list(self.dashboard.watchers.values()), [])
