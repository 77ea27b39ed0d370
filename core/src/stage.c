/* stage.c — one stage end to end: manifest in; plugin run, artefacts stamped, run record out. */
#include "stage.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/version.h>

#include "ctx.h"
#include "expand.h"
#include "fsutil.h"
#include "host.h"
#include "log.h"
#include "mask.h"
#include "prov.h"

const char *const stage_known_secret_env[] = {
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "IDENTITY_HEADER",
    "MSI_SECRET",
    "SYSTEM_ACCESSTOKEN",
    "GITHUB_TOKEN",
    "TEAMS_WEBHOOK_URL",
    NULL,
};

char *stage_new_run_id(void)
{
    double now = now_wall();
    time_t secs = (time_t)now;
    int ms = (int)((now - (double)secs) * 1000.0);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* getrandom, not OpenSSL: initialising its RNG costs a millisecond per stage. */
    unsigned char rnd[3] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        unsigned v = (unsigned)getpid() ^ (unsigned)(now * 1e6);
        rnd[0] = (unsigned char)v;
        rnd[1] = (unsigned char)(v >> 8);
        rnd[2] = (unsigned char)(v >> 16);
    }
    char id[64];
    snprintf(id, sizeof(id), "%04d%02d%02dT%02d%02d%02d.%03dZ-%02x%02x%02x", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms, rnd[0], rnd[1],
             rnd[2]);
    return xstrdup(id);
}

static int status_exit(int code)
{
    return mlstage_exit_code(code);
}

static const char *status_name(int code, const struct host_result *hr)
{
    if (code == 0)
        return "succeeded";
    if (hr && hr->timed_out)
        return "timed_out";
    if (hr && hr->interrupted)
        return "interrupted";
    if (hr && hr->signal && code == MLSTAGE_EINTERNAL)
        return "crashed";
    if (code == MLSTAGE_EINPUT || code == MLSTAGE_EPLUGIN)
        return "invalid";
    return "failed";
}

static json_object *jstr(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/*
 * The declared secrets that are set, as name → value; each value masked
 * from now on. In a dry run an unset one reads "<secret NAME is not set>":
 * pull-request pipelines plan without their secrets.
 */
static json_object *read_secrets(json_object *declared, int dry_run)
{
    json_object *secrets = json_object_new_object();
    size_t n = json_object_array_length(declared);
    for (size_t i = 0; i < n; i++) {
        const char *name = json_object_get_string(json_object_array_get_idx(declared, i));
        const char *value = getenv(name);
        if ((!value || !*value) && dry_run) {
            char ph[300];
            snprintf(ph, sizeof(ph), "<secret %s is not set>", name);
            log_msg(MLSTAGE_LOG_WARN, "secret %s is not set; this dry run uses a placeholder",
                    name);
            json_object_object_add(secrets, name, json_object_new_string(ph));
            continue;
        }
        if (!value || !*value)
            continue;
        mask_add(value);
        json_object_object_add(secrets, name, json_object_new_string(value));
    }
    return secrets;
}

static void stamp_artifacts(const struct stage_opts *opts, struct mlstage_ctx *ctx,
                            const struct prov_meta *meta, json_object *artifacts_out)
{
    size_t n = json_object_array_length(ctx->artifacts);
    for (size_t i = 0; i < n; i++) {
        json_object *a = json_object_array_get_idx(ctx->artifacts, i);
        json_object *jp = NULL, *subjects = NULL;
        json_object_object_get_ex(a, "path", &jp);
        json_object_object_get_ex(a, "subjects", &subjects);
        const char *path = json_object_get_string(jp);
        if (!path || !subjects)
            continue;
        char *statement = prov_statement_path(path);
        json_object *rec = json_object_new_object();
        json_object_object_add(rec, "path", json_object_new_string(path));
        json_object_object_add(rec, "statement", json_object_new_string(statement));
        json_object_object_add(rec, "subjects", json_object_get(subjects));
        if (opts->dry_run && !fs_path_within(statement, ctx->run_dir)) {
            char line[PATH_MAX + 64];
            snprintf(line, sizeof(line), "write provenance statement %s", statement);
            json_object_array_add(ctx->plan, json_object_new_string(line));
            log_plan(line);
            json_object_object_add(rec, "stamped", json_object_new_boolean(0));
        } else {
            struct mls_err err = {0};
            if (prov_statement_write(path, subjects, meta, &err) != 0) {
                log_msg(MLSTAGE_LOG_ERROR, "cannot stamp %s: %s", path, err.msg);
                json_object_object_add(rec, "stamped", json_object_new_boolean(0));
                json_object_object_add(rec, "error", json_object_new_string(err.msg));
            } else {
                json_object_object_add(rec, "stamped", json_object_new_boolean(1));
            }
        }
        json_object_array_add(artifacts_out, rec);
        free(statement);
    }
}

/* Whether any string in the tree refers to ${git.*} (then git is needed before the run). */
static int refers_to_git(json_object *node)
{
    switch (json_object_get_type(node)) {
    case json_type_string: return strstr(json_object_get_string(node), "${git.") != NULL;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(node); i++)
            if (refers_to_git(json_object_array_get_idx(node, i)))
                return 1;
        return 0;
    case json_type_object: {
        json_object_object_foreach(node, key, val)
        {
            (void)key;
            if (refers_to_git(val))
                return 1;
        }
        return 0;
    }
    default: return 0;
    }
}

