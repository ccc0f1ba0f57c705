"""A hostile token's silent WebSockets against a neighbour token, at full size.

One manager, one agent and one gateway (default quotas) as real processes; `bob` floods,
`alice` runs `print(1)` cells on a kernel of her own and times each round trip.

baseline: alice's round trips while nobody else uses the gateway.
output:   bob attaches SOCKETS (20) silent WebSockets to one of his kernels, whose cells
          print 1 MiB each for SECONDS (30).
kernel_info: bob attaches 50 silent WebSockets (spread over five kernels) that send
          kernel_info_requests and never read, for 45 s.

For each probe the JSON gives the gateway's RSS before, at peak and 3 s after the sockets
closed, the upgrades (101 accepted, 429 past a quota), how many sockets the gateway
closed, and alice's latencies; `ratio_of_medians` is alice's median under the output
flood against the baseline.

    python bench/gateway_tenants.py [--sockets 20] [--seconds 30] [--info-sockets 50]
        [--info-seconds 45]
"""

import argparse
import sys

import docker

from _common import Cluster, report, summary

from sorna.testing.gateway import FloodProbe
from sorna.testing.processes import GatewayProcess


def probe(gateway, tokens, flood, sockets, seconds, kernels=1):
    print(f"probe {flood}: {sockets} sockets for {seconds} s", file=sys.stderr)
    run = FloodProbe(gateway.url, gateway.process.pid, tokens["bob"], tokens["alice"],
                     sockets=sockets, seconds=seconds, flood=flood, kernels=kernels)
    result = run.run()
    result["neighbour_ms"] = summary(run.latencies, 1e3, 1)
    print(f"  {result['rss_mib']}, neighbour p50 {result['neighbour_ms']['median']} ms",
          file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--info-sockets", type=int, default=50)
    parser.add_argument("--info-seconds", type=float, default=45.0)
    args = parser.parse_args()
    docker_client = docker.from_env()
    with Cluster(docker_client, max_kernels=8) as cluster:
        gateway = GatewayProcess(cluster.manager.addr).start()
        try:
            tokens = {name: gateway.add_token(name) for name in ("alice", "bob")}
            baseline = probe(gateway, tokens, "none", 0, 10.0)
            output = probe(gateway, tokens, "output", args.sockets, args.seconds)
            info = probe(gateway, tokens, "kernel_info", args.info_sockets,
                         args.info_seconds, kernels=5)
        finally:
            gateway.stop()
            gateway.remove_workdir()
    docker_client.close()
    report("gateway_tenants", "ms", output["neighbour_ms"], baseline["neighbour_ms"], {
        "sorna": "alice's `print(1)` round trip through the gateway's WebSocket while "
                 "bob's silent sockets are sent 1 MiB cells",
        "baseline": "the same with no other token at the gateway",
        "limits": "default quotas: 8 sockets per kernel, 32 per token, a 4 MiB send "
                  "budget per socket, 10 cheap requests a second per socket",
    }, extra={"probes": {"output": output, "kernel_info": info}})


if __name__ == "__main__":
    main()
