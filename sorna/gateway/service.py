"""The gateway process: an HTTP/WebSocket server in front of the manager."""

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.logger import Logger

from sorna.cluster_keys import KeyWatch
from sorna.defer import deferred
from sorna.gateway.channels import ChannelsApi
from sorna.gateway.dashboard import DashboardApi
from sorna.gateway.jupyter import JupyterApi, Kernels
from sorna.gateway.piston import PistonApi
from sorna.gateway.tenants import Quotas
from sorna.gateway.tokens import TokenRing
from sorna.gateway.web import MAX_BODY, Api, GatewaySite

log = Logger(namespace="sorna.gateway")


class GatewayService(MultiService):
    def __init__(self, client, clock, port, listen, tokens_path, allow_origin=None,
                 max_body=MAX_BODY, security="curve", quotas=Quotas()):
        """`client`: a sorna.client.SornaClient of the manager (closed at stop)."""
        super().__init__()
        self.client = client
        self.clock = clock
        self.security = security
        self.quotas = quotas
        self.tokens = TokenRing(tokens_path)
        KeyWatch.for_clock(self.tokens, clock).setServiceParent(self)
        self.kernels = Kernels(client, clock, quotas=quotas)
        self.dashboard = DashboardApi(client, self.kernels, clock, quotas=quotas)
        self.channels = ChannelsApi(self.kernels, clock, quotas, self.tokens)
        self.tokens.listeners += [self.channels.revoke, self.dashboard.revoke]
        routes = (JupyterApi(self.kernels).routes() + self.channels.routes()
                  + PistonApi(client, clock, self.kernels, quotas).routes()
                  + self.dashboard.routes())
        self.api = Api(routes, self.tokens, allow_origin,
                       on_error=self.dashboard.record_error)
        host = listen if listen not in ("*", "") else ""
        self.address = f"http://{host or '0.0.0.0'}:{port}"
        description = f"tcp:{port}" + (f":interface={host}" if host else "")
        self._http = strports.service(description, GatewaySite(self.api, max_body, clock))
        self._http.setServiceParent(self)

    def startService(self):
        super().startService()
        log.info("sorna-gateway ready on {address} ({security}, {n} tokens; per token "
                 "{quotas.kernels} kernels, {quotas.runs} runs, {quotas.sockets} sockets, "
                 "{quotas.streams} event streams)", address=self.address,
                 security=self.security, n=len(self.tokens), quotas=self.quotas)

    @deferred
    async def stopService(self):
        self.channels.close_all()
        self.dashboard.stop()
        await MultiService.stopService(self)
        await self.api.in_flight.wait()
        await self.channels.in_flight.wait()
        await self.kernels.shutdown_all()
        self.client.close()
        log.info("sorna-gateway stopped")
