"""The gateway's HTTP tokens: `sorna tokens add NAME` makes one, prints it once, and keeps
only its SHA-256 in a JSON file (mode 0600; by default `tokens` in the cluster's keys
folder); `sorna tokens remove NAME` revokes it. The gateway rereads the file on SIGHUP
and when it changes (sorna.cluster_keys.KeyWatch), so a removed token is refused within
seconds, on connections opened before too. An entry may carry `admin: true` and
quotas of its own (sorna.gateway.tenants)."""

import datetime
import hashlib
import json
import os
import secrets

from sorna import keys
from sorna.gateway.tenants import Tenant

FILE_NAME = "tokens"
MAX_QUOTA = 100_000


class TokensError(Exception):
    """A tokens file or a name that cannot be used; the message says what to do."""


def default_file(keys_folder=None, environ=None):
    """`tokens` in the cluster's keys folder (found as every process finds it), or None."""
    folder = keys.find(keys_folder, environ)
    return os.path.join(folder, FILE_NAME) if folder else None


def digest(token):
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add(path, name, admin=False, max_kernels=None, max_runs=None):
    """Make a token named `name`, store its digest in `path`; return the token.
    `admin`: an operator's token (sees every kernel); `max_kernels`, `max_runs`: its own
    quotas instead of the gateway's defaults."""
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
    _set(entries[name], admin, max_kernels, max_runs)
    _write(path, entries)
    return token


def update(path, name, admin=None, max_kernels=None, max_runs=None):
    """Change a token's role or quotas (None leaves one as it is; a quota of -1 goes
    back to the gateway's default)."""
    entries = _read(path)
    _require(entries, path, name)
    _set(entries[name], admin, max_kernels, max_runs)
    _write(path, entries)


def _set(entry, admin, max_kernels, max_runs):
    if admin is not None:
        entry["admin"] = bool(admin)
    for field, value in (("max_kernels", max_kernels), ("max_runs", max_runs)):
        if value is None:
            continue
        if value == -1:
            entry.pop(field, None)
        elif _quota(value):
            entry[field] = value
        else:
            raise TokensError(f"--{field.replace('_', '-')} must be 0-{MAX_QUOTA} (or -1 "
                              f"for the gateway's default), not {value!r}")


def remove(path, name):
    entries = _read(path)
    _require(entries, path, name)
    del entries[name]
    _write(path, entries)


def _require(entries, path, name):
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise TokensError(f"{path} has no token named {name!r} (it has: {known})")


def names(path):
    return sorted(_read(path))


def tenants(path):
    """Every token's tenant (role and quotas), by name."""
    return [_tenant(name, entry) for name, entry in sorted(_read(path).items())]


def _tenant(name, entry):
    return Tenant(name, entry["sha256"], entry.get("admin") is True,
                  entry.get("max_kernels"), entry.get("max_runs"))


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
            and isinstance(v.get("admin", False), bool)
            and all(_quota(v.get(field)) for field in ("max_kernels", "max_runs"))
            for v in entries.values()):
        raise TokensError(f"{path} is not a tokens file of `sorna tokens add`")
    return entries


def _quota(value):
    return value is None or (type(value) is int and 0 <= value <= MAX_QUOTA)


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
    """The tokens the gateway accepts now, by digest, as tenants. It has the interface of
    sorna.keys.KeyRing that KeyWatch reloads (`read`, `replace`, `signature`); whoever
    holds what a token opened (WebSockets, event streams) listens for its revocation."""

    what = "tokens"

    def __init__(self, path):
        self.folder = path  # (KeyWatch names it in its log lines)
        self._tenants = {}
        self.listeners = []  # called with the ring after each change
        self.replace(self.read())

    def read(self):
        """The file's tokens now (blocking), for `replace`; a missing file has none."""
        return {tenant.digest: tenant for tenant in tenants(self.folder)}

    def replace(self, tenants_by_digest):
        added = len(tenants_by_digest.keys() - self._tenants.keys())
        removed = len(self._tenants.keys() - tenants_by_digest.keys())
        self._tenants = tenants_by_digest
        for listener in list(self.listeners):
            listener(self)
        return added, removed

    def tenant_of(self, token):
        """The tenant of a token the file holds; None for any other string."""
        if not isinstance(token, str) or not token or len(token) > 256:
            return None
        return self._tenants.get(digest(token))

    def tenant_named(self, name):
        """The tenant of the token named `name` now, or None."""
        for tenant in self._tenants.values():
            if tenant.name == name:
                return tenant
        return None

    def holds(self, tenant):
        """Whether `tenant`'s token is still accepted, in the same role."""
        now = self._tenants.get(tenant.digest)
        return now is not None and now.admin == tenant.admin

    def signature(self):
        try:
            st = os.stat(self.folder)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def __len__(self):
        return len(self._tenants)
