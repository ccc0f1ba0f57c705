"""What one connection may make the gateway hold or do: bytes written for a peer that
does not read them, and requests per second."""

# Bytes the gateway holds for one WebSocket or event stream whose peer has not taken
# them. One message may be larger (a cell's output can be a few MiB): a message always
# goes to a connection that has taken everything before it.
SEND_BUDGET = 4 << 20


def unsent_bytes(transport):
    """Bytes written to a Twisted TCP transport that the peer has not taken yet (the
    transport's own buffers; Twisted has no public call that tells)."""
    if transport is None:
        return 0
    return (len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
            + getattr(transport, "_tempDataLen", 0))


def drop_unsent(transport):
    """Free what a closed transport still held for its peer. A closed connection's
    transport lives on in reference cycles (HTTP channel, request, protocol) until the
    garbage collector's next full pass, and with it up to a send budget of bytes."""
    if transport is not None and hasattr(transport, "dataBuffer"):
        transport.dataBuffer, transport.offset = b"", 0
        transport._tempDataBuffer, transport._tempDataLen = [], 0


def over_budget(transport, size, budget=SEND_BUDGET):
    """Whether writing `size` more bytes would hold more than `budget` for the peer."""
    waiting = unsent_bytes(transport)
    return waiting > 0 and waiting + size > budget


class TokenBucket:
    """`rate` events a second on `clock`, in bursts of up to `burst`."""

    def __init__(self, clock, rate, burst):
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._when = clock.seconds()

    def take(self):
        """Whether one more event may happen now (and count it)."""
        now = self.clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._when) * self.rate)
        self._when = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True
