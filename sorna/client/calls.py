"""What every Sorna client can ask, written once; subclasses only move the bytes.

A subclass implements `_call(addr, message)` (returning a reply map, or a Deferred of one)
and `_then(result, fn)` (apply `fn` now, or when the Deferred fires). Error replies are
raised as `SornaError`s by the subclass's `_call`.
"""

from sorna.proto import codes
from sorna.proto.errors import SornaError

DEFAULT_MANAGER_ADDR = "tcp://127.0.0.1:5001"


class ClientCalls:
    def __init__(self, manager_addr):
        self.manager_addr = manager_addr
        self._kernel_addrs = {}

    def ping(self, body=None, addr=None):
        return self._then(self._call(addr or self.manager_addr,
                                     {"action": "ping", "body": body}),
                          lambda reply: reply.get("body"))

    def get_or_create(self, user_id, entry_id, lang, limits=None):
        return self._then(self._call(self.manager_addr, {
            "action": "get_or_create", "user_id": user_id, "entry_id": entry_id,
            "lang": lang, "limits": limits}), self._remember)

    def create(self, lang, limits=None):
        return self._then(self._call(self.manager_addr, {
            "action": "create", "lang": lang, "limits": limits}), self._remember)

    def kernel_info(self, kernel_id):
        return self._then(self._call(self.manager_addr, {
            "action": "kernel_info", "kernel_id": kernel_id}), self._remember)

    def destroy(self, kernel_id):
        self._kernel_addrs.pop(kernel_id, None)
        return self._then(self._call(self.manager_addr, {
            "action": "destroy", "kernel_id": kernel_id}), _strip)

    def status(self):
        return self._then(self._call(self.manager_addr, {"action": "status"}), _strip)

    def execute(self, kernel_id, code, **fields):
        """Run `code`; the result map has stdout, stderr, exceptions, media and files."""
        message = dict(fields, action="execute", kernel_id=kernel_id, code=code)
        addr = self._kernel_addrs.get(kernel_id)
        if addr is not None:
            return self._then(self._call(addr, message), _result)
        return self._then(self.kernel_info(kernel_id),
                          lambda info: self._then(self._call(info["kernel_addr"], message),
                                                  _result))

    def _remember(self, reply):
        self._kernel_addrs[reply["kernel_id"]] = reply["kernel_addr"]
        return _strip(reply)

    def _call(self, addr, message):
        raise NotImplementedError

    def _then(self, result, fn):
        raise NotImplementedError


def check_reply(reply):
    """Return a success reply; raise the SornaError an error reply describes."""
    if reply.get("reply") in (codes.SUCCESS, codes.PONG):
        return reply
    raise SornaError.from_reply(reply)


def _strip(reply):
    return {k: v for k, v in reply.items() if k not in ("id", "reply")}


def _result(reply):
    return reply["result"]
