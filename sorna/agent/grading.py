"""Auto-grading: does an execution's output match what the grader expects?

`equal` compares after stripping surrounding whitespace; `contains` looks for the value;
`regex` searches with Python's `re` (MULTILINE). The `exception` target is the last
exception as `Name: arg, arg`, or empty when nothing was raised.

A pattern is the client's: `(a+)+$` takes exponential time and `re` holds the GIL
while it searches, so no thread can bound it. `ProcessGrader` matches in worker
processes (`python -m sorna.agent.grading_worker`) driven from the reactor through
pipes, and kills a worker at the deadline: the agent never waits on a pattern.
`InlineGrader` matches in the calling thread, for unit tests on a fake cluster.
"""

import collections
import os
import re
import struct
import sys

import msgpack
from twisted.internet import defer, error, protocol
from twisted.logger import Logger

from sorna.agent.grading_worker import matches
from sorna.defer import deferred
from sorna.proto.codec import encode
from sorna.proto.errors import BadRequest, Failure, NoCapacity, Timeout

log = Logger(namespace="sorna.agent")

MAX_TARGET = 1 << 20  # characters of output a pattern is matched against
DEFAULT_TIMEOUT = 5.0
MAX_WAITING = 64  # gradings queued for a worker; more get 503
WORKER_MEMORY = 512 << 20  # address space of a worker: a pattern cannot exhaust the host
_LENGTH = struct.Struct(">I")


def target_text(target, result):
    if target == "exception":
        if not result["exceptions"]:
            return ""
        name, args, _, _ = result["exceptions"][-1]
        return f"{name}: {', '.join(str(a) for a in args)}" if args else name
    return result[target]


def _invalid(cause):
    return BadRequest(f"`match.value` is not a valid regular expression: {cause}",
                      error="bad-pattern")


class InlineGrader:
    """Grades in the calling thread: no deadline is possible (tests only)."""

    def start(self):
        pass

    def stop(self):
        return defer.succeed(None)

    def check(self, match):
        return self._answer("compile", match["value"], "") if match["op"] == "regex" \
            else defer.succeed(True)

    def grade(self, match, result):
        text = target_text(match["target"], result)[:MAX_TARGET]
        return self._answer(match["op"], match["value"], text)

    def _answer(self, op, value, text):
        try:
            return defer.succeed(matches(op, value, text))
        except re.error as e:
            return defer.fail(_invalid(e))


class _Worker(protocol.ProcessProtocol):
    """One grading process: length-prefixed msgpack maps on its stdin and stdout."""

    def __init__(self):
        self.buffer = b""
        self.answer = None  # the Deferred of the grading in progress
        self.ended = defer.Deferred()
        self.alive = True  # running, and not being killed

    def ask(self, op, value, text):
        self.answer = defer.Deferred()
        payload = encode({"op": op, "value": value, "text": text})
        self.transport.write(_LENGTH.pack(len(payload)) + payload)
        return self.answer

    def outReceived(self, data):
        self.buffer += data
        while len(self.buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < _LENGTH.size + size:
                return
            payload = self.buffer[_LENGTH.size:_LENGTH.size + size]
            self.buffer = self.buffer[_LENGTH.size + size:]
            answer, self.answer = self.answer, None
            if answer is not None and not answer.called:  # not timed out meanwhile
                answer.callback(msgpack.unpackb(payload, raw=False))

    def errReceived(self, data):
        log.warn("grading worker: {text}", text=data[:500].decode("utf-8", "replace"))

    def kill(self):
        if self.alive:
            self.alive = False  # from now on: its exit is only a matter of time
            try:
                self.transport.signalProcess("KILL")
            except error.ProcessExitedAlready:
                pass

    def processEnded(self, reason):
        self.alive = False
        answer, self.answer = self.answer, None
        if answer is not None and not answer.called:
            answer.errback(Failure("the grading process ended before it answered; the "
                                   "pattern may need more memory than a grading may use"))
        self.ended.callback(None)


class ProcessGrader:
    """Up to `workers` grading processes; each grading gets `timeout` seconds of one of
    them, then the worker is killed (504 match-timeout) and a fresh one started on demand.
    At most `max_waiting` gradings wait for a free worker (503 beyond)."""

    def __init__(self, reactor, workers=1, timeout=DEFAULT_TIMEOUT, max_waiting=MAX_WAITING):
        self.reactor = reactor
        self.workers = workers
        self.timeout = timeout
        self.max_waiting = max_waiting
        self._idle = []
        self._busy = set()
        self._waiting = collections.deque()
        self._all = set()  # every worker not yet exited, killed ones included
        self._stopping = False

    def start(self):
        self._stopping = False

    @deferred
    async def stop(self):
        self._stopping = True
        while self._waiting:
            self._waiting.popleft().errback(NoCapacity("the agent is shutting down",
                                                       error="shutting-down"))
        self._idle = []
        workers = list(self._all)
        for worker in workers:
            worker.kill()
        await defer.gatherResults([w.ended for w in workers])

    def check(self, match):
        """Compile a regex before the run, so that a broken one is a 400 that changes
        nothing (compiling is the client's pattern too: it gets the same deadline)."""
        if match["op"] != "regex":
            return defer.succeed(True)
        return self._answer("compile", match["value"], "")

    def grade(self, match, result):
        text = target_text(match["target"], result)[:MAX_TARGET]
        return self._answer(match["op"], match["value"], text)

    @deferred
    async def _answer(self, op, value, text):
        worker = await self._acquire()
        try:
            d = worker.ask(op, value, text)
            d.addTimeout(self.timeout, self.reactor)
            try:
                answer = await d
            except defer.TimeoutError:
                worker.kill()
                raise Timeout(f"the match pattern took longer than {self.timeout:g} s "
                              f"and was stopped", error="match-timeout")
        finally:
            self._release(worker)
        if "error" in answer:
            raise _invalid(answer["error"])
        return bool(answer["matched"])

    def _acquire(self):
        if self._stopping:
            return defer.fail(NoCapacity("the agent is shutting down", error="shutting-down"))
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                self._busy.add(worker)
                return defer.succeed(worker)
        if len(self._busy) < self.workers:
            worker = self._spawn()
            self._busy.add(worker)
            return defer.succeed(worker)
        if len(self._waiting) >= self.max_waiting:
            return defer.fail(NoCapacity(
                f"{self.max_waiting} gradings are already waiting on this agent; try "
                f"again shortly", error="grading-busy"))
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def _release(self, worker):
        self._busy.discard(worker)
        if not worker.alive or self._stopping:
            worker.kill()
            worker = None
        if self._waiting and not self._stopping:
            worker = worker or self._spawn()
            self._busy.add(worker)
            self._waiting.popleft().callback(worker)
        elif worker is not None:
            self._idle.append(worker)

    def _spawn(self):
        worker = _Worker()
        self._all.add(worker)
        worker.ended.addCallback(lambda _: self._all.discard(worker))
        self.reactor.spawnProcess(
            worker, sys.executable,
            [sys.executable, "-m", "sorna.agent.grading_worker", str(WORKER_MEMORY)],
            env=dict(os.environ))
        return worker
