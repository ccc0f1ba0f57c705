"""Field validation: every action names its fields, each field says what it accepts.

A request is checked before any handler runs, so a handler only ever sees clean
values, and a bad request changes nothing.
"""

import re

from sorna.proto.errors import BadRequest

KERNEL_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
LANG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}$")
AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$")
SESSION_RE = re.compile(r"^[0-9a-f]{16,64}$")
# What an agent may advertise to front-ends: a TCP address of a host name or IP.
AGENT_ADDR_RE = re.compile(r"^tcp://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})"
                           r":([1-9][0-9]{0,4})$")
# User, entry and cell ids are the front-end's own names: anything printable but `/`
# (an entry id names an S3 prefix), and not `.` or `..`.
NAME_RE = re.compile(r"^(?!\.{1,2}$)[^\x00-\x1f\x7f/]+$")


class Field:
    def __init__(self, required=True, default=None):
        self.required = required
        self.default = default

    def clean(self, name, value):
        raise NotImplementedError


class Text(Field):
    def __init__(self, max_length=256, pattern=None, what=None, coerce_int=False, **kw):
        super().__init__(**kw)
        self.max_length = max_length
        self.pattern = pattern
        self.what = what
        self.coerce_int = coerce_int

    def clean(self, name, value):
        if self.coerce_int and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise BadRequest(f"`{name}` must be a string, not {_type(value)}")
        if len(value) > self.max_length:
            raise BadRequest(
                f"`{name}` is {len(value)} characters long; the limit is {self.max_length}")
        if self.pattern is not None and not self.pattern.match(value):
            raise BadRequest(f"`{name}` must be {self.what}; got {value[:64]!r}")
        return value


class Number(Field):
    def __init__(self, minimum=None, maximum=None, integer=False, **kw):
        super().__init__(**kw)
        self.minimum = minimum
        self.maximum = maximum
        self.integer = integer

    def clean(self, name, value):
        kinds = (int,) if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            what = "an integer" if self.integer else "a number"
            raise BadRequest(f"`{name}` must be {what}, not {_type(value)}")
        if self.minimum is not None and value < self.minimum:
            raise BadRequest(f"`{name}` must be at least {self.minimum}; got {value}")
        if self.maximum is not None and value > self.maximum:
            raise BadRequest(f"`{name}` must be at most {self.maximum}; got {value}")
        return value


class Choice(Field):
    def __init__(self, choices, **kw):
        super().__init__(**kw)
        self.choices = tuple(choices)

    def clean(self, name, value):
        if value not in self.choices or isinstance(value, bool):
            raise BadRequest(f"`{name}` must be one of {', '.join(map(str, self.choices))}; "
                             f"got {_preview(value)}")
        return value


class Flag(Field):
    def clean(self, name, value):
        if not isinstance(value, bool):
            raise BadRequest(f"`{name}` must be true or false, not {_type(value)}")
        return value


class Blob(Field):
    def __init__(self, max_length, **kw):
        super().__init__(**kw)
        self.max_length = max_length

    def clean(self, name, value):
        if not isinstance(value, bytes):
            raise BadRequest(f"`{name}` must be binary data (msgpack bin), not {_type(value)}")
        if len(value) > self.max_length:
            raise BadRequest(f"`{name}` is {len(value)} bytes; the limit is {self.max_length}",
                             error="too-large", code=413)
        return value


class WorkPath(Text):
    """A path inside a kernel's work directory: relative, without `..` or NUL."""

    def __init__(self, **kw):
        super().__init__(max_length=1024, **kw)

    def clean(self, name, value):
        value = super().clean(name, value)
        if "\x00" in value:
            raise BadRequest(f"`{name}` must not contain NUL bytes", error="bad-path")
        if value.startswith("/"):
            raise BadRequest(f"`{name}` must be relative to the work directory, not "
                             f"absolute", error="bad-path")
        if ".." in value.split("/"):
            raise BadRequest(f"`{name}` must not contain `..`", error="bad-path")
        return value


class Anything(Field):
    def clean(self, name, value):
        return value


