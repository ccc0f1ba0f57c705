#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* Reverse every line of standard input and tell whether it is a palindrome
   (ignoring case and anything but letters and digits). */
static void reverse(char *s)
{
    size_t i, j;

    for (i = 0, j = strlen(s); i + 1 < j; i++, j--) {
        char t = s[i];
        s[i] = s[j - 1];
        s[j - 1] = t;
    }
}

static int is_palindrome(const char *s)
{
    size_t i = 0, j = strlen(s);

    while (i < j) {
        if (!isalnum((unsigned char)s[i])) {
            i++;
        } else if (!isalnum((unsigned char)s[j - 1])) {
            j--;
        } else {
            if (tolower((unsigned char)s[i]) != tolower((unsigned char)s[j - 1]))
                return 0;
            i++;
            j--;
        }
    }
    return 1;
}

int main(void)
{
    char line[1024];

    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        int pal = line[0] != '\0' && is_palindrome(line);
        reverse(line);
        printf("%s%s\n", line, pal ? " (palindrome)" : "");
    }
    return 0;
}
