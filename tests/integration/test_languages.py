"""One conformance suite for every language, through the real agent, manager and Docker
engine: the same cases, with each language's own programs (languages.py).

Cases that do not apply, and why:
- `test_state` checks that state is kept in interpreted languages and in the snippets
  of compiled ones that have a snippet driver (java), and that each program of a
  compiled one runs on its own (a static counter starts again);
- `test_value` (a last expression's value is shown): languages whose REPL shows it
  (python3, nodejs, ruby, r, lua); php, perl, bash and compiled languages print only
  what the code prints;
- `test_empty_program`: empty code runs and does nothing where a session runs it; in
  compiled languages without snippets it is no program at all (no `main`): a compile
  error that never started, or what the folder's `empty_error` names;
- `test_interrupt`: the state is kept after an interrupt in interpreted languages;
  a compiled program is stopped (it has no state to keep);
- `test_plot`: r only (python3's matplotlib is covered by the python3 tests);
- `test_hostile_*` (fork bomb, memory, runaway output, disk fill): c, nodejs and bash,
  as the sandbox holds for any program (tests/integration/test_hostile.py has them all
  in Python).
"""

import atexit
import base64
import time
import uuid

from twisted.python import log

from sorna.testing.processes import AgentProcess, ManagerProcess, wait_for_agent
from tests.integration import ClusterTestCase
from sorna.proto.errors import SornaError
from tests.integration.languages import (
    AS_PROGRAM, COMPILED, COMPILED_WITH_SNIPPETS, HOSTILE, LANGUAGES, PROGRAM_ARGS, PROGRAM_STDOUT, PROGRAMS,
    STATEFUL,
)

CAP = 1 << 20  # the agent's --max-output


