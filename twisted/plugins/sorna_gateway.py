from twisted.application.service import ServiceMaker

sorna_gateway = ServiceMaker("sorna-gateway", "sorna.gateway.tap", "The Sorna gateway.", "sorna-gateway")
