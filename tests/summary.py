"""Run trial, show its output, and end with one plain line: `N passed, N failed, N skipped`.

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


def main(argv):
    proc = subprocess.Popen([sys.executable, "-m", "twisted.trial", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = proc.wait()
    print(summarize("".join(lines)))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["tests"]))
