#!/bin/bash
# A Sorna cluster on this machine, in the foreground: one manager, one agent and the
# gateway, all on 127.0.0.1. Ctrl-C (or SIGTERM) stops the gateway and the agent (which
# destroy their kernels), then the manager. Ports and size: SORNA_PORT,
# SORNA_AGENT_PORT, SORNA_GATEWAY_PORT, SORNA_MAX_KERNELS. Keys: the first run makes
# them in $SORNA_KEYS (default ~/.config/sorna/keys, where the `sorna` command finds
# them), and a gateway token `dev`, kept for this script in $SORNA_KEYS/dev-token.
set -u
KEYS=${SORNA_KEYS:-$HOME/.config/sorna/keys}
PORT=${SORNA_PORT:-5001}
AGENT_PORT=${SORNA_AGENT_PORT:-6001}
GATEWAY_PORT=${SORNA_GATEWAY_PORT:-8888}
MAX_KERNELS=${SORNA_MAX_KERNELS:-4}
MANAGER=tcp://127.0.0.1:$PORT

if ! python3 -c "
from twisted.plugin import getPlugins
from twisted.application.service import IServiceMaker
names = {p.tapname for p in getPlugins(IServiceMaker)}
raise SystemExit(not {'sorna-manager', 'sorna-agent', 'sorna-gateway'} <= names)" \
    2>/dev/null; then
  echo "twistd does not find the sorna-manager, sorna-agent and sorna-gateway plugins." >&2
  echo "Install Sorna with" >&2
  echo "    make install   (pip install --config-settings editable_mode=compat -e .)" >&2
  echo "or pip install . (a plain pip install -e . hides twisted/plugins from twistd)." >&2
  exit 1
fi

if [ ! -e "$KEYS/manager.key" ]; then
  echo "Creating this cluster's CurveZMQ keys in $KEYS"
  sorna keys init "$KEYS" >/dev/null || exit 1
fi
export SORNA_KEYS=$KEYS
if [ ! -e "$KEYS/dev-token" ]; then
  # The machine's own operator: an admin token (the whole dashboard, every kernel).
  (umask 077; sorna tokens add dev --admin --file "$KEYS/tokens" | tail -n 1 \
    > "$KEYS/dev-token") \
    || exit 1
fi
TOKEN=$(cat "$KEYS/dev-token")

twistd -n --pidfile= sorna-manager --listen 127.0.0.1 --port "$PORT" &
manager=$!
twistd -n --pidfile= sorna-agent --manager-addr "$MANAGER" --listen 127.0.0.1 \
  --port "$AGENT_PORT" --max-kernels "$MAX_KERNELS" &
agent=$!
twistd -n --pidfile= sorna-gateway --manager-addr "$MANAGER" --listen 127.0.0.1 \
  --port "$GATEWAY_PORT" &
gateway=$!

stop() {
  trap - INT TERM
  echo "Stopping the gateway and the agent (their kernels are destroyed), then the manager..."
  kill -TERM "$gateway" 2>/dev/null; wait "$gateway" 2>/dev/null
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
  Dashboard:  http://127.0.0.1:$GATEWAY_PORT/?token=$TOKEN
  JupyterLab: jupyter lab --gateway-url=http://127.0.0.1:$GATEWAY_PORT --GatewayClient.auth_token=$TOKEN
  In another terminal:
      sorna exec python3 "print(6*7)"
      sorna status
  Ctrl-C stops them all.

MSG
    break
  fi
  if ! kill -0 "$manager" 2>/dev/null || ! kill -0 "$agent" 2>/dev/null \
      || ! kill -0 "$gateway" 2>/dev/null; then
    echo "Sorna did not start: see the messages above." >&2
    stop 1
  fi
  sleep 0.2
done

wait -n "$manager" "$agent" "$gateway"
echo "A Sorna process exited; stopping the other." >&2
stop 1
