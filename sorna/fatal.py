"""Stopping a twistd process that cannot do its job, with a non-zero exit status."""

import os


def stop_reactor_with_error(reactor, status=1):
    """Stop cleanly, then exit with `status` so that supervisors see the failure."""
    reactor.addSystemEventTrigger("after", "shutdown", os._exit, status)
    reactor.callWhenRunning(reactor.stop)
