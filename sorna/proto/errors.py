"""Errors that become error replies: each carries its code, short name and cause."""

from sorna.proto import codes


class SornaError(Exception):
    code = codes.FAILURE
    error = "failure"

    def __init__(self, cause, error=None, code=None):
        super().__init__(cause)
        self.cause = cause
        if error is not None:
            self.error = error
        if code is not None:
            self.code = code

    def reply_fields(self):
        return {"reply": self.code, "error": self.error, "cause": self.cause}

    @classmethod
    def from_reply(cls, reply):
        """Rebuild the error a peer reported, keeping its code and cause (a peer may be
        hostile: an odd code becomes 500, long texts are cut)."""
        code = reply.get("reply", codes.FAILURE)
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 599:
            code = codes.FAILURE
        error = reply.get("error")
        error = error[:64] if isinstance(error, str) and error else "failure"
        cause = reply.get("cause")
        cause = cause[:2000] if isinstance(cause, str) and cause else \
            f"request failed with code {code}"
        for sub in _ALL:
            if sub.code == code:
                return sub(str(cause), error=str(error))
        return cls(str(cause), error=str(error), code=code)

    def __repr__(self):
        return f"{type(self).__name__}({self.code}, {self.error!r}, {self.cause!r})"


class BadRequest(SornaError):
    code = codes.INVALID_INPUT
    error = "invalid-input"


class Forbidden(SornaError):
    code = codes.FORBIDDEN
    error = "forbidden"


class KernelNotFound(SornaError):
    code = codes.NOT_FOUND
    error = "kernel-not-found"


class Busy(SornaError):
    code = codes.BUSY
    error = "kernel-busy"


class TooLarge(SornaError):
    code = codes.TOO_LARGE
    error = "too-large"


class QuotaExceeded(SornaError):
    code = codes.QUOTA
    error = "quota-exceeded"


class Failure(SornaError):
    code = codes.FAILURE
    error = "failure"


class NoCapacity(SornaError):
    code = codes.NO_CAPACITY
    error = "no-capacity"


class Timeout(SornaError):
    code = codes.TIMEOUT
    error = "timeout"


_ALL = (BadRequest, Forbidden, KernelNotFound, Busy, TooLarge, QuotaExceeded, Failure,
        NoCapacity, Timeout)
