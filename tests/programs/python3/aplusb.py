# A+B: the first line holds the number of test cases, then one pair per line.
t = int(input())
for _ in range(t):
    a, b = map(int, input().split())
    print(a + b)
