import sys

numbers = [int(tok) for tok in sys.stdin.read().split()]
print(f"count: {len(numbers)}")
print(f"sum: {sum(numbers)}")
