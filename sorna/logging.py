"""Log observers for twistd: `twistd --logger sorna.logging.json_observer sorna-agent ...`
writes one JSON event per line (for log shippers); the default is twistd's text log."""

import sys

from twisted.logger import jsonFileLogObserver


def json_observer():
    return jsonFileLogObserver(sys.stdout)
