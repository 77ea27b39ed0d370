/* proc.h — running child processes: streamed and masked output, environment, timeouts. */
#ifndef MLSTAGE_PROC_H
#define MLSTAGE_PROC_H

#include <sys/types.h>

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;

struct mlstage_proc_opts {
    /* Exactly one of argv (executed directly, searched in PATH) and shell
     * (passed to /bin/sh -c). */
    const char *const *argv;
    const char *shell;
    const char *cwd; /* NULL: the current directory */
    /* Extra "KEY=VALUE" entries on top of the run's environment, which
     * already carries MLSTAGE_RUN_ID, MLSTAGE_RUN_DIR and
     * MLSTAGE_OUTPUTS_DIR. NULL-terminated, or NULL. */
    const char *const *env;
    double timeout_s;     /* 0: only the stage's own timeout applies */
    double kill_grace_s;  /* after SIGTERM, SIGKILL follows; 0: 5 s */
    int quiet;            /* do not stream lines to the log (still kept) */
    const char *log_path; /* also append the (masked) output here, or NULL */
    unsigned tail_lines;  /* keep the last N lines for the result; 0: 20 */
    /* Called with each masked output line (stdout and stderr merged). */
    void (*on_line)(void *userdata, const char *line);
    void *userdata;
};

struct mlstage_proc_result {
    int exit_code; /* the child's exit status, or -1 when it was signalled */
    int signal;    /* the signal that ended it, or 0 */
    int timed_out; /* it was stopped by the timeout */
    double wall_s;
    char *tail; /* last lines of output, masked, NUL-terminated; owned */
};

/*
 * Runs a command to completion in its own process group, streaming each
 * line of its output (masked) to the log as it comes. Returns 0 when the
 * process ran (whatever its exit status: see `res`), MLSTAGE_EINPUT for
 * bad options, MLSTAGE_EFAIL when it could not be started. In a dry run
 * this is not refused: a plugin decides what is safe to run, and uses
 * mlstage_plan() for what it will not.
 */
MLSTAGE_API int mlstage_proc_run(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts,
                                 struct mlstage_proc_result *res);

/* Frees what a result owns; safe on a zeroed result. */
MLSTAGE_API void mlstage_proc_result_free(struct mlstage_proc_result *res);

/*
 * A background process (a model server): started in its own session with
 * output going to opts->log_path (required), never waited for implicitly.
 */
struct mlstage_proc;

MLSTAGE_API int mlstage_proc_start(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts,
                                   struct mlstage_proc **out);
MLSTAGE_API pid_t mlstage_proc_pid(const struct mlstage_proc *proc);
/* Non-zero while the process has not exited; reaps it when it has. */
MLSTAGE_API int mlstage_proc_alive(struct mlstage_proc *proc);
/* SIGTERM to its group, SIGKILL after grace_s; waits for it. */
MLSTAGE_API int mlstage_proc_stop(struct mlstage_proc *proc, double grace_s);
/* Frees the handle. The process keeps running if it was not stopped. */
MLSTAGE_API void mlstage_proc_free(struct mlstage_proc *proc);

#ifdef __cplusplus
}
#endif
#endif
