/* testutil.c — what every test needs: a CUnit main, temp folders, files, and running commands. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *tu_filter;

int tu_main(int argc, char **argv, const char *suite_name, const struct tu_test *tests)
{
    if (argc > 1)
        tu_filter = argv[1];
    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        return 2;
    for (const struct tu_test *t = tests; t->name; t++) {
        if (tu_filter && !strstr(t->name, tu_filter))
            continue;
        if (!CU_add_test(suite, t->name, t->fn))
            return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *tmpl = tu_fmt("%s/mlstage-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        abort();
    }
    return tmpl;
}

void tu_rm_rf(const char *path)
{
    if (!path || !*path || strcmp(path, "/") == 0)
        return;
    char *cmd = tu_fmt("rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: %s failed\n", cmd);
    free(cmd);
}

int tu_write(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(content);
    int rc = fwrite(content, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

char *tu_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *data = malloc(cap);
    size_t r;
    while ((r = fread(data + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            data = realloc(data, cap);
        }
    }
    fclose(f);
    data[n] = '\0';
    if (len)
        *len = n;
    return data;
}

char *tu_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    va_end(ap);
    return s;
}

int tu_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int tu_run(const char *const *argv, const char *const *env, const char *cwd, const char *stdin_data,
           double timeout_s, struct tu_cmd *res)
{
    memset(res, 0, sizeof(*res));
    res->out = calloc(1, 1);
    res->err = calloc(1, 1);
    if (timeout_s <= 0)
        timeout_s = 120;
    int out_pipe[2], err_pipe[2], in_pipe[2];
    if (pipe(out_pipe) || pipe(err_pipe) || pipe(in_pipe))
        return -1;
    double start = mono();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(err_pipe[0]);
        for (const char *const *e = env; e && *e; e++) {
            const char *eq = strchr(*e, '=');
            if (eq) {
                char *name = strndup(*e, (size_t)(eq - *e));
                setenv(name, eq + 1, 1);
                free(name);
            } else {
                unsetenv(*e);
            }
        }
        if (cwd && chdir(cwd) != 0)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    close(err_pipe[1]);
    if (stdin_data) {
        size_t n = strlen(stdin_data);
        if (write(in_pipe[1], stdin_data, n) != (ssize_t)n)
            perror("tu_run: write stdin");
    }
    close(in_pipe[1]);
    size_t out_len = 0, err_len = 0;
    struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    while (open_fds > 0) {
        double left = timeout_s - (mono() - start);
        if (left <= 0) {
            res->timed_out = 1;
            kill(-pid, SIGKILL);
            break;
        }
        int rc = poll(fds, 2, (int)(left * 1000) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char chunk[65536];
            ssize_t n = read(fds[i].fd, chunk, sizeof(chunk));
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                append(&res->out, &out_len, chunk, (size_t)n);
            } else {
                append(&res->err, &err_len, chunk, (size_t)n);
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0)
            close(fds[i].fd);
    int status = 0;
    waitpid(pid, &status, 0);
    res->wall_s = mono() - start;
    if (WIFEXITED(status) && !res->timed_out) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    return 0;
}

int tu_sh(const char *cmd, const char *const *env, const char *cwd, struct tu_cmd *res)
{
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    return tu_run(argv, env, cwd, NULL, 0, res);
}

int tu_mlstage(const char *const *args, const char *const *env, const char *cwd, struct tu_cmd *res)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = MLSTAGE_BIN;
    for (const char *const *a = args; a && *a && n < 63; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    return tu_run(argv, env, cwd, NULL, 0, res);
}

void tu_cmd_free(struct tu_cmd *res)
{
    free(res->out);
    free(res->err);
    res->out = res->err = NULL;
}
