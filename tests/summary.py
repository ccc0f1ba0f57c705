"""Run trial, show its output, and end with one plain line: `N passed, N failed, N skipped`.
With `--reporter=timing`, the classes that took longest are listed before it.

Exits with trial's own status. Usage: python -m tests.summary [trial arguments...]
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path


def summarize(*outputs):
    """One line for the outputs of one or more trials."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for output in outputs:
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


def modules(package):
    """The test modules of `package` and the packages under it (tests -> tests.test_x,
    tests.integration.test_y, ...)."""
    root = Path(__file__).resolve().parent.parent
    found = []
    for path in sorted((root / package.replace(".", "/")).rglob("test_*.py")):
        found.append(".".join(path.relative_to(root).with_suffix("").parts))
    return found


def split(argv):
    """(trial options, targets, targets to run beside them): `--beside A,B` names
    modules a second trial runs at the same time; the first runs the rest of the
    targets (a package's modules but those)."""
    options, targets, beside = [], [], []
    args = iter(argv)
    for arg in args:
        if arg == "--beside":
            beside = next(args).split(",")
        elif arg.startswith("-"):
            options.append(arg)
        else:
            targets.append(arg)
    if beside:
        targets = [m for t in targets for m in (modules(t) if "test_" not in t else [t])
                   if m not in beside]
    return options, targets, beside


def main(argv):
    """Run trial over the targets, and (with --beside) a second trial over other
    modules at once, on the cores the first leaves idle while it waits on kernels: its
    output follows the first's."""
    options, targets, beside = split(argv)
    side = None
    if beside:
        side_log = tempfile.TemporaryFile("w+")
        side = subprocess.Popen([sys.executable, "-m", "twisted.trial", *options,
                                 "--temp-directory=_trial_temp_beside", *beside],
                                stdout=side_log, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.Popen([sys.executable, "-m", "twisted.trial", *options, *targets],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    outputs = ["".join(lines)]
    statuses = [proc.wait()]
    if side is not None:
        statuses.append(side.wait())
        side_log.seek(0)
        outputs.append(side_log.read())
        print(f"\n== beside it: {' '.join(beside)}\n{outputs[1]}", end="")
    output = "\n".join(outputs)
    slowest = slowest_classes(output)
    if slowest:
        print("slowest classes:")
        for seconds, name in slowest:
            print(f"  {seconds:8.1f}s  {name}")
    print(summarize(*outputs))
    return max(statuses, key=abs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["tests"]))
