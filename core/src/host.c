/* host.c — finding plugins and running one in a child process the agent survives. */
#include "host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/plugin.h>
#include <mlstage/version.h>

#include "ctx.h"
#include "log.h"
#include "mask.h"
#include "schema.h"

#define HOST_DEFAULT_GRACE 10.0
#define HOST_MAX_MESSAGE   (64u << 20)

/* ---- discovery --------------------------------------------------------- */

static void dirs_add(char ***dirs, size_t *n, const char *dir)
{
    char real[PATH_MAX];
    struct stat st;
    if (!dir || !*dir || !realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return;
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*dirs)[i], real) == 0)
            return;
    *dirs = xrealloc(*dirs, (*n + 2) * sizeof(**dirs));
    (*dirs)[(*n)++] = xstrdup(real);
    (*dirs)[*n] = NULL;
}

char **host_dirs(const char *const *cli_dirs)
{
    char **dirs = xcalloc(1, sizeof(*dirs));
    size_t n = 0;
    for (const char *const *d = cli_dirs; d && *d; d++)
        dirs_add(&dirs, &n, *d);
    const char *env = getenv("MLSTAGE_PLUGIN_PATH");
    if (env) {
        char *copy = xstrdup(env), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save))
            dirs_add(&dirs, &n, d);
        free(copy);
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char rel[PATH_MAX + 64];
            snprintf(rel, sizeof(rel), "%s/../%s", exe, MLSTAGE_PLUGIN_SUBDIR);
            dirs_add(&dirs, &n, rel);
        }
    }
    dirs_add(&dirs, &n, MLSTAGE_PLUGIN_INSTALL_DIR);
    return dirs;
}

void host_dirs_free(char **dirs)
{
    if (!dirs)
        return;
    for (char **d = dirs; *d; d++)
        free(*d);
    free(dirs);
}

