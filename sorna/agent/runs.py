"""One execution on a kernel, as the agent follows it: the output records no front-end
has seen yet, a pending request for input, the end. Front-ends take what has come with
`take()`, as often as they ask (`continue`) or as it comes (streaming)."""

from twisted.internet import defer

FINISHED = "finished"
WAITING_INPUT = "waiting-input"
CONTINUED = "continued"
RUNNING = "running"


class Run:
    def __init__(self, run_id, budget, entry_id=None, max_output=1 << 20, code=None):
        self.id = run_id  # given when the run reaches the daemon
        self.code = code  # until then
        self.entry_id = entry_id
        self.max_output = max_output  # bytes of output kept per run; the rest is dropped
        self.output_size = 0
        self.truncated = False
        self.budget = budget  # seconds of execution left; time waiting for input is free
        self.started_at = None
        self.timer = None
        self.grace = None
        self.timed_out = False
        self.files = []
        self.records = []
        self.waiting = None  # {"prompt", "password"} while the code waits for input
        self.finished = None  # the daemon's `finished` event
        self.final = None  # the final reply, the same for every request that asks
        self.error = None  # a SornaError that ended the run instead
        self.exported = defer.succeed(None)  # files going to S3 after the end
        self._listeners = []

    @property
    def done(self):
        return self.finished is not None or self.error is not None

    def on_event(self, event):
        kind = event.get("event")
        if kind == "output":
            for record in event.get("records") or []:
                if _valid(record):
                    self._keep(record)
        elif kind == WAITING_INPUT:
            self.waiting = {"prompt": str(event.get("prompt") or ""),
                            "password": bool(event.get("password"))}
        elif kind == FINISHED:
            self.finished = event
            self.truncated = self.truncated or bool(event.get("truncated"))
        self._notify()

    def _keep(self, record):
        """Keep output up to `max_output`, whatever a kernel prints: memory stays bounded."""
        kind, data = record
        size = len(data) if kind != "media" else len(data[0]) + len(data[1])
        room = self.max_output - self.output_size
        if size > room:
            self.truncated = True
            if kind == "media" or room <= 0:
                return
            data = data[:room]
            size = len(data)
        self.output_size += size
        self.records.append([kind, data])

    def fail(self, error):
        if not self.done:
            self.error = error
            self._notify()

    def changed(self):
        """A Deferred that fires at the next event."""
        d = defer.Deferred()
        self._listeners.append(d)
        return d

    def _notify(self):
        listeners, self._listeners = self._listeners, []
        for d in listeners:
            if not d.called:
                d.callback(None)

    def take(self):
        """The output no front-end has seen yet, folded into result fields."""
        records, self.records = self.records, []
        result = {"stdout": "", "stderr": "", "media": []}
        stdout, stderr = [], []
        for kind, data in records:
            if kind == "stdout":
                stdout.append(data)
            elif kind == "stderr":
                stderr.append(data)
            else:
                result["media"].append(list(data))
        result["stdout"], result["stderr"] = "".join(stdout), "".join(stderr)
        return result

    def take_interim(self):
        """`take()` as the result of a run that is not over: no exceptions or files yet."""
        return dict(self.take(), exceptions=[], files=[])


def _valid(record):
    if not isinstance(record, (list, tuple)) or len(record) != 2:
        return False
    kind, data = record
    if kind in ("stdout", "stderr"):
        return isinstance(data, str)
    return (kind == "media" and isinstance(data, (list, tuple)) and len(data) == 2
            and isinstance(data[0], str) and isinstance(data[1], str))
