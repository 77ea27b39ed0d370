/* deploy_local.c — the local backend of deploy: scoring servers on loopback, blue/green records in
 * .mlstage/endpoints. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deploy.h"
#include "smoke.h"

#define HISTORY_MAX      50
#define STOP_GRACE_S     5.0
#define LOG_TAIL_LINES   20
#define LOG_TAIL_BYTES   65536
#define HEALTH_ATTEMPT_S 5.0
#define HEALTH_MAX_PAUSE 0.5
#define RECORD_MAX_BYTES (4u << 20)

/* ---- small helpers ------------------------------------------------------ */

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int64_t int_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && v ? json_object_get_int64(v) : 0;
}

static json_object *obj_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_object)
               ? v
               : NULL;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void now_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    char secs[24];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(secs, sizeof(secs), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%03dZ", secs, (int)(ts.tv_nsec / 1000000) % 1000);
}

/* The slot name as a static string, so results can point at it. */
static const char *slot_static(const char *name)
{
    if (name && strcmp(name, "blue") == 0)
        return "blue";
    if (name && strcmp(name, "green") == 0)
        return "green";
    return NULL;
}

static const char *other_slot(const char *slot)
{
    return strcmp(slot, "blue") == 0 ? "green" : "blue";
}

/* ---- servers outliving a crash: never ----------------------------------- */

/*
 * The process group of the server this run started and has not handed
 * over yet. When the stage is stopped (timeout, Ctrl-C, the agent
 * cancelling) it goes down with the plugin: a server outlives the stage
 * only when keep_running asked for it and the deployment succeeded.
 */
static volatile sig_atomic_t guard_pgid;
static const int guard_signals[] = {SIGTERM, SIGINT, SIGHUP};
#define N_GUARD_SIGNALS (sizeof(guard_signals) / sizeof(guard_signals[0]))
static struct sigaction guard_saved[N_GUARD_SIGNALS];

static void guard_on_signal(int sig)
{
    pid_t pgid = (pid_t)guard_pgid;
    if (pgid > 0)
        kill(-pgid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = guard_on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_GUARD_SIGNALS; i++)
        sigaction(guard_signals[i], &sa, &guard_saved[i]);
}

static void guard_remove(void)
{
    guard_pgid = 0;
    for (size_t i = 0; i < N_GUARD_SIGNALS; i++)
        sigaction(guard_signals[i], &guard_saved[i], NULL);
}

/* ---- processes recorded by earlier runs --------------------------------- */

/*
 * State and start time (clock ticks after boot) of a process, from
 * /proc/PID/stat. A pid alone could have been reused since it was
 * recorded; pid and start time together name one process.
 */
static int proc_stat(pid_t pid, unsigned long long *start, char *state)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return 0;
    p += 2;
    *state = *p;
    /* Field 3 is the state; the start time is field 22. */
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return 0;
    *start = strtoull(p, NULL, 10);
    return 1;
}

static int recorded_alive(pid_t pid, unsigned long long start)
{
    unsigned long long s = 0;
    char state = '?';
    if (pid <= 0 || !proc_stat(pid, &s, &state))
        return 0;
    return s == start && state != 'Z' && state != 'X';
}

/* Stops the server a slot's record names, if it is still that server and still running. */
static void stop_recorded(struct mlstage_ctx *ctx, const char *slot, json_object *rec)
{
    pid_t pid = (pid_t)int_of(rec, "pid");
    unsigned long long start = (unsigned long long)int_of(rec, "pid_start");
    if (pid <= 0)
        return;
    if (!recorded_alive(pid, start)) {
        mlstage_info(ctx, "slot %s: its server (pid %ld) is no longer running", slot, (long)pid);
        return;
    }
    mlstage_info(ctx, "slot %s: stopping its server (pid %ld, version %lld)", slot, (long)pid,
                 (long long)int_of(rec, "version"));
    /* It was started in its own session: its pid is its process group. */
    kill(-pid, SIGTERM);
    double deadline = now_mono() + STOP_GRACE_S;
    while (recorded_alive(pid, start) && now_mono() < deadline)
        sleep_s(0.02);
    if (recorded_alive(pid, start)) {
        mlstage_warn(ctx, "slot %s: the server (pid %ld) ignored SIGTERM for %.0f s: killing it",
                     slot, (long)pid, STOP_GRACE_S);
        kill(-pid, SIGKILL);
        deadline = now_mono() + 2.0;
        while (recorded_alive(pid, start) && now_mono() < deadline)
            sleep_s(0.02);
    }
    /* Workers of the group that ignored SIGTERM go with it. */
    kill(-pid, SIGKILL);
}

