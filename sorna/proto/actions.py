"""Every action of the protocol and its fields (docs/PROTOCOL.md describes them)."""

import re

from sorna.proto.errors import BadRequest
from sorna.proto.schema import (
    LIMITS, SESSION_RE, AgentAddr, AgentId, Anything, Blob, Choice, DictOf, Flag, KernelId,
    Lang, ListOf, Map, Name, Number, Text, WorkPath, clean_fields, request_id,
)

MAX_CODE_LENGTH = 1 << 20
MAX_ASSIST_CODE = 256 << 10  # the code a completion, inspection or is_complete looks at
CURSOR = Number(minimum=0, maximum=MAX_ASSIST_CODE, integer=True, required=False)
MAX_FILE_SIZE = 16 << 20
# A program's command-line arguments (the REPL daemon's MAX_ARGS and MAX_ARGS_SIZE):
# Linux takes at most 128 KiB per argument and about 2 MiB in all.
MAX_PROGRAM_ARGS = 4096
MAX_PROGRAM_ARGS_SIZE = 256 << 10
MAX_PROGRAM_ARG = 128 << 10
NO_NUL = re.compile(r"[^\x00]*\Z")

MANAGER = {
    "ping": {"body": Anything(required=False)},
    "get_or_create": {
        "user_id": Name(),
        "entry_id": Name(),
        "lang": Lang(),
        "limits": LIMITS,
    },
    "create": {"lang": Lang(), "limits": LIMITS},
    "destroy": {"kernel_id": KernelId()},
    "kernel_info": {"kernel_id": KernelId()},
    "status": {},
    # Sent by agents on their own DEALER connection.
    "heartbeat": {
        "agent_id": AgentId(),
        "session": Text(max_length=64, pattern=SESSION_RE, what="the agent process's "
                        "session token (16 to 64 hex digits)"),
        "leaving": Flag(required=False, default=False),
        "addr": AgentAddr(),
        "max_kernels": Number(minimum=0, maximum=100000, integer=True),
        "kernels": DictOf(KernelId(), Lang(), max_items=100000, required=False, default={}),
        "langs": ListOf(Lang(), max_items=256, required=False, default=[]),
        "aliases": DictOf(Lang(), ListOf(Lang(), max_items=16), max_items=256,
                          required=False, default={}),
        "gone": DictOf(KernelId(), Text(max_length=1024), max_items=100000, required=False,
                       default={}),
        "instance": Anything(required=False, default={}),
        "resources": Anything(required=False, default={}),
        "warm": DictOf(Lang(), Number(minimum=0, maximum=100000, integer=True),
                       max_items=256, required=False, default={}),
    },
}

MANAGER_LEGACY = {0: "ping", 2: "get_or_create", 3: "destroy"}

AGENT = {
    "ping": {"body": Anything(required=False)},
    "execute": {
        "kernel_id": KernelId(),
        "code": Text(max_length=MAX_CODE_LENGTH, required=False),
        "mode": Choice(("query", "continue", "input"), required=False),
        "text": Text(max_length=MAX_CODE_LENGTH, required=False),
        "eof": Flag(required=False, default=False),
        "wait": Number(minimum=0, maximum=3600, required=False),
        "stream": Flag(required=False, default=False),
        "bundles": Flag(required=False, default=False),
        "ordered": Flag(required=False, default=False),
        "program": Map({
            "name": WorkPath(required=False),
            "args": ListOf(Text(max_length=MAX_PROGRAM_ARG, pattern=NO_NUL,
                                what="text without NUL characters"),
                           max_items=MAX_PROGRAM_ARGS, required=False, default=[]),
            "stdin": Text(max_length=MAX_CODE_LENGTH, required=False),
        }, required=False),
        "match": Map({
            "op": Choice(("contains", "equal", "regex")),
            "target": Choice(("stdout", "stderr", "exception")),
            "value": Text(max_length=65536),
        }, required=False),
        "cell_id": Name(required=False),
        "entry_id": Name(required=False),
    },
    "interrupt": {"kernel_id": KernelId()},
    "complete": {"kernel_id": KernelId(), "code": Text(max_length=MAX_ASSIST_CODE),
                 "cursor_pos": CURSOR},
    "inspect": {"kernel_id": KernelId(), "code": Text(max_length=MAX_ASSIST_CODE),
                "cursor_pos": CURSOR,
                "detail_level": Number(minimum=0, maximum=1, integer=True, required=False,
                                       default=0)},
    "is_complete": {"kernel_id": KernelId(), "code": Text(max_length=MAX_ASSIST_CODE)},
    "restart": {"kernel_id": KernelId()},
    "upload": {"kernel_id": KernelId(), "path": WorkPath(),
               "data": Blob(max_length=MAX_FILE_SIZE)},
    "download": {"kernel_id": KernelId(), "path": WorkPath()},
    "list_files": {"kernel_id": KernelId(), "path": WorkPath(required=False, default="")},
    "create_kernel": {"kernel_id": KernelId(), "lang": Lang(), "limits": LIMITS},
    "destroy_kernel": {"kernel_id": KernelId()},
}

AGENT_LEGACY = {0: "ping", 1: "execute", 2: "create_kernel", 3: "destroy_kernel"}

# Actions only the manager may send to an agent (over the agent's heartbeat connection).
AGENT_COMMANDS = ("create_kernel", "destroy_kernel")


def parse_request(message, actions, legacy):
    """Return `(action, fields)` of a decoded request map, or raise BadRequest."""
    action = message.get("action")
    if isinstance(action, int) and not isinstance(action, bool):
        if action not in legacy:
            known = ", ".join(f"{k} ({v})" for k, v in sorted(legacy.items()))
            raise BadRequest(f"unknown action number {action}; known: {known}",
                             error="unknown-action")
        action = legacy[action]
    elif not isinstance(action, str):
        raise BadRequest("`action` is missing or not a string", error="unknown-action")
    if action not in actions:
        raise BadRequest(f"unknown action {action[:64]!r}; known: {', '.join(sorted(actions))}",
                         error="unknown-action")
    if "id" in message and message["id"] is not None and request_id(message) is None:
        raise BadRequest("`id` must be an integer or a string of at most 128 characters")
    return action, clean_fields(actions[action], message)
