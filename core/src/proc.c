/* proc.c — running child processes for plugins: streamed and masked output, environment, timeouts.
 */
#include <mlstage/proc.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mlstage/context.h>
#include <mlstage/error.h>

#include "ctx.h"
#include "mask.h"
#include "util.h"

extern char **environ;

/* A line with no newline for this long is cut, so output never buffers without bound. */
#define LINE_MAX_BYTES (64 * 1024)
/* How far back from the cut to look for a space, so a token is not split (and leaked unmasked). */
#define LINE_CUT_LOOKBACK 4096
#define DEFAULT_TAIL      20u
#define MAX_TAIL          100000u
#define DEFAULT_GRACE_S   5.0
/* After the command exits, how long leftovers of its group may hold our pipe before we stop them.
 */
#define DRAIN_S 0.5
/* After SIGKILL, how long to wait for a pipe held by something that left the group. */
#define ABANDON_S     1.0
#define POLL_SLICE_MS 100
#define FD_SCAN_LIMIT 65536

/* ---- the environment ---------------------------------------------------- */

struct envv {
    char **v; /* NULL-terminated, every string owned */
    size_t n;
};

static void env_push(struct envv *e, char *owned)
{
    e->v = xrealloc(e->v, (e->n + 2) * sizeof(*e->v));
    e->v[e->n++] = owned;
    e->v[e->n] = NULL;
}

/* Sets "KEY=VALUE", replacing an entry with the same key. */
static void env_set(struct envv *e, const char *entry)
{
    size_t klen = strcspn(entry, "=");
    for (size_t i = 0; i < e->n; i++) {
        if (strncmp(e->v[i], entry, klen) == 0 && e->v[i][klen] == '=') {
            free(e->v[i]);
            e->v[i] = xstrdup(entry);
            return;
        }
    }
    env_push(e, xstrdup(entry));
}

static void env_set_kv(struct envv *e, const char *key, const char *value)
{
    struct buf b;
    if (!value)
        return;
    buf_init(&b);
    buf_printf(&b, "%s=%s", key, value);
    env_set(e, b.data);
    buf_free(&b);
}

static const char *env_get(const struct envv *e, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], key, klen) == 0 && e->v[i][klen] == '=')
            return e->v[i] + klen + 1;
    return NULL;
}

static void env_free(struct envv *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
    e->v = NULL;
    e->n = 0;
}

/* The current environment, the run's facts, then the caller's entries. */
static void env_build(struct envv *e, struct mlstage_ctx *ctx, const char *const *extra)
{
    for (char **p = environ; p && *p; p++)
        env_push(e, xstrdup(*p));
    env_set_kv(e, "MLSTAGE_RUN_ID", mlstage_run_id(ctx));
    env_set_kv(e, "MLSTAGE_RUN_DIR", mlstage_run_dir(ctx));
    env_set_kv(e, "MLSTAGE_OUTPUTS_DIR", mlstage_outputs_dir(ctx));
    for (const char *const *p = extra; p && *p; p++)
        env_set(e, *p);
    if (!e->v)
        e->v = xcalloc(1, sizeof(*e->v)); /* an empty environment is still a list */
}

/*
 * Tells the agent that a command's process group exists (on) or is gone
 * (off). The command has its own group so that its timeout reaches its
 * children; the agent must know it, or stopping the plugin (stage
 * timeout, Ctrl-C, a crash) would leave the command running unseen.
 */
static void announce_group(struct mlstage_ctx *ctx, pid_t pgid, int on)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "t", json_object_new_string("pgroup"));
    json_object_object_add(m, "pgid", json_object_new_int64(pgid));
    json_object_object_add(m, "on", json_object_new_boolean(on));
    ctx_send(ctx, m);
}

/* ---- starting the child ------------------------------------------------- */

/* Everything the child needs, prepared before fork: after it, no allocation and no locks. */
struct launch {
    const char *const *argv;
    char *const *envp;
    const char *path; /* the PATH searched when argv[0] has no slash: the child's, not ours */
    const char *cwd;
    int in_fd, out_fd, status_fd;
    int go_fd; /* read end of the pipe the parent closes once the group is announced, or -1 */
    int new_session;
    int fd_limit;
};

