"""The `sorna` command: run code, look at the cluster, build kernel images."""

import argparse
import codeop
import getpass
import json
import os
import re
import signal
import sys

from sorna.client.blocking import BlockingClient
from sorna.client.calls import DEFAULT_MANAGER_ADDR, insecure_from
from sorna.keys import KeysError
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
    except KeysError as e:
        stderr.write(f"sorna: {e}\n")
        return EXIT_USAGE
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
    parser.add_argument("--keys", metavar="DIR",
                        help="the cluster's keys folder (default: $SORNA_KEYS, else "
                             "~/.config/sorna/keys or /etc/sorna/keys)")
    parser.add_argument("--key-name", metavar="NAME",
                        help="which clients/NAME pair to use (default: client, or the "
                             "only one; $SORNA_KEY_NAME)")
    parser.add_argument("--insecure", action="store_true",
                        default=insecure_from(os.environ),
                        help="speak plaintext, to a cluster that runs --insecure "
                             "(default: $SORNA_INSECURE)")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    run = commands.add_parser("exec", help="run code in a new kernel, print its output")
    run.add_argument("lang", help="language, e.g. python3")
    run.add_argument("code", nargs="?", help="the code (or use -f FILE)")
    run.add_argument("-f", "--file", help="read the code from FILE ('-' for stdin)")
    run.set_defaults(run=_exec)

    program = commands.add_parser(
        "run", help="run a program file in a new kernel as a shell would: with its "
                    "arguments, ending with its exit status")
    program.add_argument("lang", help="language, e.g. python3")
    program.add_argument("file", help="the program's file")
    program.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    program.add_argument("--with", dest="others", action="append", default=[],
                         metavar="FILE", help="another file of the program, put beside "
                                              "it (repeat for more)")
    program.set_defaults(run=_run_program)

    shell = commands.add_parser("shell", help="an interactive session in a new kernel")
    shell.add_argument("lang", help="language, e.g. python3")
    shell.set_defaults(run=_shell)

    copy = commands.add_parser("cp", help="copy a file to or from a kernel (KERNEL_ID:PATH)")
    copy.add_argument("source")
    copy.add_argument("destination")
    copy.set_defaults(run=_copy)

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
    build.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                       help="languages built at once (default: the cores plus one)")
    build.add_argument("--with", dest="add", action="append", default=[],
                       metavar="PACKAGE",
                       help="add a package to the languages' images (a Debian package, "
                            "or SOURCE:NAME where the language's folder says how, such "
                            "as pip:NAME for python3); later builds keep it")
    build.add_argument("--without", dest="remove", action="append", default=[],
                       metavar="PACKAGE", help="take out a package added with --with")
    build.set_defaults(run=_images_build)

    keys = commands.add_parser("keys", help="the cluster's CurveZMQ keys")
    key_commands = keys.add_subparsers(title="key commands", required=True,
                                       metavar="COMMAND")
    init = key_commands.add_parser("init", help="create the keys of a cluster in DIR: "
                                                "the manager's, an agent's, a client's")
    init.add_argument("folder", metavar="DIR")
    init.set_defaults(run=_keys_init)
    for kind, what in (("agents", "an agent allowed to register"),
                       ("clients", "a front-end allowed to ask")):
        add = key_commands.add_parser(f"add-{kind[:-1]}", help=f"create the keys of {what}")
        add.add_argument("folder", metavar="DIR")
        add.add_argument("name", metavar="NAME", help="the key's file name, e.g. the host")
        add.set_defaults(run=_keys_add, kind=kind)

    tokens = commands.add_parser("tokens", help="the gateway's HTTP tokens")
    token_commands = tokens.add_subparsers(title="token commands", required=True,
                                           metavar="COMMAND")
    for name, what, run in (("add", "make a token NAME and print it (once)", _tokens_add),
                            ("set", "change the role or quotas of the token NAME",
                             _tokens_set),
                            ("remove", "revoke the token NAME", _tokens_remove),
                            ("list", "list the tokens: names, roles, quotas", _tokens_list)):
        command = token_commands.add_parser(name, help=what)
        if name != "list":
            command.add_argument("name", metavar="NAME", help="e.g. who uses the token")
        if name in ("add", "set"):
            command.add_argument(
                "--admin", action=argparse.BooleanOptionalAction, default=None,
                help="an operator's token: sees and manages every kernel and the whole "
                     "dashboard")
            for quota, what in (("kernels", "kernels it may hold"),
                                ("runs", "Piston executes it may run at once")):
                command.add_argument(
                    f"--max-{quota}", type=int, metavar="N",
                    help=f"{what} (default: the gateway's --max-{quota}-per-token; -1 "
                         f"goes back to it)")
        command.add_argument("--file", metavar="FILE",
                             help="the tokens file (default: `tokens` in the keys folder)")
        command.set_defaults(run=run)
    return parser


