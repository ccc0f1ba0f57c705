"""The gateway's logic on a FakeCluster and a Clock: Jupyter messages of a run, the queue
bound, Piston's answers, the routes' token checks and errors (with in-memory requests)."""

import io
import json
import os
import platform
import tempfile

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from sorna.gateway import tokens
from sorna.gateway.backpressure import TokenBucket
from sorna.gateway.channels import (
    MAX_QUEUED_RUNS, REQUEST_BURST, REQUESTS_PER_SECOND, ChannelsApi, parse_message,
)
from sorna.gateway.dashboard import DashboardApi
from sorna.gateway.jupyter import JupyterApi, Kernels
from sorna.gateway.piston import PistonApi
from tests.support import interleaves
from sorna.gateway.tenants import Tenant
from sorna.ratelog import RateLimitedLog
from sorna.gateway.web import Api
from sorna.testing.cluster import FakeCluster
from sorna.testing.gateway import jupyter_message


ALICE = Tenant("alice", "a" * 64)
BOB = Tenant("bob", "b" * 64)
OPS = Tenant("ops", "c" * 64, admin=True)


class FakeConnection:
    """What ChannelsApi needs of a WebSocket: its token and kernel, its pending inputs,
    its request budget, a send."""

    def __init__(self, kernel, tenant=ALICE, clock=None):
        self.kernel = kernel
        self.tenant = tenant
        self.inputs = {}
        self.requests, self.refused = (TokenBucket(clock or task.Clock(),
                                                   REQUESTS_PER_SECOND, REQUEST_BURST)
                                       for _ in range(2))
        self.refusals = RateLimitedLog(Logger(), clock or task.Clock())
        self.sent = []
        self.closed = None

    def send_payload(self, data):
        self.sent.append(json.loads(data))

    def send_message(self, message):
        self.sent.append(json.loads(json.dumps(message)))

    def sendClose(self, code, reason):
        self.closed = (code, reason)


class ClusterCase(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock)
        self.cluster.start()
        self.client = self.cluster.client()
        self.kernels = Kernels(self.client, self.clock)

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())


