"""Hostile frames for the manager, the agent and the REPL daemon (tests/integration/
test_fuzz.py and bench/fuzz.py).

Two kinds of frame come out of `frames()`:
- *tracked* requests: a msgpack map with a unique integer `id` and one field that is
  odd (a wrong type, a huge or empty value, missing when required) while the others
  name nothing that exists (kernel `AAAA...`, language `fuzz-lang`), so that none does
  real work; the target must answer each exactly once, with that id, well formed;
- *garbage*: random bytes, truncated and bit-flipped msgpack, JSON that is broken or
  nested 100,000 deep, msgpack nested past every limit, non-UTF-8 strings, maps that
  are no request. What the target answers to those is not tracked; that it goes on
  answering the tracked ones, and everything else, is.
"""

import json
import os
import random
import time

import msgpack
import zmq

from sorna.testing.keys import secure

from sorna.proto import actions

# One field value of each shape a decoder or a validator could trip on.
ODD_VALUES = [
    None, True, False, 0, -1, 2**63 - 1, -2**63, 2**64 - 1, 1e308, -0.0, float("nan"),
    "", "x" * 300, "a/../../etc", "\x00", "ü" * 50, "\U0001f600", b"", b"\xff" * 64, [], [[[[]]]],
    {}, {"a": {"b": {"c": 1}}}, list(range(100)), {"op": "regex"},
]

GARBAGE_IDS = 500_000_000
REPLY_WAIT = 30.0  # for the tracked replies of one batch

DAEMON_ACTIONS = {
    "ping": {},
    "execute": {"code": "1+1"},
    "input": {"text": "x"},
    "interrupt": {"run": 1},
    "upload": {"path": "f.txt", "data": b"x"},
    "download": {"path": "f.txt"},
    "list": {"path": ""},
}
# Values the daemon must refuse (it checks code, text, path and data).
DAEMON_CHECKED = {"code", "text", "path", "data"}


def _valid_value(name):
    """A value that passes the field's check, to build otherwise-valid requests."""
    return {"kernel_id": "A" * 22, "lang": "fuzz-lang", "user_id": "u", "entry_id": "e",
            "agent_id": "fuzz", "addr": "tcp://127.0.0.1:1", "max_kernels": 1,
            "code": "1+1", "path": "f.txt", "data": b"x", "text": "x"}.get(name)


def _requests(table, rng, ids):
    """Tracked requests for one action table: each has exactly one bad field."""
    out = []
    for action, fields in sorted(table.items()):
        required = [n for n, f in fields.items() if getattr(f, "required", False)]
        base = {n: _valid_value(n) for n in required}
        for name in fields:
            for value in rng.sample(ODD_VALUES, 4):
                message = dict(base, action=action, id=next(ids))
                message[name] = value
                out.append(message)
        for name in required:
            message = dict(base, action=action, id=next(ids))
            del message[name]
            out.append(message)
    return out


def _daemon_requests(rng, ids):
    out = []
    for action, fields in sorted(DAEMON_ACTIONS.items()):
        for name in fields:
            for value in rng.sample(ODD_VALUES, 6):
                if name in DAEMON_CHECKED and isinstance(value, type(fields[name])):
                    continue  # a valid value: it would run or write something
                out.append(dict(fields, action=action, id=next(ids), **{name: value}))
        out.append({"action": action, "id": next(ids), "extra": rng.choice(ODD_VALUES),
                    **{n: v for n, v in fields.items() if n != "code"}}
                   if action != "execute" else {"action": action, "id": next(ids)})
    return out


def _pack(message):
    return msgpack.packb(message, use_bin_type=True)


def _garbage(rng, templates):
    """Frames that are not a well-formed request."""
    out = [b"", b"\xc1", b"{", b"{}", b"[]", b"{\"action\": 0", b"\x80", b"\x90",
           b"\xdf\xff\xff\xff\xff",  # a map claiming 4 billion entries
           b"\xdb\xff\xff\xff\xff",  # a str claiming 4 GiB
           b"\xc6\x7f\xff\xff\xff",  # bin claiming 2 GiB
           b"\x91" * 100_000 + b"\xc0",  # arrays nested 100,000 deep
           b"\x81\xa4mode" + b"\x91" * 2000 + b"\xc0",  # a field nested 2,000 deep
           b"[" * 100_000 + b"]" * 100_000,  # JSON nested 100,000 deep
           b"{\"action\": \"ping\", \"body\": " + b"[" * 50_000 + b"]" * 50_000 + b"}",
           b"\x82\xa6action\xa4ping\xa2id\xa3\xff\xfe\xfd",  # a non-UTF-8 str
           b"\x81\xa3\xff\xfe\xfd\x01",  # a non-UTF-8 key
           b"\x81\x01\x02",  # a non-str key
           _pack([1, 2, 3]), _pack("execute"), _pack(12), _pack({"reply": 200}),
           json.dumps({"action": "nothing", "id": "json"}).encode(),
           json.dumps({"action": 99}).encode(), b"{\"action\": \"ping\"" + b" " * 10]
    for _ in range(60):
        out.append(rng.randbytes(rng.randrange(1, 2000)))
    for template in rng.sample(templates, min(len(templates), 120)):
        data = bytearray(template)
        kind = rng.randrange(3)
        if kind == 0:  # truncated
            out.append(bytes(data[:rng.randrange(len(data))]))
        elif kind == 1:  # bit flips
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
            out.append(bytes(data))
        else:  # spliced with random bytes
            i = rng.randrange(len(data))
            out.append(bytes(data[:i]) + rng.randbytes(rng.randrange(1, 64)))
    return out