/* What the child reports through the status pipe when it cannot get to exec. */
enum { FAIL_SETUP = 1, FAIL_CHDIR, FAIL_EXEC };
struct child_failure {
    int stage;
    int err;
};

static void child_fail(const struct launch *l, int stage, int err) __attribute__((noreturn));
static void child_fail(const struct launch *l, int stage, int err)
{
    struct child_failure f = {stage, err};
    ssize_t n = write(l->status_fd, &f, sizeof(f));
    (void)n;
    _exit(127);
}

static void child_exec_path(const struct launch *l) __attribute__((noreturn));
static void child_exec_path(const struct launch *l)
{
    const char *file = l->argv[0];
    char *const *argv = (char *const *)l->argv;
    char path[PATH_MAX];
    size_t flen = strlen(file);
    int err = ENOENT;
    if (strchr(file, '/')) {
        execve(file, argv, l->envp);
        child_fail(l, FAIL_EXEC, errno);
    }
    /* As execvp does, but with the child's PATH; EACCES wins over ENOENT. */
    for (const char *dir = l->path;;) {
        const char *colon = strchr(dir, ':');
        size_t dlen = colon ? (size_t)(colon - dir) : strlen(dir);
        const char *d = dlen ? dir : ".";
        if (!dlen)
            dlen = 1;
        if (dlen + flen + 2 <= sizeof(path)) {
            memcpy(path, d, dlen);
            path[dlen] = '/';
            memcpy(path + dlen + 1, file, flen + 1);
            execve(path, argv, l->envp);
            if (errno == EACCES)
                err = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR)
                child_fail(l, FAIL_EXEC, errno);
        }
        if (!colon)
            break;
        dir = colon + 1;
    }
    child_fail(l, FAIL_EXEC, err);
}

static void child_run(const struct launch *l) __attribute__((noreturn));
static void child_run(const struct launch *l)
{
    struct sigaction dfl;
    sigset_t none;
    /* Ignored signals stay ignored across exec: a training script must get SIGPIPE as usual. */
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (l->new_session)
        setsid();
    else
        setpgid(0, 0);
    if (l->go_fd >= 0) {
        /* Wait until the agent knows the group: a plugin that dies now must not orphan us. */
        char go;
        ssize_t n;
        do {
            n = read(l->go_fd, &go, 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            child_fail(l, FAIL_SETUP, ECHILD);
    }
    /* Lift both above stdio first, so neither is overwritten by the other's dup2. */
    int in = fcntl(l->in_fd, F_DUPFD, 3), out = fcntl(l->out_fd, F_DUPFD, 3);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        child_fail(l, FAIL_SETUP, errno);
    /* Descriptors someone opened without O_CLOEXEC must not reach the command either. */
    if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
        for (int fd = 3; fd < l->fd_limit; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (l->cwd && chdir(l->cwd) != 0)
        child_fail(l, FAIL_CHDIR, errno);
    child_exec_path(l);
}

static const char *command_name(const struct mlstage_proc_opts *opts)
{
    return opts->shell ? "/bin/sh" : opts->argv[0];
}

/*
 * Starts the command with stdout and stderr on out_fd and stdin on
 * /dev/null. Returns 0 with *pid set when it is running, 0 with *exec_err
 * set when it could not be executed (already reaped), MLSTAGE_EFAIL when
 * it could not be started at all.
 */
static int spawn(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts, int out_fd,
                 int new_session, pid_t *pid, int *exec_err)
{
    const char *sh_argv[] = {"/bin/sh", "-c", opts->shell, NULL};
    struct envv env = {NULL, 0};
    struct launch l;
    struct child_failure f;
    int null_fd = -1, status[2] = {-1, -1}, go[2] = {-1, -1}, rc = 0;
    long open_max = sysconf(_SC_OPEN_MAX);
    const char *path;
    ssize_t n;
    pid_t child;
    *pid = -1;
    *exec_err = 0;
    env_build(&env, ctx, opts->env);
    path = env_get(&env, "PATH");
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || pipe2(status, O_CLOEXEC) != 0 ||
        (!new_session && pipe2(go, O_CLOEXEC) != 0)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot run %s: %s", command_name(opts),
                               strerror(errno));
        goto done;
    }
    l = (struct launch){
        .argv = opts->shell ? sh_argv : opts->argv,
        .envp = env.v,
        .path = path ? path : "/usr/local/bin:/usr/bin:/bin",
        .cwd = opts->cwd,
        .in_fd = null_fd,
        .out_fd = out_fd,
        .status_fd = status[1],
        .go_fd = go[0],
        .new_session = new_session,
        .fd_limit = open_max > 0 && open_max < FD_SCAN_LIMIT ? (int)open_max : FD_SCAN_LIMIT,
    };
    child = fork();
    if (child < 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot run %s: fork: %s", command_name(opts),
                               strerror(errno));
        goto done;
    }
    if (child == 0) {
        if (go[1] >= 0)
            close(go[1]); /* so that the read sees EOF if we die before saying go */
        child_run(&l);
    }
    close(status[1]);
    status[1] = -1;
    if (!new_session) {
        /* Also from here, so the group exists before anyone signals it. */
        setpgid(child, child);
        announce_group(ctx, child, 1);
        while (write(go[1], "g", 1) < 0 && errno == EINTR)
            ;
        close(go[1]);
        go[1] = -1;
    }
    /* EOF: exec succeeded and closed the pipe; a record: it failed before. */
    do {
        n = read(status[0], &f, sizeof(f));
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(f)) {
        *pid = child;
        goto done;
    }
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
        ;
    if (!new_session)
        announce_group(ctx, child, 0);
    if (f.stage == FAIL_EXEC)
        *exec_err = f.err;
    else if (f.stage == FAIL_CHDIR)
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot run %s in %s: %s", command_name(opts),
                               opts->cwd, strerror(f.err));
    else
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot run %s: %s", command_name(opts),
                               strerror(f.err));
