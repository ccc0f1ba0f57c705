"""The runner's parts on their own (repl/runner/repl_*.py): wire rules, fitting a run's
end into its budget, the work folder's store, the one dispatch the daemon and its
in-process twin share; and the limits both sides of the trust boundary keep, pinned
to each other. (tests/test_repl_python3.py drives the whole runner; tests/
test_repl_contract.py holds the daemon and its doubles to one protocol.)"""

import os

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from sorna.agent import assists, runs, tap
from sorna.proto import actions
from sorna.testing.cluster import load_python_repl

load_python_repl()  # puts the runner's folder on the path, as in a kernel
import repl_daemon  # noqa: E402
import repl_dispatch  # noqa: E402
import repl_files  # noqa: E402
import repl_local  # noqa: E402
import repl_output  # noqa: E402
import relay_repl  # noqa: E402
import repl_wire  # noqa: E402
from repl_wire import RequestError  # noqa: E402


class TrustBoundaryTests(SynchronousTestCase):
    """What the runner may send is what the agent takes: one number on each side."""

    def test_the_limits_agree(self):
        self.assertEqual(repl_wire.END_ROOM, runs.END_ROOM)
        self.assertEqual(repl_wire.MAX_NAME, runs.MAX_NAME)
        self.assertEqual(repl_wire.MAX_FILE_SIZE, actions.MAX_FILE_SIZE)
        self.assertEqual(repl_wire.MAX_ARGS, actions.MAX_PROGRAM_ARGS)
        self.assertEqual(repl_wire.MAX_ARGS_SIZE, actions.MAX_PROGRAM_ARGS_SIZE)
        self.assertEqual(repl_wire.MAX_MATCHES, assists.MAX_MATCHES)
        self.assertEqual(repl_output.MAX_RUN_OUTPUT, tap.Options()["max-output"])

    def test_one_definition_in_the_runner(self):
        folder = os.path.dirname(repl_wire.__file__)
        for name in ("END_ROOM", "MAX_NAME", "MAX_FILE_SIZE", "def sendable", "def clip"):
            defined = [f for f in sorted(os.listdir(folder)) if f.endswith(".py") and any(
                line.startswith(name + (" = " if name.isupper() else "("))
                for line in open(os.path.join(folder, f)))]
            self.assertEqual(defined, ["repl_wire.py"], name)


class WireTests(SynchronousTestCase):
    def refused(self, request, words, packed=None):
        payload = packed if packed is not None else msgpack.packb(request)
        e = self.assertRaises(RequestError, repl_wire.parse_request, payload)
        self.assertEqual(e.code, 400)
        self.assertIn(words, e.cause)
        return e

    def test_what_is_not_a_request(self):
        self.refused(None, "not a valid msgpack document", packed=b"\xc1")
        self.refused([1, 2], "must be a msgpack map, not a list")
        self.refused({"action": "fly"}, "Unknown action 'fly'")

    def test_fields_are_checked_and_the_id_kept(self):
        e = self.refused({"id": 7, "action": "execute", "code": 1}, "'code' must be a string")
        self.assertEqual(e.request_id, 7)
        self.refused({"action": "input", "text": "x", "eof": "yes"}, "'eof' must be")
        self.refused({"action": "complete", "code": "ab", "cursor_pos": 3},
                     "'cursor_pos' must be a position")
        self.refused({"action": "execute", "code": "", "program": {"args": ["a\x00"]}},
                     "without NUL")
        self.refused({"action": "execute", "code": "", "program": {
            "args": ["x" * 1024] * 300}}, "take more than")

    def test_an_unencodable_reply_becomes_a_500_with_its_id(self):
        reply = msgpack.unpackb(repl_wire.pack({"id": "r1", "reply": 200, "x": object()}))
        self.assertEqual((reply["id"], reply["reply"], reply["error"]),
                         ("r1", 500, "internal-error"))

    def test_sendable_text(self):
        self.assertEqual(repl_wire.sendable("a\udcffb"), "a\\udcffb")
        self.assertEqual(repl_wire.clip("abcdef", 4), ("abcd", True))


class FittingTests(SynchronousTestCase):
    def test_names_then_arguments_then_tracebacks(self):
        exceptions = [["E" * 300, ["a" * 50], False, "t" * 100]]
        fitted, used, cut = repl_output.fit_exceptions(exceptions, 320)
        [(name, args, _, tb)] = fitted
        self.assertEqual((len(name), len(args[0]), len(tb), used, cut),
                         (repl_wire.MAX_NAME, 50, 14, 320, True))

    def test_paths_are_kept_whole(self):
        self.assertEqual(repl_output.fit_paths(["ab", "cd", "ef"], 5), (["ab", "cd"], True))


