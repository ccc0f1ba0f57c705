"""Executions as the agent follows them: streaming, modes, input, interrupts, timeouts,
restarts, files and grading. A scripted daemon plays the REPL, so every event comes
exactly when the test says."""

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from sorna.proto.errors import SornaError
from sorna.testing.cluster import FakeCluster
from tests.scripted_daemon import ASK, QUICK, ScriptedRepl


class RunTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock)
        self.daemon = ScriptedRepl()
        self.cluster.hosts[0].script = self.daemon
        self.cluster.start()
        self.client = self.cluster.client()
        self.kid = self.successResultOf(
            self.client.create("python3", limits={"exec_timeout": 30}))["kernel_id"]

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())

    def error(self, d):
        return self.failureResultOf(d, SornaError).value

    def wait(self, seconds):
        """Let time pass in steps, so that heartbeats keep the agent alive meanwhile."""
        self.clock.pump([0.5] * int(seconds * 2))

    def test_streaming_clients_get_output_as_it_comes(self):
        seen = []
        d = self.client.run_code(self.kid, "loop", on_output=seen.append)
        self.daemon.output("stdout", "0\n")
        self.assertEqual(seen, [{"status": "running", "partial": True,
                                 "result": {"stdout": "0\n", "stderr": "", "media": []}}])
        self.daemon.output("stderr", "warn\n")
        self.daemon.output("media", ["image/png", "iVBOR"])
        self.assertNoResult(d)
        self.daemon.finish()
        reply = self.successResultOf(d)
        self.assertEqual(reply["status"], "finished")
        self.assertEqual(reply["result"]["stdout"], "")  # all of it went out already
        self.assertEqual([s["result"]["stderr"] for s in seen], ["", "warn\n", ""])
        self.assertEqual(seen[2]["result"]["media"], [["image/png", "iVBOR"]])

    def test_classic_clients_get_everything_at_the_end(self):
        d = self.client.execute(self.kid, "x")
        self.daemon.output("stdout", "a")
        self.daemon.output("stdout", "b")
        self.wait(10)
        self.assertNoResult(d)
        self.daemon.finish(exceptions=[["ValueError", ["x"], False, "tb"]])
        result = self.successResultOf(d)
        self.assertEqual((result["stdout"], result["exceptions"][0][0]), ("ab", "ValueError"))

    def test_values_and_displays_are_bundles_for_who_asks_and_text_and_media_else(self):
        figure = [["image/png", "iVBOR"], ["text/plain", "<Figure>"]]
        records = [["stdout", "a\n"], ["display", figure],
                   ["display", [["text/plain", "7"]]], ["media", ["text/html", "<b/>"]],
                   ["result", [["text/html", "<i/>"], ["text/plain", "Rich()"]]]]
        for bundles, expected in (
                (True, {"stdout": "a\n", "media": [["text/html", "<b/>"]],
                        "displays": [dict(figure), {"text/plain": "7"}],
                        "value": {"text/html": "<i/>", "text/plain": "Rich()"}}),
                (False, {"stdout": "a\n7\nRich()\n",
                         "media": [["image/png", "iVBOR"], ["text/html", "<b/>"]]})):
            d = self.client.run_code(self.kid, "x", bundles=bundles)
            self.daemon.finish(records=records)
            result = self.successResultOf(d)["result"]
            self.assertEqual({k: result[k] for k in expected}, expected)
            self.assertEqual("displays" in result, bundles)

    def test_ordered_output_keeps_the_order_updates_and_clears(self):
        records = [["stdout", "a"], ["stdout", "b"], ["stderr", "!"],
                   ["show", ["d1", [["text/plain", "0%"]]]], ["clear", {"wait": True}],
                   ["update", ["d1", [["text/plain", "100%"]]]], ["stdout", "c"],
                   ["media", ["image/png", "iVBOR"]], ["result", [["text/plain", "7"]]]]
        d = self.client.run_code(self.kid, "x", ordered=True)
        self.daemon.finish(records=records)
        result = self.successResultOf(d)["result"]
        self.assertEqual(result["outputs"], [
            ["stdout", "ab"], ["stderr", "!"],
            ["show", {"id": "d1", "data": {"text/plain": "0%"}}], ["clear", {"wait": True}],
            ["update", {"id": "d1", "data": {"text/plain": "100%"}}], ["stdout", "c"],
            ["media", ["image/png", "iVBOR"]], ["result", {"text/plain": "7"}]])
        self.assertNotIn("stdout", result)
        d = self.client.run_code(self.kid, "x", bundles=True)  # updates are displays
        self.daemon.finish(records=records)
        result = self.successResultOf(d)["result"]
        self.assertEqual((result["stdout"], result["displays"]),
                         ("abc", [{"text/plain": "0%"}, {"text/plain": "100%"}]))
        error = self.error(self.client.run_code(self.kid, "x", ordered=True, match={
            "op": "contains", "target": "stdout", "value": "a"}))
        self.assertEqual(error.code, 400)

    def test_a_program_reaches_the_daemon_and_bad_ones_do_not(self):
        d = self.client.run_code(self.kid, "x", program={"name": "a.py", "args": ["1"]})
        self.assertEqual(self.daemon.requests[-1]["program"], {"name": "a.py",
                                                               "args": ["1"]})
        self.daemon.finish()
        self.successResultOf(d)
        for program in ({"name": "../a"}, {"args": ["a\x00"]}, {"args": "a"},
                        {"args": ["x" * (200 << 10)] * 2}):
            error = self.error(self.client.run_code(self.kid, "x", program=program))
            self.assertEqual(error.code, 400, program)

    def test_malformed_bundles_are_dropped(self):
        d = self.client.run_code(self.kid, "x", bundles=True)
        self.daemon.finish(records=[
            ["display", []], ["display", [["text/plain"]]], ["display", "x"],
            ["result", [["text/plain", 7]]], ["display", [["", "x"]]],
            ["display", [["a/b", "1"], ["a/b", "2"]]],
            ["display", [[f"x/{i}", "v"] for i in range(17)]], ["other", [["a/b", "c"]]],
            ["clear", True], ["clear", {"wait": 1}], ["show", [["text/plain", "x"]]],
            ["update", ["", [["text/plain", "x"]]]], ["show", ["x" * 300, [["a", "b"]]]],
            ["update", ["d", []]],
            ["display", [["text/plain", "kept"]]]])
        result = self.successResultOf(d)["result"]
        self.assertEqual((result["displays"], "value" in result),
                         ([{"text/plain": "kept"}], False))

    def test_assists_are_relayed_and_a_daemons_nonsense_is_cut_to_shape(self):
        self.daemon.assist_reply = {"matches": ["ok", 7, "", "x" * 1000] + ["m"] * 600,
                                    "cursor_start": -4, "cursor_end": 10 ** 9,
                                    "status": "done", "indent": ["no"],
                                    "found": True, "data": [["text/plain", "doc"],
                                                            ["bad"], ["", "x"], 5]}
        reply = self.successResultOf(self.client.complete(self.kid, "abc", 2))
        self.assertEqual((reply["matches"][:2], len(reply["matches"]),
                          reply["cursor_start"], reply["cursor_end"]),
                         (["ok", "m"], 497, 3, 3))  # of the first 500 it sent
        self.assertEqual(self.daemon.requests[-1], {
            "action": "complete", "id": self.daemon.requests[-1]["id"], "code": "abc",
            "cursor_pos": 2})
        self.assertEqual(self.successResultOf(self.client.is_complete(self.kid, "x")),
                         {"status": "unknown", "indent": ""})
        self.assertEqual(self.successResultOf(self.client.inspect(self.kid, "x")),
                         {"found": True, "data": {"text/plain": "doc"}})
        error = self.error(self.client.complete(self.kid, "abc", 4))
        self.assertEqual((error.code, error.error), (400, "invalid-input"))

    def test_query_and_continue_drive_a_long_run_step_by_step(self):
        d = self.client.run_code(self.kid, "long", mode="query", wait=1)
        self.daemon.output("stdout", "first\n")
        self.clock.advance(1)
        reply = self.successResultOf(d)
        self.assertEqual((reply["status"], reply["result"]["stdout"]), ("continued", "first\n"))
        d = self.client.continue_run(self.kid, wait=1)
        self.daemon.output("stdout", "second\n")
        self.daemon.finish()
        reply = self.successResultOf(d)
        self.assertEqual((reply["status"], reply["result"]["stdout"]), ("finished", "second\n"))
        again = self.successResultOf(self.client.continue_run(self.kid))
        self.assertEqual(again, reply)  # a late or repeated continue gets the same end

    def test_continue_before_any_run_is_404(self):
        e = self.error(self.client.continue_run(self.kid))
        self.assertEqual((e.code, e.error), (404, "no-run"))

    def test_a_late_continue_gets_the_tail_of_a_run(self):
        d = self.client.run_code(self.kid, "x", mode="query", wait=0)
        self.assertEqual(self.successResultOf(d)["status"], "continued")
        self.daemon.output("stdout", "tail\n")
        self.daemon.finish(exceptions=[["ZeroDivisionError", [], False, "tb"]])
        reply = self.successResultOf(self.client.continue_run(self.kid))
        self.assertEqual((reply["status"], reply["result"]["stdout"]), ("finished", "tail\n"))
        self.assertEqual(reply["result"]["exceptions"][0][0], "ZeroDivisionError")

    def test_input_round_trip(self):
        d = self.client.run_code(self.kid, "input()")
        self.daemon.output("stdout", "before\n")
        self.daemon.ask("Name: ")
        reply = self.successResultOf(d)
        self.assertEqual((reply["status"], reply["prompt"], reply["password"]),
                         ("waiting-input", "Name: ", False))
        self.assertEqual(reply["result"]["stdout"], "before\n")
        d = self.client.send_input(self.kid, "Ada")
        self.assertEqual(self.daemon.requests[-1]["text"], "Ada")
        self.daemon.output("stdout", "hi Ada\n")
        self.daemon.finish()
        self.assertEqual(self.successResultOf(d)["result"]["stdout"], "hi Ada\n")

    def test_input_when_nothing_waits_is_409(self):
        e = self.error(self.client.send_input(self.kid, "x"))
        self.assertEqual((e.code, e.error), (409, "not-waiting-input"))
        d = self.client.run_code(self.kid, "busy", mode="query", wait=0)
        self.successResultOf(d)
        e = self.error(self.client.send_input(self.kid, "x"))
        self.assertEqual((e.code, e.error), (409, "not-waiting-input"))

    def test_time_waiting_for_input_is_not_execution_time(self):
        d = self.client.run_code(self.kid, "input()")
        self.wait(20)
        self.daemon.ask("? ")
        self.successResultOf(d)
        self.wait(290)  # a slow human, within --max-input-wait (300 s)
        d = self.client.send_input(self.kid, "ok", wait=60)
        self.wait(9)
        self.assertNoResult(d)
        self.daemon.finish()
        self.assertEqual(self.successResultOf(d)["status"], "finished")

    def test_a_read_nobody_answers_ends_after_max_input_wait_and_frees_the_slot(self):
        d = self.client.run_code(self.kid, ASK)
        self.assertEqual(self.successResultOf(d)["status"], "waiting-input")
        self.assertEqual(self.cluster.agents[0].kernels.executions(), 1)
        self.wait(301)
        interrupts = [r for r in self.daemon.requests if r["action"] == "interrupt"]
        self.assertEqual(len(interrupts), 1)
        e = self.error(self.client.continue_run(self.kid))
        self.assertEqual((e.code, e.error), (504, "input-timeout"))
        self.assertEqual(self.cluster.agents[0].kernels.executions(), 0)
        self.assertEqual(self.successResultOf(self.client.execute(self.kid, QUICK))["stdout"],
                         "hello\n")

    def test_timeout_interrupts_and_keeps_the_kernel(self):
        d = self.client.execute(self.kid, "while True: pass")
        self.wait(30)
        e = self.error(d)
        self.assertEqual((e.code, e.error), (504, "exec-timeout"))
        self.assertIn("keeps its state", e.cause)
        d = self.client.execute(self.kid, "1")
        self.daemon.finish()
        self.successResultOf(d)

    def test_a_run_ignoring_the_interrupt_costs_the_kernel(self):
        self.daemon.interrupt_ends_run = False
        d = self.client.execute(self.kid, "stubborn")
        self.wait(30)
        self.assertNoResult(d)
        self.wait(5)
        e = self.error(d)
        self.assertEqual((e.code, e.error), (504, "exec-timeout"))
        self.assertEqual(self.cluster.hosts[0].running(), [])

    def test_interrupt(self):
        self.assertEqual(self.successResultOf(self.client.interrupt(self.kid)),
                         {"interrupted": False})
        d = self.client.execute(self.kid, "sleep")
        self.assertEqual(self.successResultOf(self.client.interrupt(self.kid)),
                         {"interrupted": True})
        self.assertEqual(self.successResultOf(d)["exceptions"][0][0], "KeyboardInterrupt")

    def test_restart_ends_the_run_and_waits_for_the_fresh_daemon(self):
        d = self.client.execute(self.kid, "sleep")
        self.successResultOf(self.client.restart(self.kid))
        e = self.error(d)
        self.assertEqual((e.code, e.error), (409, "restarted"))
        self.assertEqual([r["action"] for r in self.daemon.requests[-2:]], ["restart", "ping"])
        d = self.client.execute(self.kid, "1")
        self.daemon.finish()
        self.successResultOf(d)

    def test_restart_ends_the_running_and_every_queued_run_before_the_daemon_hears(self):
        running = self.client.execute(self.kid, "sleep")
        queued = [self.client.execute(self.kid, f"queued {i}") for i in range(2)]
        seen = len(self.daemon.requests)
        self.successResultOf(self.client.restart(self.kid))
        for d in [running] + queued:
            e = self.error(d)
            self.assertEqual((e.code, e.error), (409, "restarted"))
        self.assertEqual([r["action"] for r in self.daemon.requests[seen:]],
                         ["restart", "ping"])  # no queued run reached the old process
        self.wait(60)  # no run's timer is left to judge the fresh process
        reply = self.successResultOf(self.client.execute(self.kid, QUICK))
        self.assertEqual(reply["stdout"], "hello\n")

    def test_executions_sent_during_a_restart_run_on_the_fresh_process(self):
        self.daemon.answer_pings = False  # the fresh process is not up yet
        restart = self.client.restart(self.kid)
        d = self.client.execute(self.kid, QUICK)
        self.assertNotIn("execute", [r["action"] for r in self.daemon.requests])
        self.daemon.answer_pings = True
        self.clock.advance(1)  # the next ping is answered
        self.successResultOf(restart)
        self.assertEqual(self.successResultOf(d)["stdout"], "hello\n")

    def test_an_interrupt_names_its_run_and_spares_the_queued_one(self):
        first = self.client.execute(self.kid, "first")
        second = self.client.execute(self.kid, "second")
        [first_id] = [r["id"] for r in self.daemon.requests if r.get("code") == "first"]
        self.assertEqual(self.successResultOf(self.client.interrupt(self.kid)),
                         {"interrupted": True})
        [interrupt] = [r for r in self.daemon.requests if r["action"] == "interrupt"]
        self.assertEqual(interrupt["run"], first_id)
        self.assertEqual(self.successResultOf(first)["exceptions"][0][0],
                         "KeyboardInterrupt")
        self.assertNoResult(second)  # now at the daemon, and not interrupted
        self.daemon.finish()
        self.assertEqual(self.successResultOf(second)["exceptions"], [])

    def test_the_timeouts_interrupt_names_the_timed_out_run(self):
        d = self.client.execute(self.kid, "slow")
        [run_id] = [r["id"] for r in self.daemon.requests if r.get("code") == "slow"]
        self.wait(30)
        [interrupt] = [r for r in self.daemon.requests if r["action"] == "interrupt"]
        self.assertEqual(interrupt["run"], run_id)
        self.assertEqual(self.error(d).error, "exec-timeout")

    def test_the_daemons_error_replies_about_a_run_reach_the_client(self):
        self.daemon.refuse_runs = {"reply": 500, "error": "internal-error",
                                   "cause": "The reply could not be encoded: boom"}
        e = self.error(self.client.execute(self.kid, "x"))
        self.assertEqual((e.code, e.error), (500, "internal-error"))
        self.assertIn("boom", e.cause)
        self.daemon.refuse_runs = None
        self.assertEqual(self.successResultOf(self.client.execute(self.kid, QUICK))["stdout"],
                         "hello\n")

    def test_input_text_may_come_in_code_as_backend_ai_sends_it(self):
        d = self.client.run_code(self.kid, ASK)
        self.assertEqual(self.successResultOf(d)["status"], "waiting-input")
        d = self.client.run_code(self.kid, "Ada", mode="input")
        self.assertEqual(self.daemon.requests[-1], {"action": "input", "text": "Ada",
                                                    "id": self.daemon.requests[-1]["id"]})
        self.assertEqual(self.successResultOf(d)["result"]["stdout"], "hello Ada\n")

    def test_input_without_text_or_code_is_400_and_answers_nothing(self):
        self.successResultOf(self.client.run_code(self.kid, ASK))
        e = self.error(self.client.run_code(self.kid, mode="input"))
        self.assertEqual(e.code, 400)
        self.assertIn("`text` is missing", e.cause)
        self.assertNotIn("input", [r["action"] for r in self.daemon.requests])
        self.assertEqual(self.successResultOf(self.client.send_input(self.kid, ""))[
            "result"]["stdout"], "hello \n")  # an empty line is still an answer

    def test_files(self):
        self.assertEqual(self.successResultOf(self.client.upload(self.kid, "a.txt", b"hi")),
                         {"path": "a.txt", "size": 2})
        self.assertEqual(self.successResultOf(self.client.download(self.kid, "a.txt")), b"hi")
        [entry] = self.successResultOf(self.client.list_files(self.kid))
        self.assertEqual(entry["name"], "a.txt")
        e = self.error(self.client.download(self.kid, "nope"))
        self.assertEqual((e.code, e.error), (404, "no-such-file"))
        for bad in ("../x", "/etc/passwd", "a\x00b", "a/../../b"):
            e = self.error(self.client.download(self.kid, bad))
            self.assertEqual((e.code, e.error), (400, "bad-path"), bad)
        requests = len(self.daemon.requests)
        e = self.error(self.client.upload(self.kid, "big", b"x" * ((16 << 20) + 1)))
        self.assertEqual(e.code, 413)
        self.assertEqual(len(self.daemon.requests), requests)  # refused before the kernel

    def grade(self, match, stdout="42\n", exceptions=()):
        d = self.client.run_code(self.kid, "x", match=match)
        self.daemon.output("stdout", stdout)
        self.daemon.finish(exceptions=exceptions)
        return self.successResultOf(d)["match_result"]

    def test_match(self):
        self.assertTrue(self.grade({"op": "equal", "target": "stdout", "value": "42"}))
        self.assertFalse(self.grade({"op": "equal", "target": "stdout", "value": "4"}))
        self.assertTrue(self.grade({"op": "contains", "target": "stdout", "value": "4"}))
        self.assertTrue(self.grade({"op": "regex", "target": "stdout", "value": r"^\d+$"}))
        self.assertFalse(self.grade({"op": "contains", "target": "stderr", "value": "x"}))
        self.assertTrue(self.grade({"op": "equal", "target": "exception",
                                    "value": "ZeroDivisionError: division by zero"},
                                   exceptions=[["ZeroDivisionError", ["division by zero"],
                                                False, "tb"]]))
        e = self.error(self.client.run_code(self.kid, "x", match={
            "op": "regex", "target": "stdout", "value": "("}))
        self.assertEqual(e.code, 400)
        self.assertIn("regular expression", e.cause)
        e = self.error(self.client.run_code(self.kid, "x", match={
            "op": "like", "target": "stdout", "value": "x"}))
        self.assertIn("`match.op` must be one of", e.cause)


