/* ctx.c — the context services a plugin calls: errors, inputs, secrets, logging, outputs, facts. */
#include "ctx.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mlstage/error.h>

#include "log.h"
#include "mask.h"
#include "util.h"

struct mlstage_ctx *ctx_new(void)
{
    struct mlstage_ctx *ctx = xcalloc(1, sizeof(*ctx));
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->ctl_fd = -1;
    ctx->git_fd = -1;
    ctx->inputs = json_object_new_object();
    ctx->secrets = json_object_new_object();
    ctx->outputs = json_object_new_object();
    ctx->artifacts = json_object_new_array();
    ctx->plan = json_object_new_array();
    ctx->backend = xstrdup("local");
    return ctx;
}

void ctx_free(struct mlstage_ctx *ctx)
{
    if (!ctx)
        return;
    free(ctx->run_id);
    free(ctx->run_dir);
    free(ctx->outputs_dir);
    free(ctx->workspace_dir);
    free(ctx->task);
    free(ctx->manifest_path);
    free(ctx->backend);
    json_object_put(ctx->inputs);
    json_object_put(ctx->secrets);
    json_object_put(ctx->git);
    if (ctx->git_fd >= 0)
        close(ctx->git_fd);
    json_object_put(ctx->ci);
    json_object_put(ctx->outputs);
    json_object_put(ctx->artifacts);
    json_object_put(ctx->plan);
    azure_state_free(ctx->azure);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

int ctx_send(struct mlstage_ctx *ctx, json_object *msg)
{
    int rc = 0;
    if (ctx->ctl_fd >= 0) {
        const char *line = json_object_to_json_string_ext(msg, MLS_JSON_PLAIN);
        size_t len = strlen(line);
        pthread_mutex_lock(&ctx->lock);
        const char *p = line;
        size_t left = len;
        while (left > 0) {
            ssize_t n = write(ctx->ctl_fd, p, left);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                rc = MLSTAGE_EINTERNAL;
                break;
            }
            p += n;
            left -= (size_t)n;
        }
        if (rc == 0 && write(ctx->ctl_fd, "\n", 1) != 1)
            rc = MLSTAGE_EINTERNAL;
        pthread_mutex_unlock(&ctx->lock);
    }
    json_object_put(msg);
    return rc;
}

static json_object *msg_new(const char *type)
{
    json_object *m = json_object_new_object();
    json_object_object_add(m, "t", json_object_new_string(type));
    return m;
}

/* ---- errors ------------------------------------------------------------ */

int mlstage_error_set(struct mlstage_ctx *ctx, int code, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    char *masked = mask_apply(tmp, strlen(tmp), NULL);
    pthread_mutex_lock(&ctx->lock);
    ctx->err_code = code;
    snprintf(ctx->err_msg, sizeof(ctx->err_msg), "%s", masked);
    pthread_mutex_unlock(&ctx->lock);
    free(masked);
    return code;
}

const char *mlstage_error_message(const struct mlstage_ctx *ctx)
{
    return ctx->err_msg;
}

/* ---- inputs ------------------------------------------------------------ */

json_object *mlstage_inputs(const struct mlstage_ctx *ctx)
{
    return ctx->inputs;
}

json_object *mlstage_input(const struct mlstage_ctx *ctx, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(ctx->inputs, key, &v))
        return NULL;
    return v;
}

const char *mlstage_input_string(const struct mlstage_ctx *ctx, const char *key, const char *dflt)
{
    json_object *v = mlstage_input(ctx, key);
    if (!v)
        return dflt;
    return json_object_get_string(v);
}

int64_t mlstage_input_int(const struct mlstage_ctx *ctx, const char *key, int64_t dflt)
{
    json_object *v = mlstage_input(ctx, key);
    return v ? json_object_get_int64(v) : dflt;
}

double mlstage_input_double(const struct mlstage_ctx *ctx, const char *key, double dflt)
{
    json_object *v = mlstage_input(ctx, key);
    return v ? json_object_get_double(v) : dflt;
}

int mlstage_input_bool(const struct mlstage_ctx *ctx, const char *key, int dflt)
{
    json_object *v = mlstage_input(ctx, key);
    return v ? json_object_get_boolean(v) : dflt;
}

int mlstage_input_pending(const struct mlstage_ctx *ctx, const char *key)
{
    json_object *v = mlstage_input(ctx, key);
    if (!ctx->dry_run || !v || !json_object_is_type(v, json_type_string))
        return 0;
    const char *s = json_object_get_string(v);
    return strstr(s, "<stages.") != NULL || strncmp(s, "<secret ", 8) == 0;
}

/* ---- secrets ----------------------------------------------------------- */

const char *mlstage_secret_get(const struct mlstage_ctx *ctx, const char *name)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(ctx->secrets, name, &v))
        return NULL;
    return json_object_get_string(v);
}

