"""The manager at scale: thousands of simulated agents speaking the real heartbeat
protocol over real sockets, for the memory and the Redis capacity table.

Simulator processes (5,000 agents each: each agent costs two file descriptors, and the
limit here is 20,000) play every agent: a DEALER per agent (its own identity and
session) on TCP loopback to a real `twistd sorna-manager`, heartbeating every interval (spread evenly)
with the kernels it was asked to create, and answering `create_kernel` commands at once.

heartbeats: A agents (10,000) beat every 3 s for R windows of W seconds; the manager's
            CPU (user + system, /proc) per heartbeat and in % of one core.
placements: A agents (1,000); C DEALER clients keep `create` requests in flight for W
            seconds a round; creates answered per second.
baseline:   the same clients and requests in flight against a ROUTER echo thread
            (pyzmq), as in bench/throughput.py: the floor of the request pattern.

    python bench/manager_scale.py [--agents 1000] [--heartbeat-agents 10000]
"""

import argparse
import contextlib
import multiprocessing
import resource
import secrets
import sys
import time

import msgpack
import zmq

from _common import summary
from throughput import RouterEcho, cpu_seconds, drive

from sorna.testing.keys import secure
from sorna.testing.processes import ManagerProcess
from sorna.testing.redis import RedisServer

INTERVAL = 3.0
TIMEOUT = 30.0


class SimulatedAgents:
    def __init__(self, context, manager_addr, count, max_kernels=10000, first=0):
        self.socks = []
        self.state = {}  # sock -> (agent_id, session, kernels)
        self.max_kernels = max_kernels
        for i in range(count):
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100)
            secure(sock, "manager", client="agents/agent")
            sock.connect(manager_addr)
            self.socks.append(sock)
            self.state[sock] = (f"sim-{first + i:05d}", secrets.token_hex(16), {},
                                f"tcp://127.0.0.1:{6001 + i % 1000}")
        self.poller = zmq.Poller()
        for sock in self.socks:
            self.poller.register(sock, zmq.POLLIN)
        self.sent = 0
        self._next = 0

    def beat(self, sock):
        agent_id, session, kernels, addr = self.state[sock]
        sock.send_multipart([b"", msgpack.packb({
            "action": "heartbeat", "agent_id": agent_id, "session": session,
            "addr": addr,
            "max_kernels": self.max_kernels, "kernels": kernels, "langs": ["python3"],
            "aliases": {"python3": ["python"]}, "warm": {},
            "resources": {"cpus": 2}})])
        self.sent += 1

    def beat_all(self):
        for sock in self.socks:
            self.beat(sock)

    def beat_due(self, started, now):
        """Heartbeats spread over the interval: each agent once per INTERVAL."""
        due = int((now - started) / INTERVAL * len(self.socks))
        while self._next < due:
            self.beat(self.socks[self._next % len(self.socks)])
            self._next += 1

    def answer(self, timeout_ms=0):
        """Answer the manager's commands (create_kernel, destroy_kernel) that arrived."""
        answered = 0
        for sock, _ in self.poller.poll(timeout_ms):
            while True:
                try:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                command = msgpack.unpackb(frames[-1], raw=False)
                kernels = self.state[sock][2]
                if command.get("action") == "create_kernel":
                    kernels[command["kernel_id"]] = command["lang"]
                elif command.get("action") == "destroy_kernel":
                    kernels.pop(command.get("kernel_id"), None)
                if "action" in command:
                    sock.send_multipart([b"", msgpack.packb({
                        "id": command.get("id"), "reply": 200,
                        "kernel_id": command.get("kernel_id")})])
                    answered += 1
        return answered

    def close(self):
        for sock in self.socks:
            sock.close(0)


def wait_listed(client_sock, count, busy=lambda: None, timeout=120):
    """Until `status` lists `count` agents (`busy()` runs while waiting: a simulator in
    this process answering the manager); returns what the last status said: the number
    of agents listed, or its error."""
    deadline = time.monotonic() + timeout
    while True:
        busy()
        client_sock.send_multipart([b"", msgpack.packb({"action": "status", "id": "s"})])
        while not client_sock.poll(100):
            busy()
        status = msgpack.unpackb(client_sock.recv_multipart()[-1], raw=False)
        listed = len(status.get("agents", []))
        if listed >= count:
            return listed
        if time.monotonic() > deadline:
            print(f"the manager lists {listed} of {count} agents: {status.get('cause', '')}",
                  file=sys.stderr, flush=True)
            return listed if "agents" in status else status.get("cause")
        time.sleep(0.5)


PER_PROCESS = 5000


def _beating(manager_addr, first, count, ready, stop):
    """A simulator process: `count` agents heartbeating, spread over each interval."""
    context = zmq.Context()
    context.MAX_SOCKETS = count + 100
    agents = SimulatedAgents(context, manager_addr, count, max_kernels=8, first=first)
    agents.beat_all()
    ready.set()
    started = time.monotonic()
    while not stop.is_set():
        agents.beat_due(started, time.monotonic())
        agents.answer(5)
    agents.close()
    context.term()


