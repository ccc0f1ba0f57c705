"""What every Sorna client can ask, and when to ask again, written once; subclasses only
move the bytes.

A subclass implements `_call(addr, message)` (returning a reply map, or a Deferred of one)
and `_then(result, fn)` (apply `fn` now, or when the Deferred fires). Error replies are
raised as `SornaError`s by the subclass's `_call`, which follows `Attempts` for retries.
"""

import os

from sorna import keys
from sorna.curve import ClientCurve
from sorna.proto import codes
from sorna.proto.errors import Forbidden, KernelNotFound, SornaError, Timeout

DEFAULT_MANAGER_ADDR = "tcp://127.0.0.1:5001"

# Requests that may be sent again without changing the outcome. `create` and `execute`
# are not: a lost reply does not mean that nothing happened.
IDEMPOTENT = frozenset({"ping", "get_or_create", "kernel_info", "status", "destroy"})

# While an execution runs, the client asks the manager this often whether the kernel
# still exists, so that a dead agent ends the wait with "kernel lost".
WATCH_INTERVAL = 5.0


class Attempts:
    """The retry schedule of one call: an idempotent request is sent again, after a
    growing pause, when it timed out or the manager's state was unavailable (503), until
    the call's deadline; then the caller gets a Timeout that says so."""

    def __init__(self, action, now, timeout, attempt_timeout):
        self.action = action
        self.retry = action in IDEMPOTENT
        self.timeout = timeout
        self.attempt_timeout = attempt_timeout
        self.deadline = now + timeout
        self.delay = 0.1
        self.count = 0

    def next_timeout(self, now):
        self.count += 1
        left = max(self.deadline - now, 0.001)
        return min(self.attempt_timeout, left) if self.retry else left

    def pause_after(self, error, now):
        """Seconds to wait before trying again, or raise the error that ends the call."""
        retriable = isinstance(error, Timeout) or (
            error.code == codes.NO_CAPACITY and error.error == "state-unavailable")
        if not (self.retry and retriable):
            raise error
        if now + self.delay >= self.deadline:
            raise Timeout(f"{self.action} failed {self.count} times in {self.timeout:.3g} s; "
                          f"the last time: {error.cause}")
        delay, self.delay = self.delay, min(self.delay * 2, 2.0)
        return delay

    def already_done(self, error):
        """A destroy whose earlier attempt went unanswered may find the kernel gone."""
        return self.action == "destroy" and self.count > 1 and isinstance(error, KernelNotFound)


def insecure_from(environ):
    return environ.get("SORNA_INSECURE", "").lower() in ("1", "true", "yes")


class ClientSecurity:
    """A client's CurveZMQ settings: its pair and the manager's key, from `keys` (a
    folder, else sorna.keys.find's search; or a ClientCurve), or plaintext when
    `insecure` (default: $SORNA_INSECURE). No keys and not insecure is an error that
    says what to do."""

    def __init__(self, keys_=None, insecure=None, key_name=None, environ=None):
        environ = os.environ if environ is None else environ
        if insecure is None:
            insecure = insecure_from(environ)
        self.curve, self.source = None, "plaintext (insecure)"
        if insecure:
            return
        if isinstance(keys_, ClientCurve):
            self.curve, self.source = keys_, "the keys it was given"
            return
        folder = keys.find(keys_, environ)
        if folder is None:
            raise keys.KeysError(
                "found no CurveZMQ keys (looked at the keys argument or --keys, "
                f"$SORNA_KEYS, {', '.join(keys.DEFAULT_FOLDERS)}): point it at the "
                "cluster's keys folder, or, for a cluster that runs --insecure, set "
                "SORNA_INSECURE=1 (or pass --insecure)")
        public, secret, name = keys.own_pair(folder, "clients",
                                             key_name or environ.get("SORNA_KEY_NAME"))
        self.curve = ClientCurve(public, secret, keys.manager_key(folder))
        self.source = f"clients/{name} of {folder}"

    def handshake_error(self, addr, outcome):
        """The error a call to `addr` ends with when its handshake went `outcome`."""
        if outcome == "refused":
            return Forbidden(
                f"{addr} refused this client's key ({self.source}): the cluster does not "
                f"allow it; ask its operator to allow it (`sorna keys add-client`, the "
                f".key file in the clients/ folder of the manager and the agents)",
                error="key-refused")
        if self.curve is None:
            return Forbidden(
                f"{addr} requires CurveZMQ keys and this client speaks plaintext: give it "
                f"the cluster's keys folder (--keys DIR or $SORNA_KEYS) and unset "
                f"SORNA_INSECURE", error="handshake-failed")
        return Forbidden(
            f"the CurveZMQ handshake with {addr} failed: the server there is not the one "
            f"whose key this client holds ({self.source}), or it runs --insecure (then "
            f"set SORNA_INSECURE=1)", error="handshake-failed")


