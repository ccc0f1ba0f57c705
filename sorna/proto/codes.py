"""Reply codes, shared by every part of Sorna."""

PONG = 0
SUCCESS = 200
INVALID_INPUT = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
BUSY = 409
TOO_LARGE = 413
QUOTA = 429
FAILURE = 500
NO_CAPACITY = 503
TIMEOUT = 504


def legacy(code):
    """The 2016 front-ends know only 0, 200, 400 and 500."""
    if code in (PONG, SUCCESS):
        return code
    return INVALID_INPUT if 400 <= code < 500 else FAILURE
