"""The commands of Sorna's original deployment: `python3 -m sorna.manager.server`,
`python3 -m sorna.agent.server` and `python3 -m sorna.gateway.server`.

Each runs its twistd plugin in this process, in the foreground, as
`twistd -n --pidfile= PLUGIN OPTIONS` does: the options, their checks and messages, the
logging and the handling of SIGTERM are the plugin's and twistd's, one implementation
for both ways of starting. `SORNA_LOG_FORMAT=json` logs one JSON event per line, as it
does for `etc/run-*.sh`."""

import os
import sys


def twistd_argv(plugin, args, environ):
    argv = ["-n", "--pidfile="]
    if environ.get("SORNA_LOG_FORMAT", "text") == "json":
        argv += ["--logger", "sorna.logging.json_observer"]
    return [*argv, plugin, *args]


def main(plugin, module, args=None, environ=None):
    """Run `plugin` with `args` (default: this command's own) until it stops."""
    from twisted.scripts.twistd import run

    environ = os.environ if environ is None else environ
    args = sys.argv[1:] if args is None else args
    # twistd names sys.argv[0] in its messages: name the command the user typed.
    sys.argv = [f"python3 -m {module}", *twistd_argv(plugin, args, environ)]
    run()
