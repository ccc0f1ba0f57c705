"""The `sorna` command: run code, look at the cluster, build kernel images."""

import argparse
import json
import os
import sys

from sorna.client.blocking import BlockingClient
from sorna.client.calls import DEFAULT_MANAGER_ADDR
from sorna.proto.errors import SornaError

EXIT_RAISED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = _parser().parse_args(argv)
    try:
        return args.run(args, stdout, stderr)
    except SornaError as e:
        stderr.write(f"sorna: {e.cause} ({e.code} {e.error})\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


def _parser():
    parser = argparse.ArgumentParser(prog="sorna", description="Talk to a Sorna cluster.")
    parser.add_argument("--manager", default=os.environ.get("SORNA_MANAGER_ADDR",
                                                            DEFAULT_MANAGER_ADDR),
                        help="manager address (default: $SORNA_MANAGER_ADDR or "
                             f"{DEFAULT_MANAGER_ADDR})")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the manager (default 30)")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("exec", help="run code in a new kernel, print its output")
    run.add_argument("lang", help="language, e.g. python3")
    run.add_argument("code", nargs="?", help="the code (or use -f FILE)")
    run.add_argument("-f", "--file", help="read the code from FILE ('-' for stdin)")
    run.set_defaults(run=_exec)

    status = commands.add_parser("status", help="show agents, capacity and kernels")
    status.add_argument("--json", action="store_true", help="print the raw status as JSON")
    status.set_defaults(run=_status)

    images = commands.add_parser("images", help="kernel images")
    image_commands = images.add_subparsers(title="image commands", required=True,
                                           metavar="COMMAND")
    build = image_commands.add_parser("build", help="build the base and kernel images")
    build.add_argument("langs", nargs="*", metavar="LANG", help="languages (default: all)")
    build.add_argument("--mirror", help="Debian mirror URL (default: from apt's sources)")
    build.add_argument("--rebuild-base", action="store_true",
                       help="rebuild the base image even if it exists")
    build.set_defaults(run=_images_build)
    return parser


def _read_code(args, stderr):
    if args.file and args.code is not None:
        stderr.write("sorna exec: give the code or -f FILE, not both\n")
        return None
    if args.file == "-":
        return sys.stdin.read()
    if args.file:
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except OSError as e:
            stderr.write(f"sorna exec: cannot read {args.file}: {e.strerror}\n")
            return None
    if args.code is None:
        stderr.write("sorna exec: give the code as an argument or with -f FILE\n")
        return None
    return args.code


def _exec(args, stdout, stderr):
    code = _read_code(args, stderr)
    if code is None:
        return EXIT_USAGE
    with BlockingClient(args.manager, timeout=args.timeout) as client:
        kernel = client.create(args.lang)
        try:
            result = client.execute(kernel["kernel_id"], code)
        finally:
            try:
                client.destroy(kernel["kernel_id"])
            except SornaError as e:
                stderr.write(f"sorna: could not destroy kernel {kernel['kernel_id']}: "
                             f"{e.cause}\n")
    stdout.write(result["stdout"])
    stdout.flush()
    stderr.write(result["stderr"])
    for name, exc_args, before_exec, traceback in result["exceptions"]:
        stderr.write(traceback or f"{name}: {exc_args}\n")
    return EXIT_RAISED if result["exceptions"] else 0


def _status(args, stdout, stderr):
    with BlockingClient(args.manager, timeout=args.timeout) as client:
        status = client.status()
    if args.json:
        stdout.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        return 0
    stdout.write(f"{len(status['agents'])} agents, {status['kernels']} kernels of "
                 f"{status['capacity']} slots; languages: "
                 f"{', '.join(status['langs']) or 'none'}\n")
    if status["agents"]:
        stdout.write(f"{'AGENT':24} {'ADDRESS':26} {'KERNELS':>9} {'SEEN':>6}  LANGUAGES\n")
    for a in status["agents"]:
        stdout.write(f"{a['agent_id']:24} {a['addr']:26} "
                     f"{a['kernels']:>4}/{a['max_kernels']:<4} {a['last_heartbeat']:>5.1f}s  "
                     f"{', '.join(a['langs'])}\n")
    return 0


def _images_build(args, stdout, stderr):
    from sorna.images.build import ImageBuildError, build_images

    try:
        build_images(args.langs or None, mirror=args.mirror, rebuild_base=args.rebuild_base,
                     out=stdout)
    except ImageBuildError as e:
        stderr.write(f"sorna images build: {e}\n")
        return EXIT_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