class Map(Field):
    """A nested map with its own fields; unknown keys are dropped like anywhere else."""

    def __init__(self, fields, **kw):
        super().__init__(**kw)
        self.fields = fields

    def clean(self, name, value):
        if not isinstance(value, dict):
            raise BadRequest(f"`{name}` must be a map, not {_type(value)}")
        return clean_fields(self.fields, value, prefix=f"{name}.")


class ListOf(Field):
    def __init__(self, item, max_items=4096, **kw):
        super().__init__(**kw)
        self.item = item
        self.max_items = max_items

    def clean(self, name, value):
        if not isinstance(value, (list, tuple)):
            raise BadRequest(f"`{name}` must be a list, not {_type(value)}")
        if len(value) > self.max_items:
            raise BadRequest(f"`{name}` has {len(value)} items; the limit is {self.max_items}")
        return [self.item.clean(f"{name}[{i}]", v) for i, v in enumerate(value)]


class DictOf(Field):
    def __init__(self, key, value, max_items=4096, **kw):
        super().__init__(**kw)
        self.key = key
        self.value = value
        self.max_items = max_items

    def clean(self, name, value):
        if not isinstance(value, dict):
            raise BadRequest(f"`{name}` must be a map, not {_type(value)}")
        if len(value) > self.max_items:
            raise BadRequest(f"`{name}` has {len(value)} items; the limit is {self.max_items}")
        return {self.key.clean(f"{name} key", k): self.value.clean(f"{name}[{k!r}]", v)
                for k, v in value.items()}


def Name(**kw):
    return Text(max_length=256, coerce_int=True, pattern=NAME_RE,
                what="printable text without `/` (and not `.` or `..`)", **kw)


class AgentAddr(Text):
    """`tcp://HOST:PORT`, the port 1-65535: no other scheme or shape reaches a client."""

    def __init__(self, **kw):
        super().__init__(max_length=270, pattern=AGENT_ADDR_RE,
                         what="an address like tcp://HOST:PORT", **kw)

    def clean(self, name, value):
        value = super().clean(name, value)
        if int(AGENT_ADDR_RE.match(value).group(2)) > 65535:
            raise BadRequest(f"`{name}` has a port above 65535: {value[:64]!r}")
        return value


def KernelId(**kw):
    return Text(max_length=22, pattern=KERNEL_ID_RE,
                what="a 22-character kernel id (URL-safe base64)", **kw)


def Lang(**kw):
    return Text(max_length=32, pattern=LANG_RE,
                what="a language name such as python3", **kw)


def AgentId(**kw):
    return Text(max_length=64, pattern=AGENT_ID_RE,
                what="an agent id of letters, digits and . _ : @ -", **kw)


LIMITS = Map({
    "memory_mb": Number(minimum=16, maximum=1 << 20, integer=True, required=False),
    "exec_timeout": Number(minimum=0.1, maximum=24 * 3600, required=False),
}, required=False, default=None)


def clean_fields(fields, message, prefix=""):
    cleaned = {}
    for name, field in fields.items():
        if name in message and message[name] is not None:
            cleaned[name] = field.clean(prefix + name, message[name])
        elif field.required:
            raise BadRequest(f"`{prefix}{name}` is missing")
        else:
            cleaned[name] = field.default
    return cleaned


def request_id(message):
    """The request id to echo, when the sender gave a usable one."""
    value = message.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and len(value) <= 128):
        return value
    return None


# A trace id a client may send (`trace`) to follow its request through the logs.
TRACE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def trace_id(message):
    """The client's trace id, when it sent one; BadRequest when it is not usable."""
    value = message.get("trace")
    if value is None:
        return None
    if not isinstance(value, str) or not TRACE_PATTERN.fullmatch(value):
        raise BadRequest(f"`trace` must be 1 to 64 letters, digits or . _ : - (got "
                         f"{_preview(value)})")
    return value


def _preview(value):
    """A short description of a client's value, never its whole repr."""
    if isinstance(value, (str, bytes)):
        return repr(value[:64])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)[:64]
    return _type(value)


def _type(value):
    return {dict: "a map", list: "a list", str: "a string", bytes: "bytes",
            bool: "a boolean", int: "an integer", float: "a number",
            type(None): "null"}.get(type(value), type(value).__name__)
