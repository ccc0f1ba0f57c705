from twisted.application.service import ServiceMaker

sorna_agent = ServiceMaker("sorna-agent", "sorna.agent.tap", "A Sorna agent.", "sorna-agent")
