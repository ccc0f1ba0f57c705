"""The JSON log observer writes one parseable event per line, fields included."""

import io
import json
import sys

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from sorna import logging as sorna_logging


class JsonLogTests(SynchronousTestCase):
    def test_events_are_json_lines_with_their_fields(self):
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        observer = sorna_logging.json_observer()
        Logger(namespace="sorna.test", observer=observer).info(
            "kernel {kernel} started", kernel="k1")
        [line] = out.getvalue().strip("\x1e\n").splitlines()
        event = json.loads(line.strip("\x1e"))
        self.assertEqual((event["kernel"], event["log_namespace"]), ("k1", "sorna.test"))
        self.assertEqual(event["log_format"], "kernel {kernel} started")
        self.assertEqual(event["log_text"], "kernel k1 started")
