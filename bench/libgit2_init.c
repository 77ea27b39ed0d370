/* libgit2_init.c — the cost of git_libgit2_init() alone, which every mlstage stage pays once. */
#include <git2.h>

int main(void)
{
    /* Debian builds libgit2 with mbedTLS, whose init parses the system CA bundle. */
    return git_libgit2_init() > 0 ? 0 : 1;
}