class ClientCalls:
    def __init__(self, manager_addr, keys=None, insecure=None, key_name=None):
        self.manager_addr = manager_addr
        self.security = ClientSecurity(keys, insecure, key_name)
        self._kernel_addrs = {}
        # the CurveZMQ server key of each address: the manager's, and the agents'
        # that create and kernel_info replies name
        self._server_keys = {}
        if self.security.curve is not None:
            self._server_keys[manager_addr] = self.security.curve.server

    def _curve_for(self, addr):
        """The ClientCurve for a socket to `addr` (None when plaintext)."""
        curve = self.security.curve
        if curve is None:
            return None
        server = self._server_keys.get(addr)
        if server is None:
            raise Forbidden(f"the manager named no CurveZMQ key for {addr}: does the "
                            f"cluster run --insecure? Then set SORNA_INSECURE=1",
                            error="handshake-failed")
        return curve.towards(server)

    def ping(self, body=None, addr=None):
        return self._then(self._call(addr or self.manager_addr,
                                     {"action": "ping", "body": body}),
                          lambda reply: reply.get("body"))

    # `trace`, on any call (execute's included): the front-end's own id for the request,
    # which the manager and the agent log with it (1-64 of A-Z a-z 0-9 . _ : -).
    def get_or_create(self, user_id, entry_id, lang, limits=None, trace=None):
        return self._then(self._call(self.manager_addr, {
            "action": "get_or_create", "user_id": user_id, "entry_id": entry_id,
            "lang": lang, "limits": limits, "trace": trace}), self._remember)

    def create(self, lang, limits=None, trace=None):
        return self._then(self._call(self.manager_addr, {
            "action": "create", "lang": lang, "limits": limits, "trace": trace}),
            self._remember)

    def kernel_info(self, kernel_id):
        return self._then(self._call(self.manager_addr, {
            "action": "kernel_info", "kernel_id": kernel_id}), self._remember)

    def destroy(self, kernel_id, trace=None):
        self._kernel_addrs.pop(kernel_id, None)
        return self._then(self._call(self.manager_addr, {
            "action": "destroy", "kernel_id": kernel_id, "trace": trace}), strip)

    def status(self):
        return self._then(self._call(self.manager_addr, {"action": "status"}), strip)

    def execute(self, kernel_id, code, **fields):
        """Run `code`; the result map has stdout, stderr, exceptions, media and files."""
        return self._then(self.run_code(kernel_id, code, **fields), _result)

    def run_code(self, kernel_id, code=None, mode=None, on_output=None, **fields):
        """The whole execute reply: `status` (finished, waiting-input, continued), `result`,
        and `prompt`/`password` while waiting for input, `match_result` when asked.
        `on_output(fields)` gets output as it comes (the agent streams it)."""
        message = dict(fields, action="execute", kernel_id=kernel_id)
        if code is not None:
            message["code"] = code
        if mode is not None:
            message["mode"] = mode
        if on_output is not None:
            message["stream"] = True
        return self._at_kernel(kernel_id, message, on_output)

    def send_input(self, kernel_id, text, on_output=None, **fields):
        """Answer the input an execution waits for; the reply is like run_code's."""
        return self.run_code(kernel_id, mode="input", text=text, on_output=on_output,
                             **fields)

    def continue_run(self, kernel_id, on_output=None, **fields):
        return self.run_code(kernel_id, mode="continue", on_output=on_output, **fields)

    def interrupt(self, kernel_id):
        return self._then(self._at_kernel(kernel_id, {"action": "interrupt",
                                                      "kernel_id": kernel_id}), strip)

    def restart(self, kernel_id):
        return self._then(self._at_kernel(kernel_id, {"action": "restart",
                                                      "kernel_id": kernel_id}), strip)

    def complete(self, kernel_id, code, cursor_pos=None):
        """{matches, cursor_start, cursor_end}: what completes the name at the cursor
        (the end of `code` by default)."""
        return self._assist("complete", kernel_id, code, cursor_pos)

    def inspect(self, kernel_id, code, cursor_pos=None):
        """{found, data}: what the kernel knows of the name at the cursor, as a MIME
        bundle (text/plain: type, signature, docstring)."""
        return self._assist("inspect", kernel_id, code, cursor_pos)

    def is_complete(self, kernel_id, code):
        """{status, indent}: complete, incomplete (and the next line's indent), invalid
        or unknown."""
        return self._assist("is_complete", kernel_id, code)

    def _assist(self, action, kernel_id, code, cursor_pos=None):
        message = {"action": action, "kernel_id": kernel_id, "code": code}
        if cursor_pos is not None:
            message["cursor_pos"] = cursor_pos
        return self._then(self._at_kernel(kernel_id, message), strip)

    def upload(self, kernel_id, path, data):
        return self._then(self._at_kernel(kernel_id, {
            "action": "upload", "kernel_id": kernel_id, "path": path, "data": data}), strip)

    def download(self, kernel_id, path):
        return self._then(self._at_kernel(kernel_id, {
            "action": "download", "kernel_id": kernel_id, "path": path}),
            lambda reply: reply["data"])

    def list_files(self, kernel_id, path=""):
        return self._then(self._at_kernel(kernel_id, {
            "action": "list_files", "kernel_id": kernel_id, "path": path}),
            lambda reply: reply["entries"])

    def _at_kernel(self, kernel_id, message, on_partial=None):
        """Send to the agent that holds the kernel (asking the manager where, once)."""
        addr = self._kernel_addrs.get(kernel_id)
        if addr is not None:
            return self._then(self._call(addr, message, on_partial), strip)
        return self._then(self.kernel_info(kernel_id),
                          lambda info: self._then(
                              self._call(info["kernel_addr"], message, on_partial), strip))

    def _remember(self, reply):
        self._kernel_addrs[reply["kernel_id"]] = reply["kernel_addr"]
        if reply.get("agent_key"):
            key = reply["agent_key"].encode()
            if self._server_keys.get(reply["kernel_addr"], key) != key:
                self._forget_socket(reply["kernel_addr"])  # the agent has a new key
            self._server_keys[reply["kernel_addr"]] = key
        return strip(reply)

    def _forget_socket(self, addr):
        raise NotImplementedError

    def _call(self, addr, message):
        raise NotImplementedError

    def _then(self, result, fn):
        raise NotImplementedError


def check_reply(reply):
    """Return a success reply; raise the SornaError an error reply describes."""
    if reply.get("reply") in (codes.SUCCESS, codes.PONG):
        return reply
    raise SornaError.from_reply(reply)


def strip(reply):
    return {k: v for k, v in reply.items() if k not in ("id", "reply")}


def _result(reply):
    return reply["result"]

