"""A cluster's CurveZMQ keys, in one folder that `sorna keys init DIR` creates:

    DIR/manager.key            the manager's public key: every agent and client needs it
    DIR/manager.key_secret     the manager's key pair: the manager's host only
    DIR/agents/NAME.key        an agent allowed to register...
    DIR/agents/NAME.key_secret ...and its key pair, for that agent's host
    DIR/clients/NAME.key       a front-end allowed to ask...
    DIR/clients/NAME.key_secret

The files are ZeroMQ certificates (`zmq.auth.load_certificate` reads them); secret ones
are created mode 0600, in folders of mode 0700. The allowed keys are the `*.key` files
of `agents/` and `clients/`: deleting one revokes that key when the servers next read
the folder.
"""

import datetime
import os
import re

import zmq
import zmq.auth

KINDS = ("agents", "clients")
FIRST_NAMES = {"agents": "agent", "clients": "client"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeysError(Exception):
    """A folder or a name that cannot be used; the message says what to do."""


def init(folder):
    """Create the manager's pair, one agent's and one client's; returns the paths made.
    A folder that holds a manager key already is left as it is (an error says so)."""
    folder = os.path.abspath(folder)
    if os.path.exists(os.path.join(folder, "manager.key")):
        raise KeysError(f"{folder} holds a cluster's keys already; add more with "
                        f"`sorna keys add-agent {folder} NAME` (or add-client)")
    _make_folder(folder)
    made = list(_write_pair(folder, "manager"))
    for kind in KINDS:
        made += add(folder, kind, FIRST_NAMES[kind])
    return made


def add(folder, kind, name):
    """Create and allow one more agent's or client's key pair; returns the paths made."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    folder = os.path.abspath(folder)
    if not os.path.exists(os.path.join(folder, "manager.key")):
        raise KeysError(f"{folder} holds no cluster keys; create them with "
                        f"`sorna keys init {folder}`")
    if not NAME_RE.match(name):
        raise KeysError(f"{name!r} cannot name a key: use up to 64 letters, digits, "
                        f"'.', '_' or '-', starting with a letter or digit")
    where = os.path.join(folder, kind)
    _make_folder(where)
    if os.path.exists(os.path.join(where, f"{name}.key")):
        raise KeysError(f"{kind}/{name}.key exists already; choose another name")
    return list(_write_pair(where, name))


def allowed(folder, kind):
    """The public keys (Z85 bytes) listed in `DIR/<kind>/*.key`, as a frozenset."""
    where = os.path.join(folder, kind)
    keys = set()
    try:
        names = sorted(os.listdir(where))
    except FileNotFoundError:
        return frozenset()
    for name in names:
        if name.endswith(".key"):
            public, _ = zmq.auth.load_certificate(os.path.join(where, name))
            keys.add(public)
    return frozenset(keys)


def _make_folder(path):
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _write_pair(folder, name):
    public, secret = zmq.curve_keypair()
    base = os.path.join(folder, name)
    yield _write(f"{base}.key", public, None, 0o644)
    yield _write(f"{base}.key_secret", public, secret, 0o600)


def _write(path, public, secret, mode):
    """A ZeroMQ certificate, created with its final mode (never readable by others
    first) and never over an existing file."""
    lines = [f"#   ZeroMQ CURVE {'secret' if secret else 'public'} certificate, "
             f"made by `sorna keys` on {datetime.datetime.now():%Y-%m-%d %H:%M}",
             "metadata", "curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("\n".join(lines) + "\n")
    return path