done:
    if (null_fd >= 0)
        close(null_fd);
    if (status[0] >= 0)
        close(status[0]);
    if (status[1] >= 0)
        close(status[1]);
    if (go[0] >= 0)
        close(go[0]);
    if (go[1] >= 0)
        close(go[1]);
    env_free(&env);
    return rc;
}

/* "cannot run "trian.py": command not found", as a shell would say it. */
static void exec_failure_text(struct buf *b, const struct mlstage_proc_opts *opts, int err)
{
    const char *name = command_name(opts);
    if (err == ENOENT && !strchr(name, '/'))
        buf_printf(b, "cannot run \"%s\": command not found", name);
    else
        buf_printf(b, "cannot run \"%s\": %s", name, strerror(err));
}

static int check_opts(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts, int need_log)
{
    int have_argv, have_shell;
    if (!opts)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "no options given for the command");
    have_argv = opts->argv && opts->argv[0] && opts->argv[0][0];
    have_shell = opts->shell != NULL;
    if (have_argv == have_shell)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "a command needs exactly one of argv and shell");
    for (const char *const *p = opts->env; p && *p; p++)
        if (!strchr(*p, '=') || **p == '=')
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "environment entry \"%s\" is not KEY=VALUE", *p);
    if (opts->timeout_s < 0 || opts->kill_grace_s < 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "negative timeout or grace period");
    if (need_log && (!opts->log_path || !*opts->log_path))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "a background process needs a log_path for its output");
    return 0;
}

/* ---- output: lines, masking, the log, the tail -------------------------- */

struct stream {
    struct mlstage_ctx *ctx;
    const struct mlstage_proc_opts *opts;
    int log_fd;
    char **ring; /* the last lines, masked, owned */
    unsigned ring_cap, ring_len, ring_next;
    struct buf pending; /* bytes after the last newline */
};

static int stream_open(struct stream *st, struct mlstage_ctx *ctx,
                       const struct mlstage_proc_opts *opts)
{
    memset(st, 0, sizeof(*st));
    st->ctx = ctx;
    st->opts = opts;
    st->log_fd = -1;
    buf_init(&st->pending);
    st->ring_cap = opts->tail_lines ? opts->tail_lines : DEFAULT_TAIL;
    if (st->ring_cap > MAX_TAIL)
        st->ring_cap = MAX_TAIL;
    st->ring = xcalloc(st->ring_cap, sizeof(*st->ring));
    if (opts->log_path) {
        st->log_fd = open(opts->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (st->log_fd < 0)
            return mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot open %s: %s", opts->log_path,
                                     strerror(errno));
    }
    return 0;
}

