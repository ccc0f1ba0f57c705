"""How fast a real cluster gets over faults.

(a) dead_agent_detection: a manager per heartbeat interval (0.5 s and 1 s) and, each
    round, a fresh agent holding one kernel; SIGKILL the agent just after the manager got
    a heartbeat from it (the longest case) and time until the manager's `status` no
    longer lists it (`status_dropped`: status hides an agent whose last heartbeat is 3
    intervals old) and until `kernel_info` of its kernel answers `kernel-lost`
    (`kernel_lost`: the expiry, run every half interval, forgets the agent's kernels).
    Expected: 3 intervals, and 3 to 3.5 intervals. Each is also given as a ratio to the
    interval, which should not depend on the machine.
(b) manager_restart: a manager keeping its table in a real redis-server, one agent
    (interval 0.5 s) and one session's kernel; each round SIGTERM the manager (or SIGKILL,
    `--kill`) and start it again on the same port. From the new manager's readiness line:
    until `status` shows a heartbeat the new manager received (`agent_heard`), and until
    `get_or_create` of the session answers (`session_answered`, and whether it was the
    same kernel). `downtime` is from the signal to the readiness line.
(c) manager_restart_after_agent_timeout: the same, with the manager held down for 4
    intervals, longer than the 3 after which an agent counts as dead, so that the new
    manager finds every agent's last heartbeat too old.

    python bench/cluster_faults.py [-n 5] [--kill]
"""

import argparse
import json
import statistics
import sys
import time
import uuid

import docker

from _common import summary

from sorna.client.blocking import BlockingClient
from sorna.proto.errors import SornaError
from sorna.testing.processes import (
    AgentProcess, ManagerProcess, heard_since, remove_agent_containers, wait_for_agent,
    wait_until,
)
from sorna.testing.redis import RedisServer

INTERVALS = (0.5, 1.0)
RESTART_INTERVAL = 0.5
LONG_DOWNTIME = 4 * RESTART_INTERVAL  # longer than the agent timeout (3 intervals)
POLL = 0.02


def progress(message):
    print(message, file=sys.stderr, flush=True)


def stats(values):
    return summary(values, digits=3)


class Processes:
    """Every process started here, stopped (and its containers removed) on the way out."""

    def __init__(self, docker_client):
        self.docker = docker_client
        self.started = []
        self.redis = None

    def add(self, process):
        self.started.append(process)
        return process.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in reversed(self.started):
            process.stop()
            process.remove_workdir()
            if isinstance(process, AgentProcess):
                left = remove_agent_containers(self.docker, process.agent_id)
                if left:
                    progress(f"removed containers left by {process.agent_id}: {left}")
        if self.redis is not None:
            self.redis.remove()


def agent_ids(client):
    return {a["agent_id"] for a in client.status()["agents"]}


def dead_agent_detection(procs, interval, rounds):
    manager = procs.add(ManagerProcess(heartbeat_interval=interval))
    dropped, lost = [], []
    with BlockingClient(manager.addr, timeout=10) as client:
        for i in range(rounds):
            agent = procs.add(AgentProcess(manager.addr, f"bench-{uuid.uuid4().hex[:10]}",
                                           max_kernels=1, heartbeat_interval=interval))
            wait_for_agent(manager.addr, agent.agent_id, timeout=30)
            kernel_id = client.create("python3")["kernel_id"]
            # Kill right after a heartbeat reached the manager: the longest wait.
            wait_until(lambda: last_heartbeat(client, agent.agent_id) < POLL, 10 * interval,
                       "a fresh heartbeat", interval=POLL / 4)
            agent.kill()
            killed = time.monotonic()
            wait_until(lambda: agent.agent_id not in agent_ids(client), 20 * interval + 10,
                       f"the manager dropping {agent.agent_id}", interval=POLL)
            dropped.append(time.monotonic() - killed)
            wait_until(lambda: lost_error(client, kernel_id) == "kernel-lost",
                       20 * interval + 10, f"kernel {kernel_id} answering kernel-lost",
                       interval=POLL)
            lost.append(time.monotonic() - killed)
            remove_agent_containers(procs.docker, agent.agent_id)
            progress(f"interval {interval:g} s, round {i + 1}: dead agent dropped from "
                     f"status after {dropped[-1]:.3f} s, its kernel lost after "
                     f"{lost[-1]:.3f} s")
    manager.stop()
    return {"heartbeat_interval": interval, "agent_timeout": 3 * interval,
            "expiry_check_every": interval / 2,
            "expected": {"status_dropped": 3 * interval,
                         "kernel_lost": [3 * interval, 3.5 * interval]},
            "status_dropped": stats(dropped),
            "status_dropped_ratio_to_interval":
                round(statistics.median(dropped) / interval, 2),
            "kernel_lost": stats(lost),
            "kernel_lost_ratio_to_interval": round(statistics.median(lost) / interval, 2)}


