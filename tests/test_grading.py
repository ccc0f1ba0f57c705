"""Grading: one suite for the worker-process grader the agent uses and the inline one
unit tests use; the deadline, the queue bound and the reactor's freedom for the
process grader, with real processes on the real reactor."""

import time

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import TestCase

from sorna.agent.grading import InlineGrader, ProcessGrader
from sorna.proto.errors import BadRequest, Failure, NoCapacity, Timeout

RESULT = {"stdout": "answer: 42\n", "stderr": "warn\n", "exceptions": [
    ["ZeroDivisionError", ["division by zero"], False, "tb"]], "media": [], "files": []}
HOSTILE = {"op": "regex", "target": "stdout", "value": "(a+)+$"}
HOSTILE_OUTPUT = dict(RESULT, stdout="a" * 40 + "!")


def match(op, value, target="stdout"):
    return {"op": op, "target": target, "value": value}


class GraderContract:
    """`self.grader` is started by setUp and stopped at cleanup."""

    @defer.inlineCallbacks
    def test_ops(self):
        for m, expected in [
                (match("equal", " answer: 42 "), True), (match("equal", "answer"), False),
                (match("contains", "42"), True), (match("regex", r"^answer: \d+$"), True),
                (match("regex", r"^\d+$"), False), (match("contains", "warn", "stderr"), True)]:
            self.assertEqual((yield self.grader.grade(m, RESULT)), expected, m)

    @defer.inlineCallbacks
    def test_the_exception_target_is_the_last_exception(self):
        self.assertTrue((yield self.grader.grade(
            match("equal", "ZeroDivisionError: division by zero", "exception"), RESULT)))
        self.assertTrue((yield self.grader.grade(match("equal", "", "exception"),
                                                 dict(RESULT, exceptions=[]))))

    @defer.inlineCallbacks
    def test_a_broken_pattern_is_400(self):
        for grade in (self.grader.check, lambda m: self.grader.grade(m, RESULT)):
            e = yield self.assertFailure(grade(match("regex", "(")), BadRequest)
            self.assertEqual(e.error, "bad-pattern")
            self.assertIn("regular expression", e.cause)
        self.assertTrue((yield self.grader.check(match("contains", "("))))


class InlineGraderTests(GraderContract, TestCase):
    def setUp(self):
        self.grader = InlineGrader()


class ProcessGraderTests(GraderContract, TestCase):
    timeout = 60

    def setUp(self):
        self.grader = ProcessGrader(reactor, workers=1, timeout=1.0, max_waiting=2)
        self.grader.start()
        self.addCleanup(self.grader.stop)

    @defer.inlineCallbacks
    def test_a_catastrophic_pattern_times_out_and_the_reactor_stays_free(self):
        gaps, last = [], [time.monotonic()]

        def tick():
            now = time.monotonic()
            gaps.append(now - last[0])
            last[0] = now

        ticker = task.LoopingCall(tick)
        ticker.start(0.01)
        started = time.monotonic()
        try:
            yield self.grader.grade(HOSTILE, HOSTILE_OUTPUT)
        except Timeout as e:
            self.assertEqual((e.code, e.error), (504, "match-timeout"))
        else:
            self.fail("the catastrophic pattern did not time out")
        finally:
            ticker.stop()
        took = time.monotonic() - started
        self.assertLess(took, 10, "the deadline (1 s) was not kept")
        # The reactor went on turning all along (a frozen one shows a gap of the whole
        # deadline); generous, as this machine is shared.
        self.assertLess(max(gaps), 0.5, f"the reactor stalled for {max(gaps):.3f} s")
        # A fresh worker takes the next grading.
        matched = yield self.grader.grade(match("contains", "42"), RESULT)
        self.assertTrue(matched)

    @defer.inlineCallbacks
    def test_gradings_beyond_the_queue_are_503(self):
        running = [self.grader.grade(HOSTILE, HOSTILE_OUTPUT) for _ in range(3)]
        e = yield self.assertFailure(self.grader.grade(HOSTILE, HOSTILE_OUTPUT), NoCapacity)
        self.assertEqual(e.error, "grading-busy")
        for d in running:
            yield self.assertFailure(d, Timeout)

    @defer.inlineCallbacks
    def test_stop_kills_the_workers_and_fails_waiting_gradings(self):
        running = self.grader.grade(HOSTILE, HOSTILE_OUTPUT)
        waiting = self.grader.grade(HOSTILE, HOSTILE_OUTPUT)
        started = time.monotonic()
        yield self.grader.stop()
        self.assertLess(time.monotonic() - started, 0.9, "stop waited for the pattern")
        yield self.assertFailure(waiting, NoCapacity)
        yield self.assertFailure(running, Failure, Timeout)