static void stream_close(struct stream *st)
{
    for (unsigned i = 0; i < st->ring_cap; i++)
        free(st->ring ? st->ring[i] : NULL);
    free(st->ring);
    st->ring = NULL;
    if (st->log_fd >= 0)
        close(st->log_fd);
    st->log_fd = -1;
    buf_free(&st->pending);
}

/* One write per line, so lines from concurrent writers to the same file do not interleave. */
static void stream_to_file(struct stream *st, const char *masked)
{
    struct iovec iov[2] = {{(void *)masked, strlen(masked)}, {"\n", 1}};
    if (st->log_fd < 0)
        return;
    while (writev(st->log_fd, iov, 2) < 0 && errno == EINTR)
        ;
}

static void stream_keep(struct stream *st, char *masked)
{
    free(st->ring[st->ring_next]);
    st->ring[st->ring_next] = masked;
    st->ring_next = (st->ring_next + 1) % st->ring_cap;
    if (st->ring_len < st->ring_cap)
        st->ring_len++;
}

static void stream_line(struct stream *st, const char *text, size_t len)
{
    if (len > 0 && text[len - 1] == '\r')
        len--;
    char *masked = mask_apply(text, len, NULL);
    if (!st->opts->quiet)
        mlstage_log(st->ctx, MLSTAGE_LOG_INFO, "%s", masked);
    if (st->opts->on_line)
        st->opts->on_line(st->opts->userdata, masked);
    stream_to_file(st, masked);
    stream_keep(st, masked);
}

/* Our own remark about the command (it could not run, it was stopped): logged and filed. */
static void stream_note(struct stream *st, enum mlstage_log_level level, const char *text, int keep)
{
    char *masked = mask_apply(text, strlen(text), NULL);
    mlstage_log(st->ctx, level, "%s", masked);
    stream_to_file(st, masked);
    if (keep)
        stream_keep(st, masked);
    else
        free(masked);
}

/* Where to cut an overlong line: after a space near the limit, else on a UTF-8 boundary. */
static size_t long_line_cut(const char *p)
{
    for (size_t i = LINE_MAX_BYTES; i > LINE_MAX_BYTES - LINE_CUT_LOOKBACK; i--)
        if (p[i - 1] == ' ' || p[i - 1] == '\t')
            return i;
    size_t cut = LINE_MAX_BYTES;
    while (cut > LINE_MAX_BYTES - 4 && ((unsigned char)p[cut] & 0xC0) == 0x80)
        cut--;
    return cut;
}

static void stream_feed(struct stream *st, const char *data, size_t n)
{
    size_t start = 0;
    buf_append(&st->pending, data, n);
    for (;;) {
        const char *p = st->pending.data + start;
        size_t left = st->pending.len - start;
        const char *nl = memchr(p, '\n', left);
        if (nl && nl - p <= LINE_MAX_BYTES) {
            stream_line(st, p, (size_t)(nl - p));
            start += (size_t)(nl - p) + 1;
        } else if (left >= LINE_MAX_BYTES) {
            size_t cut = long_line_cut(p);
            stream_line(st, p, cut);
            start += cut;
        } else {
            break;
        }
    }
    memmove(st->pending.data, st->pending.data + start, st->pending.len - start);
    st->pending.len -= start;
    st->pending.data[st->pending.len] = '\0';
}

static void stream_flush(struct stream *st)
{
    if (st->pending.len > 0)
        stream_line(st, st->pending.data, st->pending.len);
    st->pending.len = 0;
}

/* The kept lines, oldest first, joined with newlines. */
static char *stream_tail(const struct stream *st)
{
    struct buf b;
    buf_init(&b);
    unsigned first = (st->ring_next + st->ring_cap - st->ring_len) % st->ring_cap;
    for (unsigned i = 0; i < st->ring_len; i++) {
        if (i > 0)
            buf_putc(&b, '\n');
        buf_puts(&b, st->ring[(first + i) % st->ring_cap]);
    }
    return buf_steal(&b);
}

/* ---- supervising ------------------------------------------------------- */

