#!/bin/bash
# Installs the Debian packages it is given that are not installed yet (apt-get, as root),
# or says which command would. `make run`, `make test` and CI call it, so that a fresh
# Debian machine with Docker needs nothing installed by hand.
#
#   etc/install-host-packages.sh debootstrap debian-archive-keyring
set -euo pipefail
missing=()
for package in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "Sorna needs these Debian packages: ${missing[*]}. Install them as root:" >&2
  echo "    apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing ${missing[*]} (apt-get)..."
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq "${missing[@]}" >/dev/null; then
  apt-get update -qq  # a fresh machine may have no package lists yet
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian package starts a system supervisord; Sorna's tests and examples run their own.
if [[ " ${missing[*]} " == *" supervisor "* ]]; then
  systemctl stop supervisor 2>/dev/null || service supervisor stop 2>/dev/null || true
fi