def _client(args):
    return BlockingClient(args.manager, timeout=args.timeout, keys=args.keys,
                          insecure=args.insecure, key_name=args.key_name)


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
    with _client(args) as client:
        kernel = client.create(args.lang)
        try:
            reply = run_interactively(client, kernel["kernel_id"], code, stdout, stderr)
        finally:
            _destroy_quietly(client, kernel["kernel_id"], stderr)
    return EXIT_RAISED if reply["result"]["exceptions"] else 0


def _run_program(args, stdout, stderr):
    try:
        with open(args.file, encoding="utf-8") as f:
            code = f.read()
        others = []
        for path in args.others:
            with open(path, "rb") as f:
                others.append((os.path.basename(path), f.read()))
    except (OSError, UnicodeDecodeError) as e:
        stderr.write(f"sorna run: cannot read {getattr(e, 'filename', None) or args.file}: "
                     f"{getattr(e, 'strerror', None) or e}\n")
        return EXIT_USAGE
    program = {"name": os.path.basename(args.file), "args": args.args}
    if not sys.stdin.isatty():  # piped: the program's whole input, as a shell gives it
        program["stdin"] = sys.stdin.read()
    with _client(args) as client:
        kernel_id = client.create(args.lang)["kernel_id"]
        try:
            for name, data in others:
                client.upload(kernel_id, name, data)
            reply = run_interactively(client, kernel_id, code, stdout, stderr,
                                      program=program)
        finally:
            _destroy_quietly(client, kernel_id, stderr)
    return program_status(reply["result"]["exceptions"])


def program_status(exceptions):
    """A program run's exit status as a shell gives it: its own, 128 + N for a killing
    signal N, 1 when it did not compile or Sorna ended it."""
    for name, exc_args, _, _ in exceptions:
        if name == "ExitStatus" and exc_args and isinstance(exc_args[0], int):
            return exc_args[0]
        if name in ("Signal", "Interrupt"):
            number = getattr(signal, str(exc_args[0]) if exc_args else "SIGINT", None)
            return 128 + int(number) if number else EXIT_RAISED
    return EXIT_RAISED if exceptions else 0


def run_interactively(client, kernel_id, code, stdout, stderr, ask=None, program=None):
    """Run `code` (as a `program` when one is given: {name, args}), printing output as
    it comes; answer input requests from the terminal (`ask(prompt, password)`);
    Ctrl-C interrupts the code rather than the client. A program's own exit status is
    not printed: a shell does not print it either."""
    ask = ask or _ask
    fields = {} if program is None else {"program": program}

    def show(fields):
        _print_result(fields["result"], stdout, stderr)

    def follow(request):
        try:
            return request()
        except KeyboardInterrupt:
            stderr.write("\n(interrupting)\n")
            client.interrupt(kernel_id)
            return follow(lambda: client.continue_run(kernel_id, on_output=show))

    reply = follow(lambda: client.run_code(kernel_id, code, on_output=show, **fields))
    while reply["status"] != "finished":
        show(reply)
        if reply["status"] == "waiting-input":
            try:
                text, eof = ask(reply["prompt"], reply["password"]), False
            except EOFError:  # Ctrl-D: the program's input ends, as on a terminal
                text, eof = "", True
            reply = follow(lambda: client.send_input(kernel_id, text, eof=eof,
                                                     on_output=show))
        else:
            reply = follow(lambda: client.continue_run(kernel_id, on_output=show))
    show(reply)
    for name, exc_args, before_exec, traceback in reply["result"]["exceptions"]:
        if program is None or name != "ExitStatus":
            stderr.write(traceback or f"{name}: {exc_args}\n")
    stderr.flush()
    return reply


