"""Check each line of standard input for balanced brackets.

Exits with status 3 if any line is unbalanced.
"""
import sys

PAIRS = {")": "(", "]": "[", "}": "{"}


def balanced(s):
    stack = []
    for ch in s:
        if ch in "([{":
            stack.append(ch)
        elif ch in PAIRS:
            if not stack or stack.pop() != PAIRS[ch]:
                return False
    return not stack


bad = 0
for line in sys.stdin:
    line = line.rstrip("\n")
    ok = balanced(line)
    print(f"{line!r}: {'OK' if ok else 'NOT OK'}")
    if not ok:
        bad += 1

if bad:
    print(f"{bad} unbalanced line(s)")
    sys.exit(3)
