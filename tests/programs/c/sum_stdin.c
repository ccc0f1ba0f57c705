#include <stdio.h>

/* Read integers from standard input until end of file. */
int main(void)
{
    long n, sum = 0;
    int count = 0;

    while (scanf("%ld", &n) == 1) {
        sum += n;
        count++;
    }
    printf("count: %d\n", count);
    printf("sum: %ld\n", sum);
    return 0;
}
