#!/bin/sh
# Runs `twistd sorna-manager` in the foreground, for supervisord, systemd or a terminal.
# Settings come from the environment (systemd reads /etc/default/sorna); unset = default.
#
#   SORNA_PORT                port of the manager's socket                (5001)
#   SORNA_LISTEN              address to bind; * is every interface       (*)
#   SORNA_REDIS               keep the capacity table in Redis, e.g. redis://127.0.0.1:6379/0
#                             (default: in memory, or REDIS_PORT_6379_TCP_ADDR/_PORT)
#   SORNA_HEARTBEAT_INTERVAL  seconds between agent heartbeats; same on every agent (3)
#   SORNA_KEYS                the cluster's keys folder (`sorna keys init`)
#                             (~/.config/sorna/keys, else /etc/sorna/keys)
#   SORNA_INSECURE            1: plaintext, no keys (a private network only)
#   SORNA_LOG_FORMAT          text or json                                (text)
#   SORNA_MANAGER_ARGS        further sorna-manager options, split on spaces
#
# `run-manager.sh --dry-run` prints the command, one argument a line, and runs nothing.
set -euf  # -f: no globbing, so that * stays *

dry_run=${1:-}
set -- twistd -n --pidfile=
if [ "${SORNA_LOG_FORMAT:-text}" = json ]; then
  set -- "$@" --logger sorna.logging.json_observer
fi
set -- "$@" sorna-manager --listen "${SORNA_LISTEN:-*}" --port "${SORNA_PORT:-5001}"
if [ -n "${SORNA_REDIS:-}" ]; then
  set -- "$@" --redis "$SORNA_REDIS"
fi
if [ -n "${SORNA_HEARTBEAT_INTERVAL:-}" ]; then
  set -- "$@" --heartbeat-interval "$SORNA_HEARTBEAT_INTERVAL"
fi
if [ -n "${SORNA_KEYS:-}" ]; then
  set -- "$@" --keys "$SORNA_KEYS"
fi
if [ "${SORNA_INSECURE:-}" = 1 ]; then
  set -- "$@" --insecure
fi
# shellcheck disable=SC2086  # split on purpose
set -- "$@" ${SORNA_MANAGER_ARGS:-}

if [ "$dry_run" = --dry-run ]; then
  printf '%s\n' "$@"
  exit 0
fi
exec "$@"  # exec: twistd itself gets the SIGTERM of supervisord or systemd
