"""The agent's connection to one kernel's REPL daemon (see "Agent <-> REPL daemon" in
docs/PROTOCOL.md).

Requests that have one reply (ping, input, interrupt, restart, files) wait for it as
pending requests. A run is addressed by its own id: every message with that id, its
events and an error reply alike, goes to the run's handler, so nothing the daemon says
about a request is dropped.

The daemon is as untrusted as the code beside it, so the channel bounds what it may
cost the agent: the link (sorna.agent.repl_link) bounds each frame and the frames per
reactor turn; the channel bounds what the daemon sends of its own accord (events and
messages nobody asked for) per second, and reports a daemon past that budget with
`on_flood(cause)`: the kernel is destroyed.
"""

from twisted.logger import Logger

from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError, Timeout
from sorna.ratelog import RateLimitedLog

log = Logger(namespace="sorna.agent")

BUDGET_WINDOW = 1.0  # seconds
# What a daemon may send unasked per window. A legitimate one sends at most an output
# event per 50 ms and a run's output is capped at 1 MiB: these are far above that.
MAX_MESSAGES = 500
MAX_BYTES = 32 << 20
MAX_UNEXPECTED = 50  # messages that answer nothing: a bug or an attack
# The first messages of each run answer the agent's own execute (an output event, a
# prompt, the end): they are not charged, so a fast client's many short runs never look
# like a flood. Runs start only when a front-end asks, one at a time per kernel.
ANSWERS_PER_RUN = 4


class ReplChannel:
    def __init__(self, links, path, clock, max_frame, name, on_flood):
        self.name = name  # for log lines: the kernel id
        self.clock = clock
        self.max_frame = max_frame
        self.on_flood = on_flood
        self.pending = PendingRequests(clock)
        self._runs = {}  # run id -> [handler(message), messages left uncharged]
        self.unexpected = 0  # messages that matched no request: counted, logged sparingly
        self._log = RateLimitedLog(log, clock, burst=3, period=60.0)
        self._window = clock.seconds()
        self._messages = self._bytes = self._strays = 0
        self.flooded = False
        self.link = links.open(path, self._on_frame, self._flood, max_frame)

    def open_run(self, handler):
        """A new run id whose messages go to `handler(message)` until `close_run`."""
        run_id = self.pending.new_id()
        self._runs[run_id] = [handler, ANSWERS_PER_RUN]
        return run_id

    def close_run(self, run_id):
        self._runs.pop(run_id, None)

    def send(self, message):
        """Send without awaiting a reply (a run's execute: its answer is its events)."""
        if self.link is not None:
            self.link.send(encode(message))

    def request(self, message, timeout, what):
        """Send `message` with a fresh id; a Deferred of its reply (errors as SornaError)."""
        return self.pending.send(self.send, message, timeout, what=what)

    async def until_ready(self, timeout, what):
        """Ping until the daemon answers: a ping can be lost while the daemon (re)binds
        its socket, so one ping is not enough."""
        deadline = self.clock.seconds() + timeout
        while True:
            left = deadline - self.clock.seconds()
            try:
                return await self.request({"action": "ping"}, max(0.001, min(1.0, left)),
                                          what=f"{what}'s ping")
            except Timeout:
                if left <= 1.0:
                    raise Timeout(f"{what} did not answer within {timeout:g} s",
                                  error="start-timeout")

    def close(self, error):
        """Fail every pending request with `error` and close the link."""
        self._runs.clear()
        self.pending.fail_all(error)
        if self.link is not None:
            self.link.close()
            self.link = None

    def _on_frame(self, payload):
        if self.flooded:
            return
        try:
            message, _ = decode(payload, self.max_frame)
        except SornaError as e:
            self._unexpected(f"a bad message ({e.cause})", len(payload))
            return
        try:
            run = self._runs.get(message.get("id"))
        except TypeError:  # an id that cannot be a key (a list, a map)
            run = None
        if run is not None:
            if run[1] > 0:
                run[1] -= 1
                run[0](message)
            elif self._spend(len(payload)):
                run[0](message)
        elif not self.pending.resolve(message):
            self._unexpected("a message that answers nothing the agent asked",
                             len(payload))

    def _unexpected(self, what, size):
        self.unexpected += 1
        self._strays += 1
        self._log.warn("kernel {kernel} sent {what} ({n} so far)", kernel=self.name,
                       what=what, n=self.unexpected)
        if self._spend(size) and self._strays > MAX_UNEXPECTED:
            self._flood(f"it sent {self._strays} messages that answer nothing in "
                        f"{BUDGET_WINDOW:g} s")

    def _spend(self, size):
        """Count one unasked message; False (and the kernel reported) past the budget."""
        now = self.clock.seconds()
        if now - self._window >= BUDGET_WINDOW:
            self._window, self._messages, self._bytes, self._strays = now, 0, 0, 0
        self._messages += 1
        self._bytes += size
        if self._messages > MAX_MESSAGES or self._bytes > MAX_BYTES:
            self._flood(f"it sent {self._messages} messages ({self._bytes} bytes) in "
                        f"{BUDGET_WINDOW:g} s, more than a kernel ever needs "
                        f"({MAX_MESSAGES} messages, {MAX_BYTES} bytes)")
            return False
        return True

    def _flood(self, cause):
        if not self.flooded:
            self.flooded = True
            self.on_flood(f"it flooded the agent: {cause}")
