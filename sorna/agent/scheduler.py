"""One kernel's executions: one run at the daemon at a time, the others queued in order.

The queue is the agent's, never the daemon's: a run reaches the daemon only when the one
before it has ended and no restart is under way. So a restart ends the running run and
every queued one (`409 restarted`) before the daemon hears of it, and an interrupt names
the run it is for, so it can never stop the run queued behind.
"""

import collections

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from sorna.agent.runs import CONTINUED, FINISHED, RUNNING, WAITING_INPUT, Run, RunOptions
from sorna.defer import deferred
from sorna.proto.errors import Busy, SornaError, Timeout

log = Logger(namespace="sorna.agent")

REQUEST_TIMEOUT = 10.0  # input, interrupt and restart replies


def restarted():
    return Busy("the kernel was restarted before this execution ended", error="restarted")


class RunQueue:
    """`on_stuck(run)`: a timed-out run ignored its interrupt (the kernel must go);
    `on_end(run)`: a run has finished (its files may be exported); `on_over(run, error,
    seconds)`: a run is over, finished (`error` None) or not, after `seconds` at the
    daemon (None if it never got there)."""

    def __init__(self, name, channel, clock, limits, max_queued, max_output,
                 interrupt_grace, start_timeout, on_stuck, on_end, max_input_wait=300.0,
                 on_over=None):
        self.name = name
        self.channel = channel
        self.clock = clock
        self.limits = limits
        self.max_queued = max_queued
        self.max_output = max_output
        self.interrupt_grace = interrupt_grace
        self.start_timeout = start_timeout
        self.max_input_wait = max_input_wait
        self.on_stuck = on_stuck
        self.on_end = on_end
        self.on_over = on_over
        self.current = None  # the run at the daemon
        self.last = None  # the run that ended last: a late `continue` still finds it
        self._queue = collections.deque()
        self._restarting = False
        self._restart_waiters = []  # restart requests: the restart's result
        self._ready_waiters = []  # everyone else who waits for it: fired with None
        self._closed = False
        self.last_used = clock.seconds()

    @property
    def queued(self):
        return len(self._queue)

    @property
    def busy(self):
        return self.current is not None or bool(self._queue) or self._restarting

    def submit(self, code, entry_id=None, options=RunOptions()):
        """Queue a new run; it starts when the runs before it (and any restart) are done."""
        if len(self._queue) >= self.max_queued:
            raise Busy(f"kernel {self.name} is busy with {self.max_queued} queued "
                       f"executions; wait for them to finish")
        run = Run(None, self.limits["exec_timeout"], entry_id, max_output=self.max_output,
                  code=code, options=options)
        self._queue.append(run)
        self.last_used = self.clock.seconds()
        self._start_next()
        return run

    def _start_next(self):
        if self.current is not None or self._restarting or self._closed or not self._queue:
            return
        run = self.current = self._queue.popleft()
        run.began = self.clock.seconds()
        run.id = self.channel.open_run(lambda message: self._on_message(run, message))
        self.last_used = self.clock.seconds()
        request = {"action": "execute", "id": run.id, "code": run.code}
        if run.options.program is not None:
            request["program"] = {name: value for name, value in run.options.program.items()
                                  if value is not None}
        self.channel.send(request)
        run.code = None
        self._arm(run)

    def _on_message(self, run, message):
        event = message.get("event")
        if event is None:
            # An error reply about the run (the daemon refused it, or could not go on).
            error = SornaError.from_reply(message) if message.get("reply") != 200 else None
            self._end(run, error or SornaError(
                "the kernel's daemon answered the execution without an event"))
            return
        if event == WAITING_INPUT:
            self._pause(run)
            if not run.timed_out:
                run.timer = self.clock.callLater(self.max_input_wait, self._timed_out, run,
                                                 True)
        elif event == FINISHED:
            run.finish(message)  # before _end, which exports the files it names
            self._end(run)
            run.notify()  # wakes the followers, once the export has begun
            return
        run.on_event(message)

    def _end(self, run, error=None):
        """The run is over: the next one may start."""
        self._pause(run)
        if run.grace is not None and run.grace.active():
            run.grace.cancel()
        if run.id is not None:
            self.channel.close_run(run.id)
        if error is not None:
            run.fail(error)
        if run in self._queue:
            self._queue.remove(run)
        if self.current is run:
            self.current = None
            self.last = run
            self.last_used = self.clock.seconds()
        if run.finished is not None:
            self.on_end(run)
        if self.on_over is not None:
            self.on_over(run, run.error if run.finished is None else run.timed_out,
                         None if run.began is None else self.clock.seconds() - run.began)
        self._start_next()

    # -- time

    def _arm(self, run):
        """Start (or resume) the run's clock: time spent waiting for input is not counted."""
        run.started_at = self.clock.seconds()
        run.timer = self.clock.callLater(run.budget, self._timed_out, run)

    def _pause(self, run):
        if run.timer is not None and run.timer.active():
            run.timer.cancel()
            if run.waiting is None:  # the execution clock, not the input wait's
                run.budget -= self.clock.seconds() - run.started_at
        run.timer = None

    def _timed_out(self, run, reading=False):
        """Interrupt first; a run that ignores the interrupt costs the kernel its life.
        A run that waited for input longer than `max_input_wait` (`reading`) is ended
        the same way: a forgotten `input()` must not hold a slot for ever."""
        run.timer = None
        if run.done:
            return
        if reading:
            log.info("kernel {kernel} waited {t:g} s for input; interrupting it",
                     kernel=self.name, t=self.max_input_wait)
            run.timed_out = Timeout(f"the code waited for input longer than "
                                    f"{self.max_input_wait:g} s and was interrupted; the "
                                    f"kernel keeps its state", error="input-timeout")
        else:
            log.warn("kernel {kernel} exceeded its {t} s execution time; interrupting it",
                     kernel=self.name, t=self.limits["exec_timeout"])
            run.timed_out = Timeout(f"the code ran longer than "
                                    f"{self.limits['exec_timeout']:g} s and was "
                                    f"interrupted; the kernel keeps its state",
                                    error="exec-timeout")
        d = self.channel.request({"action": "interrupt", "run": run.id}, REQUEST_TIMEOUT,
                                 what="the interrupt")
        d.addErrback(lambda _: None)  # the grace timer below judges the outcome
        run.grace = self.clock.callLater(self.interrupt_grace, self._stuck, run)

    def _stuck(self, run):
        if not run.done:
            self.on_stuck(run)

    # -- front-end requests

    @deferred
    async def feed(self, run, text, eof=False):
        """Answer the read a run waits on (`eof`: `text` is the rest of its input)."""
        if run is None or run.waiting is None or run.done:
            raise Busy("the execution is not waiting for input", error="not-waiting-input")
        request = {"action": "input", "text": text}
        if eof:
            request["eof"] = True
        await self.channel.request(request, REQUEST_TIMEOUT, what="the input")
        self._pause(run)  # the input wait's timer
        run.waiting = None
        if not run.done:
            self._arm(run)

    @deferred
    async def interrupt(self):
        """Interrupt the running run (queued ones go on afterwards)."""
        run = self.current
        if run is None:
            return {"interrupted": False}
        reply = await self.channel.request({"action": "interrupt", "run": run.id},
                                           REQUEST_TIMEOUT, what="the interrupt")
        return {"interrupted": bool(reply.get("interrupted"))}

    def restart(self):
        """End every run, then start a fresh process; executions sent meanwhile wait and
        run on the fresh one. A failure (the daemon did not come back) is the caller's
        to handle: the kernel is unusable."""
        d = defer.Deferred()
        self._restart_waiters.append(d)
        if not self._restarting:
            self._restarting = True
            self._do_restart().addBoth(self._restarted)
        return d

    @deferred
    async def _do_restart(self):
        for run in list(self._queue):
            self._end(run, restarted())
        if self.current is not None:
            self._end(self.current, restarted())
        await self.channel.request({"action": "restart"}, REQUEST_TIMEOUT,
                                   what="the restart")
        await self.channel.until_ready(self.start_timeout, f"kernel {self.name}")

    def _restarted(self, result):
        self._restarting = False
        self.last_used = self.clock.seconds()
        waiters, self._restart_waiters = self._restart_waiters, []
        ready, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback({})
        for d in ready:
            d.callback(None)
        self._start_next()

    def ready(self):
        """A Deferred that fires once no restart is under way."""
        if not self._restarting:
            return defer.succeed(None)
        d = defer.Deferred()
        self._ready_waiters.append(d)
        return d

    def fail_all(self, error):
        """The kernel is gone: every run ends with `error`, and none starts again."""
        self._closed = True
        for run in list(self._queue):
            self._end(run, error)
        if self.current is not None:
            self._end(self.current, error)

    # -- following a run

    @deferred
    async def follow(self, run, wait, partial):
        """The reply for `run`: when it finishes or waits for input, or after `wait`
        seconds (status `continued`); `partial(fields)` gets output as it comes."""
        deadline = None if wait is None else self.clock.seconds() + wait
        while True:
            if run.error is not None:
                raise run.error
            if run.finished is not None:
                if run.timed_out:
                    raise run.timed_out
                await run.exported
                if run.final is None:
                    run.final = {"status": FINISHED, "result": dict(
                        run.take(), exceptions=run.finished.get("exceptions") or [],
                        files=run.files, truncated=run.truncated)}
                return run.final
            if run.waiting is not None:
                return dict(run.waiting, status=WAITING_INPUT, result=run.take_interim())
            if partial is not None and run.records:
                partial({"status": RUNNING, "result": run.take()})
            left = None if deadline is None else deadline - self.clock.seconds()
            if left is not None and left <= 0:
                return {"status": CONTINUED, "result": run.take_interim()}
            changed = run.changed()
            if left is not None:
                changed.addTimeout(left, self.clock)
            try:
                await changed
            except defer.TimeoutError:
                pass