/* ---- the endpoint record and its lock ----------------------------------- */

struct endpoint {
    char record_path[PATH_MAX];
    int lock_fd;
    json_object *record; /* as read, or NULL for a new endpoint; owned */
    char *record_text;   /* the bytes as read, to put back exactly; owned */
    size_t record_len;
};

static void endpoint_close(struct endpoint *ep)
{
    if (ep->lock_fd >= 0)
        close(ep->lock_fd); /* releases the flock */
    ep->lock_fd = -1;
    json_object_put(ep->record);
    free(ep->record_text);
    ep->record = NULL;
    ep->record_text = NULL;
}

/*
 * Locks the endpoint for the whole deploy (two deploys of one endpoint
 * never interleave) and reads its record. A dry run writes nothing
 * outside the run folder: it neither creates the folder nor the lock.
 */
static int endpoint_open(struct mlstage_ctx *ctx, const char *name, struct endpoint *ep)
{
    char dir[PATH_MAX], lock_path[PATH_MAX];
    memset(ep, 0, sizeof(*ep));
    ep->lock_fd = -1;
    if (snprintf(dir, sizeof(dir), "%s/.mlstage/endpoints", mlstage_workspace_dir(ctx)) >=
            (int)sizeof(dir) ||
        snprintf(ep->record_path, sizeof(ep->record_path), "%s/%s.json", dir, name) >=
            (int)sizeof(ep->record_path) ||
        snprintf(lock_path, sizeof(lock_path), "%s/%s.lock", dir, name) >= (int)sizeof(lock_path))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "workspace path too long");
    if (!mlstage_dry_run(ctx)) {
        if (mlstage_mkdirs(dir, 0755) != 0)
            return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot create %s: %s", dir,
                                     strerror(errno));
        ep->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (ep->lock_fd < 0)
            return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot open %s: %s", lock_path,
                                     strerror(errno));
        if (flock(ep->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            mlstage_info(ctx, "endpoint %s: waiting for another deploy of it to finish", name);
            while (flock(ep->lock_fd, LOCK_EX) != 0)
                if (errno != EINTR)
                    return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot lock %s: %s", lock_path,
                                             strerror(errno));
        }
    }
    int rc =
        mlstage_file_read(ep->record_path, RECORD_MAX_BYTES, &ep->record_text, &ep->record_len);
    if (rc == MLSTAGE_ENOTFOUND)
        return 0;
    if (rc)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot read %s", ep->record_path);
    ep->record = json_tokener_parse(ep->record_text);
    if (!obj_of(ep->record, "slots"))
        return mlstage_error_set(ctx, MLSTAGE_EIO,
                                 "endpoint record %s is damaged (no \"slots\" object); move it "
                                 "away to start the endpoint afresh",
                                 ep->record_path);
    return 0;
}

/* Puts the record back as it was before this run (or removes it if there was none). */
static void endpoint_restore(struct mlstage_ctx *ctx, struct endpoint *ep)
{
    if (ep->record_text)
        mlstage_file_write(ctx, ep->record_path, ep->record_text, ep->record_len);
    else
        unlink(ep->record_path);
}

/* ---- the version to serve ------------------------------------------------ */

struct version_info {
    int version;
    char digest[MLSTAGE_SHA256_HEX_LEN + 1];
    char files[PATH_MAX];
};

static int resolve_version(struct mlstage_ctx *ctx, const char *model, const char *ref,
                           struct version_info *vi)
{
    struct mlstage_registry *reg = NULL;
    json_object *doc = NULL;
    int rc = mlstage_registry_open(ctx, &reg);
    if (rc == 0)
        rc = mlstage_registry_get(reg, model, ref, &doc);
    mlstage_registry_close(reg);
    if (rc == MLSTAGE_ENOTFOUND && strcmp(ref, "latest") != 0 && strspn(ref, "0123456789") == 0) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        return mlstage_error_set(ctx, rc,
                                 "%s (register sets an alias with its alias input; or deploy a "
                                 "version number, or latest)",
                                 msg);
    }
    if (rc)
        return rc;
    vi->version = (int)int_of(doc, "version");
    snprintf(vi->digest, sizeof(vi->digest), "%s",
             str_of(doc, "digest") ? str_of(doc, "digest") : "");
    snprintf(vi->files, sizeof(vi->files), "%s", str_of(doc, "path") ? str_of(doc, "path") : "");
    json_object_put(doc);
    return 0;
}