def _ask(prompt, password):
    if password:
        return getpass.getpass(prompt)
    return input(prompt)


def _print_result(result, stdout, stderr):
    stdout.write(result.get("stdout", ""))
    for mime, data in result.get("media", []):
        stdout.write(f"[{mime}, {len(data)} characters]\n")
    stdout.flush()
    stderr.write(result.get("stderr", ""))
    stderr.flush()


def _destroy_quietly(client, kernel_id, stderr):
    try:
        client.destroy(kernel_id)
    except SornaError as e:
        stderr.write(f"sorna: could not destroy kernel {kernel_id}: {e.cause}\n")


def _shell(args, stdout, stderr):
    with _client(args) as client:
        kernel = client.create(args.lang)
        stdout.write(f"sorna: {kernel['lang']} kernel {kernel['kernel_id']}; Ctrl-C interrupts "
                     f"the code, Ctrl-D leaves (and destroys the kernel)\n")
        try:
            while True:
                try:
                    code = _read_cell(kernel["lang"])
                except EOFError:
                    stdout.write("\n")
                    return 0
                except KeyboardInterrupt:
                    stdout.write("\n")
                    continue
                if code.strip():
                    run_interactively(client, kernel["kernel_id"], code, stdout, stderr)
        finally:
            _destroy_quietly(client, kernel["kernel_id"], stderr)


def _read_cell(lang):
    """One cell: a line, or for Python every line until the statement is complete."""
    lines = [input(">>> ")]
    if not lang.startswith("python"):
        return lines[0]
    while True:
        source = "\n".join(lines)
        try:
            if codeop.compile_command(source, "<input>", "single") is not None:
                return source
        except (SyntaxError, ValueError, OverflowError):
            return source  # let the kernel report it
        lines.append(input("... "))


KERNEL_PATH = re.compile(r"^([A-Za-z0-9_-]{22}):(.*)$")


def _copy(args, stdout, stderr):
    source, destination = KERNEL_PATH.match(args.source), KERNEL_PATH.match(args.destination)
    if bool(source) == bool(destination):
        stderr.write("sorna cp: exactly one side must be KERNEL_ID:PATH\n")
        return EXIT_USAGE
    with _client(args) as client:
        if destination:
            try:
                with open(args.source, "rb") as f:
                    data = f.read()
            except OSError as e:
                stderr.write(f"sorna cp: cannot read {args.source}: {e.strerror}\n")
                return EXIT_USAGE
            path = destination.group(2) or os.path.basename(args.source)
            client.upload(destination.group(1), path, data)
        else:
            data = client.download(source.group(1), source.group(2))
            target = args.destination
            if os.path.isdir(target):
                target = os.path.join(target, os.path.basename(source.group(2)))
            with open(target, "wb") as f:
                f.write(data)
    return 0


def _status(args, stdout, stderr):
    with _client(args) as client:
        status = client.status()
    if args.json:
        stdout.write(json.dumps(status, indent=2, sort_keys=True) + "\n")
        return 0
    if status.get("security") == "insecure":
        stdout.write("INSECURE: the manager runs --insecure (plaintext, no keys)\n")
    stdout.write(f"{len(status['agents'])} agents, {status['kernels']} kernels of "
                 f"{status['capacity']} slots; languages: "
                 f"{', '.join(status['langs']) or 'none'}\n")
    if status["agents"]:
        stdout.write(f"{'AGENT':24} {'ADDRESS':26} {'KERNELS':>9} {'SEEN':>6}  "
                     f"{'WARM':16} LANGUAGES\n")
    for a in status["agents"]:
        warm = ",".join(f"{lang}={n}" for lang, n in sorted((a.get("warm") or {}).items())
                        if n) or "-"
        stdout.write(f"{a['agent_id']:24} {a['addr']:26} "
                     f"{a['kernels']:>4}/{a['max_kernels']:<4} {a['last_heartbeat']:>5.1f}s  "
                     f"{warm:16} {', '.join(a['langs'])}\n")
    return 0


