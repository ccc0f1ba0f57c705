"""Who may connect to a port, and what each kind of key may ask: the CurveZMQ settings
the transports apply (`ServerCurve` on a ROUTER, `ClientCurve` on a DEALER), the ZAP
decisions (`Authenticator`, used by the real ZAP handler in sorna.transport and by the
fake network alike), and the per-action check of RequestServer (`Access`).

A ROUTER with a ServerCurve hands every message over with the public key its
connection authenticated with (Z85 bytes), so a server can check each request against
the keys allowed now: a revoked key stops working on connections made before too.
"""

from dataclasses import dataclass

import zmq
from zmq.utils import z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


@dataclass(frozen=True)
class ServerCurve:
    """A CURVE server socket: its pair, its ZAP domain, and what it lets in
    (`allows(key)` for a Z85 public key)."""
    public: bytes
    secret: bytes
    domain: str
    allows: object


@dataclass(frozen=True)
class ClientCurve:
    """A CURVE client socket: its pair and the public key of the server it dials."""
    public: bytes
    secret: bytes
    server: bytes

    def towards(self, server):
        """The same pair, dialling another server (an agent, from a create reply)."""
        return ClientCurve(self.public, self.secret, server)

    def apply(self, sock):
        """Make a pyzmq socket this CURVE client (before it connects)."""
        sock.curve_serverkey = self.server
        sock.curve_publickey, sock.curve_secretkey = self.public, self.secret


# What the client side of a handshake reports, by libzmq's monitor event.
HANDSHAKE_OUTCOMES = {
    int(zmq.EVENT_HANDSHAKE_SUCCEEDED): "ok",
    int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): "refused",  # the server's ZAP said no
    # CURVE on one side only, or not the server's key: libzmq reports either one as
    # either of these, depending on the transport
    int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): "failed",
    int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): "failed",
}
HANDSHAKE_EVENT_MASK = 0
for _event in HANDSHAKE_OUTCOMES:
    HANDSHAKE_EVENT_MASK |= _event


class Authenticator:
    """ZAP decisions by domain: a handshake on a domain nobody registered, or with a
    mechanism other than CURVE, is refused."""

    def __init__(self):
        self._domains = {}

    def register(self, domain, allows):
        self._domains[domain] = allows

    def unregister(self, domain):
        self._domains.pop(domain, None)

    def __contains__(self, domain):
        return domain in self._domains

    def decide(self, domain, mechanism, credentials):
        """(status, text, user id) of a ZAP reply; the user id is the Z85 public key,
        which the server reads back from each message (`User-Id`)."""
        allows = self._domains.get(domain)
        if allows is None:
            return b"400", b"no such domain", b""
        if mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            return b"400", b"CURVE only", b""
        key = z85.encode(credentials[0])
        if not allows(key):
            return b"400", b"key not allowed", b""
        return b"200", b"OK", key


def zap_reply(authenticator, frames):
    """The reply frames (after the routing id) to a ZAP request's frames (after the
    routing id), or None for a malformed request (libzmq never sends one)."""
    if len(frames) < 8 or frames[0] != b"" or frames[1] != b"1.0":
        return None
    request_id, domain, mechanism = frames[2], frames[3], frames[6]
    status, text, user_id = authenticator.decide(
        domain.decode("ascii", "replace"), mechanism, frames[7:])
    return [b"", b"1.0", request_id, status, text, user_id, b""]


class Access:
    """Which kinds of key (sorna.keys.KINDS) may ask what on one server: `kinds` for
    any action, `per_action` where an action differs. `ring` is the KeyRing whose
    `kind_of(key)` is asked for every message."""

    def __init__(self, ring, kinds, per_action=None):
        self.ring = ring
        self.kinds = frozenset(kinds)
        self.per_action = {a: frozenset(k) for a, k in (per_action or {}).items()}
        self._any = self.kinds.union(*self.per_action.values())  # let in at all

    def kind_of(self, key):
        """The kind of an allowed key; None for a key no longer (or never) allowed."""
        kind = self.ring.kind_of(key)
        return kind if kind in self._any else None

    def allows_connection(self, key):
        return self.kind_of(key) is not None

    def refusal(self, action, kind):
        """Why a key of `kind` may not ask `action`, or None when it may."""
        allowed = self.per_action.get(action, self.kinds)
        if kind in allowed:
            return None
        return (f"{action!r} needs a key listed in the cluster's "
                f"{' or '.join(sorted(allowed))} folder; this connection's key is one "
                f"of its {kind}")