static int set_alias(struct mlstage_ctx *ctx, const struct deploy_request *req, int version)
{
    struct mlstage_registry *reg = NULL;
    int previous = 0;
    int rc = mlstage_registry_open(ctx, &reg);
    if (rc == 0)
        rc = mlstage_registry_set_alias(reg, req->model, req->set_alias, version, &previous);
    mlstage_registry_close(reg);
    if (rc == 0 && !mlstage_dry_run(ctx)) {
        if (previous && previous != version)
            mlstage_info(ctx, "alias %s of model %s: version %d -> %d", req->set_alias, req->model,
                         previous, version);
        else if (!previous)
            mlstage_info(ctx, "alias %s of model %s -> version %d", req->set_alias, req->model,
                         version);
    }
    return rc;
}

/* ---- the scoring server ------------------------------------------------- */

struct server {
    struct mlstage_proc *proc; /* NULL when none was started, or once handed over */
    pid_t pid;
    unsigned long long start_ticks;
    int port;
    char url[64];
    char log_path[PATH_MAX];
    char started[32];
};

static int free_port(struct mlstage_ctx *ctx, int *port)
{
    struct sockaddr_in addr;
    socklen_t len = sizeof(addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot find a free loopback port: %s",
                                 strerror(e));
    }
    close(fd);
    *port = ntohs(addr.sin_port);
    return 0;
}

/* 'text' for /bin/sh, whatever it holds. */
static void put_quoted(FILE *f, const char *text)
{
    fputc('\'', f);
    for (const char *p = text; *p; p++)
        if (*p == '\'')
            fputs("'\\''", f);
        else
            fputc(*p, f);
    fputc('\'', f);
}

/*
 * The command with {model_dir}, {port}, {model} and {version} filled in
 * (a negative port leaves {port} as it is, for plans); the caller frees.
 */
static char *render_command(const char *tmpl, const char *model, const struct version_info *vi,
                            int port)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    for (const char *p = tmpl; *p;) {
        if (strncmp(p, "{model_dir}", 11) == 0) {
            put_quoted(f, vi->files);
            p += 11;
        } else if (strncmp(p, "{port}", 6) == 0) {
            if (port >= 0)
                fprintf(f, "%d", port);
            else
                fputs("{port}", f);
            p += 6;
        } else if (strncmp(p, "{model}", 7) == 0) {
            put_quoted(f, model);
            p += 7;
        } else if (strncmp(p, "{version}", 9) == 0) {
            fprintf(f, "%d", vi->version);
            p += 9;
        } else {
            fputc(*p++, f);
        }
    }
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

static int server_start(struct mlstage_ctx *ctx, const struct deploy_request *req, const char *slot,
                        const struct version_info *vi, struct server *srv)
{
    char port_env[32], dir_env[PATH_MAX + 16];
    const char *env[] = {port_env, dir_env, NULL};
    sigset_t block, old;
    char state;
    int rc;
    memset(srv, 0, sizeof(*srv));
    if ((rc = free_port(ctx, &srv->port)) != 0)
        return rc;
    snprintf(srv->url, sizeof(srv->url), "http://127.0.0.1:%d", srv->port);
    if (snprintf(srv->log_path, sizeof(srv->log_path), "%s/server-%s.log", mlstage_run_dir(ctx),
                 slot) >= (int)sizeof(srv->log_path))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "run folder path too long");
    char *command = render_command(req->command, req->model, vi, srv->port);
    if (!command)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    snprintf(port_env, sizeof(port_env), "PORT=%d", srv->port);
    snprintf(dir_env, sizeof(dir_env), "MODEL_DIR=%s", vi->files);
    struct mlstage_proc_opts opts = {.shell = command, .env = env, .log_path = srv->log_path};
    /* No stop signal between the fork and the guard knowing the server. */
    sigemptyset(&block);
    for (size_t i = 0; i < N_GUARD_SIGNALS; i++)
        sigaddset(&block, guard_signals[i]);
    sigprocmask(SIG_BLOCK, &block, &old);
    rc = mlstage_proc_start(ctx, &opts, &srv->proc);
    if (rc == 0) {
        srv->pid = mlstage_proc_pid(srv->proc);
        guard_pgid = (sig_atomic_t)srv->pid;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        if (!proc_stat(srv->pid, &srv->start_ticks, &state))
            srv->start_ticks = 0;
        now_rfc3339(srv->started);
        mlstage_info(ctx,
                     "slot %s: started the scoring server for model %s version %d as pid %ld "
                     "on %s (output in %s)",
                     slot, req->model, vi->version, (long)srv->pid, srv->url, srv->log_path);
    }
    free(command);
    return rc;
}

