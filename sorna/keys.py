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
the folder (SIGHUP, or their watch of the folder within WATCH_INTERVAL).

Every process finds the folder the same way (`find`): `--keys DIR`, else `$SORNA_KEYS`,
else the first of DEFAULT_FOLDERS that holds a manager key.
"""

import datetime
import os
import re

import zmq
import zmq.auth

KINDS = ("agents", "clients")
DEFAULT_FOLDERS = ("~/.config/sorna/keys", "/etc/sorna/keys")
WATCH_INTERVAL = 2.0
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
    return frozenset(_listed(folder, kind))


def _listed(folder, kind):
    """{public key: NAME} of `DIR/<kind>/NAME.key`."""
    where = os.path.join(folder, kind)
    try:
        names = sorted(os.listdir(where))
    except FileNotFoundError:
        return {}
    keys = {}
    for name in names:
        if name.endswith(".key"):
            try:
                public, _ = zmq.auth.load_certificate(os.path.join(where, name))
            except (OSError, ValueError) as e:
                raise KeysError(f"cannot read the key {kind}/{name} in {folder}: {e}")
            keys[public] = name[:-len(".key")]
    return keys


def find(folder=None, environ=None):
    """The keys folder to use: `folder` (from --keys), else $SORNA_KEYS, else the first
    default folder that holds a manager key; None when there is none."""
    environ = os.environ if environ is None else environ
    folder = folder or environ.get("SORNA_KEYS")
    if folder:
        return os.path.abspath(os.path.expanduser(folder))
    for candidate in DEFAULT_FOLDERS:
        candidate = os.path.expanduser(candidate)
        if os.path.exists(os.path.join(candidate, "manager.key")):
            return candidate
    return None


def missing_keys_advice(who):
    """What to tell `who` (e.g. "sorna-manager") when it finds no keys folder."""
    return (f"{who} found no CurveZMQ keys (looked at --keys, $SORNA_KEYS, "
            f"{', '.join(DEFAULT_FOLDERS)}): create them with `sorna keys init "
            f"{DEFAULT_FOLDERS[0]}` (then give each host its part, see docs/SECURITY.md), "
            f"or run with --insecure to use plaintext, which lets anyone who reaches the "
            f"ports run code")


def manager_key(folder):
    """The manager's public key (Z85 bytes), from `DIR/manager.key`."""
    return _load(folder, "manager.key")[0]


def manager_pair(folder):
    """(public, secret) of the manager, from `DIR/manager.key_secret`."""
    return _load(folder, "manager.key_secret", secret=True)


def own_pair(folder, kind, name=None):
    """(public, secret, NAME) of `DIR/<kind>/NAME.key_secret`: `name`, else the first
    name `init` makes (agent, client), else the only pair there."""
    where = os.path.join(folder, kind)
    if name is None:
        try:
            secrets = sorted(n[:-len(".key_secret")] for n in os.listdir(where)
                             if n.endswith(".key_secret"))
        except FileNotFoundError:
            secrets = []
        if FIRST_NAMES[kind] in secrets:
            name = FIRST_NAMES[kind]
        elif len(secrets) == 1:
            name = secrets[0]
        else:
            raise KeysError(
                f"{where} holds {'no key pair' if not secrets else 'several key pairs'} "
                f"({', '.join(secrets) or 'none'}); "
                + (f"create one with `sorna keys add-{kind[:-1]} {folder} NAME`"
                   if not secrets else "say which one with --key-name NAME"))
    public, secret = _load(folder, os.path.join(kind, f"{name}.key_secret"), secret=True)
    return public, secret, name


def _load(folder, relative, secret=False):
    path = os.path.join(folder, relative)
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except FileNotFoundError:
        raise KeysError(f"{path} does not exist: is {folder} a folder made by "
                        f"`sorna keys init`?")
    except (OSError, ValueError) as e:
        raise KeysError(f"cannot read the key {path}: {e}")
    if secret and not secret_key:
        raise KeysError(f"{path} holds no secret key")
    return public, secret_key


class KeyRing:
    """The public keys a server allows, by kind: reread with `reload()` (SIGHUP, or when
    `signature()` changes). `kind_of(key)` is what every message's key is checked
    against, so a key removed from the folder is refused from the next reload on, on
    connections made before it too."""

    what = "allowed keys"

    def __init__(self, folder, kinds=KINDS):
        self.folder = folder
        self.kinds = tuple(kinds)
        self._keys = self.read()

    def read(self):
        """The folder's allowed keys now (blocking), for `replace`."""
        keys = {}
        for kind in self.kinds:
            for public, name in _listed(self.folder, kind).items():
                keys.setdefault(public, (kind, name))
        return keys

    def replace(self, keys):
        """Allow exactly `keys` (from `read`) from now on; return (added, removed)."""
        added = len(keys.keys() - self._keys.keys())
        removed = len(self._keys.keys() - keys.keys())
        self._keys = keys
        return added, removed

    def reload(self):
        return self.replace(self.read())

    def kind_of(self, key):
        entry = self._keys.get(key)
        return entry[0] if entry is not None else None

    def name_of(self, key):
        """`kind/NAME` of an allowed key, for the logs; None for any other."""
        entry = self._keys.get(key)
        return f"{entry[0]}/{entry[1]}" if entry is not None else None

    def signature(self):
        """Changes whenever a key file of the watched kinds is added, removed or
        rewritten (blocking: call it in a thread)."""
        marks = []
        for kind in self.kinds:
            where = os.path.join(self.folder, kind)
            try:
                names = sorted(os.listdir(where))
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(".key"):
                    try:
                        st = os.stat(os.path.join(where, name))
                    except FileNotFoundError:
                        continue
                    marks.append((kind, name, st.st_mtime_ns, st.st_size))
        return tuple(marks)

    def __len__(self):
        return len(self._keys)


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