def heartbeat_cost(context, manager, count, windows, seconds):
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    workers = []
    for first in range(0, count, PER_PROCESS):
        ready = spawn.Event()
        worker = spawn.Process(target=_beating, daemon=True, args=(
            manager.addr, first, min(PER_PROCESS, count - first), ready, stop))
        worker.start()
        workers.append((worker, ready))
    status = context.socket(zmq.DEALER)
    status.setsockopt(zmq.LINGER, 0)
    secure(status, "manager")
    status.connect(manager.addr)
    try:
        for _, ready in workers:
            if not ready.wait(120):
                raise RuntimeError("a simulator process did not start its agents")
        listed = wait_listed(status, count)
        time.sleep(INTERVAL)  # from here on, heartbeats come evenly spread
        cpu_per_beat, core_share = [], []
        for _ in range(windows):
            before = cpu_seconds(manager.pid)
            time.sleep(seconds)
            used = cpu_seconds(manager.pid) - before
            cpu_per_beat.append(used / (count * seconds / INTERVAL))
            core_share.append(used / seconds)
        return {"agents": count, "listed_by_status": listed,
                "heartbeats_per_s": round(count / INTERVAL),
                "manager_cpu_us_per_heartbeat": summary(cpu_per_beat, 1e6),
                "manager_core_percent": summary(core_share, 100)}
    finally:
        stop.set()
        for worker, _ in workers:
            worker.join(30)
        status.close(0)


def placements(context, manager, count, clients, in_flight, rounds, seconds):
    agents = SimulatedAgents(context, manager.addr, count)
    dealers = []
    try:
        for _ in range(clients):
            sock = context.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            secure(sock, "manager")
            sock.connect(manager.addr)
            dealers.append(sock)
        agents.beat_all()
        began = time.monotonic()
        listed = wait_listed(dealers[0], count, busy=lambda: (
            agents.answer(), agents.beat_due(began, time.monotonic())))
        if listed != count:
            raise RuntimeError(f"the manager does not list the {count} agents: {listed}")
        requests = [[b"", msgpack.packb({"action": "create", "id": i, "lang": "python3"})]
                    for i in range(in_flight)]
        refused = []

        def check(frames):
            reply = msgpack.unpackb(frames[-1], raw=False)
            if reply.get("reply") != 200:
                refused.append(reply.get("error"))  # counted, not placed: shown in the JSON
                if reply.get("reply") != 503:
                    raise RuntimeError(f"create failed: {reply}")
            return reply["id"]

        rates = []
        started = time.monotonic()
        for _ in range(rounds + 1):  # the first round warms up
            before = len(refused)
            answered = drive(dealers, requests, seconds, check,
                             idle=lambda: (agents.answer(0),
                                           agents.beat_due(started, time.monotonic())))
            rates.append(max(0.0, answered - (len(refused) - before) / seconds))
        return rates[1:], refused
    finally:
        for sock in dealers:
            sock.close(0)
        agents.close()


@contextlib.contextmanager
def _fresh_manager(extra_args, redis):
    """A manager on an empty table (Redis is flushed)."""
    redis.call("FLUSHALL")
    manager = ManagerProcess(heartbeat_interval=INTERVAL, extra_args=extra_args).start()
    try:
        yield manager
    finally:
        manager.stop()
        manager.remove_workdir()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--heartbeat-agents", type=int, default=10000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=8, help="per client")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    # Each simulated agent costs this process two descriptors (its TCP connection and
    # its ZMQ mailbox) and the manager one; the manager inherits the limit.
    needed = 2 * min(args.agents, PER_PROCESS) + 4096
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(needed, soft), max(needed, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        if hard < needed:
            sys.exit(f"{needed} open files are needed and the limit is {hard}: raise it "
                     f"(ulimit -Hn) or simulate fewer agents")
    context = zmq.Context(io_threads=2)
    context.MAX_SOCKETS = args.agents + 1000
    redis = RedisServer().start()
    results = {}
    try:
        for table, extra in (("memory", []), ("redis", ["--redis", redis.url])):
            # Each figure on a fresh manager and table: the kernels placed in the first
            # would make the second's agents look like they lost them all.
            with _fresh_manager(extra, redis) as manager:
                print(f"{table}: {args.agents} agents placing", file=sys.stderr, flush=True)
                rates, refused = placements(context, manager, args.agents, args.clients,
                                            args.in_flight, args.rounds, args.seconds)
            with _fresh_manager(extra, redis) as manager:
                print(f"{table}: {args.heartbeat_agents} agents heartbeating",
                      file=sys.stderr, flush=True)
                beats = heartbeat_cost(context, manager, args.heartbeat_agents,
                                       args.rounds, args.seconds)
            results[table] = {"placements_per_s": summary(rates, digits=0),
                              "refused_503": len(refused), "heartbeats": beats}
        with RouterEcho(context) as echo:
            dealers = []
            for _ in range(args.clients):
                sock = context.socket(zmq.DEALER)
                sock.setsockopt(zmq.LINGER, 0)
                sock.connect(echo.addr)
                dealers.append(sock)
            requests = [[b"", msgpack.packb({"id": i})] for i in range(args.in_flight)]
            baseline = [drive(dealers, requests, args.seconds,
                              lambda f: msgpack.unpackb(f[-1])["id"])
                        for _ in range(args.rounds)]
            for sock in dealers:
                sock.close(0)
    finally:
        redis.stop()
        redis.remove()
    context.term()
    document = {
        "benchmark": "manager_scale", "unit": "placements/s",
        "sorna": results["memory"]["placements_per_s"],
        "baseline": summary(baseline, digits=0),
        "ratio_of_medians": round(results["memory"]["placements_per_s"]["median"]
                                  / summary(baseline, digits=0)["median"], 3),
        "tables": results,
        "notes": {
            "sorna": f"create through the manager (memory table) with {args.agents} "
                     f"simulated agents answering create_kernel at once; "
                     f"{args.clients} DEALER clients x {args.in_flight} in flight",
            "baseline": "the same clients and requests in flight against a ROUTER echo "
                        "thread (pyzmq)",
            "tables": "per capacity table: placements/s, and the manager's CPU per "
                      f"heartbeat with {args.heartbeat_agents} agents beating every "
                      f"{INTERVAL:g} s",
        },
    }
    print(__import__("json").dumps(document, indent=2))


if __name__ == "__main__":
    main()
