/* testutil.h — what every test needs: a CUnit main, temp folders, files, and running commands. */
#ifndef MLSTAGE_TESTUTIL_H
#define MLSTAGE_TESTUTIL_H

#include <stddef.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

struct tu_test {
    const char *name; /* reads as a specification: "rejects duplicate keys" */
    void (*fn)(void);
};

/*
 * Runs `tests` (terminated by {NULL, NULL}) as one CUnit suite; returns
 * the process exit status (0 when all passed). `argv[1]`, when given,
 * runs only the tests whose name contains it.
 */
int tu_main(int argc, char **argv, const char *suite, const struct tu_test *tests);

/* A fresh folder under $TMPDIR (or /tmp); the caller frees the string. */
char *tu_tmpdir(void);
/* rm -rf; ignores errors. */
void tu_rm_rf(const char *path);

/* Writes/reads a whole file. tu_read returns NULL when absent; caller frees. */
int tu_write(const char *path, const char *content);
char *tu_read(const char *path, size_t *len);
/* printf into a new string. */
char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Non-zero when haystack contains needle (NULL haystack: 0). */
int tu_contains(const char *haystack, const char *needle);

struct tu_cmd {
    int exit_code; /* -1 when signalled or timed out */
    int signal;
    int timed_out;
    double wall_s;
    char *out; /* captured stdout, NUL-terminated */
    char *err; /* captured stderr */
};

/*
 * Runs argv (PATH searched) with `env` entries ("K=V", or "K" to unset)
 * applied on top of the current environment, in `cwd` (NULL: current),
 * feeding `stdin_data` (NULL: /dev/null). Kills it after timeout_s (0: 120).
 */
int tu_run(const char *const *argv, const char *const *env, const char *cwd, const char *stdin_data,
           double timeout_s, struct tu_cmd *res);
/* Runs `sh -c cmd` the same way. */
int tu_sh(const char *cmd, const char *const *env, const char *cwd, struct tu_cmd *res);
void tu_cmd_free(struct tu_cmd *res);

/* Runs the built mlstage with args (NULL-terminated) the same way. */
int tu_mlstage(const char *const *args, const char *const *env, const char *cwd,
               struct tu_cmd *res);

/* Asserts with the captured output shown on failure. */
#define TU_ASSERT_EXIT(cmd, code)                                                                  \
    do {                                                                                           \
        if ((cmd)->exit_code != (code))                                                            \
            fprintf(stderr,                                                                        \
                    "\nexpected exit %d, got %d (signal %d)\n--- stdout\n%s\n--- "                 \
                    "stderr\n%s\n",                                                                \
                    (code), (cmd)->exit_code, (cmd)->signal, (cmd)->out, (cmd)->err);              \
        CU_ASSERT_EQUAL((cmd)->exit_code, (code));                                                 \
    } while (0)

#define TU_ASSERT_CONTAINS(hay, needle)                                                            \
    do {                                                                                           \
        int tu_c_ = tu_contains((hay), (needle));                                                  \
        if (!tu_c_)                                                                                \
            fprintf(stderr, "\nexpected to find \"%s\" in:\n%s\n", (needle),                       \
                    (hay) ? (hay) : "(null)");                                                     \
        CU_ASSERT_TRUE(tu_c_);                                                                     \
    } while (0)

#define TU_ASSERT_NOT_CONTAINS(hay, needle)                                                        \
    do {                                                                                           \
        int tu_c_ = tu_contains((hay), (needle));                                                  \
        if (tu_c_)                                                                                 \
            fprintf(stderr, "\nexpected NOT to find \"%s\" in:\n%s\n", (needle), (hay));           \
        CU_ASSERT_FALSE(tu_c_);                                                                    \
    } while (0)

#endif