class LanguageCase:
    """Mixed into a ClusterTestCase per language: a manager and an agent per language, shared by its tests (each with a kernel of
    its own): started by the first test, stopped after the last one, which checks that
    both stop cleanly and leave no container behind (or at exit, when only some of the
    tests ran)."""

    lang = None
    _shared = {}  # lang -> [manager, agent, tests left]

    def setUp(self):
        ClusterTestCase.setUp(self)
        shared = LanguageCase._shared.get(self.lang)
        if shared is None:
            manager = ManagerProcess(heartbeat_interval=0.5).start()
            agent = AgentProcess(manager.addr, agent_id=f"lang-{uuid.uuid4().hex[:8]}",
                                 max_kernels=4, heartbeat_interval=0.5,
                                 warm_pool=f"{self.lang}=1").start()
            wait_for_agent(manager.addr, agent.agent_id, timeout=20)
            tests = len([n for n in dir(type(self)) if n.startswith("test_")])
            shared = LanguageCase._shared[self.lang] = [manager, agent, tests]
        self.manager, self.agent = shared[0], shared[1]
        self.addCleanup(self._one_test_less)
        self.front = self.client(self.manager)
        self.programs = PROGRAMS[self.lang]
        self.kernel_id = self.front.create(self.lang)["kernel_id"]
        self.destroy_later(self.front, self.kernel_id)

    def _one_test_less(self):
        shared = LanguageCase._shared[self.lang]
        shared[2] -= 1
        if shared[2] == 0:
            del LanguageCase._shared[self.lang]
            for process in (self.agent, self.manager):
                self._stop_cleanly(process)
                process.remove_workdir()
            self._assert_no_containers(self.agent.agent_id)

    def code(self, case, **values):
        code = self.programs[case]
        for name, value in values.items():
            code = code.replace(name, str(value))
        return code

    def run_code(self, case, kernel_id=None, **fields):
        return self.front.run_code(kernel_id or self.kernel_id, self.code(case), **fields)

    def result(self, case, **values):
        reply = self.front.run_code(self.kernel_id, self.code(case, **values))
        self.assertEqual(reply["status"], "finished", reply)
        return reply["result"]

    def ok(self, case, **values):
        result = self.result(case, **values)
        self.assertEqual(result["exceptions"], [], result)
        return result

    # -- the cases

    def test_a_program_with_arguments_a_second_file_and_its_exit_status(self):
        program, others = AS_PROGRAM[self.lang]
        for name, content in others:
            self.front.upload(self.kernel_id, name, content.encode())
        reply = self.front.run_code(self.kernel_id, program,
                                    program={"args": PROGRAM_ARGS})
        result = reply["result"]
        self.assertEqual((result["stdout"], result["stderr"]), (PROGRAM_STDOUT, "warn\n"),
                         result)
        self.assertEqual([e[:2] for e in result["exceptions"]], [["ExitStatus", [3]]])

    def test_completion_finds_the_sessions_names_and_the_languages(self):
        """Languages with a session complete from it (between runs); compiled ones
        without keep none, and answer no matches."""
        if self.lang in STATEFUL:
            self.ok("set")
        for token, expected in self.programs.get("complete", [("ma", None)]):
            reply = self.front.complete(self.kernel_id, token)
            completed = {token[:reply["cursor_start"]] + match for match in reply["matches"]}
            if expected is None:
                self.assertEqual(reply["matches"], [], reply)
            else:
                self.assertIn(expected, completed, reply)
                self.assertEqual(reply["cursor_end"], len(token))

    def test_inspection_tells_what_a_name_is(self):
        """Languages with a session inspect its names and their own (between runs);
        compiled ones without find nothing."""
        if self.lang in STATEFUL:
            self.ok("set")
        for name, told in self.programs.get("inspect", [("main", None)]):
            reply = self.front.inspect(self.kernel_id, name)
            if told is None:
                self.assertEqual(reply, {"found": False, "data": {}})
            else:
                self.assertTrue(reply["found"], reply)
                self.assertIn(told, reply["data"]["text/plain"])

    def test_hello(self):
        self.assertEqual(self.ok("hello")["stdout"], "hello, world\n")

    def test_state(self):
        """A session keeps what a run defined; a compiled program starts afresh (a
        compiled language with snippets does both)."""
        if self.lang in COMPILED:
            self.assertEqual(self.ok("counter")["stdout"], "1\n")
            self.assertEqual(self.ok("counter")["stdout"], "1\n")
        if self.lang in STATEFUL:
            self.ok("set")
            self.assertEqual(self.ok("get")["stdout"], "42\n")

    def test_streams_apart_and_in_order(self):
        result = self.ok("streams")
        self.assertEqual((result["stdout"], result["stderr"]), ("out1\nout2\n", "err1\n"))

    def test_output_streams_as_it_comes(self):
        seen = []
        started = time.monotonic()
        reply = self.front.run_code(self.kernel_id, self.code("slow"), on_output=lambda
                                    part: seen.append((time.monotonic(), part)))
        ended = time.monotonic()
        self.assertEqual(reply["result"]["exceptions"], [])
        first = [t for t, part in seen if "first" in part["result"]["stdout"]]
        self.assertTrue(first, f"no partial reply with the first line: {seen}")
        log.msg(f"measured: {self.lang} first line after {first[0] - started:.2f} s, "
                f"the end after {ended - started:.2f} s")
        self.assertGreater(ended - first[0], 0.7, "the first line came with the end")

    def test_runtime_error(self):
        result = self.result("error")
        [(name, args, before, trace)] = result["exceptions"]
        self.assertEqual((name, before), (self.programs["error_name"], False), result)
        self.assertIn("boom", " ".join(map(str, args)) + trace + result["stderr"])

    def test_syntax_error(self):
        [(name, args, before, trace)] = self.result("syntax")["exceptions"]
        self.assertTrue(before, (name, args, trace))

    def test_utf8_round_trip(self):
        self.assertEqual(self.ok("utf8")["stdout"], "안녕 😀\n")

    def test_a_mib_of_output_intact_and_the_cap_beyond(self):
        result = self.ok("output", N=CAP)
        self.assertEqual((len(result["stdout"]), result["truncated"]), (CAP, False),
                         f"stderr {result['stderr'][:500]!r}, the end of stdout "
                         f"{result['stdout'][-80:]!r}")
        self.assertEqual(set(result["stdout"]), {"x"})
        result = self.result("output", N=2 * CAP)
        self.assertEqual((len(result["stdout"]), result["truncated"]), (CAP, True))

    def test_input(self):
        reply = self.run_code("ask")
        self.assertEqual(reply["status"], "waiting-input", reply)
        if self.lang != "python3":  # its prompt is input()'s; the others print theirs
            self.assertIn("Name?", reply["result"]["stdout"])
        reply = self.front.send_input(self.kernel_id, "Ada")
        self.assertEqual(reply["status"], "finished", reply)
        self.assertIn("hello Ada", reply["result"]["stdout"])
        self.assertEqual(reply["result"]["exceptions"], [])

    def test_a_snippet_reads_input(self):
        """A compiled language's snippet (not a whole program) reads input as a program
        does (every folder with snippets has the sample, or says why not; test_input
        covers the rest)."""
        if "snippet_ask" not in self.programs:
            if self.lang in COMPILED_WITH_SNIPPETS:
                self.assertIn("snippet_ask", self.programs.get("not_applicable", {}))
            return
        self.ok("set")
        reply = self.run_code("snippet_ask")
        self.assertEqual(reply["status"], "waiting-input", reply)
        reply = self.front.send_input(self.kernel_id, "2")
        self.assertEqual(reply["status"], "finished", reply)
        self.assertEqual(reply["result"]["stdout"].split("\n")[-2], "42", reply)

    def test_standard_input_to_its_end(self):
        """`mode: input` with `eof: true`: the text, then end-of-file (as Piston's
        stdin); the kernel reads input again in later runs."""
        reply = self.run_code("count")
        self.assertEqual(reply["status"], "waiting-input", reply)
        reply = self.front.send_input(self.kernel_id, "a\nb\nc\n", eof=True)
        self.assertEqual(reply["status"], "finished", reply)
        self.assertEqual(reply["result"]["exceptions"], [], reply)
        self.assertEqual(reply["result"]["stdout"].split("\n")[-2], "3", reply)
        if self.lang == "python3" or self.lang in COMPILED:
            self.test_input()  # (interpreters whose stdio keeps end-of-file may not)

    def test_interrupt(self):
        if self.lang in STATEFUL:
            self.ok("set")
        reply = self.run_code("loop", mode="query", wait=1)
        self.assertEqual(reply["status"], "continued", reply)
        self.assertEqual(self.front.interrupt(self.kernel_id), {"interrupted": True})
        reply = self.front.continue_run(self.kernel_id, wait=20)
        self.assertEqual(reply["status"], "finished", reply)
        self.assertTrue(reply["result"]["exceptions"], reply)
        if self.lang in STATEFUL:
            self.assertEqual(self.ok("get")["stdout"], "42\n")  # the state is kept
        else:
            self.assertEqual(self.ok("hello")["stdout"], "hello, world\n")

    def test_restart_clears_state(self):
        if self.lang in STATEFUL:
            self.ok("set")
        self.front.restart(self.kernel_id)
        if self.lang in STATEFUL:
            result = self.result("get")
            self.assertNotEqual(result["stdout"], "42\n", result)
        self.assertEqual(self.ok("hello")["stdout"], "hello, world\n")

    def test_a_nonzero_exit_is_reported_and_the_kernel_goes_on(self):
        result = self.result("exit")
        self.assertTrue(result["exceptions"], result)
        # The status is in the exception's arguments (its value, or the sentence that
        # says the session ended with it), not only somewhere in a trace.
        self.assertRegex(" ".join(str(arg) for e in result["exceptions"] for arg in e[1]),
                         r"\b3\b", result)
        self.assertEqual(self.ok("hello")["stdout"], "hello, world\n")

    def test_empty_program(self):
        """Empty code: an interpreter runs it and does nothing; a compiled language has
        no main program (its folder's `empty_error` says what that gives)."""
        result = self.front.run_code(self.kernel_id, "")["result"]
        expected = LANGUAGES[self.lang].samples["empty_error"]
        if not expected:
            self.assertEqual((result["exceptions"], result["stdout"]), ([], ""))
        else:
            [(name, _, before, _)] = result["exceptions"]
            self.assertEqual((name, before), (expected, expected == "CompileError"))

    def test_files_written_in_the_work_folder(self):
        self.assertEqual(self.ok("file")["files"], ["out.txt"])

    def test_the_tracing_filter_is_on(self):
        # The engine's seccomp profile is one filter; the runner stacks its own on it.
        self.assertEqual(self.ok("seccomp")["stdout"].strip(), "2")

    def test_value(self):
        if "value" not in self.programs:
            self.assertEqual(self.ok("hello")["stdout"], "hello, world\n")
            return
        self.assertIn(self.programs["value_shown"], self.ok("value")["stdout"])


