def gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def solve():
    pairs = [(48, 18), (1071, 462), (17, 5), (270, 192)]
    results = []
    for a, b in pairs:
        g = gcd(a, b)
        print(f"gcd({a}, {b}) = {g}")
        results.append(g)
    return results


solve()