static void server_stop(struct server *srv)
{
    if (!srv->proc)
        return;
    mlstage_proc_stop(srv->proc, STOP_GRACE_S);
    mlstage_proc_free(srv->proc);
    srv->proc = NULL;
    guard_pgid = 0;
}

/* Leaves the server running past this process: its pid is in the endpoint record. */
static void server_hand_over(struct server *srv)
{
    guard_pgid = 0;
    mlstage_proc_free(srv->proc);
    srv->proc = NULL;
}

/*
 * The last lines the server wrote, through the masked log: the core does
 * not mask a background server's own log file, so nothing is shown
 * from it any other way.
 */
static void show_log_tail(struct mlstage_ctx *ctx, const char *slot, const char *path)
{
    char buf[LOG_TAIL_BYTES + 1];
    const char *lines[LOG_TAIL_LINES];
    size_t count = 0, first = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    off_t from = st.st_size > LOG_TAIL_BYTES ? st.st_size - LOG_TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, LOG_TAIL_BYTES, from);
    close(fd);
    if (n <= 0) {
        mlstage_info(ctx, "the scoring server of slot %s wrote nothing (%s)", slot, path);
        return;
    }
    buf[n] = '\0';
    /* A cut first line is not shown. */
    char *p = buf;
    if (from > 0 && (p = strchr(buf, '\n')) != NULL)
        p++;
    for (char *line = p ? p : buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[len - 1] = '\0';
        if (*line) {
            lines[(first + count) % LOG_TAIL_LINES] = line;
            if (count < LOG_TAIL_LINES)
                count++;
            else
                first = (first + 1) % LOG_TAIL_LINES;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (count == 0) {
        mlstage_info(ctx, "the scoring server of slot %s wrote nothing (%s)", slot, path);
        return;
    }
    mlstage_info(ctx, "the scoring server of slot %s, last %zu line%s of %s:", slot, count,
                 count == 1 ? "" : "s", path);
    for (size_t i = 0; i < count; i++)
        mlstage_info(ctx, "  | %s", lines[(first + i) % LOG_TAIL_LINES]);
}

/* Polls GET health_path until it answers 2xx, the server exits, or startup_timeout passes. */
static int wait_healthy(struct mlstage_ctx *ctx, const struct deploy_request *req, const char *slot,
                        struct server *srv)
{
    char url[4160], last[512] = "no answer yet";
    double start = now_mono(), deadline = start + req->startup_timeout_s, pause = 0.05;
    snprintf(url, sizeof(url), "%s%s", srv->url, req->health_path);
    for (;;) {
        if (!mlstage_proc_alive(srv->proc))
            return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                     "the scoring server of slot %s exited before GET %s "
                                     "answered (last: %s)",
                                     slot, req->health_path, last);
        double left = deadline - now_mono();
        if (left <= 0)
            return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                     "the scoring server of slot %s did not answer GET %s with "
                                     "2xx within startup_timeout %g s (last: %s)",
                                     slot, url, req->startup_timeout_s, last);
        struct mlstage_http_request hr = {
            .method = "GET",
            .url = url,
            .max_attempts = 1,
            .timeout_s = left < HEALTH_ATTEMPT_S ? left : HEALTH_ATTEMPT_S,
            .deadline_s = left < HEALTH_ATTEMPT_S ? left : HEALTH_ATTEMPT_S,
        };
        struct mlstage_http_response *resp = NULL;
        mlstage_http_send(ctx, &hr, &resp);
        if (resp && resp->status >= 200 && resp->status < 300) {
            mlstage_info(ctx, "slot %s: healthy after %.1f s (GET %s -> %ld)", slot,
                         now_mono() - start, req->health_path, resp->status);
            mlstage_http_response_free(resp);
            return 0;
        }
        if (resp && resp->status) {
            char body[320];
            smoke_excerpt(resp->body, resp->body_len, body, sizeof(body));
            snprintf(last, sizeof(last), "HTTP %ld%s%s", resp->status, body[0] ? ": " : "", body);
        } else {
            snprintf(last, sizeof(last), "%s", mlstage_error_message(ctx));
        }
        mlstage_http_response_free(resp);
        left = deadline - now_mono();
        sleep_s(pause < left ? pause : left > 0 ? left : 0);
        pause = pause * 2 < HEALTH_MAX_PAUSE ? pause * 2 : HEALTH_MAX_PAUSE;
    }
}