def test_plot_becomes_a_png(self):
    result = self.front.execute(self.kernel_id, "plot(1:10, main = 'Sorna')")
    self.assertEqual(result["exceptions"], [])
    [(mime, data)] = result["media"]
    self.assertEqual(mime, "image/png")
    self.assertEqual(base64.b64decode(data)[:8], b"\x89PNG\r\n\x1a\n")


def hostile_case(attack):
    """The program is limited (an exception, a cut output, a timeout or the kernel's
    death with a cause), the cluster goes on, and a fresh kernel of the language works."""

    def test(self):
        kernel = self.front.create(self.lang, limits={"exec_timeout": 3})["kernel_id"]
        self.destroy_later(self.front, kernel)
        code = HOSTILE[self.lang][attack]
        try:
            reply = self.front.run_code(kernel, code)
        except SornaError as e:
            self.assertIn(e.code, (404, 504), e)
            self.assertGreater(len(e.cause.split()), 2, e.cause)
        else:
            result = reply["result"]
            self.assertTrue(result["exceptions"] or result["truncated"], result)
        log.msg(f"measured: {self.lang} {attack}: limited")
        fresh = self.front.create(self.lang)["kernel_id"]
        self.destroy_later(self.front, fresh)
        self.assertEqual(self.front.run_code(fresh, self.programs["hello"])["result"][
            "stdout"], "hello, world\n")
        self.assertEqual(self.front.ping("still there"), "still there")

    test.__name__ = f"test_hostile_{attack}"
    return test


