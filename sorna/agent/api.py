"""The agent's actions: front-end requests on its ROUTER port, manager commands on its
heartbeat connection."""

from sorna.defer import deferred
from sorna.proto import codes
from sorna.proto.errors import Forbidden


class AgentApi:
    def __init__(self, kernels):
        self.kernels = kernels

    def frontend_handlers(self):
        return {"ping": self.ping, "execute": self.execute,
                "create_kernel": self.refuse_command, "destroy_kernel": self.refuse_command}

    def manager_handlers(self):
        return {"ping": self.ping, "execute": self.execute,
                "create_kernel": self.create_kernel, "destroy_kernel": self.destroy_kernel}

    def ping(self, req):
        return {"reply": codes.PONG, "body": req.fields["body"]}

    @deferred
    async def execute(self, req):
        result = await self.kernels.execute(req.fields["kernel_id"], req.fields["code"])
        return {"kernel_id": req.fields["kernel_id"], "result": result}

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
