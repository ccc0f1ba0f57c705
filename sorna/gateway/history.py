"""A kernel's cells as Jupyter's `history_request` sees them: `[session, line, input]`
(or `[session, line, [input, output]]`), searched by `tail`, `range` and `search` as
ipykernel does. The gateway keeps it per kernel, from the execute_requests it relays;
a restart starts a new session, numbered from 1 again."""

import collections
import fnmatch

MAX_BYTES = 1 << 20  # of inputs and outputs kept per kernel; the oldest go first
MAX_ENTRY = 64 << 10  # a longer cell is not kept


class History:
    def __init__(self, max_bytes=MAX_BYTES):
        self.max_bytes = max_bytes
        self.session = 1
        self._entries = collections.deque()  # [session, line, input, output]
        self._size = 0

    def add(self, line, code):
        if len(code) > MAX_ENTRY:
            return
        self._entries.append([self.session, line, code, None])
        self._size += len(code)
        self._trim()

    def set_output(self, line, text):
        """The value cell `line` of this session gave (its text/plain)."""
        if self._entries and self._entries[-1][:2] == [self.session, line]:
            text = text if len(text) <= MAX_ENTRY else text[:MAX_ENTRY]
            self._entries[-1][3] = text
            self._size += len(text)
            self._trim()

    def _trim(self):
        while self._size > self.max_bytes:
            self._size -= _size(self._entries.popleft())

    def restarted(self):
        self.session += 1

    def answer(self, content):
        """The `history` of a history_reply to `content` (a history_request's)."""
        kind = content.get("hist_access_type")
        entries = list(self._entries)
        if kind == "range":
            session = _int(content.get("session"), 0)
            if session <= 0:  # relative to the current one, as IPython counts
                session += self.session
            start, stop = _int(content.get("start"), 0), content.get("stop")
            entries = [e for e in entries if e[0] == session and e[1] >= start
                       and (type(stop) is not int or e[1] < stop)]
        elif kind == "search":
            pattern = content.get("pattern")
            pattern = pattern if isinstance(pattern, str) else "*"
            entries = [e for e in entries if fnmatch.fnmatchcase(e[2], pattern)]
            if content.get("unique") is True:
                seen, unique = set(), []
                for entry in reversed(entries):
                    if entry[2] not in seen:
                        seen.add(entry[2])
                        unique.append(entry)
                entries = unique[::-1]
            entries = _last(entries, content.get("n"))
        elif kind == "tail":
            entries = _last(entries, content.get("n"), default=10)
        else:
            entries = []
        output = content.get("output") is True
        return [[s, line, [code, out] if output else code]
                for s, line, code, out in entries]


def _last(entries, n, default=None):
    n = _int(n, default)
    return entries if n is None else entries[-n:] if n > 0 else []


def _int(value, default):
    return value if type(value) is int else default


def _size(entry):
    return len(entry[2]) + len(entry[3] or "")