def frames(target, seed=0, start_id=1):
    """([(payload, tracked id or None)], tracked ids) for "manager", "agent" or
    "daemon", shuffled; the same seed gives the same frames."""
    rng = random.Random(seed)
    ids = iter(range(start_id, start_id + 10**9))
    if target == "daemon":
        requests = _daemon_requests(rng, ids)
    else:
        requests = _requests(actions.MANAGER if target == "manager" else actions.AGENT,
                             rng, ids)
    tracked = [(_pack(m), m["id"]) for m in requests]
    # Garbage is cut from the tracked requests with other ids (no flip of three bits
    # or fewer turns one into a tracked id), and never from the daemon's executes (a
    # flip could make one that runs).
    templates = [_pack(dict(m, id=m["id"] + GARBAGE_IDS)) for m in requests
                 if m["action"] != "execute" or target != "daemon"]
    garbage = [(g, None) for g in _garbage(rng, templates)]
    everything = tracked + garbage
    rng.shuffle(everything)
    return everything, {i for _, i in tracked}


def reply_id(payload):
    """The id of a reply (or event) frame, None when it has none or is not msgpack."""
    message = _decode(payload)
    return message.get("id") if isinstance(message, dict) else None


def _decode(payload):
    """A reply as a map (JSON for the 2016 front-ends' frames, msgpack otherwise), or
    None."""
    try:
        if payload[:1] == b"{":
            return json.loads(payload)
        return msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:
        return None


def well_formed(payload):
    """A reply is a map with an integer `reply` code (errors with a string `error` and
    `cause`; JSON replies, the 2016 protocol's, carry `cause` only), or, from the
    daemon, a run's event."""
    message = _decode(payload)
    if not isinstance(message, dict):
        return False
    if "event" in message:
        return isinstance(message["event"], str)
    code = message.get("reply")
    if not isinstance(code, int) or isinstance(code, bool):
        return False
    if code >= 400:
        return (isinstance(message.get("error"), str) or payload[:1] == b"{") \
            and isinstance(message.get("cause"), str)
    return True


def resources(pid):
    """(threads, open file descriptors) of a process."""
    return (len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")))


class ZmqPeer:
    """A DEALER to a manager's or an agent's port, as run_fuzz drives it: a client of
    the run's keys towards `role` ("manager" or "agent"; None: plaintext)."""

    def __init__(self, context, addr, role=None):
        self.sock = context.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)
        if role is not None:
            secure(self.sock, role)
        self.sock.connect(addr)

    def send(self, payload):
        self.sock.send_multipart([b"", payload])

    def poll(self, seconds):
        return self.sock.poll(seconds * 1000)

    def recv(self):
        return self.sock.recv_multipart()[-1]

    def close(self):
        self.sock.close()


def run_fuzz(sock, target, seconds):
    """Fuzz `target` through `sock` (a ZmqPeer, or a ReplSocket for a daemon) for about
    `seconds`, in batches, waiting after each batch for its tracked replies. Returns
    counts (`frames`, `bytes`, `replies`, `malformed`, `frames_per_second`) and the ids
    `missing` or `duplicated`."""
    stats = {"frames": 0, "bytes": 0, "missing": [], "duplicated": [], "malformed": 0,
             "replies": 0}
    started = time.monotonic()
    seed = 0
    try:
        while time.monotonic() - started < seconds:
            batch, tracked = frames(target, seed=seed, start_id=1 + seed * 10**6)
            seed += 1
            for payload, _ in batch:
                sock.send(payload)
                stats["frames"] += 1
                stats["bytes"] += len(payload)
            answered = set()
            deadline = time.monotonic() + REPLY_WAIT
            while answered != tracked and time.monotonic() < deadline:
                if not sock.poll(0.1):
                    continue
                reply = sock.recv()
                stats["replies"] += 1
                if not well_formed(reply):
                    stats["malformed"] += 1
                answers = reply_id(reply)
                if answers in tracked:
                    if answers in answered:
                        stats["duplicated"].append(answers)
                    answered.add(answers)
            stats["missing"] += sorted(tracked - answered)
        stats["seconds"] = time.monotonic() - started
        # Replies to the last garbage may still be on their way.
        while sock.poll(0.5):
            stats["replies"] += 1
            if not well_formed(sock.recv()):
                stats["malformed"] += 1
    finally:
        sock.close()
    stats["frames_per_second"] = round(stats["frames"] / stats["seconds"])
    return stats


__all__ = ["frames", "reply_id", "well_formed", "run_fuzz", "resources", "ZmqPeer",
           "ODD_VALUES"]
