"""Warm pools: kernels started ahead of demand, per language, so that a create is a
hand-out instead of a container start.

A pooled kernel is an ordinary kernel of `Kernels` marked `pooled`: it has never run code,
is handed out at most once, and never comes back (used kernels are destroyed). Pools use
free slots only and give them back to creates (see `Kernels.create`).
"""

from collections import Counter

from twisted.internet import defer
from twisted.logger import Logger

from sorna.defer import deferred
from sorna.proto.schema import LANG_RE
from sorna.ratelog import RateLimitedLog

log = Logger(namespace="sorna.agent")

MAX_PER_LANGUAGE = 64


def parse_warm_pools(text):
    """`python3=2,nodejs=1` -> {"python3": 2, "nodejs": 1}; `0`, `none` or "" -> {}."""
    text = (text or "").strip()
    if text in ("", "0", "none", "off"):
        return {}
    targets = {}
    for item in text.split(","):
        lang, sep, count = item.strip().partition("=")
        if not sep or not LANG_RE.match(lang) or not count.strip().isdigit():
            raise ValueError(f"{item.strip()!r} is not LANG=N (e.g. python3=2)")
        if lang in targets:
            raise ValueError(f"{lang} is given twice")
        n = int(count)
        if n > MAX_PER_LANGUAGE:
            raise ValueError(f"{lang}={n}: at most {MAX_PER_LANGUAGE} per language")
        if n:
            targets[lang] = n
    return targets


class WarmPools:
    """Keeps `targets` ({lang: n}) ready kernels per language, one start at a time, in
    the background. `fill()` is safe to call often: it does nothing while a fill runs."""

    def __init__(self, kernels, targets):
        self.kernels = kernels
        self.targets = dict(targets)
        self.closed = False
        self._filling = None
        self._failures = RateLimitedLog(log, kernels.clock)

    def counts(self):
        """{lang: ready pooled kernels}, as heartbeats and `status` report them."""
        return dict(Counter(k.lang for k in self.kernels.pooled() if k.ready))

    def open(self):
        """Fills are allowed again (an agent that starts after a stop)."""
        self.closed = False

    def fill(self):
        if self.closed or self._filling is not None or not self.targets:
            return
        self._filling = self._fill()
        self._filling.addErrback(lambda f: log.failure("could not fill the warm pools", f))
        self._filling.addBoth(self._filled)

    def _filled(self, _):
        self._filling = None

    @deferred
    async def _fill(self):
        while not self.closed:
            lang = self._short()
            if lang is None:
                return
            try:
                await self.kernels.start_pooled(lang)
            except Exception as e:
                # The next fill (every reap interval) tries again; no retry storm.
                self._failures.warn("could not start a warm {lang} kernel: {cause}",
                                    lang=lang, cause=getattr(e, "cause", str(e)))
                return

    def _short(self):
        """A language below its target, when a slot is free for it."""
        if not self.kernels.has_free_slot():
            return None
        have = Counter(k.lang for k in self.kernels.pooled())  # starting ones too
        for lang, target in sorted(self.targets.items()):
            if lang in self.kernels.images and have[lang] < target:
                return lang
        return None

    def close(self):
        """No more fills; fires when the fill in progress (one container start) ended."""
        self.closed = True
        if self._filling is None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._filling.addBoth(lambda result: (d.callback(None), result)[1])
        return d
