"""The agent's connection to one kernel's REPL daemon (see "Agent <-> REPL daemon" in
docs/PROTOCOL.md).

Requests that have one reply (ping, input, interrupt, restart, files) wait for it as
pending requests. A run is addressed by its own id: every message with that id, its
events and an error reply alike, goes to the run's handler, so nothing the daemon says
about a request is dropped.
"""

from twisted.logger import Logger

from sorna.pending import PendingRequests
from sorna.proto.codec import decode, encode
from sorna.proto.errors import SornaError, Timeout
from sorna.ratelog import RateLimitedLog

log = Logger(namespace="sorna.agent")


class ReplChannel:
    def __init__(self, transport, endpoint, clock, max_size, name):
        self.name = name  # for log lines: the kernel id
        self.clock = clock
        self.max_size = max_size
        self.pending = PendingRequests(clock)
        self._runs = {}  # run id -> handler(message)
        self.unexpected = 0  # messages that matched no request: counted, logged sparingly
        self._log = RateLimitedLog(log, clock, burst=3, period=60.0)
        self.socket = transport.dealer(endpoint, self._on_message)

    def open_run(self, handler):
        """A new run id whose messages go to `handler(message)` until `close_run`."""
        run_id = self.pending.new_id()
        self._runs[run_id] = handler
        return run_id

    def close_run(self, run_id):
        self._runs.pop(run_id, None)

    def send(self, message):
        """Send without awaiting a reply (a run's execute: its answer is its events)."""
        if self.socket is not None:
            self.socket.send([encode(message)])

    def request(self, message, timeout, what):
        """Send `message` with a fresh id; a Deferred of its reply (errors as SornaError)."""
        return self.pending.send(self.send, message, timeout, what=what)

    async def until_ready(self, timeout, what):
        """Ping until the daemon answers: a ping sent while the daemon (re)binds its
        socket can be lost, so one ping is not enough."""
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
        """Fail every pending request with `error` and close the socket."""
        self._runs.clear()
        self.pending.fail_all(error)
        if self.socket is not None:
            self.socket.close()
            self.socket = None

    def _on_message(self, frames):
        try:
            message, _ = decode(frames[-1], self.max_size)
        except SornaError as e:
            self._unexpected(f"a bad message: {e.cause}")
            return
        handler = self._runs.get(message.get("id"))
        if handler is not None:
            handler(message)
        elif not self.pending.resolve(message):
            self._unexpected("a message that answers nothing the agent asked")

    def _unexpected(self, what):
        self.unexpected += 1
        self._log.warn("kernel {kernel} sent {what} ({n} so far)", kernel=self.name,
                       what=what, n=self.unexpected)
