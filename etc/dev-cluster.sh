#!/bin/bash
# A Sorna cluster on this machine, in the foreground: one manager, one agent, both on
# 127.0.0.1. Ctrl-C (or SIGTERM) stops the agent (which destroys its kernels), then the
# manager. Ports and size: SORNA_PORT, SORNA_AGENT_PORT, SORNA_MAX_KERNELS. Keys: the
# first run makes them in $SORNA_KEYS (default ~/.config/sorna/keys, where the `sorna`
# command finds them).
set -u
KEYS=${SORNA_KEYS:-$HOME/.config/sorna/keys}
PORT=${SORNA_PORT:-5001}
AGENT_PORT=${SORNA_AGENT_PORT:-6001}
MAX_KERNELS=${SORNA_MAX_KERNELS:-4}
MANAGER=tcp://127.0.0.1:$PORT

if ! python3 -c "
from twisted.plugin import getPlugins
from twisted.application.service import IServiceMaker
names = {p.tapname for p in getPlugins(IServiceMaker)}
raise SystemExit(not {'sorna-manager', 'sorna-agent'} <= names)" 2>/dev/null; then
  echo "twistd does not find the sorna-manager and sorna-agent plugins. Install Sorna with" >&2
  echo "    make install   (pip install --config-settings editable_mode=compat -e .)" >&2
  echo "or pip install . (a plain pip install -e . hides twisted/plugins from twistd)." >&2
  exit 1
fi

if [ ! -e "$KEYS/manager.key" ]; then
  echo "Creating this cluster's CurveZMQ keys in $KEYS"
  sorna keys init "$KEYS" >/dev/null || exit 1
fi
export SORNA_KEYS=$KEYS

twistd -n --pidfile= sorna-manager --listen 127.0.0.1 --port "$PORT" &
manager=$!
twistd -n --pidfile= sorna-agent --manager-addr "$MANAGER" --listen 127.0.0.1 \
  --port "$AGENT_PORT" --max-kernels "$MAX_KERNELS" &
agent=$!

stop() {
  trap - INT TERM
  echo "Stopping the agent (its kernels are destroyed), then the manager..."
  kill -TERM "$agent" 2>/dev/null; wait "$agent" 2>/dev/null
  kill -TERM "$manager" 2>/dev/null; wait "$manager" 2>/dev/null
  echo "Sorna stopped."
  exit "${1:-0}"
}
trap stop INT TERM

for _ in $(seq 100); do
  if sorna --manager "$MANAGER" --timeout 1 status 2>/dev/null | grep -q "^1 agents"; then
    cat <<MSG

  Sorna is running: manager $MANAGER, agent tcp://127.0.0.1:$AGENT_PORT ($MAX_KERNELS kernels),
  CurveZMQ keys in $KEYS.
  In another terminal:
      sorna exec python3 "print(6*7)"
      sorna status
  Ctrl-C stops both.

MSG
    break
  fi
  if ! kill -0 "$manager" 2>/dev/null || ! kill -0 "$agent" 2>/dev/null; then
    echo "Sorna did not start: see the messages above." >&2
    stop 1
  fi
  sleep 0.2
done

wait -n "$manager" "$agent"
echo "A Sorna process exited; stopping the other." >&2
stop 1
