#include <stdio.h>

/* Print the argument count and every argument but the program's name,
   which depends on where it was built. */
int main(int argc, char **argv)
{
    int i;

    printf("argc = %d\n", argc);
    for (i = 1; i < argc; i++)
        printf("argv[%d] = \"%s\"\n", i, argv[i]);
    return 0;
}
