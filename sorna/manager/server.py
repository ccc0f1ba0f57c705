"""`python3 -m sorna.manager.server [OPTIONS]`: what `twistd -n sorna-manager [OPTIONS]`
runs (sorna.foreground), under the original deployment's command."""

from sorna.foreground import main

if __name__ == "__main__":
    main("sorna-manager", "sorna.manager.server")
