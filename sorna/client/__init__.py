"""Clients of a Sorna cluster: `SornaClient` (Twisted, txzmq) and `BlockingClient`."""

from sorna.client.api import SornaClient
from sorna.client.blocking import BlockingClient
from sorna.client.calls import DEFAULT_MANAGER_ADDR
from sorna.proto.errors import SornaError

__all__ = ["SornaClient", "BlockingClient", "SornaError", "DEFAULT_MANAGER_ADDR"]