def _words(values):
    """`--with a,b --with c` -> [a, b, c]."""
    return [word for value in values for word in value.replace(",", " ").split()]


def _images_build(args, stdout, stderr):
    from sorna.images.build import ImageBuildError, build_images

    try:
        build_images(args.langs or None, mirror=args.mirror, rebuild_base=args.rebuild_base,
                     out=stdout, jobs=args.jobs, add=_words(args.add),
                     remove=_words(args.remove))
    except ImageBuildError as e:
        stderr.write(f"sorna images build: {e}\n")
        return EXIT_ERROR
    return 0


def _keys_init(args, stdout, stderr):
    from sorna import keys

    try:
        made = keys.init(args.folder)
    except keys.KeysError as e:
        stderr.write(f"sorna keys init: {e}\n")
        return EXIT_ERROR
    _list_made(made, stdout)
    stdout.write("Give each host only what it needs: the manager its key pair and the "
                 "allowed agents/ and clients/ *.key files; an agent or a client its own "
                 "pair and manager.key.\n")
    return 0


def _keys_add(args, stdout, stderr):
    from sorna import keys

    try:
        made = keys.add(args.folder, args.kind, args.name)
    except keys.KeysError as e:
        stderr.write(f"sorna keys add-{args.kind[:-1]}: {e}\n")
        return EXIT_ERROR
    _list_made(made, stdout)
    return 0


def _tokens_file(args):
    from sorna.gateway import tokens

    path = args.file or tokens.default_file(args.keys)
    if path is None:
        raise tokens.TokensError(
            "no tokens file: give --file FILE, or make the cluster's keys first (`sorna "
            "keys init ~/.config/sorna/keys`), whose folder then holds the tokens")
    return path


def _tokens_command(args, stderr, work):
    from sorna.gateway import tokens

    try:
        return work(_tokens_file(args))
    except tokens.TokensError as e:
        stderr.write(f"sorna tokens: {e}\n")
        return EXIT_ERROR


def _tokens_add(args, stdout, stderr):
    from sorna.gateway import tokens

    def add(path):
        token = tokens.add(path, args.name, bool(args.admin), args.max_kernels,
                           args.max_runs)
        stdout.write(f"made the token {args.name!r} in {path}; it is shown only now. "
                     f"Send it as `Authorization: token TOKEN` (or `Bearer TOKEN`):\n")
        stdout.write(f"{token}\n")
        return 0

    return _tokens_command(args, stderr, add)


def _tokens_set(args, stdout, stderr):
    from sorna.gateway import tokens

    def change(path):
        tokens.update(path, args.name, args.admin, args.max_kernels, args.max_runs)
        stdout.write(f"changed the token {args.name!r} in {path}; a running gateway "
                     f"applies it within seconds\n")
        return 0

    return _tokens_command(args, stderr, change)


def _tokens_remove(args, stdout, stderr):
    from sorna.gateway import tokens

    def remove(path):
        tokens.remove(path, args.name)
        stdout.write(f"removed the token {args.name!r} from {path}; a running gateway "
                     f"refuses it within seconds\n")
        return 0

    return _tokens_command(args, stderr, remove)


def _tokens_list(args, stdout, stderr):
    from sorna.gateway import tokens

    def show(path):
        for tenant in tokens.tenants(path):
            quotas = " ".join(f"{q}={v}" for q, v in (("max-kernels", tenant.max_kernels),
                                                      ("max-runs", tenant.max_runs))
                              if v is not None)
            role = "admin" if tenant.admin else "user"
            stdout.write(f"{tenant.name}\t{role}\t{quotas or 'default quotas'}\n")
        return 0

    return _tokens_command(args, stderr, show)


def _list_made(paths, stdout):
    for path in paths:
        stdout.write(f"{'secret' if path.endswith('_secret') else 'public'}  {path}\n")


if __name__ == "__main__":
    sys.exit(main())
