"""One execution on a kernel, as the agent follows it: the output records no front-end
has seen yet, a pending request for input, the end. Front-ends take what has come with
`take()`, as often as they ask (`continue`) or as it comes (streaming)."""

from dataclasses import dataclass

from twisted.internet import defer

# What a run's end (exceptions, files) and a prompt may take besides its output: what
# is left of the output budget, and at least this much. The daemon keeps to it; the
# agent holds any daemon to it.
END_ROOM = 64 << 10
MAX_NAME = 256
MAX_BUNDLE = 16  # representations of one value or displayed object
TEXT_KINDS = ("stdout", "stderr")
BUNDLE_KINDS = ("display", "result", "page")
ID_KINDS = ("show", "update")  # [display id, bundle]: an updatable display, an update
MAX_FILES = 10000

FINISHED = "finished"
WAITING_INPUT = "waiting-input"
CONTINUED = "continued"
RUNNING = "running"


@dataclass(frozen=True)
class RunOptions:
    """What a front-end asked of a new run besides its code."""

    bundles: bool = False  # values and displayed objects as MIME bundles
    ordered: bool = False  # all output as one list in the order it came
    program: dict = None  # run the code as a program file: {name?, args}


class Run:
    def __init__(self, run_id, budget, entry_id=None, max_output=1 << 20, code=None,
                 options=RunOptions()):
        self.id = run_id  # given when the run reaches the daemon
        self.code = code  # until then
        self.entry_id = entry_id
        self.options = options
        self.max_output = max_output  # bytes of output kept per run; the rest is dropped
        self.output_size = 0
        self.truncated = False
        self.budget = budget  # seconds of execution left; time waiting for input is free
        self.started_at = None  # when its execution clock last started
        self.began = None  # when it reached the daemon
        self.timer = None
        self.grace = None
        self.timed_out = None  # the Timeout that ended it (execution or input wait)
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
        """An `output` or `waiting-input` event (`finish` takes the end)."""
        kind = event.get("event")
        records = event.get("records")
        if kind == "output" and isinstance(records, list):
            for record in records:
                if _valid(record):
                    self._keep(record)
        elif kind == WAITING_INPUT:
            prompt = event.get("prompt")
            prompt = prompt if isinstance(prompt, str) else ""
            if len(prompt) > self.end_room:
                prompt, self.truncated = prompt[:self.end_room], True
            self.waiting = {"prompt": prompt, "password": event.get("password") is True}
        self.notify()

    @property
    def end_room(self):
        return max(self.max_output - self.output_size, END_ROOM)

    def finish(self, event):
        """Keep the end of the run: its last output, exceptions and files, well formed
        and within the output budget, whatever the daemon sent."""
        records = event.get("records")
        for record in records if isinstance(records, list) else ():
            if _valid(record):
                self._keep(record)
        room = self.end_room
        exceptions, used, cut = _exceptions(event.get("exceptions"), room)
        files, cut_files = _paths(event.get("files"), room - used)
        self.truncated = self.truncated or cut or cut_files or event.get("truncated") is True
        self.finished = {"exceptions": exceptions, "files": files}

    def _keep(self, record):
        """Keep output up to `max_output`, whatever a kernel prints: memory stays bounded."""
        kind, data = record
        text = kind in TEXT_KINDS
        size = len(data) if text else sum(len(m) + len(c) for m, c in _pairs(kind, data))
        size += len(data[0]) if kind in ID_KINDS else 0
        room = self.max_output - self.output_size
        if size > room:
            self.truncated = True
            if not text or room <= 0:
                return
            data = data[:room]
            size = len(data)
        self.output_size += size
        self.records.append([kind, data])

    def fail(self, error):
        if not self.done:
            self.error = error
            self.notify()

    def changed(self):
        """A Deferred that fires at the next event."""
        d = defer.Deferred()
        self._listeners.append(d)
        return d

    def notify(self):
        listeners, self._listeners = self._listeners, []
        for d in listeners:
            if not d.called:
                d.callback(None)

    def take(self):
        """The output no front-end has seen yet, folded into result fields. A run's
        value and the objects it displayed are MIME bundles (`value`, `displays`) for a
        front-end that asked for them (`bundles`); for any other, as before bundles
        existed, a value's text is stdout, and a displayed object's other types are
        media (its text, when it has no other); an updatable display and its updates
        are displays, a page (help text) is stdout, and clearing is not told. A
        front-end that asked for `ordered`
        output gets it all as `outputs`, `[[kind, data], ...]` in the order it came
        (text of one stream merged while nothing else came between), bundles as maps,
        `show` and `update` as `{id, data}`, `clear` as `{wait}`."""
        records, self.records = self.records, []
        if self.options.ordered:
            return {"outputs": _ordered(records)}
        result = {"stdout": "", "stderr": "", "media": []}
        bundles = self.options.bundles
        if bundles:
            result["displays"] = []
        stdout, stderr = [], []
        for kind, data in records:
            if kind in ID_KINDS:
                kind, data = "display", data[1]
            if kind == "stdout":
                stdout.append(data)
            elif kind == "stderr":
                stderr.append(data)
            elif kind == "media":
                result["media"].append(list(data))
            elif kind == "clear":
                pass
            elif kind == "page":  # help text, which a pager would show
                stdout.append(dict(data).get("text/plain", "") + "\n")
            elif bundles:
                bundle = dict(data)
                if kind == "result":
                    result["value"] = bundle
                else:
                    result["displays"].append(bundle)
            else:
                rich = [list(pair) for pair in data if pair[0] != "text/plain"]
                if kind == "display" and rich:
                    result["media"] += rich
                else:  # a value, as a REPL prints it
                    stdout.append(dict(data).get("text/plain", "") + "\n")
        result["stdout"], result["stderr"] = "".join(stdout), "".join(stderr)
        return result

    def take_interim(self):
        """`take()` as the result of a run that is not over: no exceptions or files yet."""
        return dict(self.take(), exceptions=[], files=[])


