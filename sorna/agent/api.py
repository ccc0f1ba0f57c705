"""The agent's actions: front-end requests on its ROUTER port, manager commands on its
heartbeat connection."""

import re

from twisted.internet import defer

from sorna.agent import grading
from sorna.defer import deferred
from sorna.proto import codes
from sorna.proto.errors import BadRequest, Forbidden, Timeout

MATCH_TIMEOUT = 10.0


class AgentApi:
    """`match_pool`: a WorkerPool for grading patterns, apart from Docker's."""

    def __init__(self, kernels, match_pool=None):
        self.kernels = kernels
        self.match_pool = match_pool

    def frontend_handlers(self):
        return {"ping": self.ping, "execute": self.execute, "interrupt": self.interrupt,
                "restart": self.restart, "upload": self.files, "download": self.files,
                "list_files": self.files,
                "create_kernel": self.refuse_command, "destroy_kernel": self.refuse_command}

    def manager_handlers(self):
        return {"ping": self.ping, "create_kernel": self.create_kernel,
                "destroy_kernel": self.destroy_kernel}

    def ping(self, req):
        return {"reply": codes.PONG, "body": req.fields["body"]}

    @deferred
    async def execute(self, req):
        f = req.fields
        if f["mode"] in (None, "query") and f["code"] is None:
            raise BadRequest("`code` is missing")
        if f["match"] is not None:
            try:
                grading.check_pattern(f["match"])
            except re.error as e:
                raise BadRequest(f"`match.value` is not a valid regular expression: {e}")
        reply = await self.kernels.execute(
            f["kernel_id"], f["code"], f["mode"], f["text"], f["wait"],
            partial=req.partial if f["stream"] else None, entry_id=f["entry_id"])
        if f["match"] is not None and reply["status"] == "finished":
            reply["match_result"] = await self._match(f["match"], reply["result"])
        return dict(reply, kernel_id=f["kernel_id"])

    async def _match(self, match, result):
        if self.match_pool is None:
            return grading.matches(match, result)
        d = self.match_pool.run(grading.matches, match, result)
        d.addTimeout(MATCH_TIMEOUT, self.kernels.clock)
        try:
            return await d
        except defer.TimeoutError:
            raise Timeout(f"the match pattern took longer than {MATCH_TIMEOUT:g} s",
                          error="match-timeout")

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
