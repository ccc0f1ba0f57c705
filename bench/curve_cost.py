"""What CurveZMQ costs on this machine, before Sorna's ports use it: a REQ/REP echo in
another process over TCP loopback, plaintext and CURVE side by side, interleaved in
blocks (keys from `sorna keys init`).

small:  a round trip of a small msgpack map (an execute request's size).
upload: a round trip of a 1 MiB message there and a small reply back (an upload).

    python bench/curve_cost.py [-n 2000] [--uploads 200]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import msgpack
import zmq
import zmq.auth

from _common import report, summary

from sorna import keys
from sorna.testing.processes import LOOPBACK, free_port

TIMEOUT = 30.0
MIB = 1 << 20


def serve(addr, secret_file):
    """The echo, in its own process: small messages come back whole, large ones get
    a short reply (as an upload's)."""
    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.linger = 0
    if secret_file:
        sock.curve_server = True
        sock.curve_secretkey = zmq.auth.load_certificate(secret_file)[1]
    sock.bind(addr)
    while True:
        message = sock.recv()
        if message == b"stop":
            sock.send(b"stopped")
            return
        sock.send(message if len(message) < 1024 else b"ok")


def client(context, addr, folder):
    sock = context.socket(zmq.REQ)
    sock.linger = 0
    if folder:
        sock.curve_serverkey = zmq.auth.load_certificate(
            os.path.join(folder, "manager.key"))[0]
        sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(
            os.path.join(folder, "clients", "client.key_secret"))
    sock.connect(addr)
    return sock


def round_trips(sock, payload, n):
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        sock.send(payload)
        if not sock.poll(TIMEOUT * 1000):
            raise RuntimeError("the echo did not answer")
        sock.recv()
        times.append(time.perf_counter_ns() - started)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--serve", nargs=2, help=argparse.SUPPRESS)  # the echo process
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1] if args.serve[1] != "-" else None)
        return
    folder = os.path.join(tempfile.mkdtemp(), "keys")
    keys.init(folder)
    context = zmq.Context()
    servers, socks = [], {}
    try:
        for kind, secret in (("plain", "-"),
                             ("curve", os.path.join(folder, "manager.key_secret"))):
            addr = f"tcp://{LOOPBACK}:{free_port()}"
            servers.append(subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                             "--serve", addr, secret]))
            socks[kind] = client(context, addr, folder if kind == "curve" else None)
        small = msgpack.packb({"action": "execute", "id": 1, "kernel_id": "K" * 22,
                               "code": "1+1"})
        upload = os.urandom(MIB)
        times = {(kind, what): [] for kind in socks for what in ("small", "upload")}
        for kind, sock in socks.items():  # warm-up: connections and handshakes
            round_trips(sock, small, 50)
        for what, payload, total in (("small", small, args.count),
                                     ("upload", upload, args.uploads)):
            done = 0
            while done < total:
                block = min(args.block, total - done)
                for kind, sock in socks.items():
                    times[kind, what] += round_trips(sock, payload, block)
                done += block
        for sock in socks.values():
            sock.send(b"stop")
            sock.recv()
            sock.close(0)
    finally:
        for server in servers:
            server.wait(TIMEOUT)
        context.term()
    upload_plain = summary(times["plain", "upload"], 1e-3)
    upload_curve = summary(times["curve", "upload"], 1e-3)
    report("curve_cost", "µs", summary(times["curve", "small"], 1e-3),
           summary(times["plain", "small"], 1e-3), {
               "sorna": "CURVE: REQ/REP round trip of a small msgpack map to an echo in "
                        "another process (TCP loopback)",
               "baseline": "the same without CURVE",
               "upload_curve": "1 MiB there, a short reply back, with CURVE",
               "upload_plain": "the same without CURVE",
               "count": args.count, "uploads": args.uploads,
           }, extra={"upload_curve": upload_curve, "upload_plain": upload_plain,
                     "upload_ratio_of_medians": round(
                         upload_curve["median"] / upload_plain["median"], 2)})


if __name__ == "__main__":
    main()
