from twisted.application.service import ServiceMaker

sorna_manager = ServiceMaker("sorna-manager", "sorna.manager.tap", "The Sorna manager.", "sorna-manager")
