"""A grading process (see sorna.agent.grading): reads length-prefixed msgpack requests
`{op, value, text}` on stdin and answers `{matched}` or `{error}` on stdout, one at a time,
until stdin closes. The agent kills it when a pattern runs past its deadline."""

import re
import resource
import struct
import sys

import msgpack

_LENGTH = struct.Struct(">I")


def matches(op, value, text):
    """The grading itself: True or False; re.error for a broken pattern. `compile` only
    checks the pattern."""
    if op == "compile":
        re.compile(value, re.MULTILINE)
        return True
    if op == "equal":
        return text.strip() == value.strip()
    if op == "contains":
        return value in text
    return re.search(value, text, re.MULTILINE) is not None


def _read(stream, size):
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main():
    if len(sys.argv) > 1:
        limit = int(sys.argv[1])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = _read(stdin, _LENGTH.size)
        if header is None:
            return
        request = msgpack.unpackb(_read(stdin, _LENGTH.unpack(header)[0]) or b"\xc0",
                                  raw=False)
        try:
            answer = {"matched": matches(request["op"], request["value"], request["text"])}
        except MemoryError:
            answer = {"error": "matching it needs more memory than a grading may use"}
        except Exception as e:  # re.error, RecursionError, OverflowError
            answer = {"error": f"{e}"}
        payload = msgpack.packb(answer, use_bin_type=True)
        stdout.write(_LENGTH.pack(len(payload)) + payload)
        stdout.flush()


if __name__ == "__main__":
    main()
