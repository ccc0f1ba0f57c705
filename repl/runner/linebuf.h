/* Included into every C and C++ program (gcc -include): standard input and output are
 * line-buffered, as on a terminal, so lines come as they are printed and a prompt shows
 * before the program reads (glibc flushes line-buffered output when a line-buffered
 * input stream asks for more). */
#include <stdio.h>
__attribute__((constructor)) static void sorna_line_buffered(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stdin, NULL, _IOLBF, 0);
}
