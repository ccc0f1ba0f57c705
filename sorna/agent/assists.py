"""What a notebook asks of a kernel besides runs — completions, inspection, whether a
cell is complete — as the daemon answers them, cut to a bounded, well-typed reply: the
daemon is as untrusted as the code beside it."""

from sorna.agent.runs import MAX_BUNDLE, valid_pair

STATUSES = ("complete", "incomplete", "invalid", "unknown")
MAX_MATCHES = 500
MAX_MATCH = 256  # characters of one completion
MAX_INSPECTION = 256 << 10  # characters of an inspection's representations
TIMEOUT = 10.0  # seconds the daemon has to answer (a UI waits)


def clean(action, reply, code):
    """The reply fields a front-end gets for `action` on `code`."""
    if action == "is_complete":
        status = reply.get("status")
        indent = reply.get("indent")
        indent = indent if isinstance(indent, str) and len(indent) <= 64 else ""
        return {"status": status if status in STATUSES else "unknown", "indent": indent}
    if action == "complete":
        matches = reply.get("matches")
        matches = [m for m in matches[:MAX_MATCHES] if isinstance(m, str)
                   and 0 < len(m) <= MAX_MATCH] if isinstance(matches, list) else []
        start, end = (_position(reply.get(k), code) for k in ("cursor_start",
                                                                "cursor_end"))
        return {"matches": matches, "cursor_start": min(start, end), "cursor_end": end}
    data, room = {}, MAX_INSPECTION
    pairs = reply.get("data")
    for pair in pairs[:MAX_BUNDLE] if isinstance(pairs, list) else ():
        if valid_pair(pair) and len(pair[1]) <= room:
            data[pair[0]] = pair[1]
            room -= len(pair[1])
    return {"found": reply.get("found") is True and bool(data), "data": data}


def _position(value, code):
    return value if type(value) is int and 0 <= value <= len(code) else len(code)