def whole_file_case(code, stdout):
    """A file as people write it, sent as a cell unchanged (PHP's `<?php` and inline
    text; a Java class not named Main)."""
    def test(self):
        self.assertEqual(self.front.run_code(self.kernel_id, code)["result"]["stdout"],
                         stdout)
    return test


EXTRA = {
    "r": {"test_plot_becomes_a_png": test_plot_becomes_a_png},
    "php": {"test_a_whole_file_with_inline_text": whole_file_case(
        "<?php\n$x = 2;\n?>\nText <?= $x * 21 ?>\n\n<?php echo \"end\\n\";\n",
        "Text 42\nend\n")},
    "java": {"test_a_public_class_of_any_name": whole_file_case(
        "import java.util.*;\n\n/** A greeting. */\npublic final class HelloWorld {\n"
        "    public static void main(String[] args) {\n"
        "        System.out.println(\"hello \" + args.length);\n    }\n}\n"
        "class Other {}\n", "hello 0\n")},
}
for _lang, _attacks in HOSTILE.items():
    for _attack in _attacks:
        EXTRA.setdefault(_lang, {})[f"test_hostile_{_attack}"] = hostile_case(_attack)


def _language_classes():
    for lang in sorted(PROGRAMS):
        name = lang.capitalize() + "Tests"
        body = dict(EXTRA.get(lang, {}), lang=lang, __module__=__name__)
        yield name, type(name, (LanguageCase, ClusterTestCase), body)


for _name, _cls in _language_classes():
    globals()[_name] = _cls
del _name, _cls


@atexit.register
def _stop_shared():
    """For runs of only some tests: what the last test would have stopped."""
    for manager, agent, _ in LanguageCase._shared.values():
        for process in (agent, manager):
            process.stop()
            process.remove_workdir()
    LanguageCase._shared.clear()
