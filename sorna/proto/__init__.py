"""The Sorna wire protocol: one msgpack (or 2016-style JSON) map per ZMQ message."""

from sorna.proto.codec import JSON, MSGPACK, decode, encode
from sorna.proto.errors import (
    BadRequest,
    Busy,
    Failure,
    Forbidden,
    KernelNotFound,
    NoCapacity,
    QuotaExceeded,
    SornaError,
    Timeout,
    TooLarge,
)

__all__ = [
    "JSON", "MSGPACK", "decode", "encode",
    "SornaError", "BadRequest", "Forbidden", "KernelNotFound", "Busy", "TooLarge",
    "Failure", "NoCapacity", "QuotaExceeded", "Timeout",
]
