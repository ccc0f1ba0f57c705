"""Word frequency from standard input, most frequent first, ties alphabetical."""
import re
import sys
from collections import Counter


def word_counts(text):
    return Counter(re.findall(r"[a-z]+", text.lower()))


def main():
    counts = word_counts(sys.stdin.read())
    for word, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        print(n, word)


if __name__ == "__main__":
    main()
