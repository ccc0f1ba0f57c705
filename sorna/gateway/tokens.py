"""The gateway's HTTP tokens: `sorna tokens add NAME` makes one, prints it once, and keeps
only its SHA-256 in a JSON file (mode 0600; by default `tokens` in the cluster's keys
folder); `sorna tokens remove NAME` revokes it. The gateway rereads the file on SIGHUP
and when it changes (sorna.cluster_keys.KeyWatch), so a removed token is refused within
seconds, on connections opened before too."""

import datetime
import hashlib
import json
import os
import secrets

from sorna import keys

FILE_NAME = "tokens"


class TokensError(Exception):
    """A tokens file or a name that cannot be used; the message says what to do."""


def default_file(keys_folder=None, environ=None):
    """`tokens` in the cluster's keys folder (found as every process finds it), or None."""
    folder = keys.find(keys_folder, environ)
    return os.path.join(folder, FILE_NAME) if folder else None


def digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add(path, name):
    """Make a token named `name`, store its digest in `path`; return the token."""
    if not keys.NAME_RE.match(name):
        raise TokensError(f"{name!r} cannot name a token: use up to 64 letters, digits, "
                          f"'.', '_' or '-', starting with a letter or digit")
    entries = _read(path)
    if name in entries:
        raise TokensError(f"{path} has a token named {name!r} already; remove it first "
                          f"(`sorna tokens remove {name}`) or choose another name")
    token = secrets.token_urlsafe(32)
    entries[name] = {"sha256": digest(token),
                     "created": datetime.datetime.now(datetime.timezone.utc)
                     .isoformat(timespec="seconds")}
    _write(path, entries)
    return token


def remove(path, name):
    entries = _read(path)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise TokensError(f"{path} has no token named {name!r} (it has: {known})")
    del entries[name]
    _write(path, entries)


def names(path):
    return sorted(_read(path))


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise TokensError(f"cannot read the tokens file {path}: {e}")
    entries = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str)
            for v in entries.values()):
        raise TokensError(f"{path} is not a tokens file of `sorna tokens add`")
    return entries


def _write(path, entries):
    """Replace the file at once (readers see the old one or the new one), mode 0600."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    temporary = f"{path}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"tokens": entries}, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


class TokenRing:
    """The tokens the gateway accepts now, by digest. It has the interface of
    sorna.keys.KeyRing that KeyWatch reloads (`read`, `replace`, `signature`)."""

    what = "tokens"

    def __init__(self, path):
        self.folder = path  # (KeyWatch names it in its log lines)
        self._names = {}
        self.replace(self.read())

    def read(self):
        """The file's tokens now (blocking), for `replace`; a missing file has none."""
        return {entry["sha256"]: name for name, entry in _read(self.folder).items()}

    def replace(self, tokens):
        added = len(tokens.keys() - self._names.keys())
        removed = len(self._names.keys() - tokens.keys())
        self._names = tokens
        return added, removed

    def name_of(self, token):
        """The name of a token the file holds; None for any other string."""
        if not isinstance(token, str) or not token or len(token) > 256:
            return None
        return self._names.get(digest(token))

    def signature(self):
        try:
            st = os.stat(self.folder)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def __len__(self):
        return len(self._names)
