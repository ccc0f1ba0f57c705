"""Tests of the Python 3 REPL daemon (protocol v2), in three layers:

- in-process: `LocalDaemon`, `Session` and `Output` from repl/runner/runner.py, driven
  without sockets, threads or real time;
- on the host: the daemon as a real process behind its real Unix socket, driven the way
  the agent drives it (streaming, input, interrupt, restart, files);
- in the kernel container, hardened with the agent's own SandboxPolicy.
"""

import base64
import importlib.util
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgpack
from twisted.trial.unittest import SynchronousTestCase

from sorna.agent.sandbox import SandboxPolicy
from sorna.testing.processes import rss
from sorna.testing.repl_socket import ReplSocket
from tests.support import require_docker, require_image

RUN_PY = Path(__file__).resolve().parent.parent / "repl" / "runner" / "runner.py"
IMAGE = "sorna/kernel-python3:latest"
TIMEOUT = 10.0


def load_run_py():
    spec = importlib.util.spec_from_file_location("sorna_repl_python3_tests", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


repl = load_run_py()


def short_tempdir(testcase):
    """A temp folder with a short path: socket paths must fit in sun_path (108 bytes)."""
    path = tempfile.mkdtemp(prefix="sorna-repl-")
    testcase.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


def text_of(events, kind="stdout"):
    """The text of `kind`; for stdout, a run's value included, as a front-end that
    does not ask for bundles sees it (sorna.agent.runs.Run.take)."""
    return "".join(data if k == kind else dict(data)["text/plain"] + "\n"
                   for k, data in records_of(events)
                   if k == kind or (kind == "stdout" and k == "result"))


def records_of(events):
    return [r for e in events if e.get("event") in ("output", "finished")
            for r in e.get("records", [])]


def media_of(events):
    """Media records, and the non-text types of displayed objects."""
    return [data for kind, data in records_of(events) if kind == "media"] + [
        pair for kind, data in records_of(events) if kind == "display"
        for pair in data if pair[0] != "text/plain"]


def bundles_of(events, kind):
    return [dict(data) for k, data in records_of(events) if k == kind]


def png_size(data):
    """(width, height) from a PNG's IHDR chunk, checking the signature first."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------- in-process


def answered_after_restart(test, peer, each):
    """Ping until the restarted daemon answers (a ping sent while it rebinds is lost)."""
    for i in range(100):
        peer.send({"action": "ping", "id": f"p{i}"})
        try:
            peer.reply_to(f"p{i}", timeout=each)
            return
        except AssertionError:
            continue
    test.fail("the daemon did not answer after restart")

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class OutputTests(SynchronousTestCase):
    """The 50 ms flush rule, on an injected clock."""

    def setUp(self):
        self.events, self.wakes = [], []
        self.clock = FakeClock()
        self.output = repl.Output(self.events.append, wake=lambda: self.wakes.append(1),
                                  clock=self.clock)

    def test_nothing_pending(self):
        self.output.begin(1)
        self.assertIsNone(self.output.due_in())
        self.output.tick()
        self.assertEqual(self.events, [])

    def test_first_record_lingers_then_records_wait_for_the_interval(self):
        self.output.begin(1)
        self.output.add("stdout", "0")
        self.output.add("stdout", "\n")
        self.assertEqual(self.wakes, [1])  # the I/O thread is woken once
        self.assertAlmostEqual(self.output.due_in(), repl.FLUSH_LINGER)
        self.clock.now += repl.FLUSH_LINGER
        self.output.tick()
        self.assertEqual(self.events, [{"id": 1, "event": "output",
                                        "records": [["stdout", "0\n"]]}])
        self.clock.now += 0.01
        self.output.add("stdout", "1\n")
        self.assertAlmostEqual(self.output.due_in(), repl.FLUSH_INTERVAL - 0.01)
        self.output.tick()
        self.assertEqual(len(self.events), 1)
        self.clock.now += repl.FLUSH_INTERVAL
        self.output.tick()
        self.assertEqual(self.events[-1]["records"], [["stdout", "1\n"]])

    def test_output_within_the_watched_time_wakes_no_one_and_still_goes_out(self):
        self.output.watch()  # the I/O thread hands a run over: it looks within linger
        self.assertAlmostEqual(self.output.due_in(), repl.FLUSH_LINGER)
        self.output.begin(1)
        self.clock.now += repl.FLUSH_LINGER / 2
        self.output.add("stdout", "0")
        self.assertEqual(self.wakes, [])
        self.clock.now += repl.FLUSH_LINGER / 2  # the promised look: not due yet
        self.output.tick()
        self.assertEqual(self.events, [])
        self.assertAlmostEqual(self.output.due_in(), repl.FLUSH_LINGER / 2)
        self.clock.now += repl.FLUSH_LINGER / 2
        self.output.tick()
        self.assertEqual(self.events, [{"id": 1, "event": "output",
                                        "records": [["stdout", "0"]]}])
        self.clock.now += repl.FLUSH_INTERVAL
        self.output.add("stdout", "1")  # past the watched time: the I/O thread is woken
        self.assertEqual(self.wakes, [1])

    def test_a_run_keeps_at_most_its_output_budget(self):
        output = repl.Output(self.events.append, clock=self.clock, max_run=10)
        output.begin("r")
        output.add("stdout", "12345678")
        output.add("stdout", "abcdef")  # only "ab" fits
        output.add("media", ["image/png", "x"])  # no room left: dropped
        output.flush()
        self.assertEqual(self.events[0]["records"], [["stdout", "12345678ab"]])
        self.assertTrue(output.truncated)
        output.begin("s")  # a new run starts with a new budget
        self.assertFalse(output.truncated)
        output.add("stdout", "fresh")
        output.flush()
        self.assertEqual(self.events[-1]["records"], [["stdout", "fresh"]])

    def test_kinds_keep_their_order(self):
        self.output.begin("r")
        for kind, text in (("stdout", "a"), ("stdout", "b"), ("stderr", "c"),
                           ("stdout", "d")):
            self.output.add(kind, text)
        self.output.add("media", ["text/html", "<i>"])
        self.output.add("stdout", "e")
        self.output.flush()
        self.assertEqual(self.events[0]["records"],
                         [["stdout", "ab"], ["stderr", "c"], ["stdout", "d"],
                          ["media", ["text/html", "<i>"]], ["stdout", "e"]])

    def test_emit_after_flushes_first(self):
        self.output.begin(3)
        self.output.add("stderr", "x")
        self.output.emit_after({"id": 3, "event": "waiting-input"})
        self.assertEqual([e["event"] for e in self.events], ["output", "waiting-input"])
        self.assertTrue(self.output.active)

    def test_the_end_carries_the_last_output(self):
        self.output.begin(3)
        self.output.add("stderr", "x")
        self.output.add("stderr", "y")
        self.output.emit_after({"id": 3, "event": "finished"}, end=True)
        self.assertEqual(self.events, [{"id": 3, "event": "finished",
                                        "records": [["stderr", "xy"]]}])
        self.assertFalse(self.output.active)
        self.output.begin(4)
        self.output.emit_after({"id": 4, "event": "finished"}, end=True)
        self.assertEqual(self.events[-1], {"id": 4, "event": "finished"})

    def test_idle_records_wait_for_the_next_run(self):
        self.output.add("stdout", "late")
        self.output.flush()
        self.assertEqual(self.events, [])
        self.output.begin(2)
        self.assertEqual(self.wakes, [1])
        self.output.flush()
        self.assertEqual(self.events[0], {"id": 2, "event": "output",
                                          "records": [["stdout", "late"]]})

    def test_idle_records_are_bounded(self):
        self.output.max_pending = 10
        for _ in range(5):
            self.output.add("stdout", "abcd")
        self.output.begin(1)
        self.output.flush()
        self.assertEqual(self.events[0]["records"], [["stdout", "abcdabcd"]])


class LocalDaemonTests(SynchronousTestCase):
    """The requests and events, in-process (what a fake kernel is built on)."""

    def setUp(self):
        self.work = short_tempdir(self)
        cwd = os.getcwd()
        os.chdir(self.work)  # user code writes relative to the current folder
        self.addCleanup(os.chdir, cwd)
        self.inputs = []
        self.daemon = repl.LocalDaemon(self.work, read_input=self.read_input,
                                       max_file_size=1000)

    def read_input(self, prompt, password):
        self.inputs.append((prompt, password))
        return "typed"

    def run_code(self, code, id=1):
        events = self.daemon.handle({"action": "execute", "id": id, "code": code})
        self.assertTrue(all(e["id"] == id for e in events), events)
        self.assertEqual(events[-1]["event"], "finished", events)
        self.assertEqual(events[-1]["reply"], 200)
        return events

    def request(self, **request):
        [reply] = self.daemon.handle(dict(request, id="r"))
        self.assertEqual(reply["id"], "r")
        return reply

    def test_stdout_and_stderr_in_order(self):
        events = self.run_code("import sys\nprint('a')\nprint('b', file=sys.stderr)\n"
                               "print('c')")
        self.assertEqual(records_of(events),
                         [["stdout", "a\n"], ["stderr", "b\n"], ["stdout", "c\n"]])
        self.assertEqual(events[-1]["exceptions"], [])

    def test_last_expression_and_state(self):
        self.run_code("x = 20\ndef double(n):\n    return 2 * n")
        self.assertEqual(text_of(self.run_code("double(x) + 2")), "42\n")
        self.assertEqual(text_of(self.run_code("None")), "")

    def test_exception_shows_user_frames_only(self):
        events = self.run_code("def f():\n    return 1 / 0\nf()")
        [(name, args, before, tb)] = events[-1]["exceptions"]
        self.assertEqual((name, args, before), ("ZeroDivisionError", ["division by zero"],
                                                False))
        self.assertIn('File "<input>", line 2, in f', tb)
        self.assertNotIn("runner.py", tb); self.assertNotIn("python_driver.py", tb)

    def test_syntax_error(self):
        [(name, _, before, _)] = self.run_code("x = (")[-1]["exceptions"]
        self.assertEqual((name, before), ("SyntaxError", True))

    def test_input_with_prompt(self):
        events = self.run_code("name = input('Who? ')\nprint('hi', name)")
        self.assertEqual(events[0], {"id": 1, "event": "waiting-input",
                                     "prompt": "Who? ", "password": False})
        self.assertEqual(text_of(events), "hi typed\n")
        self.assertEqual(self.inputs, [("Who? ", False)])

    def test_output_comes_before_waiting_input(self):
        events = self.run_code("print('before')\ninput()")
        self.assertEqual([e["event"] for e in events],
                         ["output", "waiting-input", "finished"])
        self.assertEqual(events[0]["records"], [["stdout", "before\n"]])

    def test_getpass_is_a_password(self):
        events = self.run_code("import getpass\nsecret = getpass.getpass()\nlen(secret)")
        self.assertEqual(events[0]["password"], True)
        self.assertEqual(events[0]["prompt"], "Password: ")
        self.assertEqual(text_of(events), "5\n")

    def test_stdin_readline_and_read(self):
        events = self.run_code("import sys\nline = sys.stdin.readline()\n"
                               "rest = sys.stdin.read()\n(line, rest)")
        self.assertEqual(text_of(events), "('typed\\n', 'typed')\n")

    def test_streams_and_builtins_restored(self):
        import builtins
        import getpass
        before = (sys.stdout, sys.stderr, sys.stdin, builtins.input, getpass.getpass)
        self.run_code("import sys\nsys.stdout = None\ndel sys.stderr")
        self.assertEqual((sys.stdout, sys.stderr, sys.stdin, builtins.input,
                          getpass.getpass), before)
        self.assertEqual(text_of(self.run_code("print('back')")), "back\n")

    def test_sorna_display(self):
        events = self.run_code("import sorna_display\nsorna_display.html('<b>hi</b>')\n"
                               "sorna_display.image('image/png', b'\\x89PNG')\n"
                               "sorna_display.image('image/svg+xml', '<svg/>')")
        self.assertEqual(media_of(events), [["text/html", "<b>hi</b>"],
                                            ["image/png", "iVBORw=="],
                                            ["image/svg+xml", "<svg/>"]])

    def test_a_value_and_displayed_objects_are_mime_bundles(self):
        self.run_code(
            "class Rich:\n"
            "    def _repr_html_(self): return '<b>rich</b>'\n"
            "    def _repr_png_(self): return b'\\x89PNG'\n"
            "    def _repr_json_(self): return {'a': [1]}\n"
            "    def __repr__(self): return 'Rich()'\n"
            "class Broken:\n"
            "    def _repr_html_(self): raise ValueError('no')\n"
            "    def __repr__(self): return 'Broken()'")
        events = self.run_code("print('before')\ndisplay(Rich(), 7)\nRich()")
        self.assertEqual(bundles_of(events, "display"), [
            {"text/html": "<b>rich</b>", "image/png": "iVBORw==",
             "application/json": '{"a": [1]}', "text/plain": "Rich()"},
            {"text/plain": "7"}])
        self.assertEqual(bundles_of(events, "result"), [
            {"text/html": "<b>rich</b>", "image/png": "iVBORw==",
             "application/json": '{"a": [1]}', "text/plain": "Rich()"}])
        self.assertEqual([kind for kind, _ in records_of(events)],
                         ["stdout", "display", "display", "result"])
        self.assertEqual(bundles_of(self.run_code("Broken()"), "result"),
                         [{"text/plain": "Broken()"}])
        self.assertEqual(bundles_of(self.run_code("Rich"), "result"),
                         [{"text/plain": "<class '__main__.Rich'>"}],
                         "a class is not shown by its instances' methods")
        events = self.run_code("class Many:\n    def _repr_mimebundle_(self, **kw):\n"
                               "        return {f'x/{i}': 'v' for i in range(40)}\nMany()")
        [bundle] = bundles_of(events, "result")
        self.assertEqual((len(bundle), bundle["text/plain"].startswith("<__main__.Many")),
                         (16, True))
        self.assertNotIn("display", dir(__import__("builtins")))

    def test_ipythons_display_is_the_kernels(self):
        events = self.run_code("from IPython.display import HTML, Markdown, display\n"
                               "display(HTML('<b>x</b>'), Markdown('*m*'))\n"
                               "display({'text/plain': 'raw'}, raw=True)\nHTML('<i>v</i>')")
        self.assertEqual([{k: v for k, v in b.items() if k != "text/plain"}
                          for b in bundles_of(events, "display")],
                         [{"text/html": "<b>x</b>"}, {"text/markdown": "*m*"}, {}])
        self.assertEqual(bundles_of(events, "result")[0]["text/html"], "<i>v</i>")

    def test_display_ids_updates_and_clear_output(self):
        events = self.run_code(
            "from IPython.display import clear_output, display, update_display\n"
            "h = display('0%', display_id=True)\nprint('working')\n"
            "h.update('50%')\nupdate_display('100%', display_id=h.display_id)\n"
            "display('named', display_id='mine')\nclear_output(wait=True)\n"
            "clear_output()\ndisplay('plain')")
        records = records_of(events)
        self.assertEqual([kind for kind, _ in records],
                         ["show", "stdout", "update", "update", "show", "clear", "clear",
                          "display"])
        ids = [data[0] for kind, data in records if kind in ("show", "update")]
        self.assertEqual((len(set(ids[:3])), ids[3]), (1, "mine"))
        self.assertEqual([dict(data[1])["text/plain"] for kind, data in records
                          if kind in ("show", "update")],
                         ["'0%'", "'50%'", "'100%'", "'named'"])
        self.assertEqual([data for kind, data in records if kind == "clear"],
                         [{"wait": True}, {"wait": False}])

    def test_more_of_the_magics_notebooks_use(self):
        path = os.path.join(self.mktemp() + "-written.txt")
        self.assertEqual(text_of(self.run_code(f"%%writefile {path}\nhi there")),
                         f"Writing {path}\n")
        with open(path) as f:
            self.assertEqual(f.read(), "hi there\n")
        self.assertEqual(text_of(self.run_code("%env SORNA_MAGIC=on\n%env SORNA_MAGIC")),
                         "env: SORNA_MAGIC=on\n'on'\n")
        self.addCleanup(os.environ.pop, "SORNA_MAGIC", None)
        self.assertEqual(text_of(self.run_code("whoami = 1\n%who")), "whoami\n")
        self.assertEqual(bundles_of(self.run_code("%%html\n<b>x</b>"), "display"),
                         [{"text/html": "<b>x</b>", "text/plain": "<b>x</b>"}])
        self.assertEqual(text_of(self.run_code("%%bash\necho from bash")), "from bash\n")
        [(name, args, _, _)] = self.run_code("%nope")[-1]["exceptions"]
        self.assertEqual(name, "UsageError")
        self.assertIn("%%writefile", args[0])

    def test_a_cell_ending_with_a_semicolon_shows_no_value(self):
        self.assertEqual(records_of(self.run_code("x = 6\nx * 7;  # quiet")), [])
        self.assertEqual(text_of(self.run_code("'a;'")), "'a;'\n")

    def test_the_magics_notebooks_start_with(self):
        self.assertEqual(records_of(self.run_code("%matplotlib inline\nx = 3")), [])
        self.assertEqual(text_of(self.run_code("!echo hi there\nx")), "hi there\n3\n")
        events = self.run_code("%time y = sum(range(1000))\ny")
        self.assertRegex(text_of(events), r"^CPU times: .*\nWall time: .*\n499500\n$")
        self.assertRegex(text_of(self.run_code("%%time\nz = 5\nz + 1")),
                         r"Wall time: .*\n6\n$")
        self.assertRegex(text_of(self.run_code("%timeit sum(range(10))")),
                         r"per loop \(mean of 5 runs, \d+ loops each\)\n$")
        for code in ("%pip install pandas", "!pip install pandas"):
            self.assertIn("packages come with the kernel's image",
                          text_of(self.run_code(code), "stderr"))
        [(name, args, before, _)] = self.run_code("%load_ext autoreload")[-1]["exceptions"]
        self.assertEqual(name, "UsageError")
        self.assertIn("%load_ext", args[0])
        [(name, _, before, _)] = self.run_code("x = (1,\n")[-1]["exceptions"]
        self.assertEqual((name, before), ("SyntaxError", True),
                         "a syntax error is the code's own, not the rewrite's")
        self.assertEqual(text_of(self.run_code("s = '%not a magic'\ns")),
                         "'%not a magic'\n")
        self.assertNotIn("_sorna_magic", dir(__import__("builtins")))

    def test_files_created_or_changed(self):
        self.run_code("open('old.txt', 'w').write('1')\nopen('same.txt', 'w').write('s')")
        events = self.run_code(
            "import os\nopen('old.txt', 'w').write('22')\n"
            "os.makedirs('sub/deeper')\nopen('sub/deeper/new.csv', 'w').write('x')\n"
            "open('.hidden', 'w').write('h')\nos.mkdir('.cache')\n"
            "open('.cache/c', 'w').write('c')\nos.symlink('old.txt', 'alias')")
        self.assertEqual(events[-1]["files"], ["old.txt", "sub/deeper/new.csv"])

    def test_file_round_trip(self):
        reply = self.request(action="upload", path="in/data.bin", data=b"\x00\xff")
        self.assertEqual(reply, {"id": "r", "reply": 200, "path": "in/data.bin",
                                 "size": 2})
        self.assertEqual(text_of(self.run_code("open('in/data.bin', 'rb').read()")),
                         "b'\\x00\\xff'\n")
        self.assertEqual(self.request(action="download", path="./in//data.bin")["data"],
                         b"\x00\xff")
        listing = self.request(action="list", path="")
        self.assertEqual([(e["name"], e["type"]) for e in listing["entries"]],
                         [("in", "dir")])
        [entry] = self.request(action="list", path="in")["entries"]
        self.assertEqual((entry["name"], entry["type"], entry["size"]),
                         ("data.bin", "file", 2))
        self.assertIsInstance(entry["mtime"], float)

    def test_bad_paths(self):
        self.run_code("import os\nos.symlink('/etc/passwd', 'link')\n"
                      "os.symlink('/etc', 'etc')")
        for path in ("../x", "/etc/passwd", "a\x00b", "link", "etc/passwd", "a/../../x",
                     ""):
            for request in ({"action": "download", "path": path},
                            {"action": "upload", "path": path, "data": b"x"}):
                reply = self.request(**request)
                self.assertEqual((reply["reply"], reply["error"]), (400, "bad-path"),
                                 (path, reply))
        self.assertEqual(self.request(action="list", path="etc")["error"], "bad-path")

    def test_missing_and_too_large(self):
        reply = self.request(action="download", path="nothing.txt")
        self.assertEqual((reply["reply"], reply["error"]), (404, "no-such-file"))
        reply = self.request(action="upload", path="big", data=b"x" * 1001)
        self.assertEqual((reply["reply"], reply["error"]), (413, "too-large"))
        self.assertFalse(os.path.exists(os.path.join(self.work, "big")))
        self.run_code("open('big', 'wb').write(b'x' * 1001)")
        self.assertEqual(self.request(action="download", path="big")["reply"], 413)

    def test_folder_is_not_a_file(self):
        os.mkdir(os.path.join(self.work, "d"))
        self.assertEqual(self.request(action="download", path="d")["error"], "bad-path")
        self.assertEqual(self.request(action="list", path="nope")["reply"], 404)

    def test_idle_answers(self):
        self.assertEqual(self.request(action="interrupt"),
                         {"id": "r", "reply": 200, "interrupted": False})
        reply = self.request(action="input", text="x")
        self.assertEqual((reply["reply"], reply["error"]), (409, "not-waiting-input"))

    def test_restart_forgets_state_keeps_files(self):
        self.run_code("x = 1\nopen('kept.txt', 'w').write('k')")
        self.assertEqual(self.request(action="restart"), {"id": "r", "reply": 200})
        [(name, _, _, _)] = self.run_code("x")[-1]["exceptions"]
        self.assertEqual(name, "NameError")
        self.assertTrue(os.path.exists(os.path.join(self.work, "kept.txt")))

    def test_complete_inspect_and_is_complete_run_none_of_the_users_code(self):
        self.run_code(
            "ran = []\n"
            "class Tricky:\n"
            "    '''A tricky thing.'''\n"
            "    attribute = 1\n"
            "    @property\n"
            "    def prop(self):\n"
            "        ran.append('property')\n"
            "    def __getattr__(self, name):\n"
            "        ran.append(name)\n"
            "    def __dir__(self):\n"
            "        ran.append('dir')\n"
            "        return []\n"
            "    def method(self, a, b=2):\n"
            "        '''Do it.'''\n"
            "tricky = Tricky()\ntricky.own = 3")
        reply = self.request(action="complete", code="tricky.", cursor_pos=7)
        self.assertEqual((reply["reply"], reply["cursor_start"], reply["cursor_end"]),
                         (200, 7, 7))
        self.assertEqual(reply["matches"], ["attribute", "method", "own", "prop"])
        self.assertEqual(self.request(action="complete", code="os.pa")["matches"], [],
                         "os is not imported in the session")
        reply = self.request(action="inspect", code="tricky.method(1, ", cursor_pos=17)
        self.assertTrue(reply["found"])
        [[mime, text]] = reply["data"]
        self.assertIn("Signature: tricky.method(self, a, b=2)", text)
        self.assertIn("Do it.", text)
        reply = self.request(action="inspect", code="tricky.prop")
        self.assertEqual((reply["found"], reply["data"][0][1].splitlines()[0]),
                         (True, "Type:      property"))
        self.assertIn("A tricky thing.", self.request(action="inspect", code="tricky")[
            "data"][0][1])
        self.assertFalse(self.request(action="inspect", code="tricky.missing")["found"])
        for code, status in (("1", "complete"), ("print('''hello", "incomplete"),
                             ("def f(x):\n  x*2", "incomplete"),
                             ("def f(x):\n  return x*2\n\n\n", "complete"),
                             ("import = 7q", "invalid")):
            self.assertEqual(self.request(action="is_complete", code=code)["status"],
                             status, code)
        self.assertEqual(text_of(self.run_code("print(ran)")), "[]\n")

    def test_malformed_payloads(self):
        for payload in (b"\xc1 junk", msgpack.packb([1, 2]),
                        msgpack.packb({"action": "complete", "id": 7, "code": 1}),
                        msgpack.packb({"action": "inspect", "id": 8, "code": "ab",
                                       "cursor_pos": 3}),
                        msgpack.packb({"action": "explode", "id": 3}),
                        msgpack.packb({"action": "execute", "id": 4, "code": 5}),
                        msgpack.packb({"action": "input", "id": 5}),
                        msgpack.packb({"action": "upload", "id": 6, "path": "x",
                                       "data": "text"})):
            [reply] = self.daemon.handle_payload(payload)
            reply = msgpack.unpackb(reply)
            self.assertEqual(reply["reply"], 400, reply)
            self.assertIsInstance(reply["cause"], str)

    def test_session_refuses_a_second_run(self):
        session = repl.Session(lambda event: None, repl.python_driver())
        self.assertTrue(session.reserve())
        self.assertFalse(session.reserve())
        self.assertTrue(session.interrupt(lambda: None))  # pending until code starts
        finished = session.execute(1, "print('never')")
        self.assertEqual(finished["exceptions"][0][0], "KeyboardInterrupt")
        self.assertTrue(session.reserve())


# ---------------------------------------------------------------------------- host

class Peer:
    """A client of the daemon's socket, talking to it the way the agent does.

    Messages that arrive while waiting for another one are kept, so that replies and a
    run's events can be told apart however they interleave.
    """

    def __init__(self, path):
        self.sock = ReplSocket(path)
        self.inbox = []

    def send(self, message):
        self.sock.send(message)

    def wait_for(self, match, timeout=TIMEOUT, what="a message"):
        for i, message in enumerate(self.inbox):
            if match(message):
                return self.inbox.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(min(left, 0.1)):
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; got {self.inbox}")
                continue
            message = self.sock.recv_message()
            if match(message):
                return message
            self.inbox.append(message)

    def reply_to(self, request_id, timeout=TIMEOUT):
        return self.wait_for(lambda m: m.get("id") == request_id and "event" not in m,
                             timeout, f"reply to {request_id!r}")

    def request(self, message, timeout=TIMEOUT):
        self.send(message)
        request_id = message.get("id") if isinstance(message, dict) else None
        return self.reply_to(request_id, timeout)

    def event(self, run_id, kind=None, timeout=TIMEOUT):
        return self.wait_for(lambda m: m.get("id") == run_id and "event" in m
                             and (kind is None or m["event"] == kind), timeout,
                             f"{kind or 'event'} of run {run_id!r}")

    def events_until_finished(self, run_id, timeout=TIMEOUT):
        events = []
        while not events or events[-1]["event"] != "finished":
            events.append(self.event(run_id, timeout=timeout))
        return events

    def run(self, code, run_id=1, timeout=TIMEOUT):
        self.send({"action": "execute", "id": run_id, "code": code})
        return self.events_until_finished(run_id, timeout)

    def close(self):
        self.sock.close()


def start_host_daemon(test):
    """The daemon as a process on the host, in a fresh folder (`test.socket_path`, its
    log at `test.log_path`); killed at cleanup. Returns (process, Peer)."""
    folder = short_tempdir(test)
    work = os.path.join(folder, "work")
    os.mkdir(work)
    test.socket_path = os.path.join(folder, "repl")
    test.log_path = os.path.join(folder, "daemon.log")
    log = open(test.log_path, "wb")
    test.addCleanup(log.close)
    env = dict(os.environ, SORNA_REPL_SOCKET=test.socket_path,
               SORNA_MAX_FILE_SIZE="1000")
    proc = subprocess.Popen([sys.executable, "-I", str(RUN_PY)], env=env, cwd=work,
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        if proc.poll() is None:
            proc.kill()
        proc.wait(TIMEOUT)

    test.addCleanup(stop)
    peer = Peer(test.socket_path)
    test.addCleanup(peer.close)
    return proc, peer


def start_container_daemon(test):
    """The daemon in its kernel container, hardened exactly as the agent runs it
    (`test.ipc_dir` is its ipc folder); removed at cleanup. Returns (container, Peer)."""
    test.client = require_docker()
    require_image(test.client, IMAGE)
    test.ipc_dir = short_tempdir(test)
    os.chown(test.ipc_dir, 1000, 1000)
    kernel_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
    args = SandboxPolicy().container_args(
        "test-repl-python3", kernel_id, "python3", IMAGE, test.ipc_dir,
        {"memory_mb": 256, "exec_timeout": 60})
    container = test.client.containers.run(**args)
    test.addCleanup(container.remove, force=True)
    peer = Peer(f"{test.ipc_dir}/repl")
    test.addCleanup(peer.close)
    test.assertEqual(peer.request({"action": "ping", "id": 0}, timeout=30),
                     {"id": 0, "reply": 0})
    return container, peer


class DaemonTestsMixin:
    """Behaviour checked against the daemon wherever it runs (host or container)."""

    def run_ok(self, code, run_id=1, timeout=TIMEOUT):
        events = self.peer.run(code, run_id, timeout)
        self.assertEqual(events[-1]["reply"], 200)
        return events

    def assertAlive(self):
        self.assertEqual(self.peer.request({"action": "ping", "id": "alive"}),
                         {"id": "alive", "reply": 0})

    def test_output_streams_before_finished(self):
        t0 = time.monotonic()
        self.peer.send({"action": "execute", "id": 1, "code": (
            "import time\nfor i in range(5):\n    print(i)\n    time.sleep(0.2)")})
        first = self.peer.event(1)
        first_at = time.monotonic() - t0
        self.assertEqual(first["event"], "output")
        events = [first] + self.peer.events_until_finished(1)
        finished_at = time.monotonic() - t0
        self.assertEqual(text_of(events), "0\n1\n2\n3\n4\n")
        # Output came in pieces, the first well before the end (no timing thresholds
        # beyond that: speed is measured in bench/, this machine is shared).
        self.assertGreaterEqual(len([e for e in events if e["event"] == "output"]), 4)
        self.assertGreater(finished_at - first_at, 0.4)

    def test_fd_level_output(self):
        events = self.run_ok("import os, subprocess, sys\nprint('py')\n"
                             "os.system('echo hi; echo oops >&2')\n"
                             "print('after')\n"
                             "subprocess.run(['echo', 'sub'])\n"
                             "os.write(1, b'raw\\n')\nprint('end')")
        self.assertEqual(text_of(events), "py\nhi\nafter\nsub\nraw\nend\n")
        self.assertEqual(text_of(events, "stderr"), "oops\n")

    def test_input_round_trip(self):
        self.peer.send({"action": "execute", "id": 1,
                        "code": "name = input('Name: ')\nprint('hello', name)"})
        waiting = self.peer.event(1)
        self.assertEqual(waiting, {"id": 1, "event": "waiting-input", "prompt": "Name: ",
                                   "password": False})
        self.assertEqual(self.peer.request({"action": "input", "id": 2, "text": "Ada"}),
                         {"id": 2, "reply": 200})
        events = self.peer.events_until_finished(1)
        self.assertEqual(text_of(events), "hello Ada\n")
        self.assertEqual(events[-1]["exceptions"], [])

    def test_input_to_its_end(self):
        """`eof`: the text is the rest of stdin, line by line, then end-of-file; the
        next run reads input again."""
        self.peer.send({"action": "execute", "id": 1, "code": (
            "import sys\nfirst = input('n? ')\nrest = sys.stdin.read()\n"
            "try:\n    input('more? ')\nexcept EOFError:\n    print('eof')\n"
            "print(first, rest.split())")})
        self.assertEqual(self.peer.event(1)["prompt"], "n? ")
        self.assertEqual(self.peer.request({"action": "input", "id": 2, "text": "21\na\nb",
                                            "eof": True}), {"id": 2, "reply": 200})
        events = self.peer.events_until_finished(1)
        self.assertEqual(text_of(events), "more? eof\n21 ['a', 'b']\n")
        self.assertEqual(events[-1]["exceptions"], [])
        self._reads_input_again(3)

    def _reads_input_again(self, run_id):
        self.peer.send({"action": "execute", "id": run_id, "code": "print(input())"})
        self.peer.event(run_id, "waiting-input")
        self.peer.request({"action": "input", "id": run_id + 1, "text": "again"})
        self.assertEqual(text_of(self.peer.events_until_finished(run_id)), "again\n")

    def test_interrupt_during_sleep_keeps_state(self):
        self.run_ok("before = 'kept'")
        self.peer.send({"action": "execute", "id": 2, "code": (
            "during = 1\nprint('sleeping', flush=True)\nimport time\ntime.sleep(30)")})
        self.assertEqual(text_of([self.peer.event(2, "output")]), "sleeping\n")
        t0 = time.monotonic()
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 3}),
                         {"id": 3, "reply": 200, "interrupted": True})
        finished = self.peer.event(2, "finished")
        self.assertLess(time.monotonic() - t0, 5)
        [(name, _, before, tb)] = finished["exceptions"]
        self.assertEqual((name, before), ("KeyboardInterrupt", False))
        self.assertIn('File "<input>", line 4', tb)
        self.assertEqual(text_of(self.run_ok("print(before, during)", 4)), "kept 1\n")


class DaemonTests(DaemonTestsMixin, SynchronousTestCase):
    """The daemon as a real process on the host, over its real Unix socket."""

    def setUp(self):
        self.proc, self.peer = start_host_daemon(self)
        self.dir = os.path.dirname(self.socket_path)
        self.work = os.path.join(self.dir, "work")

    def assertInvalid(self, message):
        reply = self.peer.request(message)
        self.assertEqual((reply["reply"], reply["error"]), (400, "invalid-input"), reply)
        self.assertTrue(reply["cause"])
        self.assertAlive()
        return reply

    def test_ping(self):
        self.assertEqual(self.peer.request({"action": "ping", "id": 7}),
                         {"id": 7, "reply": 0})

    def test_print_and_state(self):
        self.run_ok("x = 20\ndef double(n):\n    return 2 * n")
        events = self.run_ok("import sys\nprint(double(x) + 2)\n"
                             "print('err', file=sys.stderr)\n'last'", run_id="b")
        records = [["stdout", "42\n"], ["stderr", "err\n"],
                   ["result", [["text/plain", "'last'"]]]]
        self.assertEqual(records_of(events), records)
        self.assertEqual(events[-1], {"id": "b", "event": "finished", "reply": 200,
                                      "truncated": False, "exceptions": [], "files": [],
                                      "records": records})

    def test_exceptions(self):
        events = self.run_ok("def f():\n    raise ValueError('a', 1, None, [1], 2**70)\n"
                             "f()")
        [(name, args, before, tb)] = events[-1]["exceptions"]
        self.assertEqual((name, args, before),
                         ("ValueError", ["a", 1, None, "[1]", str(2**70)], False))
        self.assertIn('File "<input>", line 2, in f', tb)
        self.assertNotIn("runner.py", tb); self.assertNotIn("python_driver.py", tb)
        [(name, _, before, tb)] = self.run_ok("print('no')\nx = (")[-1]["exceptions"]
        self.assertEqual((name, before), ("SyntaxError", True))
        for code, name in (("raise SystemExit(3)", "SystemExit"),
                           ("raise KeyboardInterrupt", "KeyboardInterrupt")):
            self.assertEqual(self.run_ok(code)[-1]["exceptions"][0][0], name)
        self.assertAlive()

    def test_unencodable_output(self):
        events = self.run_ok("print('\\udcff')\nimport sys\n"
                             "n = sys.stdout.buffer.write(b'ok\\n')")
        self.assertEqual(text_of(events), "\\udcff\nok\n")

    def test_getpass(self):
        self.peer.send({"action": "execute", "id": 1,
                        "code": "import getpass\npw = getpass.getpass('PIN: ')\nlen(pw)"})
        self.assertEqual(self.peer.event(1), {"id": 1, "event": "waiting-input",
                                              "prompt": "PIN: ", "password": True})
        self.peer.request({"action": "input", "id": 2, "text": "1234"})
        self.assertEqual(text_of(self.peer.events_until_finished(1)), "4\n")

    def test_input_when_nothing_waits(self):
        reply = self.peer.request({"action": "input", "id": 1, "text": "x"})
        self.assertEqual((reply["reply"], reply["error"]), (409, "not-waiting-input"))
        self.peer.send({"action": "execute", "id": 2,
                        "code": "print('go', flush=True)\nimport time\ntime.sleep(0.5)"})
        self.peer.event(2, "output")
        reply = self.peer.request({"action": "input", "id": 3, "text": "x"})
        self.assertEqual((reply["reply"], reply["error"]), (409, "not-waiting-input"))
        self.assertEqual(self.peer.events_until_finished(2)[-1]["exceptions"], [])

    def test_interrupt_while_idle(self):
        self.assertEqual(self.peer.request({"action": "interrupt", "id": 1}),
                         {"id": 1, "reply": 200, "interrupted": False})
        self.assertEqual(text_of(self.run_ok("print('fine')")), "fine\n")

    def test_interrupt_waits_out_os_system(self):
        # system() ignores SIGINT while its child runs: the signal is sent again
        # until the code sees it.
        self.peer.send({"action": "execute", "id": 1, "code": (
            "import os\nprint('go', flush=True)\nrc = os.system('sleep 1')\n"
            "print('not reached')")})
        self.peer.event(1, "output")
        self.assertTrue(self.peer.request({"action": "interrupt", "id": 2})["interrupted"])
        events = self.peer.events_until_finished(1)
        self.assertEqual(events[-1]["exceptions"][0][0], "KeyboardInterrupt")
        self.assertNotIn("not reached", text_of(events))

    def test_interrupt_pending_input(self):
        self.peer.send({"action": "execute", "id": 1, "code": "x = input('? ')"})
        self.assertEqual(self.peer.event(1)["event"], "waiting-input")
        self.assertTrue(self.peer.request({"action": "interrupt", "id": 2})["interrupted"])
        [(name, _, _, tb)] = self.peer.event(1, "finished")["exceptions"]
        self.assertEqual(name, "KeyboardInterrupt")
        self.assertNotIn("runner.py", tb); self.assertNotIn("python_driver.py", tb)
        reply = self.peer.request({"action": "input", "id": 3, "text": "late"})
        self.assertEqual(reply["reply"], 409)
        self.assertAlive()

    def test_busy(self):
        self.peer.send({"action": "execute", "id": 1,
                        "code": "print('busy', flush=True)\nimport time\ntime.sleep(0.5)"})
        self.peer.event(1, "output")
        reply = self.peer.request({"action": "execute", "id": 2, "code": "print(2)"})
        self.assertEqual((reply["reply"], reply["error"]), (409, "kernel-busy"))
        self.assertEqual(self.peer.events_until_finished(1)[-1]["exceptions"], [])
        self.assertEqual(text_of(self.run_ok("print(3)", 3)), "3\n")

    def test_requests_are_answered_while_code_runs(self):
        self.peer.send({"action": "execute", "id": 1, "code": (
            "print('start', flush=True)\nimport time\ntime.sleep(1)\n"
            "open('made.txt', 'w').write('m')")})
        self.peer.event(1, "output")
        t0 = time.monotonic()
        self.assertEqual(self.peer.request({"action": "ping", "id": 2})["reply"], 0)
        self.assertEqual(self.peer.request({"action": "upload", "id": 3, "path": "u.txt",
                                            "data": b"up"})["reply"], 200)
        self.assertEqual(self.peer.request({"action": "download", "id": 4,
                                            "path": "u.txt"})["data"], b"up")
        self.assertEqual(self.peer.request({"action": "list", "id": 5})["reply"], 200)
        self.assertLess(time.monotonic() - t0, 0.5)
        finished = self.peer.events_until_finished(1)[-1]
        self.assertEqual(finished["files"], ["made.txt", "u.txt"])

    def test_restart(self):
        self.run_ok("x = 1\nopen('kept.txt', 'w').write('k')")
        old_pid = self.proc.pid
        self.assertEqual(self.peer.request({"action": "restart", "id": 2}),
                         {"id": 2, "reply": 200})
        answered_after_restart(self, self.peer, each=0.2)
        self.assertEqual(self.proc.pid, old_pid)  # exec keeps the process
        self.assertIsNone(self.proc.poll())
        [(name, _, _, _)] = self.run_ok("x", 3)[-1]["exceptions"]
        self.assertEqual(name, "NameError")
        self.assertEqual(text_of(self.run_ok("print(open('kept.txt').read())", 4)), "k\n")
        self.assertEqual(text_of(self.run_ok("import os\nrc = os.system('echo fd')", 5)),
                         "fd\n")

    def test_restart_during_a_run(self):
        self.peer.send({"action": "execute", "id": 1,
                        "code": "x = input('never answered: ')"})
        self.assertEqual(self.peer.event(1)["event"], "waiting-input")
        self.assertEqual(self.peer.request({"action": "restart", "id": 2})["reply"], 200)
        answered_after_restart(self, self.peer, each=0.2)
        self.assertEqual(text_of(self.run_ok("print('fresh')", 3)), "fresh\n")

    def test_files_and_paths(self):
        self.assertEqual(self.peer.request({"action": "upload", "id": 1,
                                            "path": "d/in.txt", "data": b"hello"}),
                         {"id": 1, "reply": 200, "path": "d/in.txt", "size": 5})
        events = self.run_ok("import os\ns = open('d/in.txt').read()\n"
                             "open('out.txt', 'w').write(s.upper())\n"
                             "open('.secret', 'w').write('x')\n"
                             "os.symlink('/etc/passwd', 'link')")
        self.assertEqual(events[-1]["files"], ["out.txt"])
        self.assertEqual(self.peer.request({"action": "download", "id": 2,
                                            "path": "out.txt"})["data"], b"HELLO")
        names = {e["name"]: e["type"] for e in
                 self.peer.request({"action": "list", "id": 3, "path": ""})["entries"]}
        self.assertEqual(names, {"d": "dir", "out.txt": "file", ".secret": "file",
                                 "link": "link"})
        for path in ("../x", "/etc/passwd", "a\x00b", "link"):
            reply = self.peer.request({"action": "download", "id": 4, "path": path})
            self.assertEqual((reply["reply"], reply["error"]), (400, "bad-path"), path)
        reply = self.peer.request({"action": "upload", "id": 5, "path": "big",
                                   "data": b"x" * 1001})
        self.assertEqual((reply["reply"], reply["error"]), (413, "too-large"))
        self.assertEqual(self.peer.request({"action": "download", "id": 6,
                                            "path": "none"})["error"], "no-such-file")

    def test_malformed_messages(self):
        self.assertIsNone(self.assertInvalid(b"\xc1 not msgpack")["id"])
        self.assertInvalid(msgpack.packb(["execute", "print(1)"]))
        reply = self.assertInvalid({"action": "explode", "id": 3})
        self.assertIn("explode", reply["cause"])
        self.assertInvalid({"id": 4})
        for code in (None, 5, b"print(1)"):
            message = {"action": "execute", "id": 5}
            if code is not None:
                message["code"] = code
            self.assertIn("code", self.assertInvalid(message)["cause"])
        self.assertInvalid({"action": "input", "id": 6, "text": 7})
        self.assertInvalid({"action": "upload", "id": 7, "path": "x", "data": "str"})
        self.assertEqual(text_of(self.run_ok("print('still here')")), "still here\n")

    def test_sigterm_exits_cleanly(self):
        self.assertAlive()
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(TIMEOUT), 0)
        self.assertFalse(os.path.exists(self.socket_path))

    def test_sigterm_during_a_run(self):
        self.peer.send({"action": "execute", "id": 1,
                        "code": "print('x', flush=True)\nimport time\ntime.sleep(30)"})
        self.peer.event(1, "output")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(TIMEOUT), 0)

    def test_diagnostics_go_to_the_original_stderr(self):
        self.assertAlive()
        self.run_ok("import os; os.write(2, b'user\\n')")
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(TIMEOUT)
        log = Path(self.log_path).read_text()
        self.assertIn("sorna-repl: python3 runner", log)
        self.assertNotIn("user", log)


# ---------------------------------------------------------------------------- container

class ContainerTests(DaemonTestsMixin, SynchronousTestCase):
    """The daemon in its kernel container, hardened exactly as the agent runs it."""

    def setUp(self):
        self.container, self.peer = start_container_daemon(self)

    def test_refused_frames_cost_the_daemon_no_memory(self):
        # msgpack's C unpacker before 1.2 (the image's is Debian's 1.0.3) leaked about
        # 80 KiB for every frame nested too deep: this many would have taken 80 MiB.
        [pid] = [int(p[1]) for p in self.container.top()["Processes"]
                 if "runner.py" in p[-1] and "docker-init" not in p[-1]]
        deep, bad_utf8 = b"\x91" * 5000 + b"\xc0", b"\x82\xa6action\xa4ping\xa2id\xa3\xff\xfe"
        for rounds in (50, 1000):  # a warm-up, then the measured frames
            before = rss(pid)
            for _ in range(rounds):
                self.peer.send(deep)
                self.peer.send(bad_utf8)
            for _ in range(2 * rounds):
                self.assertEqual(self.peer.reply_to(None)["reply"], 400)
        self.assertLess(rss(pid) - before, 8 << 20)
        self.assertAlive()

    def test_runs_as_uid_1000_in_the_work_folder(self):
        events = self.run_ok("import os\nopen('note.txt', 'w').write('x')\n"
                             "print(os.getuid(), os.getcwd(), os.listdir('.'))\n6*7")
        self.assertEqual(text_of(events), "1000 /home/work ['note.txt']\n42\n")
        self.assertEqual(events[-1]["files"], ["note.txt"])

    def test_matplotlib_figure(self):
        events = self.run_ok(
            "import matplotlib.pyplot as plt\n"
            "fig = plt.figure(figsize=(4, 3), dpi=100)\n"
            "plt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')", timeout=60)
        self.assertEqual(events[-1]["exceptions"], [])
        self.assertEqual([mime for mime, _ in media_of(events)],
                         ["image/png", "image/svg+xml"])
        (_, png), (_, svg) = media_of(events)
        self.assertEqual(png_size(base64.b64decode(png)), (400, 300))
        self.assertIn("<svg", svg)
        # closed once shown: the next run shows nothing again
        self.assertEqual(media_of(self.run_ok("plt.get_fignums()", 2)), [])

    def test_plt_show_and_numpy(self):
        events = self.run_ok(
            "import numpy as np, matplotlib.pyplot as plt\n"
            "for k in (1, 2):\n"
            "    plt.figure(figsize=(2, 1), dpi=50)\n"
            "    plt.plot(np.arange(10) ** k)\n"
            "    plt.show()\n"
            "    print('shown', k)", timeout=60)
        kinds = [r[0] if r[0] != "display" else [mime for mime, _ in r[1]]
                 for r in records_of(events)]
        figure = ["image/png", "image/svg+xml", "text/plain"]  # one record a figure
        self.assertEqual(kinds, [figure, "stdout", figure, "stdout"])
        png = base64.b64decode(media_of(events)[0][1])
        self.assertEqual(png_size(png), (100, 50))

    def test_sorna_display_html(self):
        events = self.run_ok("import sorna_display\nsorna_display.html('<b>hi</b>')")
        self.assertEqual(media_of(events), [["text/html", "<b>hi</b>"]])

    def test_symlink_out_of_the_work_folder_is_refused(self):
        self.run_ok("import os\nos.symlink('/etc/passwd', 'link')")
        for path in ("link", "../../etc/passwd", "/etc/passwd"):
            reply = self.peer.request({"action": "download", "id": 1, "path": path})
            self.assertEqual((reply["reply"], reply["error"]), (400, "bad-path"), path)

    def test_restart_in_the_container(self):
        self.run_ok("x = 1\nopen('kept.txt', 'w').write('k')")
        self.assertEqual(self.peer.request({"action": "restart", "id": 2})["reply"], 200)
        answered_after_restart(self, self.peer, each=0.3)
        events = self.run_ok("print(sorted(os.listdir('.')) if 'os' in dir() else "
                             "open('kept.txt').read())\nx", 3)
        self.assertEqual(text_of(events), "k\n")
        self.assertEqual(events[-1]["exceptions"][0][0], "NameError")

    def test_sigterm_exits_cleanly(self):
        self.container.stop(timeout=10)
        self.assertEqual(self.container.wait(timeout=30)["StatusCode"], 0)
