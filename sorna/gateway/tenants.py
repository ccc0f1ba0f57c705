"""Who asks at the gateway, and how much each may hold.

Each token is a tenant: the kernels it makes are its own, and to every other token they
do not exist. An admin token (an operator's) sees and manages them all. What one tenant
may hold at once — kernels, Piston runs, WebSockets, event streams — is bounded, so that
no token can take the capacity, the memory or the attention that the others need."""

import contextlib
from dataclasses import dataclass

from sorna.gateway.web import HttpError


@dataclass(frozen=True)
class Tenant:
    name: str
    digest: str = ""  # of its token: what is revoked when the token is removed
    admin: bool = False
    max_kernels: int | None = None  # None: the gateway's default
    max_runs: int | None = None

    def owns(self, owner):
        """Whether this tenant may see and touch what `owner` (a token name) made."""
        return self.admin or owner == self.name


# quota -> (what it counts, the gateway's option, the per-token option of `sorna tokens`)
QUOTAS = {
    "kernels": ("kernels", "--max-kernels-per-token", "--max-kernels"),
    "runs": ("Piston executes running at once", "--max-runs-per-token", "--max-runs"),
    "sockets": ("open channel WebSockets", "--max-sockets-per-token", None),
    "streams": ("open dashboard event streams", "--max-streams-per-token", None),
    "sockets_per_kernel": ("open channel WebSockets on this kernel",
                           "--max-sockets-per-kernel", None),
}


@dataclass(frozen=True)
class Quotas:
    """The gateway's defaults; a token may carry its own `max_kernels` and `max_runs`."""

    kernels: int = 10
    runs: int = 4
    sockets: int = 32
    streams: int = 4
    sockets_per_kernel: int = 8

    def of(self, tenant, quota):
        own = getattr(tenant, f"max_{quota}", None)
        return own if own is not None else getattr(self, quota)

    def check(self, tenant, quota, holding):
        """Raise the 429 for `quota` when `tenant` holds `holding` of it already."""
        limit = self.of(tenant, quota)
        if holding >= limit:
            raise exceeded(tenant, quota, limit)


@contextlib.contextmanager
def holding(counter, name):
    """Count one more for `name` in `counter` (a Counter) while the block runs; a name
    that holds nothing leaves the counter."""
    counter[name] += 1
    try:
        yield
    finally:
        counter[name] -= 1
        if not counter[name]:
            del counter[name]


def exceeded(tenant, quota, limit):
    what, option, token_option = QUOTAS[quota]
    how = f"the gateway's operator can raise it for every token ({option})"
    if token_option:
        how += (f" or for this one (`sorna tokens set {tenant.name} {token_option} N`)")
    return HttpError(429, f"the token {tenant.name!r} holds {limit} {what}, its quota: "
                          f"end some first, or ask for more: {how}", "quota-exceeded",
                     quota=f"max-{quota.replace('_', '-')}", limit=limit)
