/* test_proc.c — the subprocess runner: streaming, masking, environment, timeouts, servers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mlstage/proc.h>

#include "ctx.h"
#include "log.h"
#include "mask.h"
#include "testutil.h"
#include "util.h"

/* Generous: these only keep a broken runner from hanging the suite. */
#define HANG_GUARD_S 20.0

static char *tmp;
static struct mlstage_ctx *ctx;

/* Every line the callback saw. */
struct seen {
    char **lines;
    size_t n;
    size_t bytes;
    size_t longest;
};

static void collect(void *userdata, const char *line)
{
    struct seen *s = userdata;
    size_t len = strlen(line);
    s->lines = realloc(s->lines, (s->n + 1) * sizeof(*s->lines));
    s->lines[s->n++] = strdup(line);
    s->bytes += len;
    if (len > s->longest)
        s->longest = len;
}

static char *seen_joined(const struct seen *s)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < s->n; i++)
        buf_printf(&b, "%s\n", s->lines[i]);
    return buf_steal(&b);
}

static void seen_free(struct seen *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[i]);
    free(s->lines);
    memset(s, 0, sizeof(*s));
}

static void setup(void)
{
    tmp = tu_tmpdir();
    ctx = ctx_new();
    mask_reset();
}

static void teardown(void)
{
    log_set_file(NULL);
    ctx_free(ctx);
    ctx = NULL;
    mask_reset();
    tu_rm_rf(tmp);
    free(tmp);
    tmp = NULL;
}

static int sh(const char *cmd, struct mlstage_proc_opts *o, struct mlstage_proc_result *r)
{
    o->shell = cmd;
    return mlstage_proc_run(ctx, o, r);
}

/* Waits until a file contains `needle`; 0 when it never did. */
static int wait_for(const char *path, const char *needle)
{
    for (double start = now_mono(); now_mono() - start < HANG_GUARD_S; sleep_s(0.02)) {
        char *text = tu_read(path, NULL);
        int found = tu_contains(text, needle);
        free(text);
        if (found)
            return 1;
    }
    return 0;
}

/* Waits until `pid` (a group when negative) is gone and reaped; 0 when it never went. */
static int wait_gone(pid_t pid)
{
    for (double start = now_mono(); now_mono() - start < HANG_GUARD_S; sleep_s(0.02))
        if (kill(pid, 0) != 0 && errno == ESRCH)
            return 1;
    return 0;
}

/* ---- mlstage_proc_run --------------------------------------------------- */