class ChannelsTests(ClusterCase):
    def setUp(self):
        super().setUp()
        self.api = ChannelsApi(self.kernels, self.clock)
        self.kernel = self.successResultOf(self.kernels.start("python3", ALICE))
        self.conn = FakeConnection(self.kernel, clock=self.clock)
        self.api.open(self.conn)

    def execute(self, code, **content):
        request = jupyter_message("execute_request", dict({"code": code}, **content))
        self.api.handle(self.conn, parse_message(json.dumps(request)), "execute_request")
        return request

    def about(self, request):
        return [(m["channel"], m["msg_type"], m["content"]) for m in self.conn.sent
                if m["parent_header"].get("msg_id") == request["header"]["msg_id"]]

    def test_a_run_is_busy_input_streams_reply_idle(self):
        request = self.execute("print(6 * 7)")
        self.assertEqual(self.about(request), [
            ("iopub", "status", {"execution_state": "busy"}),
            ("iopub", "execute_input", {"code": "print(6 * 7)", "execution_count": 1}),
            ("iopub", "stream", {"name": "stdout", "text": "42\n"}),
            ("shell", "execute_reply", {"status": "ok", "execution_count": 1,
                                        "user_expressions": {}, "payload": []}),
            ("iopub", "status", {"execution_state": "idle"}),
        ])
        for message in self.conn.sent:
            self.assertEqual(message["header"]["session"], self.kernel.id)
            self.assertEqual(message["msg_id"], message["header"]["msg_id"])

    def test_a_value_is_an_execute_result_and_display_shows_every_type_at_once(self):
        self.execute("class Rich:\n    def _repr_html_(self): return '<b>r</b>'\n"
                     "    def _repr_json_(self): return {'a': 1}\n"
                     "    def __repr__(self): return 'Rich()'")
        request = self.execute("display(Rich())\n6 * 7")
        shown = [(t, c) for _, t, c in self.about(request)
                 if t in ("display_data", "execute_result", "stream")]
        self.assertEqual(shown, [
            ("display_data", {"data": {"text/html": "<b>r</b>", "application/json": {"a": 1},
                                       "text/plain": "Rich()"},
                              "metadata": {}, "transient": {}}),
            ("execute_result", {"execution_count": 2, "data": {"text/plain": "42"},
                                "metadata": {}})])
        silent = self.execute("6 * 7", silent=True)
        self.assertNotIn("execute_result", [t for _, t, _ in self.about(silent)])

    def test_outputs_in_order_with_updates_and_clear_output(self):
        request = self.execute(
            "from IPython.display import clear_output, display\n"
            "print('a')\nh = display('0%', display_id='p')\nprint('b')\n"
            "h.update('100%')\nclear_output(wait=True)\nprint('c')")
        shown = [(t, c) for _, t, c in self.about(request)
                 if t not in ("status", "execute_input", "execute_reply")]
        self.assertEqual(shown, [
            ("stream", {"name": "stdout", "text": "a\n"}),
            ("display_data", {"data": {"text/plain": "'0%'"}, "metadata": {},
                              "transient": {"display_id": "p"}}),
            ("stream", {"name": "stdout", "text": "b\n"}),
            ("update_display_data", {"data": {"text/plain": "'100%'"}, "metadata": {},
                                     "transient": {"display_id": "p"}}),
            ("clear_output", {"wait": True}),
            ("stream", {"name": "stdout", "text": "c\n"})])

    def test_user_expressions_are_evaluated_after_a_cell_that_succeeds(self):
        request = self.execute("x = 6", user_expressions={
            "double": "x * 2", "broken": "1/0", "bad": 7, "quiet": "y = 1"})
        [reply] = [c for _, t, c in self.about(request) if t == "execute_reply"]
        values = reply["user_expressions"]
        self.assertEqual(values["double"], {"status": "ok", "data": {"text/plain": "12"},
                                            "metadata": {}})
        self.assertEqual((values["broken"]["status"], values["broken"]["ename"]),
                         ("error", "ZeroDivisionError"))
        self.assertEqual((values["bad"]["ename"], values["quiet"]["data"]),
                         ("BadRequest", {}))
        failed = self.execute("1/0", user_expressions={"double": "x * 2"})
        [reply] = [c for _, t, c in self.about(failed) if t == "execute_reply"]
        self.assertEqual(reply["user_expressions"], {})

    def test_completion_inspection_and_is_complete_come_from_the_kernel(self):
        self.execute("value = 5\ndef halve(n):\n    'Half of n.'\n    return n / 2")

        def ask(msg_type, **content):
            request = jupyter_message(msg_type, content)
            self.api.handle(self.conn, parse_message(json.dumps(request)), msg_type)
            [(_, _, reply)] = self.about(request)
            return reply

        self.assertEqual(ask("complete_request", code="x = va", cursor_pos=6), {
            "status": "ok", "matches": ["value", "vars"], "cursor_start": 4,
            "cursor_end": 6, "metadata": {}})
        reply = ask("inspect_request", code="halve(3", cursor_pos=7, detail_level=0)
        self.assertEqual((reply["status"], reply["found"]), ("ok", True))
        self.assertIn("Signature: halve(n)", reply["data"]["text/plain"])
        self.assertIn("Half of n.", reply["data"]["text/plain"])
        self.assertEqual(ask("inspect_request", code="nothing_here")["found"], False)
        self.assertEqual(ask("is_complete_request", code="def f(x):\n  x*2"),
                         {"status": "incomplete", "indent": "  "})
        self.assertEqual(ask("is_complete_request", code="import = 7q"),
                         {"status": "invalid"})
        self.assertEqual(ask("is_complete_request", code="1")["status"], "complete")
        self.assertEqual(ask("complete_request", cursor_pos=2)["ename"], "BadRequest")

    def test_history_tail_range_and_search_as_ipykernel_answers_them(self):
        for code in ("a = 1", "1+2+3", "print(a)", "1+2+3"):
            self.execute(code)
        self.execute("x = 9", store_history=False)

        def history(**content):
            request = jupyter_message("history_request", content)
            self.api.handle(self.conn, parse_message(json.dumps(request)),
                            "history_request")
            [(_, msg_type, reply)] = self.about(request)
            return reply["history"]

        self.assertEqual(history(hist_access_type="tail", n=2, output=False, raw=True),
                         [[1, 3, "print(a)"], [1, 4, "1+2+3"]])
        self.assertEqual(history(hist_access_type="tail", n=1, output=True),
                         [[1, 4, ["1+2+3", "6"]]])
        self.assertEqual(history(hist_access_type="range", session=0, start=2, stop=4),
                         [[1, 2, "1+2+3"], [1, 3, "print(a)"]])
        self.assertEqual(history(hist_access_type="search", pattern="1?2*"),
                         [[1, 2, "1+2+3"], [1, 4, "1+2+3"]])
        self.assertEqual(history(hist_access_type="search", pattern="1?2*", unique=True),
                         [[1, 4, "1+2+3"]])
        self.kernel.restarted()
        self.execute("b = 2")
        self.assertEqual(history(hist_access_type="tail", n=2),
                         [[1, 4, "1+2+3"], [2, 1, "b = 2"]])
        self.assertEqual(history(hist_access_type="what"), [])

    def test_an_exception_is_an_error_and_an_error_reply(self):
        request = self.execute("1/0")
        [error] = [c for _, t, c in self.about(request) if t == "error"]
        self.assertEqual((error["ename"], error["evalue"]),
                         ("ZeroDivisionError", "division by zero"))
        [reply] = [c for _, t, c in self.about(request) if t == "execute_reply"]
        self.assertEqual((reply["status"], reply["execution_count"]), ("error", 1))

    def test_silent_runs_show_nothing_and_count_nothing(self):
        request = self.execute("print(1)", silent=True)
        self.assertEqual([t for _, t, _ in self.about(request)],
                         ["status", "execute_reply", "status"])
        self.assertEqual(self.kernel.execution_count, 0)

    def test_a_request_without_code_is_an_error_reply(self):
        request = self.execute(None)
        [(_, msg_type, content)] = self.about(request)
        self.assertEqual((msg_type, content["status"], content["ename"]),
                         ("execute_reply", "error", "BadRequest"))

    def test_runs_wait_in_order_and_the_queue_is_bounded(self):
        running = []  # (code, Deferred that ends the run), in the order the runs started

        def start(conn, kernel, parent, content, code, silent):
            running.append((code, defer.Deferred()))
            return running[-1][1]

        self.patch(self.api, "_run", start)
        requests = [self.execute(f"print({i})") for i in range(MAX_QUEUED_RUNS + 2)]
        refused = self.about(requests[-1])
        self.assertEqual(refused[0][2]["ename"], "KernelBusy")
        for request in requests[:-1]:
            self.assertEqual(self.about(request), [])
        self.assertEqual([code for code, _ in running], ["print(0)"])
        # Every queued run gets its turn, one at a time and in order; none is left
        # hanging when the test ends.
        for i in range(MAX_QUEUED_RUNS + 1):
            self.assertEqual(len(running), i + 1)
            running[i][1].callback(None)
        self.assertEqual([code for code, _ in running],
                         [f"print({i})" for i in range(MAX_QUEUED_RUNS + 1)])
        self.assertEqual(self.api._queued, {})
        self.assertFalse(self.kernel.runs.locked)

    def test_a_failed_cell_aborts_the_cells_queued_behind_it(self):
        host = self.cluster.hosts[0]
        host.hold = True
        failing = self.execute("1/0")
        queued = [self.execute("print(2)"), self.execute("print(3)")]
        host.hold = False
        host.release()
        for request in queued:
            self.assertEqual(self.about(request), [
                ("iopub", "status", {"execution_state": "busy"}),
                ("shell", "execute_reply", {"status": "aborted"}),
                ("iopub", "status", {"execution_state": "idle"})])
        self.assertEqual([t for _, t, _ in self.about(failing)].count("error"), 1)
        later = self.execute("print(4)")  # sent after the failure: it runs
        self.assertIn(("iopub", "stream", {"name": "stdout", "text": "4\n"}),
                      self.about(later))
        host.hold = True
        self.execute("1/0", stop_on_error=False)
        kept = self.execute("print(5)")
        host.hold = False
        host.release()
        self.assertIn(("iopub", "stream", {"name": "stdout", "text": "5\n"}),
                      self.about(kept))

    def test_unknown_requests_get_a_not_supported_reply(self):
        request = jupyter_message("debug_request", {})
        self.api.handle(self.conn, parse_message(json.dumps(request)), "debug_request")
        [(_, msg_type, content)] = self.about(request)
        self.assertEqual((msg_type, content["ename"]), ("debug_reply", "NotSupported"))