/*
 * Starts the server, waits for health, runs the smoke test. On failure the
 * server is stopped and its log's tail shown; *smoke says how it went.
 */
static int serve_and_check(struct mlstage_ctx *ctx, const struct deploy_request *req,
                           const char *slot, const struct version_info *vi, struct server *srv,
                           struct deploy_result *res)
{
    int rc = server_start(ctx, req, slot, vi, srv);
    res->smoke = "false";
    if (rc)
        return rc;
    if ((rc = wait_healthy(ctx, req, slot, srv)) == 0 && req->smoke) {
        res->smoke_total = (int)smoke_count(req->smoke);
        rc = smoke_run(ctx, req->smoke, srv->url, NULL, &res->smoke_failed);
    }
    if (rc) {
        /* Stopped first, so its log is complete. */
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        server_stop(srv);
        show_log_tail(ctx, slot, srv->log_path);
        return mlstage_error_set(ctx, rc, "%s", msg);
    }
    res->smoke = req->smoke ? "true" : "skipped";
    return 0;
}

/* ---- switching the endpoint --------------------------------------------- */

/* What goes into a slot and becomes the active deployment. */
struct deployment {
    const char *slot;   /* static */
    const char *action; /* "deploy" or "rollback" */
    const struct version_info *vi;
    struct server *srv; /* the running server, or NULL when none was started */
    int previous_version;
};

static json_object *new_record(const char *name, const char *model)
{
    char ts[32];
    json_object *rec = json_object_new_object(), *slots = json_object_new_object();
    json_object *traffic = json_object_new_object();
    now_rfc3339(ts);
    json_object_object_add(rec, "name", json_object_new_string(name));
    json_object_object_add(rec, "backend", json_object_new_string("local"));
    json_object_object_add(rec, "model", json_object_new_string(model));
    json_object_object_add(rec, "created", json_object_new_string(ts));
    json_object_object_add(rec, "url", NULL);
    json_object_object_add(rec, "active_slot", NULL);
    json_object_object_add(traffic, "blue", json_object_new_int(0));
    json_object_object_add(traffic, "green", json_object_new_int(0));
    json_object_object_add(rec, "traffic", traffic);
    json_object_object_add(slots, "blue", NULL);
    json_object_object_add(slots, "green", NULL);
    json_object_object_add(rec, "slots", slots);
    json_object_object_add(rec, "history", json_object_new_array());
    return rec;
}

static json_object *slot_record(struct mlstage_ctx *ctx, const char *model,
                                const struct deployment *d, int keep_running)
{
    int running = d->srv && keep_running;
    char ts[32];
    json_object *s = json_object_new_object();
    if (d->srv)
        snprintf(ts, sizeof(ts), "%s", d->srv->started);
    else
        now_rfc3339(ts);
    json_object_object_add(s, "model", json_object_new_string(model));
    json_object_object_add(s, "version", json_object_new_int(d->vi->version));
    json_object_object_add(s, "digest", json_object_new_string(d->vi->digest));
    json_object_object_add(s, "url", running ? json_object_new_string(d->srv->url) : NULL);
    json_object_object_add(s, "pid", running ? json_object_new_int64(d->srv->pid) : NULL);
    json_object_object_add(s, "pid_start",
                           running ? json_object_new_int64((int64_t)d->srv->start_ticks) : NULL);
    json_object_object_add(s, "started", json_object_new_string(ts));
    json_object_object_add(s, "status", json_object_new_string(running ? "running" : "stopped"));
    json_object_object_add(s, "log", d->srv ? json_object_new_string(d->srv->log_path) : NULL);
    json_object_object_add(s, "run_id", json_object_new_string(mlstage_run_id(ctx)));
    return s;
}

