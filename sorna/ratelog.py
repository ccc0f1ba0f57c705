"""Log lines a peer can cause, at a bounded rate: what a hostile peer sends must not
turn into a log line each (a flood would fill the disk and slow the process)."""


class RateLimitedLog:
    """At most `burst` lines per `period` seconds (on `clock`); the lines dropped are
    counted, and the next line written says how many there were."""

    def __init__(self, log, clock, burst=10, period=10.0):
        self.log = log
        self.clock = clock
        self.burst = burst
        self.period = period
        self._window = None
        self._written = 0
        self.dropped = 0

    def emit(self, level, format, **fields):
        now = self.clock.seconds()
        if self._window is None or now - self._window >= self.period:
            self._window, self._written = now, 0
        if self._written >= self.burst:
            self.dropped += 1
            return
        self._written += 1
        if self.dropped:
            format += " ({dropped} more like this were not logged)"
            fields["dropped"], self.dropped = self.dropped, 0
        getattr(self.log, level)(format, **fields)

    def info(self, format, **fields):
        self.emit("info", format, **fields)

    def warn(self, format, **fields):
        self.emit("warn", format, **fields)
