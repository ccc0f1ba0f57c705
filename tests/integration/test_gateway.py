"""`twistd sorna-gateway` in front of a real cluster, driven with plain HTTP and WebSocket
clients: tokens, the Jupyter kernel gateway API and its channels, Piston's v2 API, the
dashboard's state, and bad input of every kind (each a clear error; the gateway goes
on serving)."""

import json
import urllib.error
import urllib.request

import websocket

from sorna.gateway import tokens
from sorna.testing.gateway import (
    Http, JupyterSocket, of_type, raw_request, stdout_of,
)
from sorna.testing.processes import LOOPBACK, GatewayProcess, wait_until
from tests.integration import ClusterTestCase
from tests.integration.languages import AS_PROGRAM, PROGRAM_ARGS, PROGRAM_STDOUT
from tests.support import interleaves


class GatewayCase(ClusterTestCase):
    def setUp(self):
        super().setUp()
        self.manager, self.agent = self.start_cluster()
        self.gateway = self.start_gateway(self.manager)
        self.http = Http(self.gateway.url, self.gateway.token)

    def start_kernel(self, name="python3"):
        status, kernel, _ = self.http.post("/api/kernels", {"name": name})
        self.assertEqual(status, 201, kernel)
        self.addCleanup(self._shut_down, kernel)
        return kernel

    def _shut_down(self, kernel):
        try:
            self.http.delete(f"/api/kernels/{kernel['id']}")
        except urllib.error.URLError:
            pass  # the test stopped the gateway: its kernels went with it

    def channels(self, kernel):
        sock = JupyterSocket(self.gateway.url, kernel["id"], self.gateway.token)
        self.addCleanup(sock.close)
        return sock

    def assertServing(self):
        status, specs, _ = self.http.get("/api/kernelspecs")
        self.assertEqual(status, 200, specs)


class TokenTests(GatewayCase):
    def test_no_token_or_a_wrong_one_is_401_with_what_to_send(self):
        status, body, _ = Http(self.gateway.url).get("/api/kernels")
        self.assertEqual((status, body["reason"]), (401, "token-missing"), body)
        self.assertIn("Authorization: token", body["message"])
        status, body, _ = Http(self.gateway.url, "not-a-token").get("/api/kernels")
        self.assertEqual((status, body["reason"]), (401, "token-refused"), body)
        status, body, _ = Http(self.gateway.url).get(
            f"/api/kernels?token={self.gateway.token}")
        self.assertEqual(status, 401, "a query token is for WebSockets and event streams")
        self.assertEqual(Http(self.gateway.url, self.gateway.token, "Bearer")
                         .get("/api/kernels")[0], 200)

    def test_a_removed_token_is_refused_within_seconds(self):
        second = tokens.add(self.gateway.tokens_path, "second")
        http = Http(self.gateway.url, second)
        wait_until(lambda: http.get("/api/kernels")[0] == 200, 10, "the new token works")
        tokens.remove(self.gateway.tokens_path, "second")
        wait_until(lambda: http.get("/api/kernels")[0] == 401, 10, "the token is refused")
        self.assertServing()

    def test_the_gateway_refuses_to_start_without_a_token(self):
        gateway = GatewayProcess(self.manager.addr)
        tokens.remove(gateway.tokens_path, "tests")
        message = self.start_fails(gateway)
        self.assertIn("holds no token", message)
        self.assertIn("sorna tokens add", message)


class OptionsTests(GatewayCase):
    def test_cors_answers_the_allowed_origin_only(self):
        gateway = self.start_gateway(self.manager,
                                     extra_args=["--allow-origin", "https://ide.example"])
        http = Http(gateway.url, gateway.token)
        status, _, headers = http.call("OPTIONS", "/api/kernels", token=False, headers={
            "Origin": "https://ide.example", "Access-Control-Request-Method": "POST"})
        self.assertEqual(status, 204)
        self.assertEqual(headers["access-control-allow-origin"], "https://ide.example")
        self.assertIn("authorization", headers["access-control-allow-headers"])
        _, _, headers = http.get("/api/kernels", headers={"Origin": "https://evil.example"})
        self.assertNotIn("access-control-allow-origin", headers)
        _, _, headers = self.http.get("/api/kernels", headers={
            "Origin": "https://ide.example"})  # a gateway without --allow-origin
        self.assertNotIn("access-control-allow-origin", headers)

    def test_an_insecure_gateway_of_an_insecure_cluster(self):
        manager, _ = self.start_cluster(insecure=True)
        gateway = self.start_gateway(manager, insecure=True)
        self.assertIn("insecure", gateway.log())
        http = Http(gateway.url, gateway.token)
        result = http.post("/api/v2/execute", {"language": "python", "version": "*",
                                               "files": [{"content": "print(6 * 7)"}]})[1]
        self.assertEqual(result["run"]["stdout"], "42\n")

    def test_a_gateway_without_keys_or_insecure_refuses_to_start(self):
        gateway = GatewayProcess(self.manager.addr, env={"SORNA_KEYS": "",
                                                         "HOME": self.mktemp()})
        message = self.start_fails(gateway)
        self.assertIn("sorna keys init", message)
        self.assertIn("--insecure", message)


