"""The round trip of a tiny execution through the agent vs. a raw pyzmq round trip.

sorna:    a DEALER on TCP loopback to the agent's ROUTER sends `execute {code: "1+1"}` to a
          kernel created beforehand; the agent relays it over its Unix socket to the REPL daemon in
          the container and relays the result back. Timed until the reply.
baseline: a REQ/REP round trip of a small msgpack map on TCP loopback between this thread
          and an echo thread (pyzmq only: the floor any ZMQ service pays).

Both run N times, interleaved in blocks, after a warm-up. For reading the difference, a third
series (outside the ratio) goes straight to the REPL daemon over its Unix socket, as the
agent does, without the agent: the daemon's own cost plus one ipc hop.

    python bench/execute_roundtrip.py [-n 500] [--block 50]
"""

import argparse
import glob
import os
import subprocess
import sys
import threading
import time

import docker
import msgpack
import zmq

from _common import Cluster, report, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.keys import secure
from sorna.testing.processes import LOOPBACK, free_port
from sorna.testing.repl_socket import ReplSocket

TIMEOUT = 30.0


def serve_echo(context, addr, ready=lambda: None):
    """A REP socket answering every message with itself, until `stop`."""
    sock = context.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(addr)
    ready()
    try:
        while True:
            message = sock.recv()
            if message == b"stop":
                sock.send(b"stopped")
                return
            sock.send(message)
    finally:
        sock.close()


class EchoServer:
    """The echo in a thread of this process."""

    def __init__(self, context):
        self.context = context
        self.addr = f"tcp://{LOOPBACK}:{free_port()}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=serve_echo, daemon=True,
                                        args=(context, self.addr, self._ready.set))

    def start(self):
        self._thread.start()
        if not self._ready.wait(TIMEOUT):
            raise RuntimeError("the echo thread did not start")


class ProcessEcho:
    """The echo in a process of its own, as every service is to its clients: a round
    trip then includes two switches between processes."""

    def __init__(self):
        self.addr = f"tcp://{LOOPBACK}:{free_port()}"
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, os.path.abspath(__file__),
                                         "--echo-at", self.addr])
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(TIMEOUT)


def zmq_peer(sock, payload):
    """(send, receive) of one ZMQ socket: receive() is the next message's frames."""
    def receive():
        if not sock.poll(TIMEOUT * 1000):
            raise RuntimeError("no reply")
        return sock.recv_multipart()
    return lambda: sock.send_multipart(payload), receive


def repl_peer(sock, payload):
    """(send, receive) of a ReplSocket, with the same shape as zmq_peer's."""
    return lambda: sock.send(payload), lambda: [sock.recv(TIMEOUT)]


def time_round_trips(peer, n, check, last=lambda frames: True):
    """Time `n` round trips; a round trip ends at the message `last` accepts (the REPL
    daemon answers an execute with `output` events, then `finished`)."""
    send, receive = peer
    times = []
    for _ in range(n):
        started = time.perf_counter_ns()
        send()
        received = []
        while not received or not last(received[-1]):
            received.append(receive())
        times.append(time.perf_counter_ns() - started)
        check(received)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=500)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--echo-at", help=argparse.SUPPRESS)  # ProcessEcho's own process
    args = parser.parse_args()
    if args.echo_at:
        serve_echo(zmq.Context(), args.echo_at)
        return

    docker_client = docker.from_env(timeout=60)
    context = zmq.Context()
    echo = EchoServer(context)
    echo.start()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(echo.addr)
    sorna_ns, baseline_ns, direct_ns, other_ns = [], [], [], []
    with Cluster(docker_client) as cluster, ProcessEcho() as other_echo, \
            BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as client:
        other_req = context.socket(zmq.REQ)
        other_req.setsockopt(zmq.LINGER, 0)
        other_req.connect(other_echo.addr)
        kernel = client.create("python3")
        try:
            dealer = context.socket(zmq.DEALER)
            dealer.setsockopt(zmq.LINGER, 0)
            secure(dealer, "agent")
            dealer.connect(kernel["kernel_addr"])
            execute = [b"", msgpack.packb({"action": "execute", "id": 1,
                                           "kernel_id": kernel["kernel_id"],
                                           "code": "1+1"})]
            ping = [msgpack.packb({"action": "ping", "id": 1, "body": "x" * 16})]
            [repl_endpoint] = glob.glob(os.path.join(
                cluster.agent.tmpdir, "sorna-ipc-*", kernel["kernel_id"], "repl"))
            direct = ReplSocket(repl_endpoint)
            repl_execute = msgpack.packb({"action": "execute", "id": 1, "code": "1+1"})

            def finished(frames):
                return msgpack.unpackb(frames[-1], raw=False).get("event") == "finished"

            def check_direct(received):
                events = [msgpack.unpackb(f[-1], raw=False) for f in received]
                values = [dict(d) for e in events for k, d in e.get("records", [])
                          if k == "result"]  # the daemon gives a value as a bundle
                if events[-1].get("reply") != 200 or values != [{"text/plain": "2"}]:
                    raise RuntimeError(f"unexpected events {events}")

            def check_execute(received):
                reply = msgpack.unpackb(received[-1][-1], raw=False)
                if reply.get("reply") != 200 or reply["result"]["stdout"] != "2\n":
                    raise RuntimeError(f"unexpected reply {reply}")

            def check_echo(received):
                if received[-1] != ping:
                    raise RuntimeError(f"unexpected echo {received[-1]}")

            through_agent = zmq_peer(dealer, execute)
            raw_echo = zmq_peer(req, ping)
            straight = repl_peer(direct, repl_execute)
            other_process = zmq_peer(other_req, ping)
            time_round_trips(through_agent, 50, check_execute)  # warm-up
            time_round_trips(raw_echo, 50, check_echo)
            time_round_trips(straight, 50, check_direct, finished)
            time_round_trips(other_process, 50, check_echo)
            done = 0
            while done < args.count:
                block = min(args.block, args.count - done)
                sorna_ns += time_round_trips(through_agent, block, check_execute)
                baseline_ns += time_round_trips(raw_echo, block, check_echo)
                direct_ns += time_round_trips(straight, block, check_direct, finished)
                other_ns += time_round_trips(other_process, block, check_echo)
                done += block
            dealer.close(0)
            direct.close()
            other_req.close(0)
        finally:
            client.destroy(kernel["kernel_id"])
    req.send(b"stop")
    req.recv()
    req.close(0)
    context.term()
    docker_client.close()
    report("execute_roundtrip", "µs", summary(sorna_ns, 1e-3), summary(baseline_ns, 1e-3), {
        "sorna": "execute `1+1` through the agent (DEALER over TCP loopback -> agent -> "
                 "Unix socket -> REPL daemon in its container -> back)",
        "baseline": "raw pyzmq REQ/REP round trip of a small msgpack map over TCP loopback "
                    "to an echo thread",
        "repl_direct": "execute `1+1` sent straight to the REPL daemon's Unix socket "
                       "(no agent); not part of the ratio",
        "echo_other_process": "the same echo in a process of its own (two switches "
                              "between processes, as any service costs its clients); not "
                              "part of the ratio",
        "count": args.count, "block": args.block,
    }, extra={"repl_direct": summary(direct_ns, 1e-3),
              "echo_other_process": summary(other_ns, 1e-3)})


if __name__ == "__main__":
    main()
