"""Auto-grading: does an execution's output match what the grader expects?

`equal` compares after stripping surrounding whitespace; `contains` looks for the value;
`regex` searches with Python's `re` (MULTILINE). The `exception` target is the last
exception as `Name: arg, arg`, or empty when nothing was raised.
"""

import re

MAX_TARGET = 1 << 20


def target_text(target, result):
    if target == "exception":
        if not result["exceptions"]:
            return ""
        name, args, _, _ = result["exceptions"][-1]
        return f"{name}: {', '.join(str(a) for a in args)}" if args else name
    return result[target]


def matches(match, result):
    """Run in a thread of its own: a hostile pattern may take long (see AgentApi)."""
    text = target_text(match["target"], result)[:MAX_TARGET]
    value = match["value"]
    if match["op"] == "equal":
        return text.strip() == value.strip()
    if match["op"] == "contains":
        return value in text
    return re.search(value, text, re.MULTILINE) is not None


def check_pattern(match):
    """Compile a regex early, so a broken one is a 400 rather than a failed run."""
    if match["op"] == "regex":
        re.compile(match["value"])
