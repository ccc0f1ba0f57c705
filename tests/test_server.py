"""RequestServer: framing, dispatch, error replies, the 2016 JSON path, in-flight work."""

import json

import msgpack
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from sorna.proto.actions import MANAGER, MANAGER_LEGACY
from sorna.proto.errors import KernelNotFound
from sorna.server import NO_REPLY, RequestServer


class RecordingSocket:
    def __init__(self):
        self.sent = []

    def send(self, peer, frames):
        self.sent.append((peer, frames))


class ServerTests(SynchronousTestCase):
    def setUp(self):
        self.calls = []
        self.replies = []
        self.waiting = defer.Deferred()
        handlers = {
            "ping": lambda req: {"reply": 0, "body": req.fields["body"]},
            "status": lambda req: self.waiting,
            "destroy": self.destroy,
            "kernel_info": lambda req: 1 / 0,
            "heartbeat": lambda req: NO_REPLY,
        }
        self.server = RequestServer("test", MANAGER, MANAGER_LEGACY, handlers,
                                    on_reply=lambda peer, m: self.replies.append((peer, m)),
                                    max_size=4096)
        self.socket = self.server.socket = RecordingSocket()

    def destroy(self, req):
        self.calls.append(req)
        raise KernelNotFound(f"no kernel has id {req.fields['kernel_id']}")

    def last(self):
        peer, frames = self.socket.sent[-1]
        data = frames[-1]
        if data[:1] == b"{":
            return peer, frames[:-1], json.loads(data)
        return peer, frames[:-1], msgpack.unpackb(data)

    def test_req_envelope_is_kept_and_id_echoed(self):
        self.server.on_message(b"peer", [b"", msgpack.packb({"action": "ping", "id": 7,
                                                             "body": "x"})])
        self.assertEqual(self.last(), (b"peer", [b""], {"reply": 0, "body": "x", "id": 7}))

    def test_dealer_without_delimiter(self):
        self.server.on_message(b"p", [msgpack.packb({"action": "ping", "id": "a"})])
        self.assertEqual(self.last(), (b"p", [], {"reply": 0, "body": None, "id": "a"}))

    def test_proxied_routing_frames_are_kept(self):
        self.server.on_message(b"p", [b"hop", b"", msgpack.packb({"action": "ping"})])
        self.assertEqual(self.last()[1], [b"hop", b""])

    def test_json_request_gets_json_reply_with_legacy_codes(self):
        self.server.on_message(b"p", [b"", b'{"action": 3, "kernel_id": "AAAAAAAAAAAAAAAAAAAAAA"}'])
        peer, envelope, reply = self.last()
        self.assertEqual(reply["reply"], 400)  # 404 is spelled 400 for 2016 front-ends
        self.assertIn("no kernel has id", reply["cause"])

    def test_errors_are_4xx_with_causes(self):
        cases = [
            ([b"", b"\xc1"], 400, "not valid msgpack"),
            ([b"", msgpack.packb([1])], 400, "must be a map"),
            ([b"", msgpack.packb({"action": "launch"})], 400, "unknown action"),
            ([b"", msgpack.packb({"action": "destroy", "kernel_id": 1})], 400, "string"),
            ([b"", msgpack.packb({"action": "ping", "x": "y" * 5000})], 413, "limit"),
            ([b"", b"a", b"b"], 400, "one frame"),
            ([b"", msgpack.packb({"action": "destroy", "kernel_id": "A" * 22, "id": 3})],
             404, "no kernel"),
        ]
        for frames, code, cause in cases:
            self.server.on_message(b"p", frames)
            reply = self.last()[2]
            self.assertEqual(reply["reply"], code, (frames, reply))
            self.assertIn(cause, reply["cause"])
        self.assertEqual(len(self.calls), 1)  # only the valid request reached its handler

    def test_the_clients_trace_id_names_the_request_in_the_log(self):
        events = []
        self.server.log.observer = events.append
        self.server.on_message(b"p", [b"", msgpack.packb(
            {"action": "destroy", "kernel_id": "A" * 22, "trace": "web-42.a:b"})])
        self.assertEqual(self.calls[-1].trace, "web-42.a:b")
        for _ in range(20):  # a peer's 4xx answers are logged at a bounded rate
            self.server.on_message(b"p", [b"", msgpack.packb(
                {"action": "destroy", "kernel_id": "A" * 22})])
        self.assertLessEqual(len([e for e in events if "request" in e]), 10)
        [event] = [e for e in events if e.get("request") == "web-42.a:b"]
        self.assertEqual((event["action"], event["kernel"], event["code"]),
                         ("destroy", "A" * 22, 404))

    def test_a_request_without_a_trace_id_gets_one(self):
        self.server.on_message(b"p", [b"", msgpack.packb(
            {"action": "destroy", "kernel_id": "A" * 22})])
        self.server.on_message(b"p", [b"", msgpack.packb(
            {"action": "destroy", "kernel_id": "A" * 22})])
        first, second = (req.trace for req in self.calls)
        self.assertRegex(first, r"^test-[0-9a-f]{12}$")
        self.assertNotEqual(first, second)

    def test_an_unusable_trace_id_is_a_400(self):
        for trace in ("", "x" * 65, "a b", 7, ["x"]):
            self.server.on_message(b"p", [b"", msgpack.packb(
                {"action": "destroy", "kernel_id": "A" * 22, "trace": trace})])
            reply = self.last()[2]
            self.assertEqual(reply["reply"], 400, trace)
            self.assertIn("`trace` must be", reply["cause"])
        self.assertEqual(self.calls, [])

    def test_heartbeats_and_pings_leave_no_request_line(self):
        events = []
        self.server.log.observer = events.append
        self.server.on_message(b"p", [b"", msgpack.packb({"action": "ping"})])
        self.assertEqual([e for e in events if "request" in e], [])

    def test_a_crashing_handler_is_a_500_and_logged(self):
        self.server.on_message(b"p", [b"", msgpack.packb(
            {"action": "kernel_info", "kernel_id": "A" * 22})])
        reply = self.last()[2]
        self.assertEqual(reply["reply"], 500)
        self.assertIn("ZeroDivisionError", reply["cause"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_no_reply_handlers_send_nothing(self):
        self.server.on_message(b"a1", [b"", msgpack.packb({
            "action": "heartbeat", "agent_id": "a1", "session": "0" * 32, "addr": "tcp://x:1",
            "max_kernels": 1})])
        self.assertEqual(self.socket.sent, [])

    def test_replies_to_our_requests_go_to_on_reply(self):
        self.server.on_message(b"a1", [b"", msgpack.packb({"id": 4, "reply": 200})])
        self.assertEqual(self.replies, [(b"a1", {"id": 4, "reply": 200})])
        self.assertEqual(self.socket.sent, [])

    def test_in_flight_work_is_awaited(self):
        self.server.on_message(b"p", [b"", msgpack.packb({"action": "status"})])
        done = self.server.in_flight.wait()
        self.assertNoResult(done)
        self.waiting.callback({"agents": []})
        self.successResultOf(done)
        self.assertEqual(self.last()[2], {"agents": [], "reply": 200})