static int valid_plugin_name(const char *name)
{
    if (!name || !*name || !((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9')))
        return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return 0;
    return strlen(name) <= 64;
}

int host_find(char **dirs, const char *name, char **path, struct mls_err *err)
{
    *path = NULL;
    if (!valid_plugin_name(name))
        return err_set(err, MLSTAGE_EPLUGIN,
                       "invalid plugin name \"%s\": expected [a-z0-9][a-z0-9-]*", name);
    struct buf searched;
    buf_init(&searched);
    for (char **d = dirs; d && *d; d++) {
        char candidate[PATH_MAX];
        snprintf(candidate, sizeof(candidate), "%s/%s.so", *d, name);
        if (access(candidate, R_OK) == 0) {
            *path = xstrdup(candidate);
            buf_free(&searched);
            return 0;
        }
        buf_printf(&searched, "%s%s", searched.len ? ", " : "", *d);
    }
    err_set(err, MLSTAGE_EPLUGIN,
            "plugin \"%s\" not found (looked for %s.so in: %s); add a folder with "
            "--plugin-path or MLSTAGE_PLUGIN_PATH",
            name, name, searched.len ? searched.data : "no plugin folders exist");
    buf_free(&searched);
    return MLSTAGE_EPLUGIN;
}

/* ---- the child side ---------------------------------------------------- */

static void child_send(int fd, json_object *msg)
{
    struct mlstage_ctx tmp = {.ctl_fd = fd};
    pthread_mutex_init(&tmp.lock, NULL);
    ctx_send(&tmp, msg);
    pthread_mutex_destroy(&tmp.lock);
}

static void child_done(int fd, int code, const char *msg)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "t", json_object_new_string("done"));
    json_object_object_add(m, "code", json_object_new_int(code));
    json_object_object_add(m, "m", json_object_new_string(msg ? msg : ""));
    child_send(fd, m);
    fflush(NULL);
    _exit(0);
}

/*
 * Opens the plugin and checks everything but the inputs. On failure sends
 * "done" with MLSTAGE_EPLUGIN and exits the child.
 */
static const struct mlstage_plugin *child_open(int fd, const char *path, const char *want_name,
                                               json_object **schema)
{
    char msg[8192];
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        snprintf(msg, sizeof(msg), "cannot load plugin %s: %s", path, dlerror());
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    void *sym = dlsym(handle, MLSTAGE_PLUGIN_ENTRY);
    if (!sym) {
        snprintf(msg, sizeof(msg), "%s is not an mlstage plugin: it does not export %s()", path,
                 MLSTAGE_PLUGIN_ENTRY);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    mlstage_plugin_init_fn init;
    *(void **)&init = sym;
    const struct mlstage_plugin *p = init();
    if (!p) {
        snprintf(msg, sizeof(msg), "plugin %s returned no descriptor", path);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    if (p->abi_version != MLSTAGE_ABI_VERSION) {
        snprintf(msg, sizeof(msg),
                 "plugin %s was built for plugin ABI %u, but this mlstage speaks ABI %u: "
                 "rebuild it against mlstage %s",
                 path, p->abi_version, MLSTAGE_ABI_VERSION, MLSTAGE_VERSION);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    if (!p->name || !p->version || !p->run || !p->input_schema) {
        snprintf(msg, sizeof(msg),
                 "plugin %s has an incomplete descriptor (name, version, "
                 "input_schema and run are required)",
                 path);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    if (want_name && strcmp(p->name, want_name) != 0) {
        snprintf(msg, sizeof(msg), "plugin file %s calls itself \"%s\", expected \"%s\"", path,
                 p->name, want_name);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    json_tokener *tok = json_tokener_new();
    *schema = json_tokener_parse_ex(tok, p->input_schema, (int)strlen(p->input_schema));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (!*schema || jerr != json_tokener_success) {
        snprintf(msg, sizeof(msg), "plugin %s declares an input schema that is not JSON: %s",
                 p->name, json_tokener_error_desc(jerr));
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    struct mls_err err = {0};
    if (schema_check(*schema, &err) != 0) {
        snprintf(msg, sizeof(msg), "plugin %s declares an invalid input schema: %s", p->name,
                 err.msg);
        child_done(fd, MLSTAGE_EPLUGIN, msg);
    }
    json_object *hello = json_object_new_object();
    json_object_object_add(hello, "t", json_object_new_string("hello"));
    json_object_object_add(hello, "name", json_object_new_string(p->name));
    json_object_object_add(hello, "version", json_object_new_string(p->version));
    json_object_object_add(hello, "abi", json_object_new_int64(p->abi_version));
    json_object_object_add(hello, "summary", json_object_new_string(p->summary ? p->summary : ""));
    json_object_object_add(hello, "inputs", json_object_get(*schema));
    child_send(fd, hello);
    return p;
}

/* The read end of the pipe the agent sends git metadata through, in the child. */
static int child_git_fd = -1;

/* Validates and runs; never returns. */
static void child_run(int fd, const struct host_run_spec *spec)
{
    json_object *schema = NULL;
    const struct mlstage_plugin *p = child_open(fd, spec->plugin_path, spec->plugin_name, &schema);
    struct mls_err err = {0};

    json_object *given = NULL;
    json_object_deep_copy(spec->inputs, &given, NULL);
    if (spec->overrides) {
        json_object *props = NULL;
        json_object_object_get_ex(schema, "properties", &props);
        json_object_object_foreach(spec->overrides, key, val)
        {
            if (!props || !json_object_object_get_ex(props, key, NULL))
                continue;
            json_object *typed = schema_coerce(schema, key, json_object_get_string(val), &err);
            if (!typed) {
                char msg[4600];
                snprintf(msg, sizeof(msg), "--set %s: %s", key, err.msg);
                child_done(fd, MLSTAGE_EINPUT, msg);
            }
            json_object_object_add(given, key, typed);
        }
    }
    /*
     * In a pipeline's dry run, inputs that come from earlier stages' outputs
     * are placeholders ("<stages.train.outputs.model_dir>"): they cannot be
     * checked against an enum or a type. They sit out validation (and out of
     * `required`) and are put back for the plugin to plan with.
     */
    json_object *held = spec->ctx->dry_run ? schema_hold_placeholders(given, schema) : NULL;
    json_object *inputs = NULL;
    char *bad = NULL;
    int vrc = schema_validate(schema, given, "inputs", &inputs, &bad, &err);
    if (vrc == 0 && held) {
        json_object_object_foreach(held, hkey, hval)
        {
            json_object_object_add(inputs, hkey, json_object_get(hval));
        }
    }
    json_object_put(held);
    if (vrc != 0) {
        char msg[4600];
        int line = 0, col = 0;
        char ptr[1024];
        snprintf(ptr, sizeof(ptr), "%s/inputs%s", spec->task->pointer, bad ? bad : "");
        if (spec->task->doc && manifest_mark(spec->task->doc, ptr, &line, &col, NULL) == 0)
            snprintf(msg, sizeof(msg), "%s:%d:%d: %s", spec->task->doc->path, line, col, err.msg);
        else
            snprintf(msg, sizeof(msg), "%s", err.msg);
        child_done(fd, MLSTAGE_EINPUT, msg);
    }
    json_object *im = json_object_new_object();
    json_object_object_add(im, "t", json_object_new_string("inputs"));
    json_object_object_add(im, "inputs", json_object_get(inputs));
    child_send(fd, im);

    struct mlstage_ctx *ctx = spec->ctx;
    json_object_put(ctx->inputs);
    ctx->inputs = inputs;
    ctx->ctl_fd = fd;
    ctx->git_fd = child_git_fd;
    int rc = p->run(ctx);
    mlstage_group_end(ctx);
    if (rc > 0)
        rc = MLSTAGE_EFAIL; /* a plugin returning a positive number means failure */
    const char *msg = rc ? ctx->err_msg : "";
    if (rc && !*msg)
        msg = mlstage_strerror(rc);
    child_done(fd, rc, msg);
}

static void child_probe(int fd, const char *path)
{
    json_object *schema = NULL;
    child_open(fd, path, NULL, &schema);
    child_done(fd, 0, "");
}

/* ---- the parent side --------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

struct channel {
    int fd;
    struct buf pending;
};

/* Calls `line_fn` for each complete line; keeps the rest. */
static int channel_read(struct channel *ch, void (*line_fn)(void *, char *, size_t), void *ud)
{
    char chunk[65536];
    ssize_t n = read(ch->fd, chunk, sizeof(chunk));
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    buf_append(&ch->pending, chunk, (size_t)n);
    size_t start = 0;
    for (size_t i = 0; i < ch->pending.len; i++) {
        if (ch->pending.data[i] != '\n')
            continue;
        ch->pending.data[i] = '\0';
        line_fn(ud, ch->pending.data + start, i - start);
        start = i + 1;
    }
    if (start) {
        memmove(ch->pending.data, ch->pending.data + start, ch->pending.len - start);
        ch->pending.len -= start;
        ch->pending.data[ch->pending.len] = '\0';
    }
    /* A plugin printing megabytes without a newline is cut, not buffered forever. */
    if (ch->pending.len > HOST_MAX_MESSAGE) {
        line_fn(ud, ch->pending.data, ch->pending.len);
        ch->pending.len = 0;
    }
    return 1;
}

static void channel_flush(struct channel *ch, void (*line_fn)(void *, char *, size_t), void *ud)
{
    if (ch->pending.len) {
        line_fn(ud, ch->pending.data, ch->pending.len);
        ch->pending.len = 0;
    }
}

/* Process groups of commands the plugin runs (mlstage_proc_run) that have not ended yet. */
#define HOST_MAX_GROUPS 64

struct parent_state {
    struct mlstage_ctx *ctx; /* may be NULL when probing */
    struct host_result *res;
    json_object *hello;
    int done;
    json_object *(*git)(void *ud); /* sent to the child after the fork, or NULL */
    int (*git_poll_fd)(void *ud);
    void *git_ud;
    pid_t groups[HOST_MAX_GROUPS];
    size_t n_groups;
};

static void groups_update(struct parent_state *st, pid_t pgid, int on)
{
    for (size_t i = 0; i < st->n_groups; i++) {
        if (st->groups[i] == pgid) {
            if (!on)
                st->groups[i] = st->groups[--st->n_groups];
            return;
        }
    }
    if (on && pgid > 1 && st->n_groups < HOST_MAX_GROUPS)
        st->groups[st->n_groups++] = pgid;
}

/* The git metadata as the child reads it: one JSON document, "null" outside a repository. */
static void git_serialise(const struct parent_state *st, struct buf *out)
{
    json_object *git = st->git(st->git_ud);
    buf_puts(out, git ? json_object_to_json_string_ext(git, MLS_JSON_PLAIN) : "null");
}

/* Sends `sig` to the plugin's group and to every command group it still has running. */
static void signal_all(const struct parent_state *st, pid_t plugin, int sig)
{
    kill(-plugin, sig);
    for (size_t i = 0; i < st->n_groups; i++)
        kill(-st->groups[i], sig);
}

/*
 * Commands the plugin left running when it ended without waiting for them
 * (it was stopped or crashed): SIGTERM, then SIGKILL once the grace that
 * started at `term_at` (or now) has passed.
 */
static void stop_groups(const struct parent_state *st, double term_at, double grace_s)
{
    if (!st->n_groups)
        return;
    if (!term_at)
        term_at = now_mono();
    for (size_t i = 0; i < st->n_groups; i++)
        kill(-st->groups[i], SIGTERM);
    for (;;) {
        size_t alive = 0;
        for (size_t i = 0; i < st->n_groups; i++)
            alive += kill(-st->groups[i], 0) == 0;
        if (!alive || now_mono() >= term_at + grace_s)
            break;
        sleep_s(0.02);
    }
    for (size_t i = 0; i < st->n_groups; i++)
        kill(-st->groups[i], SIGKILL);
}

static void on_output_line(void *ud, char *line, size_t len)
{
    (void)ud;
    if (len && line[len - 1] == '\r')
        line[--len] = '\0';
    log_line(line, len);
}

static const char *mstr(json_object *m, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(m, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int mint(json_object *m, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(m, key, &v) ? json_object_get_int(v) : 0;
}

static void on_message(void *ud, char *line, size_t len)
{
    struct parent_state *st = ud;
    json_tokener *tok = json_tokener_new();
    json_object *m = json_tokener_parse_ex(tok, line, (int)len);
    json_tokener_free(tok);
    const char *t = m ? mstr(m, "t") : NULL;
    if (!t) {
        log_msg(MLSTAGE_LOG_WARN, "plugin sent a malformed message; ignored");
        json_object_put(m);
        return;
    }
    struct mlstage_ctx *ctx = st->ctx;
    json_object *v = NULL;
    if (strcmp(t, "log") == 0) {
        log_msg((enum mlstage_log_level)mint(m, "l"), "%s", mstr(m, "m") ? mstr(m, "m") : "");
    } else if (strcmp(t, "issue") == 0) {
        log_issue((enum mlstage_log_level)mint(m, "l"), mstr(m, "file"), mint(m, "line"),
                  mint(m, "col"), mstr(m, "m") ? mstr(m, "m") : "");
    } else if (strcmp(t, "group") == 0) {
        log_group_begin(mstr(m, "title") ? mstr(m, "title") : "");
    } else if (strcmp(t, "endgroup") == 0) {
        log_group_end();
    } else if (strcmp(t, "plan") == 0 && ctx) {
        const char *p = mstr(m, "m") ? mstr(m, "m") : "";
        json_object_array_add(ctx->plan, json_object_new_string(p));
        log_plan(p);
    } else if (strcmp(t, "output") == 0 && ctx && mstr(m, "k")) {
        json_object_object_add(ctx->outputs, mstr(m, "k"),
                               json_object_new_string(mstr(m, "v") ? mstr(m, "v") : ""));
    } else if (strcmp(t, "artifact") == 0 && ctx) {
        json_object_object_del(m, "t");
        json_object_array_add(ctx->artifacts, json_object_get(m));
    } else if (strcmp(t, "pgroup") == 0 && json_object_object_get_ex(m, "pgid", &v)) {
        json_object *on = NULL;
        json_object_object_get_ex(m, "on", &on);
        groups_update(st, (pid_t)json_object_get_int64(v), json_object_get_boolean(on));
    } else if (strcmp(t, "secret") == 0) {
        mask_add(mstr(m, "v"));
    } else if (strcmp(t, "hello") == 0) {
        json_object_put(st->hello);
        st->hello = json_object_get(m);
        free(st->res->plugin_version);
        st->res->plugin_version = xstrdup(mstr(m, "version"));
    } else if (strcmp(t, "inputs") == 0 && json_object_object_get_ex(m, "inputs", &v)) {
        json_object_put(st->res->inputs);
        st->res->inputs = json_object_get(v);
    } else if (strcmp(t, "done") == 0) {
        st->done = 1;
        st->res->code = mint(m, "code");
        const char *msg = mstr(m, "m");
        free(st->res->message);
        st->res->message = msg && *msg ? mask_apply(msg, strlen(msg), NULL) : NULL;
    }
    json_object_put(m);
}

static const char *signal_name(int sig)
{
    const char *abbrev = sigabbrev_np(sig);
    static __thread char name[32];
    snprintf(name, sizeof(name), "SIG%s", abbrev ? abbrev : "?");
    return name;
}

/*
 * Forks `child_fn(arg, ctl_fd)` with its output and control pipes and
 * supervises it until it ends. Fills res.
 */
static int supervise(void (*child_fn)(int fd, const void *arg), const void *arg,
                     struct parent_state *st, double timeout_s, double grace_s)
{
    struct host_result *res = st->res;
    int out_pipe[2], ctl_pipe[2], git_pipe[2] = {-1, -1};
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(ctl_pipe, O_CLOEXEC) != 0 ||
        (st->git && pipe2(git_pipe, O_CLOEXEC) != 0)) {
        res->code = MLSTAGE_EINTERNAL;
        res->message = xstrdup("cannot create pipes for the plugin process");
        return res->code;
    }
    fflush(NULL);
    child_git_fd = git_pipe[0];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        res->code = MLSTAGE_EINTERNAL;
        res->message = xstrdup("cannot fork the plugin process");
        return res->code;
    }
    if (pid == 0) {
        setpgid(0, 0);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        /*
         * In its own process group the plugin would outlive an agent that is
         * killed outright (SIGKILL, OOM): have the kernel stop it then, the
         * same way a timeout does.
         */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(70);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) {
            dup2(devnull, 0);
            close(devnull);
        }
        dup2(out_pipe[1], 1);
        dup2(out_pipe[1], 2);
        close(out_pipe[0]);
        close(ctl_pipe[0]);
        if (git_pipe[1] >= 0)
            close(git_pipe[1]);
        /* Plain line buffering so a plugin's own printf output interleaves sanely. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        child_fn(ctl_pipe[1], arg);
        _exit(0);
    }
    setpgid(pid, pid); /* also from here, so the group exists before any kill */
    close(out_pipe[1]);
    close(ctl_pipe[1]);
    child_git_fd = -1;

    /*
     * Git metadata goes to the child as soon as the collection (libgit2's
     * start-up and a status cost milliseconds) is done: until then the loop
     * below polls the collection along with the child. The write end is
     * non-blocking and drained in the loop, so a child that never reads it
     * cannot stall us.
     */
    struct buf git_out;
    buf_init(&git_out);
    size_t git_off = 0;
    int git_fd = -1, git_wait_fd = -1;
    if (st->git) {
        close(git_pipe[0]);
        git_fd = git_pipe[1];
        fcntl(git_fd, F_SETFL, O_NONBLOCK);
        git_wait_fd = st->git_poll_fd ? st->git_poll_fd(st->git_ud) : -1;
        if (git_wait_fd < 0)
            git_serialise(st, &git_out);
    }

    struct sigaction sa = {.sa_handler = on_stop}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    stop_signal = 0;

    struct channel out = {.fd = out_pipe[0]}, ctl = {.fd = ctl_pipe[0]};
    buf_init(&out.pending);
    buf_init(&ctl.pending);
    double start = now_mono(), term_at = 0, exited_at = 0;
    int status = 0, reaped = 0, killed = 0;
    while (out.fd >= 0 || ctl.fd >= 0) {
        if (git_fd >= 0 && git_wait_fd < 0) {
            ssize_t n = write(git_fd, git_out.data + git_off, git_out.len - git_off);
            if (n > 0)
                git_off += (size_t)n;
            if (git_off == git_out.len || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                close(git_fd);
                git_fd = -1;
            }
        }
        double now = now_mono();
        if (!term_at && timeout_s > 0 && now - start >= timeout_s) {
            res->timed_out = 1;
            log_msg(MLSTAGE_LOG_ERROR, "timeout of %.0f s reached: stopping the plugin", timeout_s);
            signal_all(st, pid, SIGTERM);
            term_at = now;
        }
        if (!term_at && stop_signal) {
            res->interrupted = 1;
            log_msg(MLSTAGE_LOG_WARN, "%s received: stopping the plugin", signal_name(stop_signal));
            signal_all(st, pid, SIGTERM);
            term_at = now;
        }
        if (term_at && !killed && now - term_at >= grace_s) {
            signal_all(st, pid, SIGKILL);
            killed = 1;
        }
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = 1;
            exited_at = now;
        }
        /*
         * A grandchild may keep the pipes open after the plugin exited; give
         * it a moment to flush, then stop listening.
         */
        if (reaped && now - exited_at > 0.5)
            break;
        int wait_ms = 100;
        if (timeout_s > 0 && !term_at) {
            double left = timeout_s - (now - start);
            if (left * 1000 < wait_ms)
                wait_ms = left > 0 ? (int)(left * 1000) + 1 : 0;
        }
        struct pollfd fds[4] = {{out.fd, POLLIN, 0},
                                {ctl.fd, POLLIN, 0},
                                {git_wait_fd < 0 ? git_fd : -1, POLLOUT, 0},
                                {git_wait_fd, POLLIN, 0}};
        int rc = poll(fds, 4, wait_ms);
        if (rc < 0)
            continue; /* EINTR: a signal; the loop looks at it */
        if (git_wait_fd >= 0 && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) {
            git_serialise(st, &git_out); /* the collector has answered: this reads it to its end */
            git_wait_fd = -1;
        }
        if (out.fd >= 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !channel_read(&out, on_output_line, st)) {
            channel_flush(&out, on_output_line, st);
            close(out.fd);
            out.fd = -1;
        }
        if (ctl.fd >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !channel_read(&ctl, on_message, st)) {
            channel_flush(&ctl, on_message, st);
            close(ctl.fd);
            ctl.fd = -1;
        }
    }
    if (out.fd >= 0)
        close(out.fd);
    if (ctl.fd >= 0)
        close(ctl.fd);
    if (git_fd >= 0)
        close(git_fd);
    buf_free(&git_out);
    buf_free(&out.pending);
    buf_free(&ctl.pending);
    if (!reaped) {
        /*
         * Pipes closed: the child is exiting (its descriptors close a moment
         * before it can be reaped), but enforce the limits while waiting;
         * polled from 0.1 ms up, so an ordinary exit costs no idle wait.
         */
        double nap = 0.0001;
        for (;;) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid)
                break;
            double now = now_mono();
            if (!term_at && ((timeout_s > 0 && now - start >= timeout_s) || stop_signal)) {
                res->timed_out = !stop_signal;
                res->interrupted = stop_signal != 0;
                signal_all(st, pid, SIGTERM);
                term_at = now;
            }
            if (term_at && !killed && now - term_at >= grace_s) {
                signal_all(st, pid, SIGKILL);
                killed = 1;
            }
            sleep_s(nap);
            if (nap < 0.01)
                nap *= 2;
        }
    }
    /* Whatever the plugin left behind in its group goes with it, and so do its commands. */
    kill(-pid, SIGKILL);
    stop_groups(st, term_at, grace_s);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    if (WIFSIGNALED(status))
        res->signal = WTERMSIG(status);
    char msg[4700];
    if (res->timed_out) {
        res->code = MLSTAGE_ETIMEOUT;
        snprintf(msg, sizeof(msg), "the stage ran past its timeout of %.0f s and was stopped%s",
                 timeout_s, res->signal == SIGKILL ? " (killed after the grace period)" : "");
        free(res->message);
        res->message = xstrdup(msg);
    } else if (res->interrupted) {
        res->code = MLSTAGE_EINTERNAL;
        snprintf(msg, sizeof(msg), "interrupted by %s", signal_name(stop_signal));
        free(res->message);
        res->message = xstrdup(msg);
    } else if (!st->done) {
        res->code = MLSTAGE_EINTERNAL;
        if (res->signal)
            snprintf(msg, sizeof(msg), "the plugin crashed: %s (%s)", signal_name(res->signal),
                     strsignal(res->signal));
        else
            snprintf(msg, sizeof(msg),
                     "the plugin process ended without reporting a result (exit status %d)",
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        free(res->message);
        res->message = xstrdup(msg);
    }
    return res->code;
}

static void probe_child(int fd, const void *arg)
{
    child_probe(fd, arg);
}

int host_probe(const char *path, json_object **info, struct mls_err *err)
{
    *info = NULL;
    struct host_result res = {0};
    struct parent_state st = {.res = &res};
    supervise(probe_child, path, &st, 30, 2);
    int rc = res.code;
    if (rc == 0 && st.hello) {
        json_object_object_del(st.hello, "t");
        json_object_object_add(st.hello, "path", json_object_new_string(path));
        *info = json_object_get(st.hello);
    } else {
        if (rc == 0 || rc == MLSTAGE_EINTERNAL) {
            /* A plugin that crashes while loading is a plugin that cannot be loaded. */
            err_set(err, MLSTAGE_EPLUGIN, "cannot load plugin %s: %s", path,
                    res.message ? res.message : "no descriptor");
        } else {
            err_set(err, rc, "%s", res.message ? res.message : mlstage_strerror(rc));
        }
        rc = MLSTAGE_EPLUGIN;
    }
    json_object_put(st.hello);
    host_result_free(&res);
    return rc;
}

static void run_child(int fd, const void *arg)
{
    child_run(fd, arg);
}

int host_run(const struct host_run_spec *spec, struct host_result *res)
{
    memset(res, 0, sizeof(*res));
    struct parent_state st = {.ctx = spec->ctx,
                              .res = res,
                              .git = spec->git,
                              .git_poll_fd = spec->git_poll_fd,
                              .git_ud = spec->git_ud};
    double grace = spec->kill_grace_s > 0 ? spec->kill_grace_s : HOST_DEFAULT_GRACE;
    supervise(run_child, spec, &st, spec->timeout_s, grace);
    if (res->code == MLSTAGE_EINTERNAL && !st.hello && res->signal && !res->interrupted) {
        /* It died before it could introduce itself: it could not be loaded. */
        char *msg = res->message;
        res->message = NULL;
        struct buf b;
        buf_init(&b);
        buf_printf(&b, "plugin %s crashed while loading: %s", spec->plugin_path, msg);
        res->message = buf_steal(&b);
        free(msg);
        res->code = MLSTAGE_EPLUGIN;
    }
    json_object_put(st.hello);
    return res->code;
}

void host_result_free(struct host_result *res)
{
    if (!res)
        return;
    free(res->message);
    free(res->plugin_version);
    json_object_put(res->inputs);
    memset(res, 0, sizeof(*res));
}