class S3ExportTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock, agent_argv=["--s3-bucket", "results"])
        self.daemon = ScriptedRepl()
        self.cluster.hosts[0].script = self.daemon
        self.cluster.start()
        self.uploads = {}
        exporter = self.cluster.agents[0].kernels.exporter
        self.patch(exporter, "_thd_put", self.put)
        self.client = self.cluster.client()
        self.kid = self.successResultOf(self.client.create("python3"))["kernel_id"]

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())

    def put(self, key, data):
        if key.endswith("broken.txt"):
            raise OSError("the S3 endpoint refused the connection")
        self.uploads[key] = data

    def test_changed_files_go_to_s3_under_the_entry_id(self):
        self.daemon.files.update({"out.txt": b"data", "plots/a.png": b"png"})
        d = self.client.run_code(self.kid, "x", entry_id="e1")
        self.daemon.finish(files=["out.txt", "plots/a.png", "gone.txt"])
        result = self.successResultOf(d)["result"]
        self.assertEqual(result["files"], ["s3://results/e1/out.txt",
                                           "s3://results/e1/plots/a.png"])
        self.assertEqual(self.uploads, {"e1/out.txt": b"data", "e1/plots/a.png": b"png"})

    def test_s3_keys_stay_under_the_entrys_prefix_whatever_the_daemon_says(self):
        hostile = ["../other/x.txt", "/etc/passwd", "a/../../b", "./a", "a//b", "",
                   "ok/../x", "a\x00b", 5]
        self.daemon.files.update({p: b"x" for p in hostile if isinstance(p, str)})
        self.daemon.files["fine/y.txt"] = b"y"
        d = self.client.run_code(self.kid, "x", entry_id="e1")
        self.daemon.finish(files=hostile + ["fine/y.txt"])
        self.assertEqual(self.successResultOf(d)["result"]["files"],
                         ["s3://results/e1/fine/y.txt"])
        self.assertEqual(list(self.uploads), ["e1/fine/y.txt"])

    def test_a_failed_upload_is_logged_and_the_result_returned(self):
        self.daemon.files.update({"ok.txt": b"y", "broken.txt": b"x", "later.txt": b"z"})
        d = self.client.execute(self.kid, "x")
        self.daemon.finish(files=["ok.txt", "broken.txt", "later.txt"])
        result = self.successResultOf(d)
        # S3 failing once stops the run's export: the rest would wait as long each.
        self.assertEqual(result["files"], [f"s3://results/{self.kid}/ok.txt"])
        self.assertEqual(list(self.uploads), [f"{self.kid}/ok.txt"])


class LimitTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.cluster = FakeCluster(self.clock, agent_argv=[
            "--max-output", "1024", "--max-executions", "2"])
        self.daemon = ScriptedRepl()
        self.host = self.cluster.hosts[0]
        self.host.script = self.daemon
        self.cluster.start()
        self.client = self.cluster.client()

    def tearDown(self):
        self.client.close()
        self.successResultOf(self.cluster.stop())

    def test_output_is_capped_and_marked_truncated(self):
        kid = self.successResultOf(self.client.create("python3"))["kernel_id"]
        d = self.client.execute(kid, "spam")
        for _ in range(10):
            self.daemon.output("stdout", "x" * 300)
        self.daemon.output("media", ["image/png", "A" * 100])
        self.daemon.finish()
        result = self.successResultOf(d)
        self.assertEqual((len(result["stdout"]), result["media"], result["truncated"]),
                         (1024, [], True))

    def test_output_carried_by_the_end_is_kept_and_capped_too(self):
        kid = self.successResultOf(self.client.create("python3"))["kernel_id"]
        d = self.client.execute(kid, "spam")
        self.daemon.output("stdout", "x" * 1000)
        self.daemon.finish(records=[["stdout", "y" * 100], ["bogus"], ["stderr", "e"],
                                    ["media", ["image/png", "A"]]])
        result = self.successResultOf(d)
        self.assertEqual(result["stdout"], "x" * 1000 + "y" * 24)
        self.assertEqual((result["stderr"], result["media"], result["truncated"]),
                         ("", [], True))
        d = self.client.execute(kid, "spam")
        self.daemon.finish(records=[["stdout", "short"], ["stderr", "e"]])
        result = self.successResultOf(d)
        self.assertEqual((result["stdout"], result["stderr"], result["truncated"]),
                         ("short", "e", False))

    def test_many_short_runs_are_no_flood_but_a_runs_stream_of_events_is(self):
        kid = self.successResultOf(self.client.create("python3"))["kernel_id"]
        for _ in range(700):  # all within one second of the clock: 1,400 messages
            d = self.client.execute(kid, "spam")
            self.daemon.output("stdout", "x")
            self.daemon.finish()
            self.assertEqual(self.successResultOf(d)["stdout"], "x")
        d = self.client.execute(kid, "spam")
        for _ in range(600):
            self.daemon.output("stdout", "y")
        e = self.failureResultOf(d, SornaError).value
        self.assertEqual((e.code, e.error), (404, "kernel-died"))
        self.assertIn("flooded the agent", e.cause)

    def test_executions_at_once_are_limited_per_agent(self):
        kernels = [self.successResultOf(self.client.create("python3"))["kernel_id"]
                   for _ in range(3)]
        first = self.client.execute(kernels[0], "a")
        second = self.client.execute(kernels[1], "b")
        e = self.failureResultOf(self.client.execute(kernels[2], "c"), SornaError).value
        self.assertEqual((e.code, e.error), (409, "agent-busy"))
        self.daemon.finish()  # ends the latest run the script saw
        self.assertEqual(len([d for d in (first, second) if d.called]), 1)
        for d in (first, second):
            d.addErrback(lambda f: f.trap(SornaError))  # ended by the client's close

    def test_a_dead_kernel_says_why_to_its_waiting_execution_and_the_manager(self):
        kernel = self.successResultOf(self.client.get_or_create("u", "e", "python3"))
        d = self.client.execute(kernel["kernel_id"], "boom")
        [container] = self.host.running()
        container.die(oom=True)
        self.clock.pump([0.5] * 7)
        e = self.failureResultOf(d, SornaError).value
        self.assertEqual((e.code, e.error), (404, "kernel-died"))
        self.assertIn("ran out of memory", e.cause)
        self.clock.pump([0.5] * 20)  # heartbeats tell the manager
        e = self.failureResultOf(self.client.kernel_info(kernel["kernel_id"]), SornaError).value
        self.assertEqual(e.error, "kernel-lost")
        self.assertIn("ran out of memory", e.cause)

    def test_the_engine_report_reaches_status_and_the_log(self):
        status = self.successResultOf(self.client.status())
        sandbox = status["agents"][0]["resources"]["sandbox"]
        self.assertEqual(sandbox, {"memory": True, "swap": True, "pids": True, "cpu": True,
                                   "seccomp": True, "warnings": [], "runtimes": ["runc"]})