/* Non-zero once the child has exited (its status in *status), or was reaped by someone else. */
static int reap(pid_t pid, int *status)
{
    pid_t r;
    do {
        r = waitpid(pid, status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        *status = -1;
    return r != 0;
}

/*
 * Reads output until the child has exited and the pipe is closed, with
 * the timeout, the grace period, and leftovers of the group that keep the
 * pipe open after the command itself has exited.
 */
static void supervise(struct stream *st, pid_t pid, int fd, struct mlstage_proc_result *res)
{
    const struct mlstage_proc_opts *opts = st->opts;
    double start = now_mono();
    double deadline = opts->timeout_s > 0 ? start + opts->timeout_s : 0;
    double grace = opts->kill_grace_s > 0 ? opts->kill_grace_s : DEFAULT_GRACE_S;
    double exited_at = 0, term_at = 0, kill_at = 0;
    int exited = 0, status = 0;
    char chunk[65536];
    struct buf note;
    buf_init(&note);
    while (fd >= 0 || !exited) {
        double now = now_mono();
        if (!exited && reap(pid, &status)) {
            exited = 1;
            exited_at = now;
        }
        if (exited && fd < 0)
            break;
        if (!term_at && !exited && deadline && now >= deadline) {
            res->timed_out = 1;
            buf_printf(&note, "%s ran past its timeout of %gs: stopping it", command_name(opts),
                       opts->timeout_s);
            stream_note(st, MLSTAGE_LOG_WARN, note.data, 0);
            kill(-pid, SIGTERM);
            term_at = now;
        } else if (!term_at && exited && now >= exited_at + DRAIN_S) {
            /* Its background children still hold the pipe: they go with it. */
            kill(-pid, SIGTERM);
            term_at = now;
        }
        if (term_at && !kill_at && now >= term_at + grace) {
            kill(-pid, SIGKILL);
            kill_at = now;
        }
        if (kill_at && exited && now >= kill_at + ABANDON_S) {
            /* Something that left the process group holds the pipe: stop reading. */
            break;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int ready = poll(&p, fd >= 0 ? 1 : 0, fd >= 0 ? POLL_SLICE_MS : 10);
        if (ready <= 0)
            continue;
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n > 0) {
            stream_feed(st, chunk, (size_t)n);
        } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            close(fd);
            fd = -1;
        }
    }
    if (fd >= 0)
        close(fd);
    stream_flush(st);
    if (status >= 0 && WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->exit_code = -1;
        res->signal = status >= 0 && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    buf_free(&note);
}

static void log_command(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts,
                        const char *what)
{
    struct buf b;
    buf_init(&b);
    if (opts->shell) {
        buf_printf(&b, "%s: sh -c %s", what, opts->shell);
    } else {
        buf_puts(&b, what);
        buf_putc(&b, ':');
        for (const char *const *a = opts->argv; *a; a++)
            buf_printf(&b, " %s", *a);
    }
    if (opts->cwd)
        buf_printf(&b, " (in %s)", opts->cwd);
    mlstage_log(ctx, MLSTAGE_LOG_DEBUG, "%s", b.data);
    buf_free(&b);
}

int mlstage_proc_run(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts,
                     struct mlstage_proc_result *res)
{
    struct stream st;
    struct buf note;
    int out[2] = {-1, -1}, exec_err = 0, rc;
    pid_t pid = -1;
    double start = now_mono();
    memset(res, 0, sizeof(*res));
    memset(&st, 0, sizeof(st));
    buf_init(&note);
    if (!ctx)
        return MLSTAGE_EINPUT;
    if ((rc = check_opts(ctx, opts, 0)) != 0)
        goto done;
    if ((rc = stream_open(&st, ctx, opts)) != 0)
        goto done;
    if (pipe2(out, O_CLOEXEC) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot run %s: pipe: %s", command_name(opts),
                               strerror(errno));
        goto done;
    }
    log_command(ctx, opts, "run");
    rc = spawn(ctx, opts, out[1], 0, &pid, &exec_err);
    close(out[1]);
    out[1] = -1;
    if (rc != 0)
        goto done;
    if (exec_err) {
        /* As a shell reports it: 127 when not found, 126 when found but not executable. */
        res->exit_code = exec_err == ENOENT ? 127 : 126;
        exec_failure_text(&note, opts, exec_err);
        stream_note(&st, MLSTAGE_LOG_ERROR, note.data, 1);
    } else {
        supervise(&st, pid, out[0], res);
        out[0] = -1; /* supervise closed it */
        announce_group(ctx, pid, 0);
    }
    res->wall_s = now_mono() - start;
    res->tail = stream_tail(&st);
done:
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (st.ring)
        stream_close(&st);
    buf_free(&note);
    return rc;
}

void mlstage_proc_result_free(struct mlstage_proc_result *res)
{
    if (!res)
        return;
    free(res->tail);
    res->tail = NULL;
}

/* ---- background processes ----------------------------------------------- */

struct mlstage_proc {
    pid_t pid; /* also its session and process group id */
    int reaped;
};

int mlstage_proc_start(struct mlstage_ctx *ctx, const struct mlstage_proc_opts *opts,
                       struct mlstage_proc **out)
{
    struct buf note;
    int log_fd = -1, exec_err = 0, rc;
    pid_t pid = -1;
    buf_init(&note);
    if (!ctx || !out)
        return MLSTAGE_EINPUT;
    *out = NULL;
    if ((rc = check_opts(ctx, opts, 1)) != 0)
        goto done;
    /* Straight into the file: the server outlives this call, so nobody could pump a pipe. */
    log_fd = open(opts->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot open %s: %s", opts->log_path,
                               strerror(errno));
        goto done;
    }
    log_command(ctx, opts, "start");
    if ((rc = spawn(ctx, opts, log_fd, 1, &pid, &exec_err)) != 0)
        goto done;
    if (exec_err) {
        exec_failure_text(&note, opts, exec_err);
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "%s", note.data);
        goto done;
    }
    *out = xcalloc(1, sizeof(**out));
    (*out)->pid = pid;
    mlstage_log(ctx, MLSTAGE_LOG_DEBUG, "started %s as pid %ld, output in %s", command_name(opts),
                (long)pid, opts->log_path);
