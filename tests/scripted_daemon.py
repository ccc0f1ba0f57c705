"""A scripted REPL daemon: the test says when each event of a run comes.

It keeps the real daemon's protocol rules (tests/test_repl_contract.py checks it
against the same suite as the real daemon): one run at a time (409 otherwise), an
interrupt stops only the run it names, a restart drops the run in progress. It runs
no code: a run of the contract's programs (`PROGRAMS`) plays that program, any other
run waits for the test to call `output`, `ask` and `finish` (which act on the latest
run). One script may play the daemons of several kernels: each has its own run.
"""

QUICK = "print('hello')"
LONG = "import time\nwhile True:\n    time.sleep(0.05)"
ASK = "print('hello', input('Name: '))"
PROGRAMS = (QUICK, LONG, ASK)


class ScriptedRepl:
    """Records requests; answers pings, inputs, interrupts, file requests and assists
    (with `assist_reply`)."""

    def __init__(self):
        self.requests = []
        self.run = None  # (daemon, id, code) of the latest execution in progress
        self.runs = {}  # container id -> that kernel's run in progress
        self.waiting = False  # the latest run reads input
        self.interrupt_ends_run = True
        self.answer_pings = True  # False: a process that is not up yet
        self.refuse_runs = None  # an error reply to send to every execute instead
        self.files = {}
        self.assist_reply = {}  # what complete, inspect and is_complete are answered

    def __call__(self, daemon, request):
        self.requests.append(request)
        action, rid = request.get("action"), request.get("id")
        if action == "ping":
            if self.answer_pings:
                daemon.send({"id": rid, "reply": 0})
        elif action == "execute":
            self._execute(daemon, rid, request)
        elif action == "input":
            if not self.waiting:
                daemon.send({"id": rid, "reply": 409, "error": "not-waiting-input",
                             "cause": "No read is waiting for input."})
                return
            self.waiting = False
            daemon.send({"id": rid, "reply": 200})
            run = self.runs.get(daemon.container_id)
            if run is not None and run[2] == ASK:
                daemon.send({"id": run[1], "event": "output",
                             "records": [["stdout", f"hello {request['text']}\n"]]})
                self.finish(run=run)
        elif action == "interrupt":
            target, run = request.get("run"), self.runs.get(daemon.container_id)
            running = run is not None and target in (None, run[1])
            daemon.send({"id": rid, "reply": 200, "interrupted": running})
            if running and self.interrupt_ends_run:
                self.waiting = False
                self.finish(exceptions=[["KeyboardInterrupt", [], False, "KeyboardInterrupt\n"]],
                            run=run)
        elif action == "restart":
            daemon.send({"id": rid, "reply": 200})
            if self.runs.pop(daemon.container_id, None) is self.run:
                self.run, self.waiting = None, False
        elif action == "upload":
            self.files[request["path"]] = request["data"]
            daemon.send({"id": rid, "reply": 200, "path": request["path"],
                         "size": len(request["data"])})
        elif action == "download":
            if request["path"] in self.files:
                daemon.send({"id": rid, "reply": 200, "path": request["path"],
                             "data": self.files[request["path"]]})
            else:
                daemon.send({"id": rid, "reply": 404, "error": "no-such-file",
                             "cause": f"no file {request['path']}"})
        elif action == "list":
            daemon.send({"id": rid, "reply": 200, "path": "", "entries": [
                {"name": n, "type": "file", "size": len(d), "mtime": 0}
                for n, d in sorted(self.files.items())]})
        elif action in ("complete", "inspect", "is_complete"):
            daemon.send(dict(self.assist_reply, id=rid, reply=200))
        else:
            daemon.send({"id": rid, "reply": 400, "error": "invalid-input",
                         "cause": f"Unknown action {action!r}."})

    def _execute(self, daemon, rid, request):
        code = request.get("code")
        if not isinstance(code, str):
            daemon.send({"id": rid, "reply": 400, "error": "invalid-input",
                         "cause": "'code' must be a string."})
            return
        if self.refuse_runs is not None:
            daemon.send(dict(self.refuse_runs, id=rid))
            return
        if daemon.container_id in self.runs:
            daemon.send({"id": rid, "reply": 409, "error": "kernel-busy",
                         "cause": "A run is going on already."})
            return
        self.run = self.runs[daemon.container_id] = (daemon, rid, code)
        if code == QUICK:
            self.output("stdout", "hello\n")
            self.finish()
        elif code == ASK:
            self.ask("Name: ")

    def output(self, kind, data):
        daemon, rid, _ = self.run
        daemon.send({"id": rid, "event": "output", "records": [[kind, data]]})

    def ask(self, prompt, password=False):
        daemon, rid, _ = self.run
        self.waiting = True
        daemon.send({"id": rid, "event": "waiting-input", "prompt": prompt,
                     "password": password})

    def finish(self, exceptions=(), files=(), run=None, records=None):
        """`records`: the last output, carried by the end as the real daemon does."""
        daemon, rid, _ = run = run or self.run
        del self.runs[daemon.container_id]
        if self.run is run:
            self.run = None
        event = {"id": rid, "event": "finished", "reply": 200,
                 "exceptions": list(exceptions), "files": list(files)}
        if records is not None:
            event["records"] = records
        daemon.send(event)