class PistonTests(ClusterCase):
    def setUp(self):
        super().setUp()
        self.piston = PistonApi(self.client, self.clock, self.kernels)

    def execute(self, body, content_type="application/json", tenant=ALICE):
        request = DummyRequest([b""])
        request.method = b"POST"
        request.requestHeaders.setRawHeaders(b"content-type", [content_type.encode()])
        request.content = io.BytesIO(json.dumps(body).encode())
        return self.piston.execute(request, tenant)

    def test_a_program_with_stdin_and_its_kernel_destroyed(self):
        status, answer = self.successResultOf(self.execute({
            "language": "py", "version": "*", "stdin": "ignored\n",
            "files": [{"content": "print('hi')\nraise SystemExit(3)"}]}))
        self.assertEqual((status, answer["language"], answer["run"]["stdout"]),
                         (200, "python", "hi\n"))
        self.assertEqual((answer["run"]["code"], answer["run"]["stderr"]), (3, ""))
        self.assertEqual(self.successResultOf(self.client.status())["kernels"], 0)

    def test_files_args_and_exit_status_as_a_program_has_them(self):
        status, answer = self.successResultOf(self.execute({
            "language": "python", "version": "*", "args": ["one", "two words"],
            "files": [{"name": "solve.py", "content":
                       "import sys, helper\nprint(sys.argv[1:])\n"
                       "print('oops', file=sys.stderr)\nhelper.shout()\n"
                       "sys.exit(0)\n7 * 6\n"},
                      {"name": "helper.py", "content": "def shout(): print('HI')\n"}]}))
        run = answer["run"]
        self.assertEqual((run["stdout"], run["stderr"], run["code"], run["signal"]),
                         ("['one', 'two words']\nHI\n", "oops\n", 0, None))
        # Both streams, as they came (which came first is up to the threads reading them).
        self.assertTrue(interleaves(run["output"], run["stdout"], run["stderr"]), run)

    def test_a_last_expression_is_not_echoed_and_an_error_exits_with_1(self):
        _, answer = self.successResultOf(self.execute({
            "language": "python", "version": "*",
            "files": [{"content": "def solve(): return 42\nsolve()\n"}]}))
        self.assertEqual((answer["run"]["stdout"], answer["run"]["code"]), ("", 0))
        _, answer = self.successResultOf(self.execute({
            "language": "python", "version": "*", "files": [{"content": "1/0"}]}))
        self.assertEqual((answer["run"]["code"], answer["run"]["status"]), (1, "RE"))
        self.assertIn("ZeroDivisionError", answer["run"]["stderr"])

    def test_bad_args_are_refused(self):
        for args in (["a\x00b"], [1], "a b"):
            error = self.failureResultOf(self.execute({
                "language": "python", "version": "*", "args": args,
                "files": [{"content": "pass"}]})).value
            self.assertEqual((error.status, error.reason), (400, "bad-field"))

    def test_the_content_type_must_be_json(self):
        error = self.failureResultOf(self.execute({}, "text/plain")).value
        self.assertEqual(error.status, 415)


