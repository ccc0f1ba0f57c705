"""Clients of a Sorna cluster: `SornaClient` (Twisted, txzmq) and `BlockingClient`.

Names load on first use, so that `import sorna.client.blocking` (or `BlockingClient`
from here) imports neither txzmq nor a Twisted reactor: a script that never runs
one must be free to install its own later.
"""

from sorna.client.calls import DEFAULT_MANAGER_ADDR
from sorna.proto.errors import SornaError

__all__ = ["SornaClient", "BlockingClient", "SornaError", "DEFAULT_MANAGER_ADDR"]


def __getattr__(name):
    if name == "SornaClient":
        from sorna.client.api import SornaClient
        return SornaClient
    if name == "BlockingClient":
        from sorna.client.blocking import BlockingClient
        return BlockingClient
    raise AttributeError(f"module 'sorna.client' has no attribute {name!r}")