static int write_json(const char *dir, const char *name, json_object *doc, struct mls_err *err)
{
    char path[PATH_MAX];
    if (pathf(path, sizeof(path), "%s/%s", dir, name) != 0)
        return err_set(err, MLSTAGE_EINPUT, "path too long: %s/%s", dir, name);
    const char *text = json_object_to_json_string_ext(doc, MLS_JSON_PRETTY);
    size_t len;
    char *masked = mask_apply(text, strlen(text), &len);
    masked = xrealloc(masked, len + 2);
    masked[len++] = '\n';
    int rc = fs_write_atomic(path, masked, len, err);
    free(masked);
    return rc;
}

static void publish_outputs(const struct stage_opts *opts, struct mlstage_ctx *ctx)
{
    json_object_object_foreach(ctx->outputs, key, val)
    {
        struct mls_err err = {0};
        const char *v = json_object_get_string(val);
        char *masked = mask_apply(v, strlen(v), NULL);
        if (ci_output(opts->ci, log_ci_stream(), (const char *(*)(const char *))getenv, key, masked,
                      &err) != 0)
            log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
        free(masked);
    }
    fflush(log_ci_stream());
}

static void publish_summary(const struct stage_opts *opts, const char *run_dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (pathf(path, sizeof(path), "%s/summary.md", run_dir) != 0 || stat(path, &st) != 0 ||
        st.st_size == 0)
        return;
    struct mls_err err = {0};
    if (ci_summary(opts->ci, log_ci_stream(), (const char *(*)(const char *))getenv, path, &err) !=
        0)
        log_msg(MLSTAGE_LOG_WARN, "cannot publish the summary: %s", err.msg);
    fflush(log_ci_stream());
}

