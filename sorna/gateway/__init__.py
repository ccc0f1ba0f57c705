"""The gateway: HTTP and WebSocket for Jupyter and Piston clients and browsers, a
front-end of the manager like any other (`twistd sorna-gateway`)."""
