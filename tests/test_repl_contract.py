"""One suite of the REPL protocol's rules, run against the real daemon (on the host and
in its hardened container) and against the doubles that unit tests use in its place
(`LocalDaemon` and the scripted daemon), so a double cannot hide a race the real
daemon has: a run is in progress while other requests arrive, an interrupt names its
run, a restart drops the run in progress, errors about a run carry its id.

The doubles run no code the way the daemon does; each case uses one of three programs
(tests.scripted_daemon): QUICK prints `hello`, LONG runs until interrupted, ASK reads
a name. LocalDaemon holds a LONG run until it is interrupted, and it cannot suspend
code that reads input (it answers reads with EOFError), so the ASK cases do not apply
to it.
"""

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from tests.scripted_daemon import ASK, LONG, QUICK, ScriptedRepl
from tests.test_repl_python3 import (
    Peer, answered_after_restart, repl, short_tempdir, start_container_daemon,
    start_host_daemon, text_of,
)


class InProcessPeer(Peer):
    """Peer's API over a double that answers inside `send`: what has not arrived by the
    time a test waits never will."""

    def __init__(self):
        self.inbox = []

    def send(self, message):
        if not isinstance(message, bytes):
            message = msgpack.packb(message, use_bin_type=True)
        self.inbox.extend(msgpack.unpackb(m, raw=False) for m in self.answer(message))

    def wait_for(self, match, timeout=None, what="a message"):
        for i, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(i)
        raise AssertionError(f"no {what}; got {self.inbox}")

    def quiet(self, run_id, seconds=None):
        return not any(m.get("id") == run_id for m in self.inbox)

    def after_restart(self, test):
        pass

    def close(self):
        pass


class LocalDaemonPeer(InProcessPeer):
    def __init__(self, work_dir):
        super().__init__()
        self.daemon = repl.LocalDaemon(work_dir)

    def answer(self, payload):
        self.daemon.hold = msgpack.packb(LONG) in payload  # a run that goes on
        return self.daemon.handle_payload(payload)


class ScriptedPeer(InProcessPeer):
    def __init__(self):
        super().__init__()
        self.script = ScriptedRepl()
        self.side = _ScriptSide()

    def answer(self, payload):
        try:
            request = msgpack.unpackb(payload, raw=False)
        except Exception:
            request = None
        if not isinstance(request, dict):
            return [msgpack.packb({"id": None, "reply": 400, "error": "invalid-input",
                                   "cause": "The message is not a msgpack map."})]
        self.side.sent = []
        self.script(self.side, request)
        return self.side.sent


class _ScriptSide:
    """What ScriptedRepl sees as `daemon`: collects what it sends."""

    container_id = "c1"

    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(msgpack.packb(message, use_bin_type=True))


class ReplContract:
    """The rules every daemon and double follows. `self.peer` is set by setUp."""

    def start_long_run(self, run_id):
        self.peer.send({"action": "execute", "id": run_id, "code": LONG})

    def assertKeyboardInterrupt(self, finished):
        self.assertEqual([e[0] for e in finished["exceptions"]], ["KeyboardInterrupt"])

    def test_ping(self):
        self.assertEqual(self.peer.request({"action": "ping", "id": 7}),
                         {"id": 7, "reply": 0})

    def test_a_run_is_its_events_ending_with_finished(self):
        events = self.peer.run(QUICK, run_id=1)
        self.assertEqual(text_of(events), "hello\n")
        self.assertTrue(all(e["id"] == 1 for e in events))
        self.assertEqual((events[-1]["reply"], events[-1]["exceptions"]), (200, []))

    def test_an_execute_during_a_run_is_409_with_its_id(self):
        self.start_long_run(1)
        reply = self.peer.request({"action": "execute", "id": 2, "code": QUICK})
        self.assertEqual((reply["reply"], reply["error"]), (409, "kernel-busy"))
        self.assertNotIn("event", reply)
        self.assertTrue(reply["cause"])
        self.peer.request({"action": "interrupt", "id": 3, "run": 1})
        self.assertKeyboardInterrupt(self.peer.event(1, "finished"))

    def test_an_interrupt_stops_only_the_run_it_names(self):
        self.start_long_run(1)
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 2, "run": 99}),
                         {"id": 2, "reply": 200, "interrupted": False})
        self.assertTrue(self.peer.quiet(1, 0.3), "another run's interrupt stopped run 1")
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 3, "run": 1}),
                         {"id": 3, "reply": 200, "interrupted": True})
        self.assertKeyboardInterrupt(self.peer.event(1, "finished"))
        self.assertEqual(text_of(self.peer.run(QUICK, run_id=4)), "hello\n")

    def test_an_interrupt_while_idle_interrupts_nothing(self):
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 1}),
                         {"id": 1, "reply": 200, "interrupted": False})
        self.peer.run(QUICK, run_id=2)
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 3, "run": 2}),
                         {"id": 3, "reply": 200, "interrupted": False})

    def test_input_when_nothing_reads_is_409(self):
        reply = self.peer.request({"action": "input", "id": 1, "text": "x"})
        self.assertEqual((reply["reply"], reply["error"]), (409, "not-waiting-input"))

    def test_restart_during_a_run_drops_it_and_serves_again(self):
        self.start_long_run(1)
        self.assertEqual(self.peer.request({"action": "restart", "id": 2}),
                         {"id": 2, "reply": 200})
        self.peer.after_restart(self)
        self.assertEqual(text_of(self.peer.run(QUICK, run_id=3)), "hello\n")
        self.assertTrue(self.peer.quiet(1, 0.1), "the dropped run sent events")

    def test_bad_requests_are_400_with_their_id(self):
        reply = self.peer.request({"action": "execute", "id": 5, "code": 5})
        self.assertEqual((reply["reply"], reply["error"]), (400, "invalid-input"))
        self.assertNotIn("event", reply)
        reply = self.peer.request({"action": "explode", "id": 6})
        self.assertEqual(reply["reply"], 400)
        self.assertIn("explode", reply["cause"])
        self.peer.send(b"\xc1 not msgpack")
        self.assertEqual(self.peer.reply_to(None)["reply"], 400)
        self.test_ping()