int stage_run(const struct stage_opts *opts, struct task_manifest *task, struct stage_result *res)
{
    memset(res, 0, sizeof(*res));
    struct mls_err err = {0};
    struct mlstage_ctx *ctx = NULL;
    struct host_result hr = {0};
    json_object *secrets = NULL, *inputs = NULL, *record = NULL, *artifacts = NULL;
    char *plugin_path = NULL, *manifest_sha = NULL;
    FILE *run_log = NULL;
    int rc;
    double started = now_wall(), started_mono = now_mono();
    const char *backend = opts->backend ? opts->backend : task->backend;
    const char *label = opts->stage_label ? opts->stage_label : task->task;

    if (strcmp(backend, "local") != 0 && strcmp(backend, "azureml") != 0) {
        rc = err_set(&err, MLSTAGE_EINPUT, "unknown backend \"%s\": expected local or azureml",
                     backend);
        goto done;
    }
    rc = host_find(opts->plugin_dirs, task->plugin, &plugin_path, &err);
    if (rc)
        goto done;

    res->run_id = stage_new_run_id();
    secrets = read_secrets(task->secrets, opts->dry_run);

    char run_dir[PATH_MAX], outputs_dir[PATH_MAX];
    if (pathf(run_dir, sizeof(run_dir), "%s/.mlstage/runs/%s", opts->workspace, res->run_id) ||
        pathf(outputs_dir, sizeof(outputs_dir), "%s/outputs", run_dir)) {
        rc = err_set(&err, MLSTAGE_EINPUT, "workspace path too long: %s", opts->workspace);
        goto done;
    }

    struct expand_env env = {
        .getenv_fn = (const char *(*)(const char *))getenv,
        .vars = opts->vars,
        .secrets = secrets,
        .declared = task->secrets,
        .run_id = res->run_id,
        .run_dir = run_dir,
        .outputs_dir = outputs_dir,
        .git = refers_to_git(task->inputs) ? opts->git(opts->git_ud) : NULL,
        .stages = opts->stages,
        .placeholders = opts->placeholders,
    };
    char pointer[1024];
    snprintf(pointer, sizeof(pointer), "%s/inputs", task->pointer);
    rc = expand_tree(&env, task->doc, pointer, task->inputs, &inputs, &err);
    if (rc)
        goto done;

    if (mlstage_mkdirs(outputs_dir, 0755) != 0) {
        rc = err_set(&err, MLSTAGE_EIO, "cannot create the run folder %s: %s", run_dir,
                     strerror(errno));
        goto done;
    }
    res->run_dir = xstrdup(run_dir);
    char log_path[PATH_MAX];
    if (pathf(log_path, sizeof(log_path), "%s/log.txt", run_dir) == 0)
        run_log = fopen(log_path, "ae");
    log_set_file(run_log);

    ctx = ctx_new();
    ctx->run_id = xstrdup(res->run_id);
    ctx->run_dir = xstrdup(run_dir);
    ctx->outputs_dir = xstrdup(outputs_dir);
    ctx->workspace_dir = xstrdup(opts->workspace);
    ctx->task = xstrdup(task->task);
    ctx->manifest_path = xstrdup(task->doc->path);
    free(ctx->backend);
    ctx->backend = xstrdup(backend);
    ctx->dry_run = opts->dry_run;
    json_object_put(ctx->secrets);
    ctx->secrets = json_object_get(secrets);
    ctx->ci = json_object_get(opts->ci_info);

    log_msg(MLSTAGE_LOG_INFO, "==> %s: plugin %s, backend %s%s, run %s", label, task->plugin,
            backend, opts->dry_run ? ", dry run" : "", res->run_id);

    struct host_run_spec spec = {
        .plugin_path = plugin_path,
        .plugin_name = task->plugin,
        .ctx = ctx,
        .task = task,
        .inputs = inputs,
        .overrides = opts->vars,
        .timeout_s = task->timeout_s,
        .kill_grace_s = task->kill_grace_s,
        .git = opts->git,
        .git_poll_fd = opts->git_poll_fd,
        .git_ud = opts->git_ud,
    };
    double t_plugin = now_mono();
    /* The host starts the timeout's clock as it forks, a moment from now: the plugin is told
     * that moment, so that it stops before the host would stop it. */
    ctx->deadline = task->timeout_s > 0 ? t_plugin + task->timeout_s : 0;
    rc = host_run(&spec, &hr);
    double t_host = now_mono();
    /* The outputs are final: written while the git collection may still be running. */
    struct mls_err werr = {0};
    int werr_rc = write_json(run_dir, "outputs.json", ctx->outputs, &werr);
    double t_git = now_mono();
    json_object *git = opts->git(opts->git_ud);
    double t_finish = now_mono();
    if (rc)
        err_set(&err, rc, "%s", hr.message ? hr.message : mlstage_strerror(rc));

    double finished = now_wall();
    /* The manifest's digest goes into statements only: skip it when there are none. */
    char manifest_hex[MLSTAGE_SHA256_HEX_LEN + 1];
    if (json_object_array_length(ctx->artifacts) > 0 &&
        mlstage_sha256_file(task->doc->path, manifest_hex, NULL) == 0)
        manifest_sha = xstrdup(manifest_hex);
    struct prov_meta meta = {
        .task = task->task,
        .manifest_path = task->doc->path,
        .manifest_sha256 = manifest_sha,
        .plugin = task->plugin,
        .plugin_version = hr.plugin_version,
        .backend = backend,
        .inputs = hr.inputs ? hr.inputs : inputs,
        .vars = opts->vars,
        .git = git,
        .ci = opts->ci_info,
        .run_id = res->run_id,
        .status = status_name(rc, &hr),
        .started = started,
        .finished = finished,
    };
    artifacts = json_object_new_array();
    stamp_artifacts(opts, ctx, &meta, artifacts);

    char ts[32];
    record = json_object_new_object();
    json_object_object_add(record, "run_id", json_object_new_string(res->run_id));
    json_object_object_add(record, "task", json_object_new_string(task->task));
    if (opts->stage_label)
        json_object_object_add(record, "stage", json_object_new_string(opts->stage_label));
    if (opts->pipeline)
        json_object_object_add(record, "pipeline", json_object_get(opts->pipeline));
    json_object_object_add(record, "manifest", json_object_new_string(task->doc->path));
    json_object *plugin = json_object_new_object();
    json_object_object_add(plugin, "name", json_object_new_string(task->plugin));
    json_object_object_add(plugin, "version", jstr(hr.plugin_version));
    json_object_object_add(plugin, "path", json_object_new_string(plugin_path));
    json_object_object_add(record, "plugin", plugin);
    json_object_object_add(record, "backend", json_object_new_string(backend));
    json_object_object_add(record, "dry_run", json_object_new_boolean(opts->dry_run));
    json_object_object_add(record, "status", json_object_new_string(meta.status));
    json_object_object_add(record, "exit_code", json_object_new_int(status_exit(rc)));
    json_object_object_add(record, "error", rc ? jstr(err.msg) : NULL);
    time_rfc3339(started, ts);
    json_object_object_add(record, "started", json_object_new_string(ts));
    time_rfc3339(finished, ts);
    json_object_object_add(record, "finished", json_object_new_string(ts));
    json_object_object_add(record, "duration_s", json_object_new_double(now_mono() - started_mono));
    /* Where the time went, so the agent's own overhead stays visible. */
    json_object *timings = json_object_new_object();
    json_object_object_add(timings, "setup_ms",
                           json_object_new_double((t_plugin - started_mono) * 1e3));
    json_object_object_add(timings, "plugin_ms", json_object_new_double((t_host - t_plugin) * 1e3));
    json_object_object_add(timings, "git_wait_ms",
                           json_object_new_double((t_finish - t_git) * 1e3));
    json_object_object_add(timings, "finish_ms",
                           json_object_new_double((now_mono() - t_finish) * 1e3));
    json_object_object_add(record, "timings", timings);
    json_object_object_add(record, "inputs", json_object_get(meta.inputs));
    json_object_object_add(record, "outputs", json_object_get(ctx->outputs));
    json_object_object_add(record, "artifacts", json_object_get(artifacts));
    if (opts->dry_run)
        json_object_object_add(record, "plan", json_object_get(ctx->plan));
    json_object_object_add(record, "git", json_object_get(git));
    json_object_object_add(record, "ci", json_object_get(opts->ci_info));
    json_object_object_add(record, "mlstage_version", json_object_new_string(MLSTAGE_VERSION));

    if (werr_rc != 0 || write_json(run_dir, "run.json", record, &werr) != 0) {
        log_msg(MLSTAGE_LOG_ERROR, "%s", werr.msg);
        if (!rc)
            rc = err_set(&err, MLSTAGE_EIO, "%s", werr.msg);
    }
    publish_outputs(opts, ctx);
    publish_summary(opts, run_dir);
    res->record = json_object_get(record);

done:
    res->code = rc;
    if (rc)
        res->message = mask_apply(err.msg, strlen(err.msg), NULL);
    if (run_log) {
        /* Once a run folder exists the error is told here, and recorded in its log. */
        if (rc)
            log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
        log_set_file(NULL);
        fclose(run_log);
    }
    host_result_free(&hr);
    ctx_free(ctx);
    json_object_put(secrets);
    json_object_put(inputs);
    json_object_put(record);
    json_object_put(artifacts);
    free(plugin_path);
    free(manifest_sha);
    return rc;
}

void stage_result_free(struct stage_result *res)
{
    if (!res)
        return;
    free(res->message);
    free(res->run_id);
    free(res->run_dir);
    json_object_put(res->record);
    memset(res, 0, sizeof(*res));
}
