"""Log observers for twistd: `twistd --logger sorna.logging.json_observer sorna-agent ...`
writes one JSON event per line (for log shippers); the default is twistd's text log.

Each JSON event carries its fields (`request`: the trace id, `kernel`, `agent`, ...) and
`log_text`, the line the text log would show, so that a grep for a kernel or a request
finds the same lines in either format."""

import sys

from twisted.logger import formatEvent, jsonFileLogObserver


def json_observer(out=None):
    write = jsonFileLogObserver(out or sys.stdout)

    def observe(event):
        write(dict(event, log_text=formatEvent(event)))

    return observe
