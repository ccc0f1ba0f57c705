#include <cstdio>
#include <numeric>

// Euclid's algorithm by hand, checked against std::gcd and std::lcm.
long long gcd_euclid(long long a, long long b)
{
    while (b != 0) {
        long long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

int main()
{
    const long long pairs[][2] = {
        {48, 18}, {1071, 462}, {17, 5}, {123456789, 987654321}, {1LL << 40, 1LL << 20},
    };
    for (const auto &p : pairs) {
        long long g = gcd_euclid(p[0], p[1]);
        std::printf("gcd(%lld, %lld) = %lld, lcm = %lld%s\n", p[0], p[1], g,
                    std::lcm(p[0], p[1]), g == std::gcd(p[0], p[1]) ? "" : " MISMATCH");
    }
    return 0;
}
