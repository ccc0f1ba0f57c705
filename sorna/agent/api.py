"""The agent's actions: front-end requests on its ROUTER port, manager commands on its
heartbeat connection."""

from sorna.agent.grading import InlineGrader
from sorna.agent.runs import RunOptions
from sorna.defer import deferred, returns_deferred
from sorna.proto import codes
from sorna.proto.actions import MAX_PROGRAM_ARGS_SIZE
from sorna.proto.errors import BadRequest, Forbidden


class AgentApi:
    """`grader` (sorna.agent.grading) answers `match`, away from the reactor."""

    def __init__(self, kernels, grader=None):
        self.kernels = kernels
        self.grader = grader or InlineGrader()

    def frontend_handlers(self):
        return {"ping": self.ping, "execute": self.execute, "interrupt": self.interrupt,
                "restart": self.restart, "upload": self.files, "download": self.files,
                "list_files": self.files, "complete": self.assist, "inspect": self.assist,
                "is_complete": self.assist,
                "create_kernel": self.refuse_command, "destroy_kernel": self.refuse_command}

    def manager_handlers(self):
        return {"ping": self.ping, "create_kernel": self.create_kernel,
                "destroy_kernel": self.destroy_kernel}

    def ping(self, req):
        return {"reply": codes.PONG, "body": req.fields["body"]}

    @returns_deferred
    def execute(self, req):
        f = req.fields
        text = f["text"]
        if f["mode"] in (None, "query") and f["code"] is None:
            raise BadRequest("`code` is missing: a new run needs the code to run")
        if f["eof"] and f["mode"] != "input":
            raise BadRequest("`eof` ends the input of a waiting run: it goes with mode "
                             "input")
        if f["mode"] == "input":
            # Backend.AI's clients send the answer in `code`.
            text = f["code"] if text is None else text
            if text is None and f["eof"]:
                text = ""
            if text is None:
                raise BadRequest("`text` is missing: mode input needs the text to answer "
                                 "the program with (or `code`, as Backend.AI sends it)")
        program = f["program"]
        if program is not None and sum(len(a.encode("utf-8", "surrogatepass")) + 1
                                       for a in program["args"]) > MAX_PROGRAM_ARGS_SIZE:
            raise BadRequest(f"`program.args` take more than {MAX_PROGRAM_ARGS_SIZE} "
                             f"bytes; pass large data as a file or as input")
        if f["match"] is not None and f["ordered"]:
            raise BadRequest("`match` grades stdout, stderr or the exception, which "
                             "`ordered` output does not give; ask for one of them")
        if f["match"] is not None:
            return self._execute_and_grade(req, text)
        d = self._execute(req, text)
        return d.addCallback(lambda reply: dict(reply, kernel_id=f["kernel_id"]))

    def _execute(self, req, text):
        f = req.fields
        return self.kernels.execute(
            f["kernel_id"], f["code"], f["mode"], text, f["wait"],
            partial=req.partial if f["stream"] else None, entry_id=f["entry_id"],
            eof=f["eof"], options=RunOptions(f["bundles"], f["ordered"], f["program"]))

    @deferred
    async def _execute_and_grade(self, req, text):
        f = req.fields
        await self.grader.check(f["match"])
        reply = dict(await self._execute(req, text), kernel_id=f["kernel_id"])
        if reply["status"] == "finished":  # a copy: run.final is every asker's
            reply["match_result"] = await self.grader.grade(f["match"], reply["result"])
        return reply

    def interrupt(self, req):
        return self.kernels.interrupt(req.fields["kernel_id"])

    @deferred
    async def restart(self, req):
        await self.kernels.restart(req.fields["kernel_id"])
        return {"kernel_id": req.fields["kernel_id"]}

    def files(self, req):
        message = {k: v for k, v in req.fields.items() if k != "kernel_id"}
        message["action"] = "list" if req.action == "list_files" else req.action
        return self.kernels.file_request(req.fields["kernel_id"], message)

    def assist(self, req):
        f = req.fields
        cursor = f.get("cursor_pos")
        if cursor is not None and cursor > len(f["code"]):
            raise BadRequest(f"cursor_pos {cursor} is past the end of the code "
                             f"({len(f['code'])} characters)")
        return self.kernels.assist(f["kernel_id"], req.action, f["code"], cursor)

    def refuse_command(self, req):
        raise Forbidden(f"{req.action} is for the manager only: ask the manager for a kernel "
                        f"(get_or_create, create, destroy)")

    @deferred
    async def create_kernel(self, req):
        f = req.fields
        await self.kernels.create(f["kernel_id"], f["lang"], f["limits"])
        return {"kernel_id": f["kernel_id"]}

    @deferred
    async def destroy_kernel(self, req):
        await self.kernels.destroy(req.fields["kernel_id"])
        return {"kernel_id": req.fields["kernel_id"]}
