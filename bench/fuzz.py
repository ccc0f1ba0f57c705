"""Fuzzing for longer than the test suite does: the manager, the agent and a kernel's
REPL daemon each absorb hostile frames (sorna.testing.fuzz) for SECONDS, then must
still answer, with every tracked request answered once.

baseline: a raw pyzmq ROUTER in this process that decodes each frame only to echo its id in
a fixed error reply: what one socket can absorb on this machine, to read the targets'
rate against.

    python bench/fuzz.py [--seconds 60]
"""

import argparse
import glob
import os
import threading

import docker
import msgpack
import zmq

from _common import Cluster, report

from sorna.client.blocking import BlockingClient
from sorna.testing.fuzz import ZmqPeer, reply_id, run_fuzz
from sorna.testing.processes import LOOPBACK, free_port
from sorna.testing.repl_socket import ReplSocket


def echo_router(context, addr, stop):
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.bind(addr)
    while not stop.is_set():
        if sock.poll(100):
            frames = sock.recv_multipart()
            sock.send_multipart(frames[:-1] + [msgpack.packb(
                {"id": reply_id(frames[-1]), "reply": 400, "error": "malformed",
                 "cause": "no"})])
    sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    context = zmq.Context()
    results = {}
    with Cluster(docker.from_env()) as cluster, \
            BlockingClient(cluster.manager.addr, timeout=30) as client:
        kernel_id = client.create("python3")["kernel_id"]
        [path] = glob.glob(os.path.join(cluster.agent.tmpdir, "sorna-ipc-*", kernel_id,
                                        "repl"))
        for target, peer in [("manager", ZmqPeer(context, cluster.manager.addr, "manager")),
                             ("agent", ZmqPeer(context, cluster.agent.addr, "agent")),
                             ("daemon", ReplSocket(path))]:
            results[target] = run_fuzz(peer, target, args.seconds)
            client.ping("still there")
            client.ping("still there", addr=cluster.agent.addr)
            assert client.execute(kernel_id, "1+1")["stdout"] == "2\n"
        client.destroy(kernel_id)
    stop = threading.Event()
    addr = f"tcp://{LOOPBACK}:{free_port()}"
    echo = threading.Thread(target=echo_router, args=(context, addr, stop), daemon=True)
    echo.start()
    baseline = run_fuzz(ZmqPeer(context, addr), "agent", min(args.seconds, 10))
    stop.set()
    echo.join()
    context.term()
    sorna = {"median": min(r["frames_per_second"] for r in results.values())}
    report("fuzz", "frames/s", sorna, {"median": baseline["frames_per_second"]},
           "sorna: the slowest target's frames/s; every target's counts are under "
           "`targets`; baseline: a bare pyzmq ROUTER echoing each frame's id",
           extra={"targets": {t: dict(r, missing=len(r["missing"]),
                                      duplicated=len(r["duplicated"]))
                              for t, r in results.items()}})


if __name__ == "__main__":
    main()
