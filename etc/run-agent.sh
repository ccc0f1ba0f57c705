#!/bin/sh
# Runs `twistd sorna-agent` in the foreground, for supervisord, systemd or a terminal.
# Settings come from the environment (systemd reads /etc/default/sorna); unset = default.
#
#   SORNA_MANAGER_ADDR        the manager, tcp://HOST:PORT                (tcp://127.0.0.1:5001)
#   SORNA_AGENT_PORT          port of the agent's socket for front-ends   (6001)
#   SORNA_LISTEN              address to bind; * is every interface       (*)
#   SORNA_MAX_KERNELS         most kernels at once                        (8)
#   SORNA_AGENT_ID            the agent's id     (the EC2 instance id, else HOSTNAME:PORT)
#   SORNA_ADVERTISE_HOST      host front-ends dial (the --listen address, else the EC2
#                             local-ipv4, else the address routed to the manager)
#   SORNA_INSTANCE_METADATA   auto, off, or the metadata service's URL    (auto)
#   SORNA_HEARTBEAT_INTERVAL  seconds between heartbeats; as on the manager (3)
#   SORNA_IPC_ROOT            folder for the kernels' ipc sockets         (a new temp folder)
#   SORNA_WARM_POOL           ready kernels kept per language, LANG=N,... (python3=2; 0: none)
#   SORNA_KEYS                the cluster's keys folder (`sorna keys init`)
#                             (~/.config/sorna/keys, else /etc/sorna/keys)
#   SORNA_INSECURE            1: plaintext, no keys (a private network only)
#   SORNA_LOG_FORMAT          text or json                                (text)
#   SORNA_AGENT_ARGS          further sorna-agent options, split on spaces
#
# `run-agent.sh --dry-run` prints the command, one argument a line, and runs nothing.
set -euf  # -f: no globbing, so that * stays *

dry_run=${1:-}
set -- twistd -n --pidfile=
if [ "${SORNA_LOG_FORMAT:-text}" = json ]; then
  set -- "$@" --logger sorna.logging.json_observer
fi
set -- "$@" sorna-agent --manager-addr "${SORNA_MANAGER_ADDR:-tcp://127.0.0.1:5001}" \
  --listen "${SORNA_LISTEN:-*}" --port "${SORNA_AGENT_PORT:-6001}" \
  --max-kernels "${SORNA_MAX_KERNELS:-8}" \
  --instance-metadata "${SORNA_INSTANCE_METADATA:-auto}"
if [ -n "${SORNA_AGENT_ID:-}" ]; then
  set -- "$@" --agent-id "$SORNA_AGENT_ID"
fi
if [ -n "${SORNA_ADVERTISE_HOST:-}" ]; then
  set -- "$@" --advertise-host "$SORNA_ADVERTISE_HOST"
fi
if [ -n "${SORNA_HEARTBEAT_INTERVAL:-}" ]; then
  set -- "$@" --heartbeat-interval "$SORNA_HEARTBEAT_INTERVAL"
fi
if [ -n "${SORNA_WARM_POOL:-}" ]; then
  set -- "$@" --warm-pool "$SORNA_WARM_POOL"
fi
if [ -n "${SORNA_IPC_ROOT:-}" ]; then
  set -- "$@" --ipc-root "$SORNA_IPC_ROOT"
fi
if [ -n "${SORNA_KEYS:-}" ]; then
  set -- "$@" --keys "$SORNA_KEYS"
fi
if [ "${SORNA_INSECURE:-}" = 1 ]; then
  set -- "$@" --insecure
fi
# shellcheck disable=SC2086  # split on purpose
set -- "$@" ${SORNA_AGENT_ARGS:-}

if [ "$dry_run" = --dry-run ]; then
  printf '%s\n' "$@"
  exit 0
fi
exec "$@"  # exec: twistd itself gets the SIGTERM, and destroys the kernels before exiting
