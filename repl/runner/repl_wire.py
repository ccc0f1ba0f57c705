"""The runner's wire rules: frames, the requests it takes and how it refuses them, the
replies' encoding, and the limits the agent holds it to as well (the agent's own copies,
in sorna/agent/runs.py and sorna/proto/actions.py, are pinned to these by
tests/test_repl_contract.py)."""

import struct

import msgpack

HEADER = struct.Struct(">I")  # a frame: this 4-byte big-endian length, then msgpack
MAX_FILE_SIZE = 16 * 1024 * 1024
# The end of a run (its exceptions and changed files) and a prompt count against the
# run's output budget; they may use at least this much, even after a full run.
END_ROOM = 64 * 1024
MAX_NAME = 256  # an exception's name
ACTIONS = ("ping", "execute", "input", "interrupt", "restart", "upload", "download",
           "list", "complete", "inspect", "is_complete")
# Asked of the driver, answered at once by whichever thread reads the request.
ASSIST_ACTIONS = ("complete", "inspect", "is_complete")
MAX_MATCHES = 500  # completions in one reply
# A program's command-line arguments: Linux takes at most 128 KiB per argument and about
# 2 MiB in all (with the environment).
MAX_ARGS = 4096
MAX_PROGRAM_NAME = 1024
MAX_ARGS_SIZE = 256 << 10
# msgpack's C unpacker before 1.2 leaks memory on every frame it refuses as nested too
# deep (about 80 KiB each) or as bad UTF-8: garbage on the socket would fill the kernel's
# memory. Its pure-Python twin refuses the same frames without leaking (Debian's
# python3-msgpack is 1.0.3).
if msgpack.version >= (1, 2):
    unpack = msgpack.unpackb
else:
    from msgpack.fallback import unpackb as unpack


class RequestError(Exception):
    """A request the daemon refuses; becomes `{reply: code, error, cause}`."""

    def __init__(self, code, error, cause):
        super().__init__(cause)
        self.code, self.error, self.cause = code, error, cause
        self.request_id = None  # the refused request's id, when it could be read


def sendable(value):
    """A str msgpack can encode (lone surrogates would make packing fail)."""
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def clip(text, room):
    """`text` within `room` characters, and whether it had to be cut."""
    return (text, False) if len(text) <= room else (text[:max(room, 0)], True)


def parse_request(payload):
    """The request map in `payload`; RequestError 400 when it is not one (with the
    request's id when the map could be read, so that it is decoded once)."""
    try:
        request = unpack(payload, raw=False)
    except Exception:
        raise RequestError(400, "invalid-input", "The message is not a valid msgpack "
                                                 "document.")
    if not isinstance(request, dict):
        raise RequestError(400, "invalid-input", f"The message must be a msgpack map, "
                                                 f"not a {type(request).__name__}.")
    try:
        return _checked(request)
    except RequestError as e:
        e.request_id = request.get("id")
        raise


def _checked(request):
    action = request.get("action")
    if action not in ACTIONS:
        raise RequestError(400, "invalid-input", f"Unknown action {action!r}; expected "
                                                 f"one of {', '.join(ACTIONS)}.")
    if action == "execute" and not isinstance(request.get("code"), str):
        raise RequestError(400, "invalid-input", f"'code' must be a string, not "
                                                 f"{type(request.get('code')).__name__}.")
    if action == "execute" and request.get("program") is not None:
        _check_program(request["program"])
    if action == "input" and not isinstance(request.get("text"), str):
        raise RequestError(400, "invalid-input", f"'text' must be a string, not "
                                                 f"{type(request.get('text')).__name__}.")
    if action == "input" and not isinstance(request.get("eof", False), bool):
        raise RequestError(400, "invalid-input", "'eof' must be true or false.")
    if action in ASSIST_ACTIONS:
        if not isinstance(request.get("code"), str):
            raise RequestError(400, "invalid-input", "'code' must be a string.")
        cursor = request.get("cursor_pos", len(request["code"]))
        if type(cursor) is not int or not 0 <= cursor <= len(request["code"]):
            raise RequestError(400, "invalid-input", "'cursor_pos' must be a position in "
                                                     "'code'.")
    return request


def _check_program(program):
    if not isinstance(program, dict):
        raise RequestError(400, "invalid-input", "'program' must be a map of 'name' and "
                                                 "'args'.")
    name, args = program.get("name"), program.get("args", [])
    if program.get("stdin") is not None and not isinstance(program["stdin"], str):
        raise RequestError(400, "invalid-input", "'program.stdin' must be a string.")
    if name is not None and (not isinstance(name, str)
                             or not 0 < len(name) <= MAX_PROGRAM_NAME):
        raise RequestError(400, "invalid-input", f"'program.name' must be a path of 1 to "
                                                 f"{MAX_PROGRAM_NAME} characters.")
    if not isinstance(args, list) or len(args) > MAX_ARGS or not all(
            isinstance(a, str) and "\x00" not in a for a in args):
        raise RequestError(400, "invalid-input", f"'program.args' must be a list of at "
                                                 f"most {MAX_ARGS} strings without NUL.")
    if sum(len(a.encode("utf-8", "surrogatepass")) + 1 for a in args) > MAX_ARGS_SIZE:
        raise RequestError(400, "invalid-input", f"'program.args' take more than "
                                                 f"{MAX_ARGS_SIZE} bytes.")


def error_reply(request_id, e):
    return {"id": request_id, "reply": e.code, "error": e.error, "cause": e.cause}


def pack(reply):
    """msgpack bytes of `reply`; one that cannot be encoded becomes a 500 error reply
    that keeps its id (when the id itself can be sent), so whoever waits on the
    request hears of it."""
    try:
        return msgpack.packb(reply, use_bin_type=True)
    except Exception as e:
        request_id = reply.get("id")
        if not (isinstance(request_id, str) or (isinstance(request_id, int)
                                                and -2**63 <= request_id < 2**64)):
            request_id = None
        return msgpack.packb({"id": sendable(request_id) if isinstance(request_id, str)
                              else request_id, "reply": 500, "error": "internal-error",
                              "cause": sendable(f"The reply could not be encoded: {e}")},
                             use_bin_type=True)