class FileStoreTests(SynchronousTestCase):
    def setUp(self):
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.files = repl_files.FileStore(self.root, max_size=10)

    def test_paths_that_leave_the_folder_are_refused(self):
        os.symlink("/etc", os.path.join(self.root, "out"))
        for path, words in (("/etc/passwd", "not absolute"), ("a/../../x", "'..'"),
                            ("a\x00b", "NUL"), ("out/passwd", "leads outside"),
                            ("", "the work folder itself")):
            e = self.assertRaises(RequestError, self.files.download, path)
            self.assertIn(words, e.cause)

    def test_round_trip_and_size_limit(self):
        self.assertEqual(self.files.upload("d/a.txt", b"hi")["path"], "d/a.txt")
        self.assertEqual(self.files.download("d/a.txt")["data"], b"hi")
        self.assertEqual(self.assertRaises(RequestError, self.files.upload, "b",
                                           b"x" * 11).code, 413)

    def test_the_walk_skips_hidden_files_and_is_bounded(self):
        for name in ("a", ".hidden", "b"):
            open(os.path.join(self.root, name), "w").close()
        self.assertEqual(sorted(repl_files.walk_files(self.root)), ["a", "b"])
        self.assertEqual(len(repl_files.walk_files(self.root, limit=1)), 1)


class _Session:
    """What the dispatch asks of a session."""

    def __init__(self, free=True):
        self.free, self.released, self.signalled = free, False, None
        self.program_driver = self.driver = None

    def reserve(self, run_id):
        return self.free

    def release(self):
        self.released = True

    def interrupt(self, signal_main, run_id):
        self.signalled = (signal_main, run_id)
        return True

    def provide_input(self, text, eof):
        return False


class DispatchTests(SynchronousTestCase):
    def test_the_daemon_and_its_twin_share_it(self):
        self.assertIs(repl_daemon.answer, repl_dispatch.answer)
        self.assertIs(repl_local.answer, repl_dispatch.answer)

    def test_an_execute_starts_a_run_and_has_no_reply(self):
        started = []
        reply = repl_dispatch.answer({"id": 1, "action": "execute", "code": "x"},
                                     _Session(), None, lambda *run: started.append(run),
                                     None)
        self.assertIsNone(reply)
        self.assertEqual(started, [(1, "x", None)])

    def test_a_busy_kernel_and_a_refused_program_start_nothing(self):
        e = self.assertRaises(RequestError, repl_dispatch.answer,
                              {"id": 1, "action": "execute", "code": "x"},
                              _Session(free=False), None, self.fail, None)
        self.assertEqual(e.code, 409)
        session = _Session()
        e = self.assertRaises(RequestError, repl_dispatch.answer,
                              {"id": 1, "action": "execute", "code": "x",
                               "program": {}}, session, None, self.fail, None)
        self.assertEqual(e.error, "programs-unsupported")
        self.assertTrue(session.released)

    def test_interrupt_and_input(self):
        session, signal_main = _Session(), object()
        reply = repl_dispatch.answer({"id": 2, "action": "interrupt", "run": 1}, session,
                                     None, self.fail, signal_main)
        self.assertEqual(reply, {"id": 2, "reply": 200, "interrupted": True})
        self.assertEqual(session.signalled, (signal_main, 1))
        e = self.assertRaises(RequestError, repl_dispatch.answer,
                              {"id": 3, "action": "input", "text": "x"}, session, None,
                              self.fail, None)
        self.assertEqual(e.code, 409)


class CFamilyChunkTests(SynchronousTestCase):
    """The pieces a relayed REPL (clang-repl) is fed, a line each."""

    def test_statements_definitions_and_preprocessor_lines(self):
        code = ('#include <stdio.h>\nint x = 41; // the answer, less one\n'
                'int f(int a) {\n  return a * 2; /* { not a bracket */\n}\n'
                'printf("%d }\\n", f(x));\n')
        self.assertEqual(relay_repl.chunks(code), [
            "#include <stdio.h>", "int x = 41;", "int f(int a) { return a * 2; }",
            'printf("%d }\\n", f(x));'])

    def test_open_brackets_are_counted_outside_strings_only(self):
        self.assertEqual(relay_repl.depth(relay_repl.without_comments(
            'f("(", \'{\', // )\n')), 1)
        self.assertEqual(relay_repl.depth("if (x) { y(); }"), 0)