done:
    if (log_fd >= 0)
        close(log_fd);
    buf_free(&note);
    return rc;
}

pid_t mlstage_proc_pid(const struct mlstage_proc *proc)
{
    return proc ? proc->pid : -1;
}

int mlstage_proc_alive(struct mlstage_proc *proc)
{
    int status;
    if (!proc || proc->reaped)
        return 0;
    if (reap(proc->pid, &status))
        proc->reaped = 1;
    return !proc->reaped;
}

/*
 * Whether any process of group `pgid` still runs (zombies do not count:
 * once the group leader is gone its children belong to init, which may
 * never reap them, so kill(-pgid, 0) would say "alive" forever).
 */
static int group_running(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int running = 0;
    while (!running && d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], stat[512];
        if (pathf(path, sizeof(path), "/proc/%s/stat", e->d_name) != 0)
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, stat, sizeof(stat) - 1);
        close(fd);
        if (n <= 0)
            continue;
        stat[n] = '\0';
        /* "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses. */
        char *rp = strrchr(stat, ')');
        char state = 0;
        long ppid = 0, pgrp = 0;
        if (rp && sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            running = 1;
    }
    if (d)
        closedir(d);
    return running;
}

int mlstage_proc_stop(struct mlstage_proc *proc, double grace_s)
{
    double deadline;
    if (!proc)
        return MLSTAGE_EINPUT;
    if (proc->reaped)
        return 0;
    deadline = now_mono() + (grace_s > 0 ? grace_s : DEFAULT_GRACE_S);
    kill(-proc->pid, SIGTERM);
    /* Most servers stop within milliseconds: look often at first, then every 20 ms. */
    double pause = 0.001;
    while (mlstage_proc_alive(proc) && now_mono() < deadline) {
        sleep_s(pause);
        pause = pause < 0.02 ? pause * 2 : 0.02;
    }
    /*
     * The leader is often a shell that dies of SIGTERM at once while the
     * server it started is still shutting down cleanly: give the rest of
     * the group the same grace before SIGKILL.
     */
    pause = 0.001;
    while (proc->reaped && group_running(proc->pid) && now_mono() < deadline) {
        sleep_s(pause);
        pause = pause < 0.02 ? pause * 2 : 0.02;
    }
    if (!proc->reaped) {
        kill(-proc->pid, SIGKILL);
        while (waitpid(proc->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        proc->reaped = 1;
    }
    /* Workers that ignored SIGTERM must not outlive the server they belong to. */
    kill(-proc->pid, SIGKILL);
    return 0;
}

void mlstage_proc_free(struct mlstage_proc *proc)
{
    free(proc);
}