void mlstage_secret_register(struct mlstage_ctx *ctx, const char *value)
{
    if (!mask_add(value))
        return;
    json_object *m = msg_new("secret");
    json_object_object_add(m, "v", json_object_new_string(value));
    ctx_send(ctx, m);
}

/* ---- logging ----------------------------------------------------------- */

void mlstage_logv(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *fmt,
                  va_list ap)
{
    if (ctx->ctl_fd < 0) {
        log_vmsg(level, fmt, ap);
        return;
    }
    struct buf b;
    buf_init(&b);
    buf_vprintf(&b, fmt, ap);
    char *masked = mask_apply(b.data ? b.data : "", b.len, NULL);
    buf_free(&b);
    json_object *m = msg_new("log");
    json_object_object_add(m, "l", json_object_new_int(level));
    json_object_object_add(m, "m", json_object_new_string(masked));
    free(masked);
    ctx_send(ctx, m);
}

void mlstage_log(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mlstage_logv(ctx, level, fmt, ap);
    va_end(ap);
}

void mlstage_log_issue(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *file,
                       int line, int col, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    const char *text = b.data ? b.data : "";
    if (ctx->ctl_fd < 0) {
        log_issue(level, file, line, col, text);
    } else {
        char *masked = mask_apply(text, strlen(text), NULL);
        json_object *m = msg_new("issue");
        json_object_object_add(m, "l", json_object_new_int(level));
        json_object_object_add(m, "file", file ? json_object_new_string(file) : NULL);
        json_object_object_add(m, "line", json_object_new_int(line));
        json_object_object_add(m, "col", json_object_new_int(col));
        json_object_object_add(m, "m", json_object_new_string(masked));
        free(masked);
        ctx_send(ctx, m);
    }
    buf_free(&b);
}

void mlstage_group_begin(struct mlstage_ctx *ctx, const char *title)
{
    ctx->group_open = 1;
    if (ctx->ctl_fd < 0) {
        log_group_begin(title);
        return;
    }
    json_object *m = msg_new("group");
    json_object_object_add(m, "title", json_object_new_string(title));
    ctx_send(ctx, m);
}

void mlstage_group_end(struct mlstage_ctx *ctx)
{
    if (!ctx->group_open)
        return;
    ctx->group_open = 0;
    if (ctx->ctl_fd < 0)
        log_group_end();
    else
        ctx_send(ctx, msg_new("endgroup"));
}

void mlstage_plan(struct mlstage_ctx *ctx, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    char *masked = mask_apply(b.data ? b.data : "", b.len, NULL);
    buf_free(&b);
    pthread_mutex_lock(&ctx->lock);
    json_object_array_add(ctx->plan, json_object_new_string(masked));
    pthread_mutex_unlock(&ctx->lock);
    if (ctx->ctl_fd < 0) {
        log_plan(masked);
    } else {
        json_object *m = msg_new("plan");
        json_object_object_add(m, "m", json_object_new_string(masked));
        ctx_send(ctx, m);
    }
    free(masked);
}

/* ---- outputs and summary ---------------------------------------------- */

int ctx_valid_output_key(const char *key)
{
    if (!key || !(isalpha((unsigned char)key[0]) || key[0] == '_'))
        return 0;
    size_t n = 0;
    for (const char *p = key; *p; p++, n++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return n <= 64;
}

int mlstage_output_set(struct mlstage_ctx *ctx, const char *key, const char *value)
{
    if (!ctx_valid_output_key(key))
        return mlstage_error_set(ctx, MLSTAGE_EINTERNAL,
                                 "invalid output name \"%s\": expected [A-Za-z_][A-Za-z0-9_]*, "
                                 "at most 64 characters",
                                 key ? key : "(null)");
    if (!value)
        value = "";
    char *masked = mask_apply(value, strlen(value), NULL);
    pthread_mutex_lock(&ctx->lock);
    json_object_object_add(ctx->outputs, key, json_object_new_string(masked));
    pthread_mutex_unlock(&ctx->lock);
    json_object *m = msg_new("output");
    json_object_object_add(m, "k", json_object_new_string(key));
    json_object_object_add(m, "v", json_object_new_string(masked));
    free(masked);
    return ctx_send(ctx, m);
}

int mlstage_output_setf(struct mlstage_ctx *ctx, const char *key, const char *fmt, ...)
{
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    int rc = mlstage_output_set(ctx, key, b.data ? b.data : "");
    buf_free(&b);
    return rc;
}

int mlstage_summary_append(struct mlstage_ctx *ctx, const char *markdown)
{
    char *masked = mask_apply(markdown, strlen(markdown), NULL);
    int rc = 0;
    if (ctx->run_dir) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/summary.md", ctx->run_dir);
        FILE *f = fopen(path, "ab");
        if (!f) {
            rc = mlstage_error_set(ctx, MLSTAGE_EIO, "cannot append to %s: %s", path,
                                   strerror(errno));
        } else {
            size_t n = strlen(masked);
            if (fwrite(masked, 1, n, f) != n ||
                (n && masked[n - 1] != '\n' && fputc('\n', f) == EOF))
                rc = MLSTAGE_EIO;
            if (fclose(f) != 0)
                rc = MLSTAGE_EIO;
            if (rc)
                mlstage_error_set(ctx, rc, "cannot append to %s", path);
        }
    }
    free(masked);
    return rc;
}