class WeakEngineTests(SynchronousTestCase):
    def test_limits_the_engine_cannot_enforce_are_reported(self):
        from twisted.logger import globalLogPublisher
        clock = task.Clock()
        cluster = FakeCluster(clock)
        cluster.hosts[0].docker.engine.update(
            SwapLimit=False, PidsLimit=False,
            Warnings=["WARNING: No swap limit support"])
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        cluster.start()
        self.addCleanup(lambda: self.successResultOf(cluster.stop()))
        client = cluster.client()
        self.addCleanup(client.close)
        sandbox = self.successResultOf(client.status())["agents"][0]["resources"]["sandbox"]
        self.assertEqual((sandbox["swap"], sandbox["pids"], sandbox["memory"]),
                         (False, False, True))
        self.assertEqual(sandbox["warnings"], ["WARNING: No swap limit support"])
        said = [e.get("limit") or e.get("engine_warning") for e in events
                if e.get("log_namespace") == "sorna.agent" and e.get("log_level").name == "warn"]
        self.assertEqual(said, ["swap", "pids", "WARNING: No swap limit support"])


class RuntimeTests(SynchronousTestCase):
    def test_kernels_run_under_the_chosen_runtime(self):
        clock = task.Clock()
        cluster = FakeCluster(clock, agent_argv=["--runtime", "runsc"])
        cluster.hosts[0].docker.engine["Runtimes"]["runsc"] = {"path": "/usr/bin/runsc"}
        cluster.start()
        self.addCleanup(lambda: self.successResultOf(cluster.stop()))
        client = cluster.client()
        self.addCleanup(client.close)
        self.successResultOf(client.create("python3"))
        [container] = cluster.hosts[0].running()
        self.assertEqual(container.kwargs["runtime"], "runsc")

    def test_an_unregistered_runtime_stops_the_agent_with_a_clear_error(self):
        clock = task.Clock()
        cluster = FakeCluster(clock, agent_argv=["--runtime", "runsc"])
        failures = []
        cluster.agents[0].on_fatal = failures.append
        cluster.start()
        self.addCleanup(lambda: self.successResultOf(cluster.stop()))
        [failure] = failures
        self.assertIn("no runtime named 'runsc'", str(failure.value))
        self.assertIn("registered: runc", str(failure.value))
        self.flushLoggedErrors(RuntimeError)