static void test_streams_lines_everywhere(void)
{
    setup();
    char *log_path = tu_fmt("%s/train.log", tmp), *run_log = tu_fmt("%s/run.log", tmp);
    FILE *rl = fopen(run_log, "w");
    log_set_file(rl);
    struct seen seen = {0};
    struct mlstage_proc_opts o = {.log_path = log_path, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("echo one; echo two >&2; printf three", &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    CU_ASSERT_EQUAL(r.signal, 0);
    CU_ASSERT_EQUAL(r.timed_out, 0);
    CU_ASSERT_EQUAL_FATAL(seen.n, 3);
    CU_ASSERT_STRING_EQUAL(seen.lines[0], "one");
    CU_ASSERT_STRING_EQUAL(seen.lines[1], "two");
    CU_ASSERT_STRING_EQUAL(seen.lines[2], "three");
    CU_ASSERT_STRING_EQUAL(r.tail, "one\ntwo\nthree");
    char *file = tu_read(log_path, NULL);
    CU_ASSERT_STRING_EQUAL(file, "one\ntwo\nthree\n");
    log_set_file(NULL);
    fclose(rl);
    char *logged = tu_read(run_log, NULL);
    TU_ASSERT_CONTAINS(logged, "two");
    TU_ASSERT_CONTAINS(logged, "three");
    free(logged);
    free(file);
    seen_free(&seen);
    mlstage_proc_result_free(&r);
    CU_ASSERT_PTR_NULL(r.tail);
    free(log_path);
    free(run_log);
    teardown();
}

static void test_log_file_is_appended(void)
{
    setup();
    char *log_path = tu_fmt("%s/train.log", tmp);
    tu_write(log_path, "earlier\n");
    struct mlstage_proc_opts o = {.log_path = log_path, .quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("echo later", &o, &r), 0);
    char *file = tu_read(log_path, NULL);
    CU_ASSERT_STRING_EQUAL(file, "earlier\nlater\n");
    free(file);
    mlstage_proc_result_free(&r);
    free(log_path);
    teardown();
}

static void test_exit_code(void)
{
    setup();
    struct mlstage_proc_opts o = {.quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("echo failing; exit 3", &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 3);
    CU_ASSERT_EQUAL(r.signal, 0);
    CU_ASSERT_EQUAL(r.timed_out, 0);
    CU_ASSERT_TRUE(r.wall_s >= 0 && r.wall_s < HANG_GUARD_S);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_signal_reported(void)
{
    setup();
    struct mlstage_proc_opts o = {.quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("kill -KILL $$", &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, -1);
    CU_ASSERT_EQUAL(r.signal, SIGKILL);
    CU_ASSERT_EQUAL(r.timed_out, 0);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_secrets_masked_everywhere(void)
{
    setup();
    const char *secret = "hunter2-very-secret";
    char *log_path = tu_fmt("%s/train.log", tmp), *run_log = tu_fmt("%s/run.log", tmp);
    FILE *rl = fopen(run_log, "w");
    log_set_file(rl);
    CU_ASSERT_EQUAL(mask_add(secret), 1);
    const char *env[] = {"X=hunter2-very-secret", NULL};
    struct seen seen = {0};
    struct mlstage_proc_opts o = {
        .env = env, .log_path = log_path, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("echo token=$X; echo \"url?k=$X&x=1\" >&2", &o, &r), 0);
    log_set_file(NULL);
    fclose(rl);
    char *file = tu_read(log_path, NULL), *logged = tu_read(run_log, NULL);
    char *lines = seen_joined(&seen);
    TU_ASSERT_NOT_CONTAINS(file, secret);
    TU_ASSERT_NOT_CONTAINS(logged, secret);
    TU_ASSERT_NOT_CONTAINS(r.tail, secret);
    TU_ASSERT_NOT_CONTAINS(lines, secret);
    TU_ASSERT_CONTAINS(r.tail, "token=***");
    TU_ASSERT_CONTAINS(file, "url?k=***&x=1");
    TU_ASSERT_CONTAINS(logged, "token=***");
    free(file);
    free(logged);
    free(lines);
    seen_free(&seen);
    mlstage_proc_result_free(&r);
    free(log_path);
    free(run_log);
    teardown();
}

static void test_secret_at_long_line_cut_stays_masked(void)
{
    /* A line over 64 KiB is cut; a secret must not be cut in two and leak in halves. */
    setup();
    CU_ASSERT_EQUAL(mask_add("cut-boundary-secret"), 1);
    struct seen seen = {0};
    struct mlstage_proc_opts o = {.quiet = 1, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(
        sh("head -c 65530 /dev/zero | tr '\\0' a; printf ' cut-boundary-secret b\\n'", &o, &r), 0);
    char *lines = seen_joined(&seen);
    CU_ASSERT_TRUE(seen.n >= 2);
    TU_ASSERT_NOT_CONTAINS(lines, "cut-bo");
    TU_ASSERT_NOT_CONTAINS(lines, "-secret");
    TU_ASSERT_CONTAINS(lines, "*** b");
    free(lines);
    seen_free(&seen);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_timeout_terminates(void)
{
    setup();
    const char *argv[] = {"sleep", "30", NULL};
    struct mlstage_proc_opts o = {.argv = argv, .timeout_s = 0.5, .quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &o, &r), 0);
    CU_ASSERT_EQUAL(r.timed_out, 1);
    CU_ASSERT_EQUAL(r.exit_code, -1);
    CU_ASSERT_EQUAL(r.signal, SIGTERM);
    CU_ASSERT_TRUE(r.wall_s < HANG_GUARD_S);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_term_ignored_then_killed(void)
{
    setup();
    char *log_path = tu_fmt("%s/train.log", tmp);
    struct mlstage_proc_opts o = {
        .timeout_s = 1, .kill_grace_s = 0.5, .quiet = 1, .log_path = log_path};
    struct mlstage_proc_result r;
    double start = now_mono();
    CU_ASSERT_EQUAL(
        sh("trap 'echo got TERM' TERM; echo ready; while :; do sleep 0.1; done", &o, &r), 0);
    CU_ASSERT_TRUE(now_mono() - start < HANG_GUARD_S);
    CU_ASSERT_EQUAL(r.timed_out, 1);
    CU_ASSERT_EQUAL(r.signal, SIGKILL);
    /* It was asked first: the trap ran, and it kept going until the KILL. */
    TU_ASSERT_CONTAINS(r.tail, "got TERM");
    char *file = tu_read(log_path, NULL);
    TU_ASSERT_CONTAINS(file, "timeout");
    free(file);
    mlstage_proc_result_free(&r);
    free(log_path);
    teardown();
}

static void test_background_child_holding_pipe(void)
{
    setup();
    struct mlstage_proc_opts o = {.quiet = 1, .kill_grace_s = 1};
    struct mlstage_proc_result r;
    double start = now_mono();
    CU_ASSERT_EQUAL(sh("sleep 30 & echo $!", &o, &r), 0);
    CU_ASSERT_TRUE(now_mono() - start < HANG_GUARD_S);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    CU_ASSERT_EQUAL(r.timed_out, 0);
    /* The leftover went with the group. */
    pid_t bg = (pid_t)atoi(r.tail);
    CU_ASSERT_TRUE_FATAL(bg > 0);
    CU_ASSERT_TRUE(wait_gone(bg));
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_escaped_child_holding_pipe(void)
{
    setup();
    struct mlstage_proc_opts o = {.quiet = 1, .kill_grace_s = 0.2};
    struct mlstage_proc_result r;
    double start = now_mono();
    /* setsid takes it out of our process group: no signal of ours reaches it. */
    CU_ASSERT_EQUAL(sh("setsid sleep 30 & echo $!", &o, &r), 0);
    CU_ASSERT_TRUE(now_mono() - start < HANG_GUARD_S);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    pid_t bg = (pid_t)atoi(r.tail ? r.tail : "0");
    if (bg > 0)
        kill(bg, SIGKILL); /* ours to clean up: it left the group on purpose */
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_tail_keeps_last_n(void)
{
    setup();
    struct mlstage_proc_opts o = {.quiet = 1, .tail_lines = 5};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("seq 1 100", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "96\n97\n98\n99\n100");
    mlstage_proc_result_free(&r);

    struct mlstage_proc_opts d = {.quiet = 1};
    CU_ASSERT_EQUAL(sh("seq 1 100", &d, &r), 0);
    size_t lines = 1;
    for (const char *p = r.tail; *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, 20);
    CU_ASSERT_EQUAL(strncmp(r.tail, "81\n", 3), 0);
    mlstage_proc_result_free(&r);

    CU_ASSERT_EQUAL(sh("seq 1 3", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "1\n2\n3");
    mlstage_proc_result_free(&r);

    CU_ASSERT_EQUAL(sh("true", &o, &r), 0);
    CU_ASSERT_PTR_NOT_NULL(r.tail);
    CU_ASSERT_STRING_EQUAL(r.tail, "");
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_huge_line_is_split(void)
{
    setup();
    struct seen seen = {0};
    struct mlstage_proc_opts o = {.quiet = 1, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("head -c 204800 /dev/zero | tr '\\0' x", &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    CU_ASSERT_EQUAL(seen.bytes, 204800);
    CU_ASSERT_TRUE(seen.n >= 4);
    CU_ASSERT_TRUE(seen.longest <= 64 * 1024);
    seen_free(&seen);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_partial_line_and_crlf(void)
{
    setup();
    struct seen seen = {0};
    struct mlstage_proc_opts o = {.quiet = 1, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("printf 'a\\r\\n\\nb'", &o, &r), 0);
    CU_ASSERT_EQUAL_FATAL(seen.n, 3);
    CU_ASSERT_STRING_EQUAL(seen.lines[0], "a");
    CU_ASSERT_STRING_EQUAL(seen.lines[1], "");
    CU_ASSERT_STRING_EQUAL(seen.lines[2], "b");
    seen_free(&seen);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_not_found_is_127(void)
{
    setup();
    const char *argv[] = {"mlstage-no-such-command", "--flag", NULL};
    struct mlstage_proc_opts o = {.argv = argv};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 127);
    CU_ASSERT_EQUAL(r.signal, 0);
    TU_ASSERT_CONTAINS(r.tail, "cannot run \"mlstage-no-such-command\": command not found");
    mlstage_proc_result_free(&r);

    /* Found but not executable: 126, as a shell says. */
    char *path = tu_fmt("%s/not-executable", tmp);
    tu_write(path, "#!/bin/sh\necho hi\n");
    chmod(path, 0644);
    const char *argv2[] = {path, NULL};
    o.argv = argv2;
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 126);
    TU_ASSERT_CONTAINS(r.tail, "Permission denied");
    mlstage_proc_result_free(&r);
    free(path);

    /* Through the shell, the shell says it. */
    struct mlstage_proc_opts s = {.quiet = 1};
    CU_ASSERT_EQUAL(sh("mlstage-no-such-command", &s, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 127);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_environment(void)
{
    setup();
    ctx->run_id = xstrdup("run-42");
    ctx->run_dir = xstrdup("/runs/run-42");
    ctx->outputs_dir = xstrdup("/runs/run-42/outputs");
    setenv("MLSTAGE_TEST_INHERITED", "inherited", 1);
    const char *env[] = {"FOO=bar", "MLSTAGE_TEST_INHERITED=overridden", NULL};
    struct mlstage_proc_opts o = {.quiet = 1, .env = env};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("echo \"$MLSTAGE_RUN_ID|$MLSTAGE_RUN_DIR|$MLSTAGE_OUTPUTS_DIR|$FOO|"
                       "$MLSTAGE_TEST_INHERITED\"; env | grep -c '^MLSTAGE_TEST_INHERITED='",
                       &o, &r),
                    0);
    CU_ASSERT_STRING_EQUAL(r.tail, "run-42|/runs/run-42|/runs/run-42/outputs|bar|overridden\n1");
    mlstage_proc_result_free(&r);

    o.env = NULL;
    CU_ASSERT_EQUAL(sh("echo \"$MLSTAGE_TEST_INHERITED\"", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "inherited");
    mlstage_proc_result_free(&r);
    unsetenv("MLSTAGE_TEST_INHERITED");
    teardown();
}

static void test_argv_searched_in_child_path(void)
{
    setup();
    char *tool = tu_fmt("%s/mytool", tmp), *path = tu_fmt("PATH=%s:/usr/bin:/bin", tmp);
    tu_write(tool, "#!/bin/sh\necho \"found-me $1\"\n");
    chmod(tool, 0755);
    const char *argv[] = {"mytool", "a b", NULL};
    const char *env[] = {path, NULL};
    struct mlstage_proc_opts o = {.argv = argv, .env = env, .quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &o, &r), 0);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "found-me a b");
    mlstage_proc_result_free(&r);
    free(tool);
    free(path);
    teardown();
}

static void test_cwd(void)
{
    setup();
    char real[PATH_MAX];
    CU_ASSERT_PTR_NOT_NULL_FATAL(realpath(tmp, real));
    struct mlstage_proc_opts o = {.quiet = 1, .cwd = tmp};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("pwd -P", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, real);
    mlstage_proc_result_free(&r);

    char *missing = tu_fmt("%s/missing", tmp);
    o.cwd = missing;
    CU_ASSERT_EQUAL(sh("echo should-not-run", &o, &r), MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), missing);
    mlstage_proc_result_free(&r);
    free(missing);
    teardown();
}

static void test_stdin_is_dev_null(void)
{
    setup();
    const char *argv[] = {"cat", NULL};
    struct mlstage_proc_opts o = {.argv = argv, .quiet = 1, .timeout_s = HANG_GUARD_S};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &o, &r), 0);
    CU_ASSERT_EQUAL(r.timed_out, 0);
    CU_ASSERT_EQUAL(r.exit_code, 0);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_no_fd_leaks(void)
{
    setup();
    int leaky[2];
    CU_ASSERT_EQUAL_FATAL(pipe(leaky), 0); /* deliberately without O_CLOEXEC */
    struct mlstage_proc_opts o = {.quiet = 1, .tail_lines = 100};
    struct mlstage_proc_result r;
    /*
     * A simple command, not `ls | tr`: the shell holds the pipe between the
     * two open while it starts the second, so under load ls saw it as well.
     */
    CU_ASSERT_EQUAL(sh("ls /proc/$$/fd", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "0\n1\n2");
    mlstage_proc_result_free(&r);
    close(leaky[0]);
    close(leaky[1]);
    teardown();
}

static void test_sigpipe_default_in_child(void)
{
    /* The test runner ignores SIGPIPE; the command must not inherit that. */
    setup();
    struct mlstage_proc_opts o = {.quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh("grep SigIgn /proc/self/status", &o, &r), 0);
    TU_ASSERT_CONTAINS(r.tail, "0000000000000000");
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_quiet(void)
{
    setup();
    char *run_log = tu_fmt("%s/run.log", tmp);
    FILE *rl = fopen(run_log, "w");
    log_set_file(rl);
    struct seen seen = {0};
    struct mlstage_proc_opts o = {.quiet = 1, .on_line = collect, .userdata = &seen};
    struct mlstage_proc_result r;
    /* Output that differs from the command text, which the debug log shows. */
    CU_ASSERT_EQUAL(sh("echo quiet-$((40+2))", &o, &r), 0);
    CU_ASSERT_STRING_EQUAL(r.tail, "quiet-42");
    CU_ASSERT_EQUAL(seen.n, 1);
    mlstage_proc_result_free(&r);
    o.quiet = 0;
    CU_ASSERT_EQUAL(sh("echo loud-$((40+2))", &o, &r), 0);
    mlstage_proc_result_free(&r);
    log_set_file(NULL);
    fclose(rl);
    char *logged = tu_read(run_log, NULL);
    TU_ASSERT_NOT_CONTAINS(logged, "quiet-42");
    TU_ASSERT_CONTAINS(logged, "loud-42");
    free(logged);
    seen_free(&seen);
    free(run_log);
    teardown();
}

static void test_bad_options(void)
{
    setup();
    const char *argv[] = {"true", NULL};
    const char *empty[] = {NULL};
    const char *bad_env[] = {"NOEQUALS", NULL};
    struct mlstage_proc_result r;
    struct mlstage_proc_opts both = {.argv = argv, .shell = "true"};
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &both, &r), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "exactly one of argv and shell");
    struct mlstage_proc_opts neither = {0};
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &neither, &r), MLSTAGE_EINPUT);
    struct mlstage_proc_opts no_program = {.argv = empty};
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &no_program, &r), MLSTAGE_EINPUT);
    struct mlstage_proc_opts env = {.shell = "true", .env = bad_env};
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &env, &r), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "NOEQUALS");
    struct mlstage_proc_opts neg = {.shell = "true", .timeout_s = -1};
    CU_ASSERT_EQUAL(mlstage_proc_run(ctx, &neg, &r), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(r.tail);
    mlstage_proc_result_free(&r);
    teardown();
}

static void test_unwritable_log_stops_before_running(void)
{
    setup();
    char *marker = tu_fmt("%s/ran", tmp), *cmd = tu_fmt("touch %s", marker);
    struct mlstage_proc_opts o = {.log_path = "/nonexistent-dir/x.log", .quiet = 1};
    struct mlstage_proc_result r;
    CU_ASSERT_EQUAL(sh(cmd, &o, &r), MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "/nonexistent-dir/x.log");
    CU_ASSERT_EQUAL(access(marker, F_OK), -1);
    mlstage_proc_result_free(&r);
    free(marker);
    free(cmd);
    teardown();
}

/* ---- background processes ---------------------------------------------- */

static void test_start_and_stop(void)
{
    setup();
    ctx->run_id = xstrdup("run-7");
    char *log_path = tu_fmt("%s/server.log", tmp);
    struct mlstage_proc_opts o = {.shell = "echo \"serving $MLSTAGE_RUN_ID\"; exec sleep 30",
                                  .log_path = log_path};
    struct mlstage_proc *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_proc_start(ctx, &o, &p), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    pid_t pid = mlstage_proc_pid(p);
    CU_ASSERT_TRUE(pid > 0);
    CU_ASSERT_TRUE(wait_for(log_path, "serving run-7\n"));
    CU_ASSERT_EQUAL(getsid(pid), pid);
    CU_ASSERT_TRUE(mlstage_proc_alive(p));
    CU_ASSERT_EQUAL(mlstage_proc_stop(p, 2), 0);
    CU_ASSERT_FALSE(mlstage_proc_alive(p));
    CU_ASSERT_EQUAL(kill(pid, 0), -1);
    /* Stopping twice is harmless. */
    CU_ASSERT_EQUAL(mlstage_proc_stop(p, 2), 0);
    mlstage_proc_free(p);
    free(log_path);
    teardown();
}

static void test_stop_escalates_to_kill(void)
{
    setup();
    char *log_path = tu_fmt("%s/server.log", tmp);
    struct mlstage_proc_opts o = {.shell = "trap '' TERM; echo ready; while :; do sleep 1; done",
                                  .log_path = log_path};
    struct mlstage_proc *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_proc_start(ctx, &o, &p), 0);
    pid_t pid = mlstage_proc_pid(p);
    CU_ASSERT_TRUE(wait_for(log_path, "ready"));
    double start = now_mono();
    CU_ASSERT_EQUAL(mlstage_proc_stop(p, 0.3), 0);
    CU_ASSERT_TRUE(now_mono() - start < HANG_GUARD_S);
    CU_ASSERT_FALSE(mlstage_proc_alive(p));
    CU_ASSERT_EQUAL(kill(pid, 0), -1);
    /* Its children (the sleeps, which ignore TERM too) went with it. */
    CU_ASSERT_TRUE(wait_gone(-pid));
    mlstage_proc_free(p);
    free(log_path);
    teardown();
}

static void test_stop_gives_the_server_behind_a_shell_its_grace(void)
{
    setup();
    char *log_path = tu_fmt("%s/server.log", tmp);
    char *done = tu_fmt("%s/clean-shutdown", tmp);
    /*
     * The leader is the shell (a compound command is not exec'd): it dies of
     * SIGTERM at once, while the "server" it started takes 0.3 s to shut down.
     */
    char *cmd = tu_fmt("true; sh -c 'trap \"sleep 0.3; echo clean > %s; exit 0\" TERM; "
                       "echo ready; while :; do sleep 0.05; done'",
                       done);
    struct mlstage_proc_opts o = {.shell = cmd, .log_path = log_path};
    struct mlstage_proc *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_proc_start(ctx, &o, &p), 0);
    CU_ASSERT_TRUE(wait_for(log_path, "ready"));
    CU_ASSERT_EQUAL(mlstage_proc_stop(p, 5), 0);
    char *text = tu_read(done, NULL);
    CU_ASSERT_PTR_NOT_NULL(text);
    if (text)
        CU_ASSERT_STRING_EQUAL(text, "clean\n");
    free(text);
    mlstage_proc_free(p);
    free(cmd);
    free(done);
    free(log_path);
    teardown();
}

static void test_exited_process_not_alive(void)
{
    setup();
    char *log_path = tu_fmt("%s/server.log", tmp);
    struct mlstage_proc_opts o = {.shell = "echo bye", .log_path = log_path};
    struct mlstage_proc *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_proc_start(ctx, &o, &p), 0);
    double start = now_mono();
    while (mlstage_proc_alive(p) && now_mono() - start < HANG_GUARD_S)
        sleep_s(0.02);
    CU_ASSERT_FALSE(mlstage_proc_alive(p));
    CU_ASSERT_EQUAL(mlstage_proc_stop(p, 1), 0);
    mlstage_proc_free(p);
    free(log_path);
    teardown();
}

static void test_free_leaves_process_running(void)
{
    setup();
    char *log_path = tu_fmt("%s/server.log", tmp);
    const char *argv[] = {"sleep", "30", NULL};
    struct mlstage_proc_opts o = {.argv = argv, .log_path = log_path};
    struct mlstage_proc *p = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_proc_start(ctx, &o, &p), 0);
    pid_t pid = mlstage_proc_pid(p);
    mlstage_proc_free(p);
    CU_ASSERT_EQUAL(kill(pid, 0), 0);
    /* Ours to clean up now. */
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    free(log_path);
    teardown();
}

static void test_start_errors(void)
{
    setup();
    struct mlstage_proc *p = (struct mlstage_proc *)&p;
    struct mlstage_proc_opts no_log = {.shell = "sleep 30"};
    CU_ASSERT_EQUAL(mlstage_proc_start(ctx, &no_log, &p), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(p);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "log_path");

    char *log_path = tu_fmt("%s/server.log", tmp);
    const char *argv[] = {"mlstage-no-such-server", NULL};
    struct mlstage_proc_opts missing = {.argv = argv, .log_path = log_path};
    CU_ASSERT_EQUAL(mlstage_proc_start(ctx, &missing, &p), MLSTAGE_EFAIL);
    CU_ASSERT_PTR_NULL(p);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx),
                       "cannot run \"mlstage-no-such-server\": command not found");
    CU_ASSERT_EQUAL(mlstage_proc_alive(NULL), 0);
    CU_ASSERT_EQUAL(mlstage_proc_pid(NULL), -1);
    mlstage_proc_free(NULL);
    free(log_path);
    teardown();
}

int main(int argc, char **argv)
{
    /* Lines still reach the run log (log_set_file) whatever the level; keep stderr readable. */
    log_configure(MLSTAGE_LOG_WARN, CI_NONE, 0);
    static const struct tu_test tests[] = {
        {"each line goes to the log, the callback, the log file and the tail",
         test_streams_lines_everywhere},
        {"the log file is appended to, not replaced", test_log_file_is_appended},
        {"the exit code is reported", test_exit_code},
        {"the signal that ended the command is reported", test_signal_reported},
        {"a registered secret printed by the command appears nowhere",
         test_secrets_masked_everywhere},
        {"a secret where an overlong line is cut stays masked",
         test_secret_at_long_line_cut_stays_masked},
        {"a timeout stops the command with SIGTERM and says so", test_timeout_terminates},
        {"a command that traps SIGTERM is killed after the grace period",
         test_term_ignored_then_killed},
        {"a background child holding the pipe does not hang the run and is stopped",
         test_background_child_holding_pipe},
        {"a child that left the process group cannot hang the run",
         test_escaped_child_holding_pipe},
        {"the tail keeps exactly the last N lines (20 by default)", test_tail_keeps_last_n},
        {"a 200 KiB line without a newline is split into bounded lines", test_huge_line_is_split},
        {"a partial last line is flushed and CRLF is trimmed", test_partial_line_and_crlf},
        {"a command that cannot be executed gets 127 or 126 and a clear line",
         test_not_found_is_127},
        {"the environment is ours plus the run's facts plus the caller's entries",
         test_environment},
        {"argv[0] is searched in the child's PATH", test_argv_searched_in_child_path},
        {"the command runs in cwd; a missing cwd is an error", test_cwd},
        {"stdin is /dev/null", test_stdin_is_dev_null},
        {"no descriptor of ours leaks into the command", test_no_fd_leaks},
        {"the command gets default signal dispositions", test_sigpipe_default_in_child},
        {"quiet keeps output out of the log but not out of the result", test_quiet},
        {"bad options are refused", test_bad_options},
        {"an unwritable log file is an error before anything runs",
         test_unwritable_log_stops_before_running},
        {"a background process runs in its own session and stops on request", test_start_and_stop},
        {"stop escalates to SIGKILL for the whole group", test_stop_escalates_to_kill},
        {"stop gives the server behind a shell its grace",
         test_stop_gives_the_server_behind_a_shell_its_grace},
        {"a background process that exited is not alive", test_exited_process_not_alive},
        {"freeing the handle leaves the process running", test_free_leaves_process_running},
        {"start refuses a missing log path and reports a missing command", test_start_errors},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "proc", tests);
}