class JupyterRestTests(GatewayCase):
    def test_kernelspecs_name_every_language_an_agent_serves(self):
        status, specs, _ = self.http.get("/api/kernelspecs")
        self.assertEqual(status, 200)
        self.assertEqual(specs["default"], "python3")
        python = specs["kernelspecs"]["python3"]
        self.assertEqual((python["name"], python["resources"], python["spec"]["argv"],
                          python["spec"]["language"]),
                         ("python3", {"logo-svg": "/kernelspecs/python3/logo-svg.svg"}, [],
                          "python"))
        self.assertEqual(self.http.get("/api/kernelspecs/python3")[1], python)
        self.assertEqual(self.http.get("/api/kernelspecs/intercal")[0], 404)
        # Where jupyter_server's gateway client fetches a kernelspec's resources.
        with urllib.request.urlopen(self.gateway.url + python["resources"]["logo-svg"],
                                    timeout=10) as logo:
            self.assertEqual(logo.headers["content-type"], "image/svg+xml")
            self.assertIn(b">Py</text>", logo.read())

    def test_a_kernels_life(self):
        kernel = self.start_kernel()
        self.assertRegex(kernel["last_activity"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual((kernel["name"], kernel["execution_state"], kernel["connections"]),
                         ("python3", "idle", 0))
        path = f"/api/kernels/{kernel['id']}"
        self.assertEqual(self.http.get(path)[1]["id"], kernel["id"])
        self.assertEqual([k["id"] for k in self.http.get("/api/kernels")[1]], [kernel["id"]])
        self.assertEqual(self.http.post(path + "/interrupt")[0], 204)
        status, restarted, _ = self.http.post(path + "/restart")
        self.assertEqual((status, restarted["id"]), (200, kernel["id"]))
        self.assertEqual(self.http.delete(path)[0], 204)
        self.assertEqual(self.http.get(path)[0], 404)
        self.assertEqual(self.http.get("/api/kernels")[1], [])
        wait_until(lambda: self.client(self.manager).status()["kernels"] == 0, 10,
                   "the Sorna kernel destroyed")

    def test_a_kernel_sorna_lost_answers_404(self):
        kernel = self.start_kernel()
        for container in self.docker.containers.list(
                filters={"label": f"io.sorna.agent={self.agent.agent_id}"}):
            container.remove(force=True)
        wait_until(lambda: self.http.get(f"/api/kernels/{kernel['id']}")[0] == 404, 20,
                   "the gateway answering 404 for the lost kernel")
        self.assertEqual(self.http.get("/api/kernels")[1], [])

    def test_bad_requests_are_clear_errors_and_change_nothing(self):
        cases = [
            (self.http.call("POST", "/api/kernels", raw=b"{not json",
                            headers={"Content-Type": "application/json"}), 400, "JSON"),
            (self.http.post("/api/kernels", {"name": "intercal"}), 400, "no kernelspec"),
            (self.http.post("/api/kernels", {"name": 7}), 400, "name"),
            (self.http.get("/api/kernels/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12), 404,
             "no kernel"),
            (self.http.get("/api/nothing-here"), 404, "no endpoint"),
            (self.http.call("PUT", "/api/kernels", body={}), 405, "answers"),
            (self.http.call("POST", "/api/kernels", raw=b"x" * (2 << 20),
                            headers={"Content-Type": "application/json"}), 413, "larger"),
        ]
        for (status, body, _), expected, words in cases:
            self.assertEqual(status, expected, body)
            self.assertIn(words, body["message"])
            self.assertIsInstance(body["reason"], str)
        self.assertEqual(self.http.get("/api/kernels")[1], [])
        self.assertServing()

    def test_a_huge_body_without_a_length_is_cut_off(self):
        head = (f"POST /api/kernels HTTP/1.1\r\nHost: x\r\nAuthorization: token "
                f"{self.gateway.token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
                f"\r\n").encode()
        chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
        answer = raw_request(LOOPBACK, self.gateway.port, head + chunk * 3 + b"0\r\n\r\n")
        self.assertIn(b" 413 ", answer.split(b"\r\n")[0])
        self.assertServing()


class ChannelsTests(GatewayCase):
    def test_a_cell_runs_with_jupyter_messages(self):
        kernel = self.start_kernel()
        sock = self.channels(kernel)
        info = sock.request("kernel_info_request", {})
        replies = sock.until_idle(info)
        [reply] = of_type(replies, "kernel_info_reply")
        self.assertEqual(reply["content"]["language_info"]["name"], "python")
        self.assertEqual(reply["channel"], "shell")

        messages = sock.execute("import sys\nprint('out')\nprint('err', file=sys.stderr)\n"
                                "name = input('name? ')\nprint('hello', name)")
        self.assertEqual(messages[0]["content"], {"execution_state": "busy"})
        self.assertEqual(of_type(messages, "execute_input")[0]["content"]["execution_count"],
                         1)
        self.assertEqual(stdout_of(messages), "out\n")
        self.assertEqual(stdout_of(messages, "stderr"), "err\n")
        # without allow_stdin a read gets end-of-file
        self.assertEqual(of_type(messages, "error")[0]["content"]["ename"], "EOFError")

        messages = sock.execute("name = input('name? ')\nprint('hello', name)\n1/0",
                                answer=lambda prompt: "Ada" if prompt == "name? " else "?")
        self.assertEqual(stdout_of(messages), "hello Ada\n")
        [error] = of_type(messages, "error")
        self.assertEqual(error["content"]["ename"], "ZeroDivisionError")
        [reply] = of_type(messages, "execute_reply")
        self.assertEqual((reply["content"]["status"], reply["content"]["execution_count"]),
                         ("error", 2))
        self.assertEqual(self.http.get(f"/api/kernels/{kernel['id']}")[1]["connections"], 1)

    def test_state_stays_and_another_language_runs(self):
        python = self.channels(self.start_kernel())
        python.execute("x = 6")
        self.assertEqual(stdout_of(python.execute("print(x * 7)")), "42\n")
        node = self.channels(self.start_kernel("nodejs"))
        self.assertEqual(stdout_of(node.execute("console.log(6 * 7)")), "42\n")

    def test_media_is_display_data(self):
        sock = self.channels(self.start_kernel())
        messages = sock.execute("import sorna_display\nsorna_display.html('<b>hi</b>')")
        [shown] = of_type(messages, "display_data")
        self.assertEqual(shown["content"]["data"]["text/html"], "<b>hi</b>")

    def test_a_value_is_out_and_a_figure_is_one_display_with_every_type(self):
        sock = self.channels(self.start_kernel())
        messages = sock.execute("print('printed')\n6 * 7")
        self.assertEqual(stdout_of(messages), "printed\n")
        [result] = of_type(messages, "execute_result")
        self.assertEqual((result["content"]["data"], result["content"]["execution_count"]),
                         ({"text/plain": "42"}, 1))
        messages = sock.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\n"
                                "plt.show()")
        [figure] = of_type(messages, "display_data")
        self.assertEqual(sorted(figure["content"]["data"]),
                         ["image/png", "image/svg+xml", "text/plain"])
        self.assertEqual(of_type(messages, "execute_result"), [],
                         "plt.show() returns None: no Out")

    def test_requests_a_ui_sends_get_harmless_replies(self):
        sock = self.channels(self.start_kernel())
        for msg_type, field in (("complete_request", "matches"),
                                ("inspect_request", "found"),
                                ("is_complete_request", "status"),
                                ("comm_info_request", "comms"),
                                ("history_request", "history")):
            request = sock.request(msg_type, {"code": "x", "cursor_pos": 1})
            reply = sock.receive()
            self.assertEqual(reply["parent_header"]["msg_id"], request["header"]["msg_id"])
            self.assertEqual(reply["msg_type"], msg_type.replace("request", "reply"))
            self.assertIn(field, reply["content"])

    def test_completion_and_inspection_in_a_real_kernel(self):
        sock = self.channels(self.start_kernel())
        sock.execute("import os\ndef halve(n):\n    'Half of n.'\n    return n / 2")
        request = sock.request("complete_request", {"code": "os.pa", "cursor_pos": 5})
        reply = sock.receive()
        self.assertEqual(reply["parent_header"]["msg_id"], request["header"]["msg_id"])
        self.assertIn("path", reply["content"]["matches"])
        self.assertEqual((reply["content"]["cursor_start"], reply["content"]["cursor_end"]),
                         (3, 5))
        sock.request("inspect_request", {"code": "halve(", "cursor_pos": 6,
                                         "detail_level": 0})
        reply = sock.receive()
        self.assertTrue(reply["content"]["found"])
        self.assertIn("Half of n.", reply["content"]["data"]["text/plain"])
        sock.request("is_complete_request", {"code": "for i in range(3):"})
        self.assertEqual(sock.receive()["content"], {"status": "incomplete",
                                                     "indent": "    "})

    def test_garbage_frames_close_that_socket_only(self):
        kernel = self.start_kernel()
        for frame, opcode, code in ((b"\x00\x01garbage", websocket.ABNF.OPCODE_BINARY, 4415),
                                    (b"{not json", websocket.ABNF.OPCODE_TEXT, 4400),
                                    (b'{"header": 5}', websocket.ABNF.OPCODE_TEXT, 4400)):
            sock = self.channels(kernel)
            sock.ws.send(frame, opcode=opcode)
            closed = websocket.ABNF()
            while closed.opcode != websocket.ABNF.OPCODE_CLOSE:
                closed = sock.ws.recv_frame()
            self.assertEqual(int.from_bytes(closed.data[:2], "big"), code, closed.data)
            self.assertIn(b"JSON", closed.data)
        sock = self.channels(kernel)
        self.assertEqual(stdout_of(sock.execute("print(1)")), "1\n")

    def test_an_unknown_kernel_or_no_token_is_refused_before_the_upgrade(self):
        with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
            JupyterSocket(self.gateway.url, "0" * 8 + "-0000-0000-0000-" + "0" * 12,
                          self.gateway.token)
        self.assertEqual(caught.exception.status_code, 404)
        kernel = self.start_kernel()
        with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
            JupyterSocket(self.gateway.url, kernel["id"], "wrong")
        self.assertEqual(caught.exception.status_code, 401)


class PistonTests(GatewayCase):
    def test_runtimes_and_an_execute_with_stdin(self):
        status, runtimes, _ = self.http.get("/api/v2/runtimes")
        [python] = [r for r in runtimes if r["language"] == "python"]
        self.assertRegex(python["version"], r"^3\.\d+\.\d+$")  # the image's own
        status, result, _ = self.http.post("/api/v2/execute", {
            "language": "python", "version": "*", "stdin": "21\na\nb\n",
            "files": [{"name": "main.py", "content":
                       "import sys\nn = int(input())\nprint(n * 2)\n"
                       "print(len(sys.stdin.read().splitlines()))"}]})
        self.assertEqual(status, 200, result)
        self.assertEqual((result["language"], result["run"]["stdout"], result["run"]["code"]),
                         ("python", "42\n2\n", 0))
        wait_until(lambda: self.client(self.manager).status()["kernels"] == 0, 10,
                   "the execute's kernel destroyed")

    def test_errors_exit_codes_and_compiled_languages(self):
        result = self.http.post("/api/v2/execute", {
            "language": "py", "version": "*", "files": [{"content": "1/0"}]})[1]
        self.assertEqual(result["run"]["code"], 1)
        self.assertIn("ZeroDivisionError", result["run"]["stderr"])
        result = self.http.post("/api/v2/execute", {
            "language": "c", "version": "*", "stdin": "x\ny\n", "files": [{"content":
                "#include <stdio.h>\nint main(void) { int n = 0, c;\n"
                "  while ((c = getchar()) != EOF) n += c == '\\n';\n"
                "  printf(\"%d\\n\", n); return 3; }\n"}]})[1]
        self.assertEqual((result["run"]["stdout"], result["run"]["code"]), ("2\n", 3), result)
        self.assertIn("compile", result)

    def test_programs_with_arguments_files_and_exit_status_in_every_language(self):
        for lang, (program, others) in sorted(AS_PROGRAM.items()):
            files = [{"content": program}] + [{"name": n, "content": c} for n, c in others]
            status, result, _ = self.http.post("/api/v2/execute", {
                "language": lang, "version": "*", "files": files, "args": PROGRAM_ARGS})
            self.assertEqual(status, 200, result)
            run = result["run"]
            self.assertEqual((run["stdout"], run["stderr"], run["code"], run["signal"],
                              run["status"]), (PROGRAM_STDOUT, "warn\n", 3, None, "RE"),
                             f"{lang}: {result}")
            self.assertTrue(interleaves(run["output"], PROGRAM_STDOUT, "warn\n"), lang)

    def test_output_interleaved_a_memory_kill_and_a_clean_exit(self):
        result = self.http.post("/api/v2/execute", {
            "language": "python", "version": "*", "files": [{"content":
                "import sys, time\nprint('one', flush=True)\ntime.sleep(0.5)\n"
                "print('two', file=sys.stderr, flush=True)\ntime.sleep(0.5)\n"
                "print('three')\nsys.exit(0)\n"}]})[1]
        self.assertEqual((result["run"]["output"], result["run"]["stdout"],
                          result["run"]["code"], result["run"]["stderr"]),
                         ("one\ntwo\nthree\n", "one\nthree\n", 0, "two\n"))
        result = self.http.post("/api/v2/execute", {
            "language": "python", "version": "*", "run_memory_limit": 64 << 20,
            "files": [{"content": "x = b'x' * (512 << 20)\nprint('survived')"}]})[1]
        self.assertEqual((result["run"]["signal"], result["run"]["code"],
                          result["run"]["status"], result["run"]["stdout"]),
                         ("SIGKILL", None, "SG", ""), result)

    def test_bad_executes_are_400_or_415(self):
        good = {"language": "python", "version": "*", "files": [{"content": "print(1)"}]}
        cases = [
            (self.http.call("POST", "/api/v2/execute", raw=json.dumps(good).encode(),
                            headers={"Content-Type": "text/plain"}), 415, "application/json"),
            (self.http.post("/api/v2/execute", dict(good, language="intercal")), 400,
             "runtime is unknown"),
            (self.http.post("/api/v2/execute", dict(good, version="2.7")), 400,
             "runtime is unknown"),
            (self.http.post("/api/v2/execute", dict(good, files=[])), 400, "files"),
            (self.http.post("/api/v2/execute", dict(good, files=[{"content": 5}])), 400,
             "content"),
            (self.http.post("/api/v2/execute", dict(good, args=["x", 1])), 400, "args"),
            (self.http.post("/api/v2/execute", dict(good, run_timeout="soon")), 400,
             "number"),
        ]
        for (status, body, _), expected, words in cases:
            self.assertEqual(status, expected, body)
            self.assertIn(words, body["message"])
        self.assertEqual(self.http.post("/api/v2/execute/", good)[1]["run"]["stdout"], "1\n")

    def test_a_piston_client_from_pypi_runs_a_program_with_stdin(self):
        from ultra_piston import File, PistonClient

        client = PistonClient(base_url=self.gateway.url + "/api/v2",
                              api_key=f"Bearer {self.gateway.token}", rate_limit=0)
        languages = {r.language for r in client.get_runtimes()}
        self.assertIn("python", languages)
        result = client.post_execute("python", "*", File(name="main.py", content=
                                     "print(input()[::-1])"), stdin="olleh\n")
        self.assertEqual((result.run.stdout, result.run.code), ("hello\n", 0))
        result = client.post_execute("python", "3", File(name="args.py", content=
                                     "import sys\nprint(sys.argv[1:])\nsys.exit(3)"),
                                     args=["a", "b c"])
        self.assertEqual((result.run.stdout, result.run.stderr, result.run.code),
                         ("['a', 'b c']\n", "", 3))


class DashboardTests(GatewayCase):
    def test_the_state_and_its_event_stream(self):
        status, page, headers = self.http.get("/", token=False)
        self.assertEqual(status, 200)
        self.assertIn("text/html", headers["content-type"])
        kernel = self.start_kernel()
        url = f"{self.gateway.url}/api/dashboard/events?token={self.gateway.token}"

        def kernels_seen():
            with urllib.request.urlopen(url, timeout=10) as events:
                for line in events:
                    if line.startswith(b"data: "):
                        return json.loads(line[6:])

        state = wait_until(lambda: (lambda s: s if s["by_lang"] else None)(
            kernels_seen()), 10, "the dashboard's state counting the kernel")
        self.assertEqual(state["kernels"], 1)
        [agent] = state["agents"]
        self.assertEqual((agent["agent_id"], state["by_lang"]),
                         (self.agent.agent_id, {"python3": 1}))
        self.assertEqual(state["gateway"], {"kernels": 1, "by_token": {"tests": 1}})
        self.assertTrue(kernel["id"])
        status, body, _ = Http(self.gateway.url).get("/api/dashboard/events")
        self.assertEqual(status, 401)

    def test_an_unreachable_manager_is_shown_with_the_recent_errors(self):
        self.gateway = self.start_gateway(self.manager, extra_args=["--timeout", "2"])
        self.http = Http(self.gateway.url, self.gateway.token)
        self.manager.stop()
        status, state, _ = self.http.get("/api/dashboard")
        self.assertEqual(status, 200)
        self.assertIn("unreachable", state["manager"])
        self.assertEqual(state["errors"][0]["where"], "manager status")
        self.assertEqual(self.http.post("/api/kernels", {"name": "python3"})[0], 504)


class StopTests(GatewayCase):
    def test_stopping_the_gateway_destroys_its_kernels(self):
        self.start_kernel()
        self.start_kernel()
        self.assertEqual(self.client(self.manager).status()["kernels"], 2)
        self.gateway.stop()
        self.assertTrue(self.gateway.stopped_cleanly(), self.gateway.log_tail())
        wait_until(lambda: self.client(self.manager).status()["kernels"] == 0, 10,
                   "the gateway's kernels destroyed")


class JupyterServerClientTests(GatewayCase):
    """jupyter_server's own gateway client (GatewayKernelManager and
    GatewayKernelClient: what nbclient and papermill get with `--gateway-url`), with a
    plain token, unpatched: it sends the token on its REST calls only, and opens the
    channels WebSocket without one."""

    def run_cells(self, token, cells, info=None):
        """Run `cells` in a python3 kernel made through jupyter_server's gateway client;
        (status, stdout) of each. `info`: a list to put the kernel_info_reply in."""
        import asyncio

        from jupyter_server.gateway.gateway_client import GatewayClient
        from jupyter_server.gateway.managers import GatewayKernelManager

        GatewayClient.clear_instance()
        self.addCleanup(GatewayClient.clear_instance)
        GatewayClient.instance(url=self.gateway.url, auth_token=token,
                               request_timeout=30.0)

        async def session():
            manager = GatewayKernelManager()
            await manager.start_kernel(kernel_name="python3")
            client = manager.client()
            await client.start_channels()
            if info is not None:
                client.kernel_info()
                info.append(await client.get_shell_msg(timeout=30))
            outputs = []
            try:
                for code in cells:
                    msg_id, texts = client.execute(code), []
                    while True:
                        message = await client.get_iopub_msg(timeout=30)
                        if message["parent_header"].get("msg_id") != msg_id:
                            continue
                        if message["msg_type"] == "stream":
                            texts.append(message["content"]["text"])
                        if message["content"].get("execution_state") == "idle":
                            break
                    reply = await client.get_shell_msg(timeout=30)
                    self.assertEqual(reply["parent_header"]["msg_id"], msg_id)
                    outputs.append((reply["content"]["status"], "".join(texts)))
            finally:
                client.stop_channels()
                await manager.shutdown_kernel()
            return outputs

        return asyncio.run(session())

    def test_cells_run_with_a_plain_token(self):
        token = self.gateway.add_token("notebooks")
        self.assertEqual(self.run_cells(token, ["x = 6", "print(x * 7)"]),
                         [("ok", ""), ("ok", "42\n")])
        self.assertEqual(Http(self.gateway.url, token).get("/api/kernels")[1], [])

    def test_language_info_is_ipykernels(self):
        """ipykernel, started locally, is the control: JupyterLab, nbconvert and GitHub
        key on these fields."""
        from jupyter_client.manager import start_new_kernel

        manager, client = start_new_kernel(kernel_name="python3")  # on 127.0.0.1
        try:
            control = client.kernel_info(reply=True, timeout=30)["content"]
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        info = []
        self.run_cells(self.gateway.token, [], info)
        ours = info[0]["content"]["language_info"]
        theirs = control["language_info"]
        self.assertEqual({k: v for k, v in ours.items() if k != "version"},
                         {k: v for k, v in theirs.items() if k != "version"})
        self.assertRegex(ours["version"], r"^3\.\d+\.\d+$")