def last_heartbeat(client, agent_id):
    """Age in seconds of the newest heartbeat of `agent_id` the manager holds."""
    for agent in client.status()["agents"]:
        if agent["agent_id"] == agent_id:
            return agent["last_heartbeat"]
    return float("inf")


def lost_error(client, kernel_id):
    try:
        client.kernel_info(kernel_id)
    except SornaError as e:
        return e.error
    return None


def manager_restart(procs, rounds, kill, down_for=0.0):
    procs.redis = RedisServer().start()
    manager = procs.add(ManagerProcess(
        heartbeat_interval=RESTART_INTERVAL,
        extra_args=["--redis", procs.redis.url, "--redis-prefix", "bench:"]))
    agent = procs.add(AgentProcess(manager.addr, f"bench-{uuid.uuid4().hex[:10]}",
                                   max_kernels=2, heartbeat_interval=RESTART_INTERVAL))
    wait_for_agent(manager.addr, agent.agent_id, timeout=30)
    session = ("bench-user", "bench-entry", "python3")
    with BlockingClient(manager.addr, timeout=30) as client:
        kernel_id = client.get_or_create(*session)["kernel_id"]
    downtime, heard, answered, same = [], [], [], 0
    for i in range(rounds):
        halted = time.monotonic()
        if kill:
            manager.kill()
        else:
            manager.stop()
        if down_for:
            wait_until(lambda: time.monotonic() - halted >= down_for, down_for + 5,
                       f"{down_for:g} s of downtime")
        manager.restart()
        ready = time.monotonic()
        downtime.append(ready - halted)
        with BlockingClient(manager.addr, timeout=30) as client:
            heard.append(wait_until(lambda: heard_since(client, agent.agent_id, ready), 30,
                                    "a heartbeat reaching the new manager", interval=POLL))
            try:
                got = client.get_or_create(*session)["kernel_id"]
            except SornaError as e:
                got = None
                progress(f"round {i + 1}: get_or_create failed: {e!r}")
            answered.append(time.monotonic() - ready)
        same += got == kernel_id
        if got is not None and got != kernel_id:
            progress(f"round {i + 1}: the session got a new kernel {got} (was {kernel_id})")
            kernel_id = got
        progress(f"restart round {i + 1}: down {downtime[-1]:.3f} s, agent heard after "
                 f"{heard[-1]:.3f} s, session answered after {answered[-1]:.3f} s")
    with BlockingClient(manager.addr, timeout=30) as client:
        try:
            client.destroy(kernel_id)
        except SornaError:
            pass
    return {"heartbeat_interval": RESTART_INTERVAL,
            "signal": "SIGKILL" if kill else "SIGTERM",
            "held_down_for": down_for,
            "downtime": stats(downtime),
            "agent_heard": stats(heard),
            "session_answered": stats(answered),
            "same_kernel_rounds": f"{same}/{rounds}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=5)
    parser.add_argument("--kill", action="store_true",
                        help="restart the manager after SIGKILL instead of SIGTERM")
    args = parser.parse_args()
    started = time.monotonic()
    docker_client = docker.from_env(timeout=60)
    try:
        with Processes(docker_client) as procs:
            detection = [dead_agent_detection(procs, interval, args.rounds)
                         for interval in INTERVALS]
        with Processes(docker_client) as procs:
            restart = manager_restart(procs, args.rounds, args.kill)
        with Processes(docker_client) as procs:
            long_restart = manager_restart(procs, args.rounds, args.kill,
                                           down_for=LONG_DOWNTIME)
    finally:
        docker_client.close()
    print(json.dumps({
        "benchmark": "cluster_faults", "unit": "s", "rounds": args.rounds,
        "dead_agent_detection": detection,
        "manager_restart": restart,
        "manager_restart_after_agent_timeout": long_restart,
        "notes": "Seconds; summaries over the rounds. Baseline context: the heartbeat "
                 "interval. A dead agent leaves the status 3 intervals after its last "
                 "heartbeat and its kernels are lost at the next expiry check (every half "
                 "interval), so the *_ratio_to_interval figures are what to compare "
                 "between machines. manager_restart times run from the new manager's "
                 "readiness line. "
                 f"Whole run: {time.monotonic() - started:.0f} s.",
    }, indent=2))


if __name__ == "__main__":
    main()
