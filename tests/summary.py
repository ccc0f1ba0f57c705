"""Run trial, show its output, and end with one plain line: `N passed, N failed, N skipped`.
With `--reporter=timing`, the classes that took longest are listed before it.

Exits with trial's own status. Usage: python -m tests.summary [trial arguments...]
"""

import re
import subprocess
import sys


def summarize(output):
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    match = re.search(r"^(PASSED|FAILED) \((.*)\)\s*$", output, re.MULTILINE)
    if match:
        for key, value in re.findall(r"(\w+)=(\d+)", match.group(2)):
            value = int(value)
            if key == "successes":
                counts["passed"] += value
            elif key in ("failures", "errors", "unexpectedSuccesses"):
                counts["failed"] += value
            elif key == "skips":
                counts["skipped"] += value
    elif not re.search(r"^Ran \d+ tests", output, re.MULTILINE):
        counts["failed"] += 1  # trial did not even run: count that as a failure
    return (f"{counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped")


def slowest_classes(output, count=15):
    """[(seconds, class)] of the classes whose tests took longest, from the timing
    reporter's lines (`module.Class.test ... [OK]` then `(1.234 secs)`)."""
    totals, test = {}, None
    for line in output.splitlines():
        match = re.match(r"^(\S+)\.test\w* \.\.\. ", line)
        if match:
            test = match.group(1)
            continue
        match = re.match(r"^\((\d+\.\d+) secs\)$", line.strip())
        if match and test:
            totals[test] = totals.get(test, 0.0) + float(match.group(1))
            test = None
    return sorted(((t, c) for c, t in totals.items()), reverse=True)[:count]


def main(argv):
    proc = subprocess.Popen([sys.executable, "-m", "twisted.trial", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = proc.wait()
    output = "".join(lines)
    slowest = slowest_classes(output)
    if slowest:
        print("slowest classes:")
        for seconds, name in slowest:
            print(f"  {seconds:8.1f}s  {name}")
    print(summarize(output))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["tests"]))