class InputContract:
    """Reads of standard input: for daemons that can suspend the code that reads."""

    def test_a_read_waits_for_input(self):
        self.peer.send({"action": "execute", "id": 1, "code": ASK})
        self.assertEqual(self.peer.event(1), {"id": 1, "event": "waiting-input",
                                              "prompt": "Name: ", "password": False})
        self.assertEqual(self.peer.request({"action": "input", "id": 2, "text": "Ada"}),
                         {"id": 2, "reply": 200})
        events = self.peer.events_until_finished(1)
        self.assertEqual(text_of(events), "hello Ada\n")
        self.assertEqual(self.peer.request({"action": "input", "id": 3, "text": "x"})["reply"],
                         409)

    def test_an_interrupt_ends_a_read(self):
        self.peer.send({"action": "execute", "id": 1, "code": ASK})
        self.peer.event(1, "waiting-input")
        self.assertTrue(self.peer.request({"action": "interrupt", "id": 2,
                                           "run": 1})["interrupted"])
        self.assertKeyboardInterrupt(self.peer.event(1, "finished"))


class ProgramContract:
    """`program` runs: the code is a file of the work folder run as a program, with its
    arguments and exit status (for daemons that run code for real; the scripted double
    runs none)."""

    def run_program(self, code, run_id=1, **program):
        self.peer.send({"action": "execute", "id": run_id, "code": code,
                        "program": program})
        return self.peer.events_until_finished(run_id)

    def test_arguments_output_and_exit_status(self):
        events = self.run_program("import sys\nprint(sys.argv[1:])\n"
                                  "print('no', file=sys.stderr)\nsys.exit(3)\n'echo?'",
                                  args=["a", "b c", ""])
        self.assertEqual((text_of(events), text_of(events, "stderr")),
                         ("['a', 'b c', '']\n", "no\n"))
        self.assertEqual([e[:2] for e in events[-1]["exceptions"]], [["ExitStatus", [3]]])

    def test_exit_0_and_a_last_expression_are_silent(self):
        for code in ("raise SystemExit(0)", "x = 6\nx * 7"):
            events = self.run_program(code)
            self.assertEqual((text_of(events), events[-1]["exceptions"]), ("", []))

    def test_the_file_goes_under_its_name_beside_the_others(self):
        self.peer.request({"action": "upload", "id": 1, "path": "lib/helper.py",
                           "data": b"def shout(): print('HI')\n"})
        events = self.run_program("import helper\nhelper.shout()", run_id=2,
                                  name="lib/solve.py")
        self.assertEqual(text_of(events), "HI\n")
        reply = self.peer.request({"action": "download", "id": 3, "path": "lib/solve.py"})
        self.assertEqual(reply["data"], b"import helper\nhelper.shout()")

    def test_bad_programs_are_400_with_their_id_and_change_nothing(self):
        for run_id, program in enumerate(({"name": "../x.py"}, {"args": [1]},
                                          {"args": ["a\x00"]}, {"name": ""}, "x"), 1):
            reply = self.peer.request({"action": "execute", "id": run_id, "code": "1",
                                       "program": program})
            self.assertEqual(reply["id"], run_id)
            self.assertIn(reply["error"], ("bad-path", "invalid-input"))
        self.assertEqual(text_of(self.peer.run(QUICK, run_id=9)), "hello\n")

    def test_an_interrupt_ends_the_program(self):
        self.peer.send({"action": "execute", "id": 1, "code": LONG, "program": {}})
        self.assertTrue(self.peer.quiet(1, 0.3))
        self.assertTrue(self.peer.request({"action": "interrupt", "id": 2,
                                           "run": 1})["interrupted"])
        finished = self.peer.event(1, "finished")
        self.assertEqual([e[0] for e in finished["exceptions"]], ["Interrupt"])
        self.assertEqual(text_of(self.peer.run(QUICK, run_id=3)), "hello\n")


class RealPeerMixin:
    def setUp(self):
        self.peer = self.start_daemon()
        self.peer.quiet = self._quiet
        self.peer.after_restart = lambda test: answered_after_restart(test, self.peer, 0.2)

    def _quiet(self, run_id, seconds):
        try:
            self.peer.wait_for(lambda m: m.get("id") == run_id, seconds)
        except AssertionError:
            return True
        return False


class HostDaemonContractTests(RealPeerMixin, ReplContract, InputContract,
                              ProgramContract, SynchronousTestCase):
    def start_daemon(self):
        return start_host_daemon(self)[1]


class ContainerDaemonContractTests(RealPeerMixin, ReplContract, InputContract,
                                   ProgramContract, SynchronousTestCase):
    def start_daemon(self):
        return start_container_daemon(self)[1]


class LocalDaemonContractTests(ReplContract, ProgramContract, SynchronousTestCase):
    def setUp(self):
        self.peer = LocalDaemonPeer(short_tempdir(self))


class ScriptedDaemonContractTests(ReplContract, InputContract, SynchronousTestCase):
    def setUp(self):
        self.peer = ScriptedPeer()
