from math import factorial


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


print("fib(100) =", fib(100))

a, b, n = 0, 1, 0
while len(str(a)) < 1000:
    a, b, n = b, a + b, n + 1
print("first fib with 1000 digits: index", n)
print("digit sum of 2**1000 =", sum(map(int, str(2**1000))))
print("digit sum of 100! =", sum(int(d) for d in str(factorial(100))))
print("2**64 =", 2**64)
print("-7 // 2 =", -7 // 2, " -7 % 2 =", -7 % 2)
