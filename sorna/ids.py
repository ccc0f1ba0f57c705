"""Identifiers."""

import base64
import uuid


def new_kernel_id():
    """22 characters of URL-safe base64 of a uuid4: unguessable and safe in names and paths."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
