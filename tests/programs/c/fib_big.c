#include <stdio.h>
#include <string.h>

#define DIGITS 256

/* Big numbers as little-endian arrays of decimal digits. */
typedef struct {
    int len;
    unsigned char d[DIGITS];
} big;

static void big_set(big *x, int v)
{
    memset(x, 0, sizeof *x);
    x->len = 1;
    x->d[0] = v;
}

static void big_add(const big *a, const big *b, big *r)
{
    int carry = 0, i, n = a->len > b->len ? a->len : b->len;
    big t;

    memset(&t, 0, sizeof t);
    for (i = 0; i < n; i++) {
        int s = a->d[i] + b->d[i] + carry;
        t.d[i] = s % 10;
        carry = s / 10;
    }
    if (carry)
        t.d[n++] = carry;
    t.len = n;
    *r = t;
}

static void big_print(const big *x)
{
    for (int i = x->len - 1; i >= 0; i--)
        putchar('0' + x->d[i]);
}

int main(void)
{
    big a, b, c;
    int n;

    big_set(&a, 0);
    big_set(&b, 1);
    for (n = 0; n <= 300; n++) {
        if (n % 50 == 0) {
            printf("F(%d) = ", n);
            big_print(&a);
            putchar('\n');
        }
        big_add(&a, &b, &c);
        a = b;
        b = c;
    }
    return 0;
}
