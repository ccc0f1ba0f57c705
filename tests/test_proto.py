"""The wire format: codec, field validation, action parsing."""

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from sorna.ids import new_kernel_id
from sorna.proto import codes
from sorna.proto.actions import AGENT, AGENT_LEGACY, MANAGER, MANAGER_LEGACY, parse_request
from sorna.proto.codec import JSON, MSGPACK, decode, encode
from sorna.proto.errors import BadRequest, KernelNotFound, SornaError, TooLarge
from sorna.proto.schema import KERNEL_ID_RE


class CodecTests(SynchronousTestCase):
    def test_msgpack_round_trip(self):
        data = encode({"action": "ping", "body": [1, "x", None]})
        self.assertEqual(decode(data), ({"action": "ping", "body": [1, "x", None]}, MSGPACK))

    def test_json_frames_are_recognised_and_answered_in_json(self):
        message, encoding = decode(b'{"action": 0, "body": "hi"}')
        self.assertEqual((message, encoding), ({"action": 0, "body": "hi"}, JSON))
        self.assertEqual(encode({"reply": 0}, JSON), b'{"reply": 0}')

    def test_garbage_is_a_bad_request_with_a_cause(self):
        for data in [b"\xc1", b"\x93\x01", b"", b"{not json", b"{\"a\": \xff}"]:
            with self.assertRaises(BadRequest) as ctx:
                decode(data)
            self.assertEqual(ctx.exception.code, 400)
            self.assertIn("not valid", ctx.exception.cause)

    def test_non_maps_are_refused(self):
        for obj in ([1, 2], "text", 5, None):
            with self.assertRaises(BadRequest) as ctx:
                decode(msgpack.packb(obj))
            self.assertIn("must be a map", ctx.exception.cause)

    def test_non_string_keys_are_refused(self):
        with self.assertRaises(BadRequest):
            decode(msgpack.packb({1: 2}))

    def test_oversize_is_413_and_names_the_limit(self):
        with self.assertRaises(TooLarge) as ctx:
            decode(encode({"code": "x" * 2000}), max_size=1000)
        self.assertEqual(ctx.exception.code, 413)
        self.assertIn("1000 bytes", ctx.exception.cause)

    def test_the_error_knows_the_senders_encoding(self):
        with self.assertRaises(BadRequest) as ctx:
            decode(b"{broken")
        self.assertEqual(ctx.exception.encoding, JSON)


class ParseTests(SynchronousTestCase):
    def test_named_and_legacy_actions(self):
        self.assertEqual(parse_request({"action": "ping"}, MANAGER, MANAGER_LEGACY),
                         ("ping", {"body": None}))
        action, fields = parse_request(
            {"action": 2, "user_id": 7, "entry_id": "e", "lang": "python3"},
            MANAGER, MANAGER_LEGACY)
        self.assertEqual(action, "get_or_create")
        self.assertEqual(fields["user_id"], "7")  # 2016 front-ends send numbers too

    def test_kernel_ids_never_start_like_an_option(self):
        """`sorna cp KERNEL:PATH ...` must not read a kernel id as an option."""
        from sorna import ids

        drawn = iter([bytes([0xF8]) + bytes(15), bytes([0x10]) + bytes(15)])
        self.patch(ids.uuid, "uuid4", lambda: type("U", (), {"bytes": next(drawn)}))
        kernel_id = new_kernel_id()
        self.assertEqual((kernel_id[0], len(kernel_id)), ("E", 22))

    def test_agent_legacy_numbers(self):
        kid = new_kernel_id()
        action, fields = parse_request({"action": 1, "kernel_id": kid, "code": "1"},
                                       AGENT, AGENT_LEGACY)
        self.assertEqual((action, fields["code"]), ("execute", "1"))

    def test_unknown_actions(self):
        for action in ["nope", 9, None, 1.5, [1], True]:
            with self.assertRaises(BadRequest) as ctx:
                parse_request({"action": action}, MANAGER, MANAGER_LEGACY)
            self.assertEqual(ctx.exception.error, "unknown-action")

    def test_missing_and_mistyped_fields(self):
        cases = [
            ({"action": "destroy"}, "`kernel_id` is missing"),
            ({"action": "destroy", "kernel_id": 5}, "must be a string"),
            ({"action": "destroy", "kernel_id": "short"}, "22-character kernel id"),
            ({"action": "destroy", "kernel_id": "../../etc/passwd/aaaaa"}, "kernel id"),
            ({"action": "create", "lang": "py thon"}, "language name"),
            ({"action": "create", "lang": "python3", "limits": 5}, "must be a map"),
            ({"action": "create", "lang": "python3", "limits": {"memory_mb": "lots"}},
             "`limits.memory_mb` must be an integer"),
            ({"action": "create", "lang": "python3", "limits": {"memory_mb": 1}},
             "at least 16"),
            ({"action": "get_or_create", "user_id": "u", "entry_id": ["e"], "lang": "x"},
             "`entry_id` must be a string"),
            ({"action": "ping", "id": [1]}, "`id` must be"),
        ]
        for message, expected in cases:
            with self.assertRaises(BadRequest) as ctx:
                parse_request(message, MANAGER, MANAGER_LEGACY)
            self.assertIn(expected, ctx.exception.cause)

    def test_code_size_is_capped(self):
        with self.assertRaises(BadRequest) as ctx:
            parse_request({"action": "execute", "kernel_id": new_kernel_id(),
                           "code": "x" * ((1 << 20) + 1)}, AGENT, AGENT_LEGACY)
        self.assertIn("the limit is", ctx.exception.cause)

    def test_unknown_fields_are_ignored(self):
        action, fields = parse_request({"action": "status", "extra": 1}, MANAGER,
                                       MANAGER_LEGACY)
        self.assertEqual((action, fields), ("status", {}))


class ErrorTests(SynchronousTestCase):
    def test_from_reply_keeps_code_and_cause(self):
        e = SornaError.from_reply({"reply": 404, "error": "kernel-not-found", "cause": "gone"})
        self.assertIsInstance(e, KernelNotFound)
        self.assertEqual((e.code, e.cause), (404, "gone"))
        odd = SornaError.from_reply({"reply": 418})
        self.assertEqual(odd.code, 418)

    def test_legacy_codes(self):
        self.assertEqual([codes.legacy(c) for c in (0, 200, 404, 409, 503, 504)],
                         [0, 200, 400, 400, 500, 500])

    def test_kernel_ids(self):
        ids = {new_kernel_id() for _ in range(100)}
        self.assertEqual(len(ids), 100)
        self.assertTrue(all(KERNEL_ID_RE.match(i) for i in ids))