class ClusterStateTests(ClusterCase):
    def test_versions_and_kernels_by_language_come_from_the_agents_heartbeats(self):
        self.successResultOf(self.kernels.start("python3", ALICE))
        self.clock.advance(3)  # a heartbeat listing it
        status, runtimes = self.successResultOf(
            PistonApi(self.client, self.clock, self.kernels).runtimes(None))
        [python] = runtimes
        self.assertEqual((python["language"], python["version"]),
                         ("python", platform.python_version()))
        dashboard = DashboardApi(self.client, self.kernels, self.clock)
        state = dashboard.view(self.successResultOf(dashboard.snapshot()), OPS)
        self.assertEqual((state["by_lang"], state["kernels"], state["gateway"]),
                         ({"python3": 1}, 1, {"kernels": 1, "by_token": {"alice": 1}}))


class AddedPackagesTests(SynchronousTestCase):
    """What an operator added to an image (`sorna images build LANG --with`) shows in the
    runtimes and the kernelspecs."""

    def test_the_images_added_packages_are_listed(self):
        clock = task.Clock()
        cluster = FakeCluster(clock)
        cluster.hosts[0].docker._images["sorna/kernel-python3:latest"].labels[
            "io.sorna.packages"] = "pip:attrs,python3-requests"
        cluster.start()
        client = cluster.client()
        self.addCleanup(lambda: self.successResultOf(cluster.stop()))
        self.addCleanup(client.close)
        kernels = Kernels(client, clock)
        clock.advance(3)
        _, runtimes = self.successResultOf(PistonApi(client, clock, kernels).runtimes(None))
        self.assertEqual(runtimes[0]["packages"], ["pip:attrs", "python3-requests"])
        _, specs = self.successResultOf(JupyterApi(kernels).kernelspecs(None))
        self.assertEqual(specs["kernelspecs"]["python3"]["spec"]["metadata"]["sorna"],
                         {"lang": "python3", "packages": ["pip:attrs", "python3-requests"]})


class RoutesTests(SynchronousTestCase):
    def setUp(self):
        path = os.path.join(tempfile.mkdtemp(), "tokens")
        self.token = tokens.add(path, "t")
        self.api = Api(JupyterApi(Kernels(None, task.Clock())).routes(),
                       tokens.TokenRing(path))

    def render(self, method, path, token=None):
        request = DummyRequest(path.strip("/").split("/"))
        request.method = method
        request.path = path.encode()
        request.too_large = False
        if token:
            request.requestHeaders.setRawHeaders(b"authorization", [token.encode()])
        body = self.api.render(request)
        return request.responseCode, json.loads(body)

    def test_tokens_routes_and_methods(self):
        self.assertEqual(self.render(b"GET", "/api/kernels")[0], 401)
        self.assertEqual(self.render(b"GET", "/api/kernels", "token wrong")[1]["reason"],
                         "token-refused")
        self.assertEqual(self.render(b"GET", "/nowhere", f"token {self.token}")[0], 404)
        status, body = self.render(b"PUT", "/api/kernels", f"Bearer {self.token}")
        self.assertEqual((status, body["reason"]), (405, "method-not-allowed"))
