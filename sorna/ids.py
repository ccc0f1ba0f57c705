"""Identifiers."""

import base64
import secrets
import uuid


def new_kernel_id():
    """22 characters of URL-safe base64 of a uuid4: unguessable and safe in names, paths
    and command lines (never a leading `-`, which `sorna cp KERNEL:PATH ...` and every
    other command would take for an option)."""
    while True:
        kernel_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not kernel_id.startswith("-"):
            return kernel_id


def new_trace(service):
    """A request's trace id, made by the first Sorna process that sees the request (when
    the client sent none): `manager-` or `agent-` and 12 hex digits."""
    return f"{service}-{secrets.token_hex(6)}"