static void mark_stopped(json_object *slot)
{
    if (!slot)
        return;
    json_object_object_add(slot, "status", json_object_new_string("stopped"));
    json_object_object_add(slot, "url", NULL);
    json_object_object_add(slot, "pid", NULL);
    json_object_object_add(slot, "pid_start", NULL);
}

static void add_history(struct mlstage_ctx *ctx, json_object *rec, const struct deployment *d,
                        const char *model, const char *smoke)
{
    char ts[32];
    json_object *history = NULL, *e = json_object_new_object();
    json_object *tags = mlstage_provenance_tags(ctx);
    now_rfc3339(ts);
    if (!json_object_object_get_ex(rec, "history", &history) ||
        !json_object_is_type(history, json_type_array)) {
        history = json_object_new_array();
        json_object_object_add(rec, "history", history);
    }
    json_object_object_add(e, "time", json_object_new_string(ts));
    json_object_object_add(e, "action", json_object_new_string(d->action));
    json_object_object_add(e, "slot", json_object_new_string(d->slot));
    json_object_object_add(e, "model", json_object_new_string(model));
    json_object_object_add(e, "version", json_object_new_int(d->vi->version));
    json_object_object_add(e, "digest", json_object_new_string(d->vi->digest));
    json_object_object_add(e, "previous_version",
                           d->previous_version ? json_object_new_int(d->previous_version) : NULL);
    json_object_object_add(e, "smoke_passed", json_object_new_string(smoke));
    json_object_object_add(e, "run_id", json_object_new_string(mlstage_run_id(ctx)));
    json_object_object_add(e, "commit", json_object_new_string(str_of(tags, "mlstage.commit")));
    json_object_array_add(history, e);
    size_t n = json_object_array_length(history);
    if (n > HISTORY_MAX)
        json_object_array_del_idx(history, 0, n - HISTORY_MAX);
    json_object_put(tags);
}

/*
 * Makes `d` the active deployment: the record first (atomically), then
 * the alias — putting the record back if the alias cannot move — and
 * only then stops the servers the record no longer routes to.
 */
static int commit(struct mlstage_ctx *ctx, const struct deploy_request *req, struct endpoint *ep,
                  const struct deployment *d, const char *smoke)
{
    json_object *rec = NULL, *slots, *traffic = json_object_new_object();
    json_object *was_active = NULL, *was_target = NULL;
    const char *old_active = NULL;
    int rc;
    char ts[32];
    if (ep->record)
        json_object_deep_copy(ep->record, &rec, NULL);
    else
        rec = new_record(req->endpoint, req->model);
    slots = obj_of(rec, "slots");
    old_active = slot_static(str_of(rec, "active_slot"));
    /* Kept (referenced) for stopping their servers once the switch is recorded. */
    was_target = json_object_get(obj_of(slots, d->slot));
    if (old_active && strcmp(old_active, d->slot) != 0) {
        json_object *copy = NULL;
        was_active = obj_of(slots, old_active);
        json_object_deep_copy(was_active, &copy, NULL);
        was_active = copy;
        mark_stopped(obj_of(slots, old_active));
    }
    json_object_object_add(slots, d->slot, slot_record(ctx, req->model, d, req->keep_running));
    json_object_object_add(rec, "active_slot", json_object_new_string(d->slot));
    json_object_object_add(traffic, d->slot, json_object_new_int(100));
    json_object_object_add(traffic, other_slot(d->slot), json_object_new_int(0));
    json_object_object_add(rec, "traffic", traffic);
    json_object_object_add(rec, "model", json_object_new_string(req->model));
    json_object_object_add(
        rec, "url", d->srv && req->keep_running ? json_object_new_string(d->srv->url) : NULL);
    add_history(ctx, rec, d, req->model, smoke);
    json_object_object_add(rec, "tags", mlstage_provenance_tags(ctx));
    now_rfc3339(ts);
    json_object_object_add(rec, "updated", json_object_new_string(ts));

    if ((rc = mlstage_json_write(ctx, ep->record_path, rec)) != 0)
        goto done;
    if (req->set_alias && (rc = set_alias(ctx, req, d->vi->version)) != 0) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        endpoint_restore(ctx, ep);
        rc = mlstage_error_set(ctx, rc, "%s; the endpoint record was put back as it was", msg);
        goto done;
    }
    if (was_active)
        stop_recorded(ctx, old_active, was_active);
    if (was_target)
        stop_recorded(ctx, d->slot, was_target);
