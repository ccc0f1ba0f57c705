"""Bytes <-> maps. msgpack is the protocol; a frame starting with `{` is 2016 JSON."""

import json
import math

import msgpack

from sorna.proto.errors import BadRequest, TooLarge

MSGPACK = "msgpack"
JSON = "json"

DEFAULT_MAX_SIZE = 1 << 20
# No message of the protocol nests deeper than a few levels; deeper ones are refused
# before anything walks them (a recursive repr or re-encoding would overflow).
MAX_DEPTH = 32


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
            obj = parse_json(data, "message")
        else:
            try:
                obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
            except msgpack.StackError:
                raise BadRequest(f"the message nests deeper than {MAX_DEPTH} levels",
                                 error="malformed")
            except Exception as e:
                raise BadRequest(f"the message is not valid msgpack: {e}", error="malformed")
            if isinstance(obj, dict) and not _shallow(obj, MAX_DEPTH):
                raise BadRequest(f"the message nests deeper than {MAX_DEPTH} levels",
                                 error="malformed")
        if not isinstance(obj, dict):
            raise BadRequest(
                f"the message must be a map, not {type(obj).__name__}", error="malformed")
        return obj, encoding
    except (BadRequest, TooLarge) as e:
        e.encoding = encoding
        raise


def parse_json(data, what="body", max_depth=MAX_DEPTH):
    """The JSON document in `data` (bytes or str), nesting at most `max_depth` levels,
    with finite numbers only; BadRequest (`malformed`) saying what was wrong otherwise.
    Every JSON a peer sends is read here: a deep document must not reach code that
    recurses, and `NaN`, `Infinity` or `1e400` must not reach arithmetic."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRequest(f"the {what} nests deeper than {max_depth} levels",
                         error="malformed")
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"the {what} is not valid JSON: {e}", error="malformed")
    if isinstance(obj, (dict, list)) and not _shallow(obj, max_depth):
        raise BadRequest(f"the {what} nests deeper than {max_depth} levels",
                         error="malformed")
    return obj


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _finite_float(text):
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text[:32]} is too large a number")
    return value


def _shallow(obj, limit):
    """Whether no list or map in `obj` sits deeper than `limit` (without recursion):
    level by level, looking into containers only."""
    level, depth = [obj], 1
    while level:
        if depth > limit:
            return False
        deeper = []
        for value in level:
            for item in (value.values() if isinstance(value, dict) else value):
                if isinstance(item, (dict, list)):
                    deeper.append(item)
        level, depth = deeper, depth + 1
    return True


def encode(obj, encoding=MSGPACK):
    if encoding == JSON:
        return json.dumps(obj, default=_json_default).encode("utf-8")
    return msgpack.packb(obj, use_bin_type=True)


def _json_default(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")
