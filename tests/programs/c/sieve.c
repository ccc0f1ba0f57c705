#include <stdio.h>
#include <string.h>

#define LIMIT 100

/* Sieve of Eratosthenes: the primes up to LIMIT, ten per line. */
int main(void)
{
    char composite[LIMIT + 1];
    int i, j, count = 0;

    memset(composite, 0, sizeof composite);
    for (i = 2; i * i <= LIMIT; i++)
        if (!composite[i])
            for (j = i * i; j <= LIMIT; j += i)
                composite[j] = 1;

    for (i = 2; i <= LIMIT; i++) {
        if (composite[i])
            continue;
        count++;
        printf(count % 10 == 1 ? "%3d" : " %3d", i);
        if (count % 10 == 0)
            putchar('\n');
    }
    if (count % 10 != 0)
        putchar('\n');
    printf("%d primes up to %d\n", count, LIMIT);
    return 0;
}