/* ---- facts ------------------------------------------------------------- */

const char *mlstage_run_id(const struct mlstage_ctx *ctx)
{
    return ctx->run_id;
}
const char *mlstage_run_dir(const struct mlstage_ctx *ctx)
{
    return ctx->run_dir;
}
const char *mlstage_outputs_dir(const struct mlstage_ctx *ctx)
{
    return ctx->outputs_dir;
}
const char *mlstage_workspace_dir(const struct mlstage_ctx *ctx)
{
    return ctx->workspace_dir;
}
const char *mlstage_task_name(const struct mlstage_ctx *ctx)
{
    return ctx->task;
}
const char *mlstage_manifest_path(const struct mlstage_ctx *ctx)
{
    return ctx->manifest_path;
}
const char *mlstage_backend(const struct mlstage_ctx *ctx)
{
    return ctx->backend;
}
int mlstage_dry_run(const struct mlstage_ctx *ctx)
{
    return ctx->dry_run;
}
double mlstage_time_left(const struct mlstage_ctx *ctx)
{
    if (ctx->deadline <= 0)
        return -1;
    double left = ctx->deadline - now_mono();
    return left > 0 ? left : 0;
}
json_object *ctx_git(struct mlstage_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    if (ctx->git_fd >= 0) {
        /* The agent writes the metadata (or "null") once and closes its end. */
        struct buf b;
        buf_init(&b);
        char chunk[8192];
        for (;;) {
            ssize_t n = read(ctx->git_fd, chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            buf_append(&b, chunk, (size_t)n);
        }
        close(ctx->git_fd);
        ctx->git_fd = -1;
        json_object_put(ctx->git);
        ctx->git = b.data ? json_tokener_parse(b.data) : NULL;
        buf_free(&b);
    }
    pthread_mutex_unlock(&ctx->lock);
    return ctx->git;
}

json_object *mlstage_git(const struct mlstage_ctx *ctx)
{
    /* A context is never a const object: the first call only fills it in. */
    return ctx_git((struct mlstage_ctx *)ctx);
}
json_object *mlstage_ci(const struct mlstage_ctx *ctx)
{
    return ctx->ci;
}

static const char *json_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

json_object *mlstage_provenance_tags(const struct mlstage_ctx *ctx)
{
    json_object *tags = json_object_new_object();
    json_object *git = mlstage_git(ctx);
    const char *commit = json_str(git, "commit");
    const char *branch = json_str(git, "branch");
    json_object *dirty = NULL;
    int is_dirty =
        git && json_object_object_get_ex(git, "dirty", &dirty) && json_object_get_boolean(dirty);
    json_object_object_add(tags, "mlstage.commit",
                           json_object_new_string(commit ? commit : "none"));
    json_object_object_add(tags, "mlstage.branch",
                           json_object_new_string(branch ? branch
                                                  : git  ? "(detached)"
                                                         : "none"));
    json_object_object_add(tags, "mlstage.dirty",
                           json_object_new_string(!git       ? "unknown"
                                                  : is_dirty ? "true"
                                                             : "false"));
    json_object_object_add(tags, "mlstage.run_id",
                           json_object_new_string(ctx->run_id ? ctx->run_id : ""));
    const char *url = json_str(ctx->ci, "run_url");
    json_object_object_add(tags, "mlstage.ci_run_url", json_object_new_string(url ? url : "local"));
    json_object_object_add(tags, "mlstage.task",
                           json_object_new_string(ctx->task ? ctx->task : ""));
    return tags;
}

void ctx_http_log(struct mlstage_ctx *ctx, const char *line)
{
    if (!ctx->run_dir)
        return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/http.log", ctx->run_dir);
    char *masked = mask_apply(line, strlen(line), NULL);
    char ts[32];
    time_rfc3339(now_wall(), ts);
    pthread_mutex_lock(&ctx->lock);
    FILE *f = fopen(path, "ab");
    if (f) {
        fprintf(f, "%s %s\n", ts, masked);
        fclose(f);
    }
    pthread_mutex_unlock(&ctx->lock);
    free(masked);
}