done:
    json_object_put(was_active);
    json_object_put(was_target);
    json_object_put(rec);
    return rc;
}

/* ---- plans (dry run) ---------------------------------------------------- */

static void plan_switch(struct mlstage_ctx *ctx, const struct deploy_request *req,
                        const struct endpoint *ep, const struct deployment *d, int start_server)
{
    json_object *slots = obj_of(ep->record, "slots");
    const char *old_active = slot_static(str_of(ep->record, "active_slot"));
    if (start_server) {
        char *command = render_command(req->command, req->model, d->vi, -1);
        mlstage_plan(ctx,
                     "start the scoring server for model %s version %d in slot %s on a free "
                     "loopback port ({port}): %s",
                     req->model, d->vi->version, d->slot, command ? command : req->command);
        free(command);
        mlstage_plan(ctx, "wait up to %g s for GET %s to answer 2xx", req->startup_timeout_s,
                     req->health_path);
        if (req->smoke)
            mlstage_plan(ctx, "run %zu smoke request%s from %s", smoke_count(req->smoke),
                         smoke_count(req->smoke) == 1 ? "" : "s", req->sample_requests);
    }
    mlstage_plan(ctx, "write %s: slot %s (version %d) active with 100%% of the traffic%s",
                 ep->record_path, d->slot, d->vi->version,
                 old_active && strcmp(old_active, d->slot) != 0 ? ", the other slot 0%" : "");
    if (req->set_alias)
        mlstage_plan(ctx, "set alias %s of model %s to version %d", req->set_alias, req->model,
                     d->vi->version);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "green" : "blue";
        json_object *s = obj_of(slots, name);
        pid_t pid = (pid_t)int_of(s, "pid");
        if (pid > 0 && recorded_alive(pid, (unsigned long long)int_of(s, "pid_start")) &&
            (strcmp(name, d->slot) == 0 || (old_active && strcmp(name, old_active) == 0)))
            mlstage_plan(ctx, "stop the server of slot %s (pid %ld, version %lld)", name, (long)pid,
                         (long long)int_of(s, "version"));
    }
    if (start_server)
        mlstage_plan(ctx, req->keep_running ? "keep the new server running (keep_running: true)"
                                            : "stop the new server (keep_running: false)");
}

/* ---- the table ---------------------------------------------------------- */

/* Serves `d` (starting a server when asked), checks it, and makes it the active deployment. */
static int switch_to(struct mlstage_ctx *ctx, const struct deploy_request *req, struct endpoint *ep,
                     struct deployment *d, int start_server, struct deploy_result *res)
{
    struct server srv;
    int rc;
    memset(&srv, 0, sizeof(srv));
    if (start_server && !req->command)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.command: the local backend starts the scoring server with "
                                 "it; set it (see tasks/deploy.yml)");
    if (mlstage_dry_run(ctx)) {
        plan_switch(ctx, req, ep, d, start_server);
        res->smoke = "skipped";
        return 0;
    }
    guard_install();
    if (start_server) {
        if ((rc = serve_and_check(ctx, req, d->slot, d->vi, &srv, res)) != 0)
            goto done;
        d->srv = &srv;
    } else {
        res->smoke = "skipped";
    }
    if ((rc = commit(ctx, req, ep, d, res->smoke)) != 0)
        goto done;
    if (d->srv && req->keep_running) {
        res->url = strdup(srv.url);
        mlstage_info(ctx,
                     "endpoint %s: model %s version %d serves at %s from slot %s (pid %ld); it "
                     "keeps running after this stage",
                     req->endpoint, req->model, d->vi->version, srv.url, d->slot, (long)srv.pid);
        server_hand_over(&srv);
    } else {
        mlstage_info(ctx, "endpoint %s: slot %s (model %s version %d) has all the traffic%s",
                     req->endpoint, d->slot, req->model, d->vi->version,
                     d->srv ? "; its server was stopped (keep_running: false)" : "");
    }
done:
    server_stop(&srv); /* a no-op once handed over */
    guard_remove();
    if (rc) {
        char msg[4096];
        const char *active = slot_static(str_of(ep->record, "active_slot"));
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        if (active)
            mlstage_error_set(
                ctx, rc, "%s; endpoint %s is unchanged: slot %s still has version %lld", msg,
                req->endpoint, active,
                (long long)int_of(obj_of(obj_of(ep->record, "slots"), active), "version"));
        else
            mlstage_error_set(ctx, rc, "%s; endpoint %s was not created", msg, req->endpoint);
    }
    return rc;
}

