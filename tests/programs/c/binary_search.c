#include <stdio.h>

/* Binary search in a sorted array; exits with status 3 when a key is missing. */
static int binary_search(const int *a, int n, int key)
{
    int lo = 0, hi = n - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (a[mid] == key)
            return mid;
        if (a[mid] < key)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int main(void)
{
    int a[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47};
    int keys[] = {2, 19, 47, 20};
    int n = sizeof a / sizeof a[0];
    int missing = 0;

    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int pos = binary_search(a, n, keys[i]);
        if (pos >= 0)
            printf("%d found at index %d\n", keys[i], pos);
        else {
            printf("%d not found\n", keys[i]);
            missing++;
        }
    }
    return missing ? 3 : 0;
}
