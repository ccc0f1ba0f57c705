"""Every language's hello world on a warm kernel, through the agent, against the floor
of any ZMQ service.

sorna:    per language, `execute` of the language's hello world on a kernel created
          beforehand (a DEALER over TCP loopback to the agent; compiled languages
          compile and run the program every time), timed until the reply; the series
          reported as `sorna` is python3's, every language's is under `languages`,
          with its image's size.
baseline: a raw pyzmq REQ/REP round trip of a small msgpack map on TCP loopback to an
          echo thread.

    python bench/languages.py [-n 20]
"""

import argparse
import sys
import time
from pathlib import Path

import docker
import msgpack
import zmq

from _common import Cluster, report, summary
from execute_roundtrip import EchoServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from sorna.client.blocking import BlockingClient  # noqa: E402
from sorna.testing.keys import secure
from tests.integration.languages import PROGRAMS  # noqa: E402

TIMEOUT = 60.0


def round_trip(sock, payload):
    started = time.perf_counter()
    sock.send_multipart(payload)
    if not sock.poll(TIMEOUT * 1000):
        raise RuntimeError("no reply")
    reply = sock.recv_multipart()
    return time.perf_counter() - started, reply


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=20)
    args = parser.parse_args()
    docker_client = docker.from_env(timeout=60)
    langs = [lang for lang in sorted(PROGRAMS)
             if any(f"sorna/kernel-{lang}:latest" in i.tags
                    for i in docker_client.images.list(name=f"sorna/kernel-{lang}"))]
    context = zmq.Context()
    echo = EchoServer(context)
    echo.start()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(echo.addr)
    ping = msgpack.packb({"action": "ping", "id": 1, "body": "x" * 16})
    baseline = [round_trip(req, [ping])[0] for _ in range(args.count * 5)]
    results = {}
    with Cluster(docker_client, max_kernels=2) as cluster, \
            BlockingClient(cluster.manager.addr, timeout=TIMEOUT) as client:
        dealer = context.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        secure(dealer, "agent")
        dealer.connect(cluster.agent.addr)
        for lang in langs:
            kernel = client.create(lang)
            execute = [b"", msgpack.packb({"action": "execute", "id": 1,
                                           "kernel_id": kernel["kernel_id"],
                                           "code": PROGRAMS[lang]["hello"]})]
            times = []
            for _ in range(args.count + 2):
                took, reply = round_trip(dealer, execute)
                result = msgpack.unpackb(reply[-1], raw=False)["result"]
                if result["stdout"] != "hello, world\n":
                    raise RuntimeError(f"{lang}: unexpected result {result}")
                times.append(took)
            client.destroy(kernel["kernel_id"])
            size = docker_client.images.get(f"sorna/kernel-{lang}:latest").attrs["Size"]
            results[lang] = dict(summary(times[2:], 1000, 2), image_mb=round(size / 1e6))
            print(f"{lang}: median {results[lang]['median']} ms, image "
                  f"{results[lang]['image_mb']} MB", file=sys.stderr)
        dealer.close(0)
    req.send(b"stop")
    req.recv()
    req.close(0)
    context.term()
    report("languages", "ms", {k: v for k, v in results["python3"].items()
                               if k != "image_mb"}, summary(baseline, 1000, 3),
           "hello world on a warm kernel through the agent (compiled languages compile "
           "each time); sorna: python3; baseline: a raw pyzmq REQ/REP echo",
           extra={"languages": results})


if __name__ == "__main__":
    main()
