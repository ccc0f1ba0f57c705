"""Bytes <-> maps. msgpack is the protocol; a frame starting with `{` is 2016 JSON."""

import json

import msgpack

from sorna.proto.errors import BadRequest, TooLarge

MSGPACK = "msgpack"
JSON = "json"

DEFAULT_MAX_SIZE = 1 << 20


def decode(data, max_size=DEFAULT_MAX_SIZE):
    """Return `(map, encoding)`; raise BadRequest/TooLarge with a cause a user can act on.

    The encoding is returned even for some failures (as `error.encoding`) so that
    the error reply can be written in the sender's own encoding.
    """
    encoding = JSON if data[:1] == b"{" else MSGPACK
    try:
        if len(data) > max_size:
            raise TooLarge(
                f"the message is {len(data)} bytes; the limit is {max_size} bytes",
                error="message-too-large")
        if encoding == JSON:
            try:
                obj = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise BadRequest(f"the message is not valid JSON: {e}", error="malformed")
        else:
            try:
                obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
            except Exception as e:
                raise BadRequest(f"the message is not valid msgpack: {e}", error="malformed")
        if not isinstance(obj, dict):
            raise BadRequest(
                f"the message must be a map, not {type(obj).__name__}", error="malformed")
        return obj, encoding
    except (BadRequest, TooLarge) as e:
        e.encoding = encoding
        raise


def encode(obj, encoding=MSGPACK):
    if encoding == JSON:
        return json.dumps(obj, default=_json_default).encode("utf-8")
    return msgpack.packb(obj, use_bin_type=True)


def _json_default(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
