"""Bad input against real processes: each bad message gets a 4xx reply with a cause,
is logged as refused, and changes nothing; a flood of garbage leaves both processes
working."""

import json
import random

import msgpack
import zmq

from sorna.testing.keys import secure
from tests.integration import ClusterTestCase

MAX_MESSAGE_SIZE = 4096
UNKNOWN_KERNEL = "AAAAAAAAAAAAAAAAAAAAAA"
REFUSED = "refused a message from"


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def garbage(rng, i):
    """Bad frames of several kinds; none of them can decode to a map."""
    kinds = [
        lambda: b"\xc1" + rng.randbytes(rng.randrange(0, 64)),  # 0xc1 is never msgpack
        lambda: packb({"action": "ping", "body": "x" * 40})[:rng.randrange(1, 20)],
        lambda: packb([rng.random(), "list", i]),
        lambda: b"{" + rng.randbytes(rng.randrange(0, 32)).replace(b"}", b""),
        lambda: json.dumps([1, 2, i]).encode(),
        lambda: packb(rng.randrange(1 << 30)),
    ]
    return kinds[i % len(kinds)]()


def decode_reply(raw):
    """Replies come in the request's encoding: JSON for frames starting with `{`."""
    return json.loads(raw) if raw[:1] == b"{" else msgpack.unpackb(raw, raw=False)


