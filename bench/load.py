"""The load test at full size: CLIENTS front-ends x REQUESTS requests each (ping with a
random body, execute printing a random tag, status, get_or_create) against a manager
and two agents holding 8 kernels, one request in flight per client.

baseline: the same clients and request count against a bare pyzmq ROUTER in this
process answering each request with its id: what the load generator itself costs.

    python bench/load.py [--clients 200] [--requests 50]
"""

import argparse
import sys
import threading
import uuid

import docker
import msgpack
import zmq

from _common import report, summary

from sorna.client.blocking import BlockingClient
from sorna.testing.load import run_load
from sorna.testing.processes import (
    LOOPBACK, AgentProcess, ManagerProcess, free_port, remove_agent_containers,
    wait_for_agent,
)


def echo(addr, stop, sessions_addr):
    """A ROUTER that answers like the cluster would, without doing anything."""
    context = zmq.Context.instance()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(addr)
    while not stop.is_set():
        if not sock.poll(100):
            continue
        frames = sock.recv_multipart()
        request = msgpack.unpackb(frames[-1], raw=False)
        reply = {"id": request["id"], "reply": 200}
        if request["action"] == "ping":
            reply.update(reply=0, body=request.get("body"))
        elif request["action"] == "execute":
            reply["result"] = {"stdout": eval(request["code"][6:-1]) + "\n"}
        elif request["action"] == "status":
            reply["agents"] = [{}]  # the one address the clients were given
        else:
            reply["kernel_id"] = sessions_addr[(request["user_id"], request["entry_id"])]
        sock.send_multipart(frames[:-1] + [msgpack.packb(reply)])
    sock.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    docker_client = docker.from_env()
    manager = ManagerProcess(heartbeat_interval=0.5).start()
    agents = []
    try:
        for _ in range(2):
            agents.append(AgentProcess(manager.addr, agent_id=f"load-{uuid.uuid4().hex[:8]}",
                                       max_kernels=4, heartbeat_interval=0.5).start())
            wait_for_agent(manager.addr, agents[-1].agent_id)
        with BlockingClient(manager.addr, timeout=60) as client:
            sessions = {}
            for n in range(8):
                kernel = client.get_or_create(f"load-{n}", "e", "python3")
                sessions[(f"load-{n}", "e")] = (kernel["kernel_id"], kernel["kernel_addr"])
            print("8 kernels up; loading", file=sys.stderr)
            measured = run_load(manager.addr, sessions, args.clients, args.requests,
                                timeout=600)
            kernels_after = client.status()["kernels"]
    finally:
        for process in agents + [manager]:
            process.stop()
            process.remove_workdir()
        for agent in agents:
            remove_agent_containers(docker_client, agent.agent_id)
    addr = f"tcp://{LOOPBACK}:{free_port()}"
    stop = threading.Event()
    server = threading.Thread(target=echo, args=(addr, stop, {
        s: k for s, (k, _) in sessions.items()}), daemon=True)
    server.start()
    fake_sessions = {s: (k, addr) for s, (k, _) in sessions.items()}
    baseline = run_load(addr, fake_sessions, args.clients, args.requests, timeout=600)
    stop.set()
    server.join()
    for name, stats in (("sorna", measured), ("baseline", baseline)):
        print(f"{name}: {stats['answered']} answered, lost {stats['lost']}, foreign "
              f"{stats['foreign']}, wrong {len(stats['wrong'])}, busy {stats['busy']}",
              file=sys.stderr)
    report("load", "ms", summary(measured["latencies"], 1000), summary(
        baseline["latencies"], 1000),
        f"{args.clients} clients x {args.requests} requests, one in flight per client; "
        f"latency per request; baseline: the same load against a bare ROUTER echo",
        extra={"clients": args.clients, "requests": args.requests,
               "lost": measured["lost"], "foreign": measured["foreign"],
               "wrong": len(measured["wrong"]), "busy_409": measured["busy"],
               "kernels_after": kernels_after, "by_kind": measured["by_kind"]})


if __name__ == "__main__":
    main()
