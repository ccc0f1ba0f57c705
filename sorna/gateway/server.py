"""`python3 -m sorna.gateway.server [OPTIONS]`: what `twistd -n sorna-gateway [OPTIONS]`
runs (sorna.foreground), under the original deployment's command."""

from sorna.foreground import main

if __name__ == "__main__":
    main("sorna-gateway", "sorna.gateway.server")
