"""Sorna's tests. Every cluster they start, in memory or as processes, uses CurveZMQ
keys (sorna.testing.keys) unless a test is about --insecure."""

from sorna.testing.keys import use_test_keys

use_test_keys()
