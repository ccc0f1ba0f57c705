"""`twistd sorna-gateway`: options and service construction."""

import os

from twisted.python import usage

from sorna import keys
from sorna.cluster_keys import INSECURE_FLAG, KEY_NAME_OPTION, KEYS_OPTION
from sorna.gateway import tokens
from sorna.gateway.service import GatewayService
from sorna.gateway.tenants import QUOTAS, Quotas
from sorna.gateway.web import MAX_BODY


class Options(usage.Options):
    optFlags = [INSECURE_FLAG]
    optParameters = [
        ["manager-addr", "m", None, "The manager's address, e.g. tcp://127.0.0.1:5001."],
        KEYS_OPTION,
        KEY_NAME_OPTION,
        ["port", "p", 8888, "TCP port of the HTTP server.", int],
        ["listen", None, "127.0.0.1",
         "Address to bind; * binds every interface (put TLS in front of it)."],
        ["tokens", None, None,
         "The tokens file (`sorna tokens add NAME`); default: `tokens` in the keys "
         "folder."],
        ["allow-origin", None, None,
         "Let browser pages from this origin (or *) call the API (CORS)."],
        ["max-body", None, MAX_BODY, "Largest request body in bytes (larger: 413).", int],
        ["timeout", None, 30.0,
         "Seconds a call to the cluster may take (creations, status), retries included; "
         "then 504.", float],
        ["max-kernels-per-token", None, Quotas.kernels,
         "Kernels one token may hold (`sorna tokens add NAME --max-kernels N` overrides "
         "it for a token); past it 429.", int],
        ["max-runs-per-token", None, Quotas.runs,
         "Piston executes one token may run at once (`--max-runs N` of a token "
         "overrides it); past it 429.", int],
        ["max-sockets-per-token", None, Quotas.sockets,
         "Channel WebSockets one token may hold open.", int],
        ["max-sockets-per-kernel", None, Quotas.sockets_per_kernel,
         "Channel WebSockets open on one kernel.", int],
        ["max-streams-per-token", None, Quotas.streams,
         "Dashboard event streams one token may hold open.", int],
    ]

    def __init__(self, environ=None):
        super().__init__()
        self.environ = os.environ if environ is None else environ

    def postOptions(self):
        if not self["manager-addr"]:
            raise usage.UsageError("--manager-addr is required, e.g. tcp://127.0.0.1:5001")
        if not 0 < self["port"] < 65536:
            raise usage.UsageError(f"--port must be 1-65535, not {self['port']}")
        if self["timeout"] <= 0:
            raise usage.UsageError("--timeout must be positive")
        for option in QUOTA_OPTIONS.values():
            if not 0 <= self[option] <= tokens.MAX_QUOTA:
                raise usage.UsageError(f"--{option} must be 0-{tokens.MAX_QUOTA}, not "
                                       f"{self[option]}")
        if self["max-body"] < 1024:
            raise usage.UsageError("--max-body must be at least 1024 bytes")
        if self["insecure"] and self["keys"]:
            raise usage.UsageError("give --keys or --insecure, not both")
        folder = None
        if not self["insecure"]:
            folder = keys.find(self["keys"], self.environ)
            if folder is None:
                raise usage.UsageError(keys.missing_keys_advice("sorna-gateway"))
            self["keys"] = folder
        path = self["tokens"] or tokens.default_file(self["keys"], self.environ)
        if path is None:
            raise usage.UsageError(
                "sorna-gateway needs a tokens file: make a token with `sorna tokens add "
                "NAME --file FILE` and give --tokens FILE")
        try:
            names = tokens.names(path)
        except tokens.TokensError as e:
            raise usage.UsageError(f"--tokens: {e}")
        if not names:
            raise usage.UsageError(
                f"{path} holds no token, so no client could use this gateway: make one "
                f"with `sorna tokens add NAME --file {path}`")
        self["tokens"] = path


def makeService(config, clock=None):
    if clock is None:
        from twisted.internet import reactor as clock
    from sorna.client.api import SornaClient

    client = SornaClient(config["manager-addr"], clock=clock, keys=config["keys"],
                         insecure=config["insecure"], key_name=config["key-name"],
                         timeout=config["timeout"],
                         attempt_timeout=min(5.0, config["timeout"]))
    return GatewayService(client, clock, config["port"], config["listen"], config["tokens"],
                          allow_origin=config["allow-origin"], max_body=config["max-body"],
                          security="insecure" if config["insecure"] else "curve",
                          quotas=quotas(config))


# Quotas field -> its option (the table the 429s name them from).
QUOTA_OPTIONS = {quota: option[2:] for quota, (_, option, _) in QUOTAS.items()}


def quotas(config):
    return Quotas(**{quota: config[option] for quota, option in QUOTA_OPTIONS.items()})
