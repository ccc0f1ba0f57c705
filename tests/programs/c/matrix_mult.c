#include <stdio.h>

#define N 3
#define M 4
#define P 2

/* Multiply an N x M matrix by an M x P matrix. */
static void multiply(int a[N][M], int b[M][P], int c[N][P])
{
    for (int i = 0; i < N; i++)
        for (int j = 0; j < P; j++) {
            c[i][j] = 0;
            for (int k = 0; k < M; k++)
                c[i][j] += a[i][k] * b[k][j];
        }
}

int main(void)
{
    int a[N][M] = {
        {1, 2, 3, 4},
        {5, 6, 7, 8},
        {-1, 0, 2, -3},
    };
    int b[M][P] = {
        {1, 0},
        {0, 1},
        {2, -1},
        {3, 5},
    };
    int c[N][P];

    multiply(a, b, c);
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < P; j++)
            printf("%5d", c[i][j]);
        printf("\n");
    }
    return 0;
}