class BadInputTests(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster(
            manager_kw={"max_message_size": MAX_MESSAGE_SIZE},
            agent_kw={"max_message_size": MAX_MESSAGE_SIZE})

    def assertRefused(self, reply, code, error=None, cause=None):
        self.assertEqual(reply["reply"], code, reply)
        self.assertIsInstance(reply["cause"], str)
        self.assertGreater(len(reply["cause"].split()), 2, "the cause is not a sentence")
        if error is not None:
            self.assertEqual(reply["error"], error, reply)
        if cause is not None:
            self.assertIn(cause, reply["cause"])

    def both(self):
        return (self.manager.addr, self.agent.addr)

    def test_undecodable_frames(self):
        truncated = packb({"action": "ping", "id": 1, "body": "hello"})[:-3]
        for addr in self.both():
            self.assertRefused(self.request(addr, truncated), 400, "malformed", "msgpack")
            self.assertRefused(self.request(addr, b"\xc1\xc1"), 400, "malformed")
            self.assertRefused(self.request(addr, packb(["action", "ping"])), 400,
                               "malformed", "must be a map, not list")
            self.assertRefused(self.request(addr, packb(42)), 400, "malformed")

    def test_json_that_is_not_an_object(self):
        for addr in self.both():
            # Only a frame starting with `{` is JSON; others are read as msgpack.
            self.assertRefused(self.request(addr, b'[1, 2, 3]'), 400, "malformed")
            self.assertRefused(self.request(addr, b'"ping"'), 400, "malformed")
            sock = self.socket(zmq.REQ, addr)
            sock.send(b'{"action": 0, "body": ')
            reply = json.loads(self.receive(sock))
            self.assertRefused(reply, 400, cause="not valid JSON")

    def test_wrong_field_types(self):
        manager, agent = self.both()
        cases = [
            (manager, {"action": "create", "lang": 3}, "`lang` must be a string"),
            (manager, {"action": "create", "lang": "python3", "limits": [1]},
             "`limits` must be a map"),
            (manager, {"action": "create", "lang": "python3", "limits": {"memory_mb": "1g"}},
             "`limits.memory_mb` must be an integer"),
            (manager, {"action": "get_or_create", "user_id": ["u"], "entry_id": "e",
                       "lang": "python3"}, "`user_id` must be a string"),
            (manager, {"action": "get_or_create", "entry_id": "e", "lang": "python3"},
             "`user_id` is missing"),
            (manager, {"action": "destroy", "kernel_id": "../../etc"},
             "`kernel_id` must be a 22-character kernel id"),
            (manager, {"action": "create", "lang": "python3", "id": 1.5},
             "`id` must be an integer or a string"),
            (agent, {"action": "execute", "kernel_id": UNKNOWN_KERNEL, "code": b"bytes"},
             "`code` must be a string"),
            (agent, {"action": "execute", "kernel_id": 7, "code": "1"},
             "`kernel_id` must be a string"),
            (agent, {"action": "execute", "kernel_id": UNKNOWN_KERNEL},
             "`code` is missing"),
        ]
        for addr, message, cause in cases:
            self.assertRefused(self.request(addr, message), 400, cause=cause)
        self.assertEqual(self.containers_of(self.agent), [], "a bad create started a kernel")

    def test_unknown_action(self):
        for addr in self.both():
            self.assertRefused(self.request(addr, {"action": "launch_missiles", "id": 5}),
                               400, "unknown-action", "unknown action 'launch_missiles'")
            self.assertRefused(self.request(addr, {"action": 99}), 400, "unknown-action")
            self.assertRefused(self.request(addr, {"body": "no action"}), 400,
                               "unknown-action", "`action` is missing")
        # Manager commands are not for front-ends.
        self.assertRefused(self.request(self.agent.addr, {
            "action": "create_kernel", "kernel_id": UNKNOWN_KERNEL, "lang": "python3"}), 403)
        self.assertRefused(self.request(self.manager.addr, {
            "action": "heartbeat", "agent_id": "intruder", "addr": "tcp://1.2.3.4:1",
            "max_kernels": 100}), 400, cause="`session` is missing")
        # A front-end's key registers no agent...
        claim = {"action": "heartbeat", "agent_id": self.agent.agent_id, "session": "0" * 32,
                 "addr": "tcp://1.2.3.4:1", "max_kernels": 100}
        self.assertRefused(self.request(self.manager.addr, claim), 403, "key-refused",
                           "'heartbeat' needs a key listed in the cluster's agents folder")
        # ...and a live agent's id cannot be claimed by another process, even one that
        # holds the agent's own key.
        sock = self.zmq.socket(zmq.DEALER)
        sock.linger = 0
        secure(sock, "manager", client="agents/agent")
        sock.connect(self.manager.addr)
        self.addCleanup(sock.close, 0)
        sock.send_multipart([b"", msgpack.packb(claim)])
        self.assertRefused(msgpack.unpackb(self.receive(sock)), 403, "agent-id-taken")
        status = self.client(self.manager).status()
        self.assertNotIn("intruder", str(status))
        self.assertNotIn("1.2.3.4", str(status))

    def test_unknown_kernel(self):
        reply = self.request(self.agent.addr, {"action": "execute", "id": 1,
                                               "kernel_id": UNKNOWN_KERNEL, "code": "1"})
        self.assertRefused(reply, 404, "kernel-not-found", UNKNOWN_KERNEL)
        self.assertEqual(reply["id"], 1)
        for action in ("destroy", "kernel_info"):
            self.assertRefused(self.request(self.manager.addr, {
                "action": action, "kernel_id": UNKNOWN_KERNEL}), 404, "kernel-not-found")

    def test_message_too_large(self):
        code = "x = 1\n" * (MAX_MESSAGE_SIZE // 6 + 10)
        reply = self.request(self.agent.addr, {"action": "execute",
                                               "kernel_id": UNKNOWN_KERNEL, "code": code})
        self.assertRefused(reply, 413, cause=f"the limit is {MAX_MESSAGE_SIZE} bytes")
        reply = self.request(self.manager.addr, {"action": "ping", "body": code})
        self.assertRefused(reply, 413, cause=f"the limit is {MAX_MESSAGE_SIZE} bytes")
        sock = self.socket(zmq.REQ, self.manager.addr)
        sock.send(json.dumps({"action": 0, "body": code}).encode())
        reply = json.loads(self.receive(sock))
        self.assertRefused(reply, 400, cause="the limit is")  # 2016 clients know 400

    def test_extra_frames(self):
        for addr in self.both():
            sock = self.socket(zmq.DEALER, addr)
            sock.send_multipart([packb({"action": "ping"}), b"second", b"third"])
            reply = msgpack.unpackb(self.receive(sock), raw=False)
            self.assertRefused(reply, 400, "malformed", "got 3 frames")
            sock.send_multipart([b"", packb({"action": "ping"}), b"extra"])
            reply = msgpack.unpackb(self.receive(sock), raw=False)
            self.assertRefused(reply, 400, "malformed", "got 2 frames")
            sock.send_multipart([b""])
            reply = msgpack.unpackb(self.receive(sock), raw=False)
            self.assertRefused(reply, 400, "malformed", "got 0 frames")

    def test_refusals_are_logged_without_tracebacks(self):
        for addr in self.both():
            self.request(addr, b"\xc1 refused")
        for process in (self.manager, self.agent):
            process.wait_for_log(REFUSED, timeout=10)
            self.assertNotIn("Traceback", process.log())

    def test_garbage_flood(self):
        """30 sockets × 20 garbage frames at each process: every frame is answered with
        a 4xx, refusals are logged at a bounded rate (not a line each: a flood must not
        fill the disk), and both processes keep working."""
        rng = random.Random(1)
        sockets, sent = [], 0
        for addr in self.both():
            for _ in range(30):
                sock = self.socket(zmq.DEALER, addr)
                for i in range(20):
                    sock.send_multipart([b"", garbage(rng, i)])
                    sent += 1
                sockets.append(sock)
        codes = [decode_reply(self.receive(sock))["reply"]
                 for sock in sockets for _ in range(20)]
        self.assertEqual(len(codes), sent)
        self.assertEqual(set(codes), {400})

        for process in (self.manager, self.agent):
            self.assertTrue(process.alive(), f"{process.name} died:\n{process.log_tail()}")
            logged = process.log().count(REFUSED)
            self.assertTrue(1 <= logged <= 20, f"{process.name} logged {logged} refusals")
            self.assertNotIn("Traceback", process.log())
        for addr in self.both():
            self.assertEqual(self.request(addr, {"action": "ping", "body": "still here"})
                             ["body"], "still here")
        client = self.client(self.manager)
        kernel = client.create("python3")
        self.destroy_later(client, kernel["kernel_id"])
        self.assertEqual(client.execute(kernel["kernel_id"], "print('ok')")["stdout"], "ok\n")
        client.destroy(kernel["kernel_id"])