static int local_deploy(struct mlstage_ctx *ctx, const struct deploy_request *req,
                        struct deploy_result *res)
{
    struct endpoint ep;
    struct version_info vi;
    int rc;
    memset(&vi, 0, sizeof(vi));
    if ((rc = endpoint_open(ctx, req->endpoint, &ep)) != 0)
        goto done;
    rc = resolve_version(ctx, req->model, req->version, &vi);
    if (rc == MLSTAGE_ENOTFOUND && mlstage_dry_run(ctx)) {
        /* In a pipeline's dry run an earlier stage would register it; nothing more to know. */
        mlstage_plan(ctx,
                     "deploy model %s version %s to endpoint %s (not in the registry yet: an "
                     "earlier stage registers it), smoke-test it, then set alias %s",
                     req->model, req->version, req->endpoint,
                     req->set_alias ? req->set_alias : "(none)");
        res->smoke = "skipped";
        rc = 0;
        goto done;
    }
    if (rc)
        goto done;
    const char *active = slot_static(str_of(ep.record, "active_slot"));
    json_object *active_rec = active ? obj_of(obj_of(ep.record, "slots"), active) : NULL;
    struct deployment d = {
        .slot = active ? other_slot(active) : "blue",
        .action = "deploy",
        .vi = &vi,
        .previous_version = (int)int_of(active_rec, "version"),
    };
    res->slot = d.slot;
    res->version = vi.version;
    res->previous_version = d.previous_version;
    if (active_rec)
        mlstage_info(ctx,
                     "endpoint %s: deploying model %s version %d (digest %.12s) into slot %s; "
                     "slot %s serves version %d",
                     req->endpoint, req->model, vi.version, vi.digest, d.slot, active,
                     d.previous_version);
    else
        mlstage_info(ctx,
                     "endpoint %s: first deployment, model %s version %d (digest %.12s) into "
                     "slot %s",
                     req->endpoint, req->model, vi.version, vi.digest, d.slot);
    rc = switch_to(ctx, req, &ep, &d, 1, res);
done:
    endpoint_close(&ep);
    return rc;
}

static int local_rollback(struct mlstage_ctx *ctx, const struct deploy_request *req,
                          struct deploy_result *res)
{
    struct endpoint ep;
    struct version_info vi;
    char ref[16];
    int rc;
    memset(&vi, 0, sizeof(vi));
    if ((rc = endpoint_open(ctx, req->endpoint, &ep)) != 0)
        goto done;
    const char *active = slot_static(str_of(ep.record, "active_slot"));
    json_object *slots = obj_of(ep.record, "slots");
    json_object *target = active ? obj_of(slots, other_slot(active)) : NULL;
    if (!target) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "endpoint %s has no previous deployment to roll back to%s",
                               req->endpoint, ep.record ? "" : " (it was never deployed)");
        goto done;
    }
    if (!str_of(target, "model") || strcmp(str_of(target, "model"), req->model) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "endpoint %s: slot %s holds model %s, not %s",
                               req->endpoint, other_slot(active),
                               str_of(target, "model") ? str_of(target, "model") : "(none)",
                               req->model);
        goto done;
    }
    snprintf(ref, sizeof(ref), "%lld", (long long)int_of(target, "version"));
    if ((rc = resolve_version(ctx, req->model, ref, &vi)) != 0)
        goto done;
    struct deployment d = {
        .slot = other_slot(active),
        .action = "rollback",
        .vi = &vi,
        .previous_version = (int)int_of(obj_of(slots, active), "version"),
    };
    res->slot = d.slot;
    res->version = vi.version;
    res->previous_version = d.previous_version;
    mlstage_info(ctx, "endpoint %s: rolling back from slot %s (version %d) to slot %s (version %d)",
                 req->endpoint, active, d.previous_version, d.slot, vi.version);
    rc = switch_to(ctx, req, &ep, &d, req->keep_running, res);
done:
    endpoint_close(&ep);
    return rc;
}

const struct deploy_backend deploy_local_backend = {
    .name = "local",
    .deploy = local_deploy,
    .rollback = local_rollback,
};
