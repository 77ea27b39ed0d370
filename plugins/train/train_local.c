/* train_local.c — the local backend of train: the command runs here, as a child process. */
#include "train.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines of output shown when the command fails, and at most this many bytes of them. */
#define TAIL_LINES 15
#define TAIL_BYTES 2500

static void local_plan(struct mlstage_ctx *ctx, const struct train_job *job)
{
    const char *sh_argv[] = {"/bin/sh", "-c", job->command, NULL};
    char *text = train_argv_text(job->command ? sh_argv : job->argv);
    mlstage_plan(ctx, "run: %s", text ? text : "(out of memory)");
    free(text);
    mlstage_plan(ctx, "in: %s", job->cwd);
    mlstage_plan(ctx, "env: MLSTAGE_RUN_ID=%s", mlstage_run_id(ctx));
    mlstage_plan(ctx, "env: MLSTAGE_RUN_DIR=%s", mlstage_run_dir(ctx));
    mlstage_plan(ctx, "env: MLSTAGE_OUTPUTS_DIR=%s", mlstage_outputs_dir(ctx));
    for (const char *const *e = job->env; *e; e++)
        mlstage_plan(ctx, "env: %s", *e);
    if (job->timeout_s > 0)
        mlstage_plan(ctx, "timeout: %g s", job->timeout_s);
}

/* The end of the tail, cut at a line start so that a message stays readable and bounded. */
static const char *tail_end(const char *tail)
{
    size_t len = tail ? strlen(tail) : 0;
    if (len <= TAIL_BYTES)
        return tail ? tail : "";
    const char *p = tail + len - TAIL_BYTES;
    const char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p;
}

static int local_run(struct mlstage_ctx *ctx, const struct train_job *job,
                     struct train_outcome *out)
{
    struct mlstage_proc_opts opts = {
        .shell = job->command,
        .argv = job->command ? NULL : job->argv,
        .cwd = job->cwd,
        .env = job->env,
        .timeout_s = job->timeout_s,
        .log_path = job->log_path,
        .tail_lines = TAIL_LINES,
    };
    struct mlstage_proc_result res = {0};
    mlstage_group_begin(ctx, "training command");
    int rc = mlstage_proc_run(ctx, &opts, &res);
    mlstage_group_end(ctx);
    if (rc)
        goto done;
    out->exit_code = res.exit_code;
    out->wall_s = res.wall_s;
    const char *tail = tail_end(res.tail);
    if (!*tail)
        tail = "(it printed nothing)";
    if (res.timed_out)
        rc = mlstage_error_set(ctx, MLSTAGE_ETIMEOUT,
                               "the training command ran past its timeout of %g s and was "
                               "stopped; the last lines of its output (all of it in %s):\n%s",
                               job->timeout_s, job->log_path, tail);
    else if (res.signal)
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the training command was killed by signal %d (%s) after %.1f s; "
                               "the last lines of its output (all of it in %s):\n%s",
                               res.signal, strsignal(res.signal), res.wall_s, job->log_path, tail);
    else if (res.exit_code != 0)
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the training command failed with exit status %d after %.1f s; "
                               "the last lines of its output (all of it in %s):\n%s",
                               res.exit_code, res.wall_s, job->log_path, tail);
    else
        mlstage_info(ctx, "the training command succeeded in %.1f s", res.wall_s);
done:
    mlstage_proc_result_free(&res);
    return rc;
}

const struct train_backend train_local_backend = {
    .name = "local",
    .plan = local_plan,
    .run = local_run,
};
