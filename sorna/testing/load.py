"""Many concurrent front-ends against a real cluster (tests/integration/test_load.py,
bench/load.py).

Each client is a DEALER to the manager and one to each agent, driven from one thread
by a poller, with one request in flight at a time: `ping` with a random body (manager
or agent), `execute` printing a random tag on one of the session kernels, `status`, and
`get_or_create` of one of those sessions. Every reply is checked against its own
request: the id, and what it carries (the body, the tag, the session's kernel).
"""

import itertools
import random
import secrets
import time

import msgpack
import zmq

from sorna.testing.keys import secure

KINDS = ("ping", "agent_ping", "execute", "status", "get_or_create")


class _Client:
    def __init__(self, context, manager_addr, agent_addrs):
        self.sockets = {}
        for addr in [manager_addr, *agent_addrs]:
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            secure(sock, "manager" if addr == manager_addr else "agent")
            sock.connect(addr)
            self.sockets[addr] = sock
        self.left = 0
        self.waiting = None  # (id, kind, expected, sent at)

    def close(self):
        for sock in self.sockets.values():
            sock.close()


def run_load(manager_addr, sessions, clients=50, requests=20, seed=0, timeout=120.0):
    """`sessions`: {(user_id, entry_id): (kernel_id, kernel_addr)} made beforehand.
    Returns counts: sent, answered, lost (no reply by `timeout`), foreign (a reply to
    another request), wrong (a reply that does not match its request), busy (409 for
    an execute queued past the kernel's limit, a refusal and not a loss), by kind, and
    the latencies in seconds."""
    rng = random.Random(seed)
    context = zmq.Context()
    agent_addrs = sorted({addr for _, addr in sessions.values()})
    ids = itertools.count(1)
    everyone = [_Client(context, manager_addr, agent_addrs) for _ in range(clients)]
    owner = {}  # socket -> client
    for client in everyone:
        client.left = requests
        for sock in client.sockets.values():
            owner[sock] = client
    poller = zmq.Poller()
    for sock in owner:
        poller.register(sock, zmq.POLLIN)
    stats = {"sent": 0, "answered": 0, "lost": 0, "foreign": 0, "wrong": [], "busy": 0,
             "by_kind": dict.fromkeys(KINDS, 0), "latencies": []}
    session_list = sorted(sessions.items())

    def send(client):
        kind = rng.choice(KINDS)
        request_id = next(ids)
        if kind in ("ping", "agent_ping"):
            body = secrets.token_hex(rng.randrange(1, 64))
            addr = manager_addr if kind == "ping" else rng.choice(agent_addrs)
            message, expected = {"action": "ping", "body": body}, body
        elif kind == "execute":
            (_, (kernel_id, addr)) = rng.choice(session_list)
            tag = secrets.token_hex(8)
            message = {"action": "execute", "kernel_id": kernel_id,
                       "code": f"print({tag!r})"}
            expected = f"{tag}\n"
        elif kind == "status":
            addr, message, expected = manager_addr, {"action": "status"}, len(agent_addrs)
        else:
            (user_id, entry_id), (kernel_id, _) = rng.choice(session_list)
            addr = manager_addr
            message = {"action": "get_or_create", "user_id": user_id, "entry_id": entry_id,
                       "lang": "python3"}
            expected = kernel_id
        message["id"] = request_id
        client.sockets[addr].send_multipart([b"", msgpack.packb(message)])
        client.waiting = (request_id, kind, expected, time.monotonic())
        client.left -= 1
        stats["sent"] += 1
        stats["by_kind"][kind] += 1

    def check(client, reply):
        request_id, kind, expected, sent_at = client.waiting
        if reply.get("id") != request_id:
            stats["foreign"] += 1
            return False
        stats["answered"] += 1
        stats["latencies"].append(time.monotonic() - sent_at)
        code = reply.get("reply")
        if kind in ("ping", "agent_ping"):
            ok = code == 0 and reply.get("body") == expected
        elif kind == "execute":
            if code == 409 and reply.get("error") == "kernel-busy":
                stats["busy"] += 1
                ok = True
            else:
                ok = code == 200 and reply.get("result", {}).get("stdout") == expected
        elif kind == "status":
            ok = code == 200 and len(reply.get("agents", [])) == expected
        else:
            ok = code == 200 and reply.get("kernel_id") == expected
        if not ok:
            stats["wrong"].append({"kind": kind, "reply": str(reply)[:300]})
        return True

    deadline = time.monotonic() + timeout
    try:
        for client in everyone:
            send(client)
        pending = len(everyone)
        while pending and time.monotonic() < deadline:
            for sock, _ in poller.poll(100):
                client = owner[sock]
                reply = msgpack.unpackb(sock.recv_multipart()[-1], raw=False)
                if client.waiting is None or not check(client, reply):
                    if client.waiting is None:
                        stats["foreign"] += 1
                    continue
                client.waiting = None
                if client.left:
                    send(client)
                else:
                    pending -= 1
        stats["lost"] = sum(1 for c in everyone if c.waiting is not None) + sum(
            c.left for c in everyone)
    finally:
        for client in everyone:
            client.close()
        context.term()
    return stats


__all__ = ["run_load", "KINDS"]
