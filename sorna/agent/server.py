"""`python3 -m sorna.agent.server [OPTIONS]`: what `twistd -n sorna-agent [OPTIONS]`
runs (sorna.foreground), under the original deployment's command."""

from sorna.foreground import main

if __name__ == "__main__":
    main("sorna-agent", "sorna.agent.server")