def _ordered(records):
    outputs = []
    for kind, data in records:
        if kind in TEXT_KINDS and outputs and outputs[-1][0] == kind:
            outputs[-1][1] += data
        elif kind in TEXT_KINDS:
            outputs.append([kind, data])
        elif kind == "media":
            outputs.append([kind, list(data)])
        elif kind == "clear":
            outputs.append([kind, {"wait": data["wait"]}])
        elif kind in ID_KINDS:
            outputs.append([kind, {"id": data[0], "data": dict(data[1])}])
        else:
            outputs.append([kind, dict(data)])
    return outputs


def _clip(text, room):
    return (text, False) if len(text) <= room else (text[:max(room, 0)], True)


def _exceptions(value, room):
    """Well-formed `[name, args, raised_before_exec, traceback]` items within `room`
    characters: (items, used, cut?)."""
    items, used, cut = [], 0, False
    for item in value if isinstance(value, list) else []:
        if not (isinstance(item, list) and len(item) == 4 and isinstance(item[0], str)
                and isinstance(item[1], list) and isinstance(item[3], str)):
            cut = True
            continue
        name, c1 = _clip(item[0], min(MAX_NAME, room - used))
        used += len(name)
        args = []
        for arg in item[1]:
            if isinstance(arg, str):
                arg, c2 = _clip(arg, room - used)
                used += len(arg)
                cut = cut or c2
            elif not (arg is None or isinstance(arg, (bool, int, float))):
                arg, cut = None, True
            args.append(arg)
        tb, c3 = _clip(item[3], room - used)
        used += len(tb)
        cut = cut or c1 or c3
        items.append([name, args, item[2] is True, tb])
    return items, used, cut


def _paths(value, room):
    """The paths (strings) that fit in `room` characters, at most MAX_FILES: (paths,
    cut?)."""
    kept, used, cut = [], 0, False
    for path in value if isinstance(value, list) else []:
        if not isinstance(path, str):
            cut = True
            continue
        used += len(path)
        if used > room or len(kept) >= MAX_FILES:
            return kept, True
        kept.append(path)
    return kept, cut


def _valid(record):
    if not isinstance(record, (list, tuple)) or len(record) != 2:
        return False
    kind, data = record
    if kind in TEXT_KINDS:
        return isinstance(data, str)
    if kind == "clear":
        return isinstance(data, dict) and len(data) == 1 and isinstance(data.get("wait"),
                                                                       bool)
    if kind not in ("media", *BUNDLE_KINDS, *ID_KINDS) or not isinstance(data, (list,
                                                                               tuple)):
        return False
    if kind in ID_KINDS and not (len(data) == 2 and isinstance(data[0], str)
                                 and 0 < len(data[0]) <= MAX_NAME
                                 and isinstance(data[1], (list, tuple))):
        return False
    pairs = _pairs(kind, data)
    return (0 < len(pairs) <= MAX_BUNDLE and all(map(valid_pair, pairs))
            and len({pair[0] for pair in pairs}) == len(pairs))


def valid_pair(pair):
    """Whether a daemon's `[mime, content]` is one: two strings, a bounded type name."""
    return (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
            and 0 < len(pair[0]) <= MAX_NAME and isinstance(pair[1], str))


def _pairs(kind, data):
    """A record's [mime, content] pairs: one for media, a bundle's for the others."""
    if kind == "clear":
        return []
    return [data] if kind == "media" else data[1] if kind in ID_KINDS else data
