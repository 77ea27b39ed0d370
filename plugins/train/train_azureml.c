/* train_azureml.c — the azureml backend of train: the command runs as an Azure ML command job; its
 * outputs stay in the datastore, its metrics come back. */
#include "train.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aml.h"
#include "plugin_input.h"

/* The job's one output: the run's outputs folder, as ${run.outputs_dir} is locally. */
#define OUTPUT_NAME "outputs_dir"
#define OUTPUT_REF  "${{outputs." OUTPUT_NAME "}}"
/* A metrics file is a few numbers: anything bigger is not one. */
#define METRICS_MAX ((size_t)1 << 20)

#define JSON_COMPACT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- what is submitted ------------------------------------------------------ */

/* Everything one submission or attachment needs, owned here. */
struct aml_train {
    struct aml_workspace ws;
    char *job_name;
    char *job_path;
    char *studio_url;
    const char *datastore;
    double poll_s;
};

static void train_free(struct aml_train *t)
{
    aml_workspace_free(&t->ws);
    free(t->job_name);
    free(t->job_path);
    free(t->studio_url);
}

/* "<task>-<run id>" with what a job name cannot hold as '-', lower case: a readable, unique name.
 */
static char *job_name_for_run(struct mlstage_ctx *ctx)
{
    char *name = aml_fmt("%s-%s", mlstage_task_name(ctx), mlstage_run_id(ctx));
    if (!name)
        return NULL;
    for (char *p = name; *p; p++)
        *p = isalnum((unsigned char)*p) || *p == '_' ? (char)tolower((unsigned char)*p) : '-';
    if (!isalnum((unsigned char)name[0]))
        name[0] = 'j';
    if (strlen(name) > 255)
        name[255] = '\0';
    return name;
}

/* `text` with every `from` replaced by `to`; a new string. */
static char *replace_all(const char *text, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to), n = 0;
    for (const char *p = text; fl && (p = strstr(p, from)) != NULL; p += fl)
        n++;
    char *out = malloc(strlen(text) + n * (tl > fl ? tl - fl : 0) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = text;;) {
        const char *hit = fl ? strstr(p, from) : NULL;
        if (!hit) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, to, tl);
        o += tl;
        p = hit + fl;
    }
    return out;
}

/*
 * The command as the job runs it: the run's outputs folder, which a
 * manifest names with ${run.outputs_dir}, becomes the job's output.
 */
static char *job_command(struct mlstage_ctx *ctx, const struct train_job *job)
{
    char *text = job->command ? strdup(job->command) : train_argv_text(job->argv);
    char *cmd = text ? replace_all(text, mlstage_outputs_dir(ctx), OUTPUT_REF) : NULL;
    free(text);
    if (cmd && strstr(cmd, mlstage_workspace_dir(ctx)))
        mlstage_warn(ctx,
                     "the job's command names this machine's folder %s, which the compute does "
                     "not have: name files relative to the code folder",
                     mlstage_workspace_dir(ctx));
    return cmd;
}

/* inputs.compute as an ARM id: a name is a compute of the workspace. */
static char *compute_id(const struct aml_workspace *ws, const char *compute)
{
    return compute[0] == '/' ? strdup(compute) : aml_path(ws, "/computes/%s", compute);
}

/* inputs.environment as the REST API wants it: the CLI's azureml:NAME:VERSION becomes an ARM id. */
static char *environment_id(const struct aml_workspace *ws, const char *env)
{
    const char *colon =
        strncmp(env, "azureml:", 8) == 0 && env[8] != '/' ? strchr(env + 8, ':') : NULL;
    if (colon && colon > env + 8 && colon[1])
        return aml_path(ws, "/environments/%.*s/versions/%s", (int)(colon - env - 8), env + 8,
                        colon + 1);
    return strdup(env);
}

/* A literal job input's value must hold a letter, digit or '_' (the spec's pattern). */
static int literal_ok(const char *v)
{
    for (; *v; v++)
        if (isalnum((unsigned char)*v) || *v == '_')
            return 1;
    return 0;
}

static int identifier(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

/* The params as literal inputs (${{inputs.NAME}}), and inputs.job_inputs as URI inputs. */
static int job_inputs(struct mlstage_ctx *ctx, const struct train_job *job, json_object *inputs)
{
    if (job->params) {
        json_object_object_foreach(job->params, name, val)
        {
            const char *text = json_object_get_string(val);
            if (!identifier(name) || !text || !literal_ok(text))
                continue; /* still in the environment as MLSTAGE_PARAM_* */
            json_object *in = json_object_new_object();
            json_object_object_add(in, "jobInputType", json_object_new_string("literal"));
            json_object_object_add(in, "value", json_object_new_string(text));
            json_object_object_add(inputs, name, in);
        }
    }
    json_object *data = mlstage_input(ctx, "job_inputs");
    if (!data)
        return 0;
    json_object_object_foreach(data, name, uri_val)
    {
        const char *uri = json_object_get_string(uri_val);
        size_t n = uri ? strlen(uri) : 0;
        if (!identifier(name))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.job_inputs.%s: a job input's name must be an "
                                     "identifier ([A-Za-z_][A-Za-z0-9_]*)",
                                     name);
        if (json_object_object_get_ex(inputs, name, NULL))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.job_inputs.%s: a parameter has that name already",
                                     name);
        if (n == 0 || !strstr(uri, "://"))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.job_inputs.%s: \"%s\" is not a URI the job can read "
                                     "(azureml://datastores/<d>/paths/<p>, https://...)",
                                     name, uri ? uri : "");
        json_object *in = json_object_new_object();
        json_object_object_add(
            in, "jobInputType",
            json_object_new_string(uri[n - 1] == '/' ? "uri_folder" : "uri_file"));
        json_object_object_add(in, "mode", json_object_new_string("ReadOnlyMount"));
        json_object_object_add(in, "uri", json_object_new_string(uri));
        json_object_object_add(inputs, name, in);
    }
    return 0;
}

/* The CommandJob the stage submits (see Job_CommandJob_createOrUpdate.json). */
static int job_body(struct mlstage_ctx *ctx, const struct aml_train *t, const struct train_job *job,
                    const char *code_id, json_object **out)
{
    const char *compute = plugin_input_optional(ctx, "compute"),
               *env = plugin_input_optional(ctx, "environment");
    char *command = job_command(ctx, job), *cid = compute_id(&t->ws, compute);
    char *eid = environment_id(&t->ws, env);
    char *display = aml_fmt("%s %s", mlstage_task_name(ctx), mlstage_run_id(ctx));
    char *out_uri = aml_fmt("azureml://datastores/%s/paths/mlstage/%s/%s/", t->datastore,
                            mlstage_task_name(ctx), t->job_name);
    const char *experiment = plugin_input_optional(ctx, "experiment");
    json_object *body = NULL, *props = json_object_new_object();
    json_object *env_vars = json_object_new_object(), *inputs = json_object_new_object();
    int rc = 0;
    if (!command || !cid || !eid || !display || !out_uri) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    json_object_object_add(props, "jobType", json_object_new_string("Command"));
    json_object_object_add(props, "displayName", json_object_new_string(display));
    json_object_object_add(
        props, "experimentName",
        json_object_new_string(experiment ? experiment : mlstage_task_name(ctx)));
    json_object_object_add(props, "description", json_object_new_string("submitted by mlstage"));
    json_object_object_add(props, "command", json_object_new_string(command));
    json_object_object_add(props, "codeId", json_object_new_string(code_id));
    json_object_object_add(props, "environmentId", json_object_new_string(eid));
    json_object_object_add(props, "computeId", json_object_new_string(cid));

    json_object_object_add(env_vars, "MLSTAGE_RUN_ID", json_object_new_string(mlstage_run_id(ctx)));
    for (const char *const *e = job->env; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char *key = strndup(*e, (size_t)(eq - *e));
        if (!key) {
            rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
            goto done;
        }
        if (strstr(eq + 1, mlstage_outputs_dir(ctx)))
            mlstage_warn(ctx,
                         "environment variable %s names this machine's outputs folder, which "
                         "the job does not have: pass " OUTPUT_REF " in the command instead",
                         key);
        json_object_object_add(env_vars, key, json_object_new_string(eq + 1));
        free(key);
    }
    json_object_object_add(props, "environmentVariables", env_vars);
    env_vars = NULL;
    if ((rc = job_inputs(ctx, job, inputs)) != 0)
        goto done;
    if (json_object_object_length(inputs) > 0) {
        json_object_object_add(props, "inputs", inputs);
        inputs = NULL;
    }
    json_object *outputs = json_object_new_object(), *o = json_object_new_object();
    json_object_object_add(o, "jobOutputType", json_object_new_string("uri_folder"));
    json_object_object_add(o, "mode", json_object_new_string("ReadWriteMount"));
    json_object_object_add(o, "uri", json_object_new_string(out_uri));
    json_object_object_add(
        o, "description",
        json_object_new_string("the run's outputs folder: the model, its metrics and more"));
    json_object_object_add(outputs, OUTPUT_NAME, o);
    json_object_object_add(props, "outputs", outputs);
    if (job->timeout_s > 0) {
        json_object *limits = json_object_new_object();
        char iso[32];
        snprintf(iso, sizeof(iso), "PT%.0fS", ceil(job->timeout_s));
        json_object_object_add(limits, "jobLimitsType", json_object_new_string("Command"));
        json_object_object_add(limits, "timeout", json_object_new_string(iso));
        json_object_object_add(props, "limits", limits);
    }
    json_object_object_add(props, "tags", mlstage_provenance_tags(ctx));
    body = json_object_new_object();
    json_object_object_add(body, "properties", props);
    props = NULL;
    *out = body;
done:
    json_object_put(props);
    json_object_put(env_vars);
    json_object_put(inputs);
    free(command);
    free(cid);
    free(eid);
    free(display);
    free(out_uri);
    return rc;
}

/* ---- the job ------------------------------------------------------------------ */

static const char *job_status(json_object *job)
{
    const char *s = aml_str(job, "properties", "status", NULL);
    return s ? s : "Unknown";
}

static int terminal(const char *status)
{
    return strcmp(status, "Completed") == 0 || strcmp(status, "Failed") == 0 ||
           strcmp(status, "Canceled") == 0;
}

/* The studio link, once: printed at once and published, so that CI shows it whatever follows. */
static void note_studio(struct mlstage_ctx *ctx, struct aml_train *t, json_object *job)
{
    const char *url = aml_str(job, "properties", "services", "Studio", "endpoint", NULL);
    if (!url || t->studio_url)
        return;
    t->studio_url = strdup(url);
    mlstage_info(ctx, "job %s in Azure ML studio: %s", t->job_name, url);
    mlstage_output_set(ctx, "studio_url", url);
}

static void publish_job(struct mlstage_ctx *ctx, const struct aml_train *t, const char *status)
{
    mlstage_output_set(ctx, "run_id", mlstage_run_id(ctx));
    mlstage_output_set(ctx, "job_name", t->job_name);
    mlstage_output_set(ctx, "job_status", status);
    mlstage_output_set(ctx, "studio_url", t->studio_url ? t->studio_url : "");
}

/* How to pick the job up again: in another CI job, on another agent, or here later. */
static char *reattach_hint(struct mlstage_ctx *ctx, const struct aml_train *t)
{
    return aml_fmt("mlstage run %s --backend azureml --set attach=%s", mlstage_manifest_path(ctx),
                   t->job_name);
}

/*
 * Waits for the job to reach Completed, Failed or Canceled: a GET every
 * poll interval (the core retries 429, 5xx and dropped connections), and
 * never past the stage's timeout. *final is the last job document.
 */
static int wait_for(struct mlstage_ctx *ctx, struct aml_train *t, json_object *first,
                    json_object **final)
{
    json_object *job = json_object_get(first);
    double start = now_mono(), budget = aml_deadline(ctx);
    char last[64] = "";
    int rc = 0;
    *final = NULL;
    for (;;) {
        const char *status = job_status(job);
        if (strcmp(last, status) != 0) {
            mlstage_info(ctx, "job %s: %s", t->job_name, status);
            snprintf(last, sizeof(last), "%s", status);
        }
        if (terminal(status))
            break;
        double elapsed = now_mono() - start;
        if (elapsed + t->poll_s > budget) {
            char *hint = reattach_hint(ctx, t);
            rc = mlstage_error_set(ctx, MLSTAGE_ETIMEOUT,
                                   "job %s is still %s after %.0f s and the stage's timeout is "
                                   "near: it goes on in Azure ML (%s). Pick it up with: %s",
                                   t->job_name, status, elapsed,
                                   t->studio_url ? t->studio_url : "see the studio",
                                   hint ? hint : "--set attach=<job name>");
            free(hint);
            break;
        }
        aml_sleep(t->poll_s);
        json_object *next = NULL;
        rc = mlstage_arm_request(ctx, "GET", t->job_path, AML_API_VERSION, NULL, NULL, &next);
        if (rc) {
            json_object_put(next);
            char msg[4096], *hint = reattach_hint(ctx, t);
            snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
            rc = mlstage_error_set(ctx, rc, "%s\n  job %s goes on in Azure ML; pick it up with: %s",
                                   msg, t->job_name, hint ? hint : "--set attach=<job name>");
            free(hint);
            break;
        }
        json_object_put(job);
        job = next;
        note_studio(ctx, t, job);
    }
    *final = job;
    return rc;
}

/* The message for a job that ended Failed or Canceled: its error when the service gives one. */
static int job_failed(struct mlstage_ctx *ctx, const struct aml_train *t, json_object *job)
{
    const char *status = job_status(job);
    json_object *err = aml_get(job, "properties", "error", NULL);
    json_object *inner = aml_get(err, "error", NULL);
    if (inner)
        err = inner;
    const char *code = aml_str(err, "code", NULL), *message = aml_str(err, "message", NULL);
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "job %s ended %s%s%s%s%s; its logs: %s",
                             t->job_name, status, code || message ? ": " : "", code ? code : "",
                             code && message ? ": " : "", message ? message : "",
                             t->studio_url ? t->studio_url : "the job's page in the studio");
}

/* ---- what comes back ----------------------------------------------------------- */

/* `base` (a folder URI or path) and `rel` joined by exactly one '/'; a new string. */
static char *join(const char *base, const char *rel)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    while (*rel == '/')
        rel++;
    return aml_fmt("%.*s/%s", (int)n, base, rel);
}

/*
 * The metrics file the job wrote into its outputs folder, brought back to
 * the local metrics_file path, stamped and published. A job that wrote
 * none is told about, not failed: it may log its metrics elsewhere.
 */
static int fetch_metrics(struct mlstage_ctx *ctx, const struct aml_train *t,
                         const struct train_job *job, const char *outputs_uri, int *fetched)
{
    const char *rel = mlstage_input_string(ctx, "metrics_file", "metrics.json");
    char *ds_name = NULL, *path = NULL, *blob = NULL, *data = NULL;
    struct aml_datastore ds;
    json_object *metrics = NULL;
    size_t len = 0;
    int rc;
    memset(&ds, 0, sizeof(ds));
    *fetched = 0;
    if (rel[0] == '/') {
        mlstage_warn(ctx,
                     "metrics_file is an absolute path (%s): the job's copy cannot be found in its "
                     "outputs; give it relative to the outputs folder",
                     rel);
        return 0;
    }
    if ((rc = aml_datastore_uri_split(ctx, outputs_uri, &ds_name, &path)) != 0)
        goto done;
    if (!(blob = join(path, rel))) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = aml_datastore_open(ctx, &t->ws, ds_name, &ds)) != 0)
        goto done;
    rc = mlstage_blob_read(ctx, &ds.target, blob, METRICS_MAX, &data, &len);
    if (rc == MLSTAGE_ENOTFOUND) {
        mlstage_warn(ctx,
                     "job %s left no %s in its outputs (%s): no metrics are published; write "
                     "them to %s/%s in the command",
                     t->job_name, rel, outputs_uri, OUTPUT_REF, rel);
        rc = 0;
        goto done;
    }
    if (rc)
        goto done;
    if ((rc = mlstage_file_write(ctx, job->metrics_file, data, len)) != 0 ||
        (rc = train_read_metrics(ctx, job->metrics_file, &metrics)) != 0 ||
        (rc = mlstage_artifact_add(ctx, job->metrics_file, NULL)) != 0)
        goto done;
    mlstage_output_set(ctx, "metrics_file", job->metrics_file);
    rc = train_publish_metrics(ctx, metrics);
    *fetched = rc == 0;
done:
    json_object_put(metrics);
    aml_datastore_free(&ds);
    free(ds_name);
    free(path);
    free(blob);
    free(data);
    return rc;
}

static void summarize(struct mlstage_ctx *ctx, const struct aml_train *t, json_object *job,
                      const char *model_uri, double wall_s)
{
    char *md = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&md, &size);
    if (!f)
        return;
    fprintf(f, "### Training (%s) on Azure ML\n\nJob ", mlstage_task_name(ctx));
    train_md_code(f, t->job_name);
    fprintf(f, " %s", job_status(job));
    if (wall_s > 0)
        fprintf(f, " after %.0f s of waiting", wall_s);
    fprintf(f, " (run %s)", mlstage_run_id(ctx));
    if (t->studio_url)
        fprintf(f, " — [studio](%s)", t->studio_url);
    fputs(".\n", f);
    const char *cmd = aml_str(job, "properties", "command", NULL);
    if (cmd) {
        fputs("\nCommand: ", f);
        train_md_code(f, cmd);
        fputs("\n", f);
    }
    if (model_uri) {
        fputs("\nModel: ", f);
        train_md_code(f, model_uri);
        fputs("\n", f);
    }
    if (fclose(f) == 0)
        mlstage_summary_append(ctx, md);
    free(md);
}

/* After Completed: the model's URI, the metrics, the job's record, the summary. */
static int collect(struct mlstage_ctx *ctx, const struct aml_train *t, const struct train_job *job,
                   json_object *final, double wall_s)
{
    const char *outputs_uri = aml_str(final, "properties", "outputs", OUTPUT_NAME, "uri", NULL);
    char *model_uri = NULL, *record = NULL;
    int rc = 0, fetched = 0;
    if (job->params)
        mlstage_output_set(ctx, "params",
                           json_object_to_json_string_ext(job->params, JSON_COMPACT));
    if (!outputs_uri) {
        mlstage_warn(ctx,
                     "job %s has no %s output (was it submitted by mlstage?): there is no model "
                     "URI or metrics file to fetch",
                     t->job_name, OUTPUT_NAME);
    } else {
        const char *model_rel = mlstage_input_string(ctx, "model_dir", "model");
        model_uri = model_rel[0] == '/' ? NULL : join(outputs_uri, model_rel);
        char *slashed = model_uri ? aml_fmt("%s/", model_uri) : NULL;
        free(model_uri);
        model_uri = slashed;
        mlstage_output_set(ctx, "outputs_uri", outputs_uri);
        if (model_uri) {
            mlstage_output_set(ctx, "model_uri", model_uri);
            mlstage_info(ctx, "model: %s", model_uri);
        }
        rc = fetch_metrics(ctx, t, job, outputs_uri, &fetched);
    }
    /* The job as Azure ML recorded it, stamped with the rest: what ran, where, with what. */
    record = aml_fmt("%s/azureml-job.json", mlstage_outputs_dir(ctx));
    if (rc == 0 && record && (rc = mlstage_json_write(ctx, record, final)) == 0)
        rc = mlstage_artifact_add(ctx, record, NULL);
    if (rc == 0)
        summarize(ctx, t, final, model_uri, wall_s);
    free(model_uri);
    free(record);
    return rc;
}

/* ---- run ------------------------------------------------------------------------- */

static int submit(struct mlstage_ctx *ctx, struct aml_train *t, const struct train_job *job,
                  json_object **created)
{
    const char *missing[3];
    size_t n = 0;
    static const char *const needed[] = {"code", "compute", "environment"};
    for (size_t i = 0; i < 3; i++)
        if (!plugin_input_optional(ctx, needed[i]))
            missing[n++] = needed[i];
    if (n)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "the azureml backend submits a job only with inputs code, compute "
                                 "and environment; not set: %s%s%s%s%s",
                                 missing[0], n > 1 ? ", " : "", n > 1 ? missing[1] : "",
                                 n > 2 ? ", " : "", n > 2 ? missing[2] : "");
    const char *code = plugin_input_optional(ctx, "code");
    char *code_dir =
        code[0] == '/' ? strdup(code) : aml_fmt("%s/%s", mlstage_workspace_dir(ctx), code);
    char *code_id = NULL;
    json_object *body = NULL;
    long status = 0;
    int rc = code_dir ? 0 : mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    const char *cwd = plugin_input_optional(ctx, "cwd");
    if (rc == 0 && cwd && strcmp(cwd, code) != 0)
        mlstage_warn(ctx,
                     "inputs.cwd (%s) is where the command runs locally; on Azure ML it runs in "
                     "the code snapshot of %s",
                     cwd, code);
    if (rc == 0)
        rc = aml_code_upload(ctx, &t->ws, code_dir, t->datastore, &code_id);
    if (rc == 0)
        rc = job_body(ctx, t, job, code_id, &body);
    if (rc == 0) {
        mlstage_info(ctx, "submitting job %s to compute %s", t->job_name,
                     plugin_input_optional(ctx, "compute"));
        rc = mlstage_arm_request(ctx, "PUT", t->job_path, AML_API_VERSION, body, &status, created);
    }
    if (rc == 0 && status == 0 && !mlstage_dry_run(ctx))
        rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE, "PUT job %s: no answer", t->job_name);
    json_object_put(body);
    free(code_id);
    free(code_dir);
    return rc;
}

/* An earlier job, by name: 404 is an input error (wrong name or workspace), not a failure. */
static int attach(struct mlstage_ctx *ctx, struct aml_train *t, json_object **job)
{
    int rc = mlstage_arm_request(ctx, "GET", t->job_path, AML_API_VERSION, NULL, NULL, job);
    if (rc == MLSTAGE_ENOTFOUND)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.attach: workspace %s has no job %s (check the name and "
                                 "the workspace inputs)",
                                 t->ws.name, t->job_name);
    if (rc == 0 && strcmp(aml_str(*job, "properties", "jobType", NULL) ?: "", "Command") != 0)
        return mlstage_error_set(
            ctx, MLSTAGE_EINPUT, "inputs.attach: job %s is a %s job, not a command job",
            t->job_name, aml_str(*job, "properties", "jobType", NULL) ?: "(untyped)");
    if (rc == 0)
        mlstage_info(ctx, "attached to job %s (%s)", t->job_name, job_status(*job));
    return rc;
}

static int azureml_run(struct mlstage_ctx *ctx, const struct train_job *job,
                       struct train_outcome *out)
{
    struct aml_train t;
    json_object *first = NULL, *final = NULL;
    const char *attach_to = plugin_input_optional(ctx, "attach");
    int rc;
    memset(&t, 0, sizeof(t));
    out->remote = 1;
    t.datastore = mlstage_input_string(ctx, "datastore", "workspaceblobstore");
    t.poll_s = mlstage_input_double(ctx, "poll_interval", 15);
    if ((rc = aml_workspace_from_inputs(ctx, &t.ws)) != 0)
        goto done;
    if (attach_to && !aml_valid_name(attach_to)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.attach: \"%s\" is not a job name",
                               attach_to);
        goto done;
    }
    t.job_name = attach_to ? strdup(attach_to) : job_name_for_run(ctx);
    t.job_path = t.job_name ? aml_path(&t.ws, "/jobs/%s", t.job_name) : NULL;
    if (!t.job_path) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    rc = attach_to ? attach(ctx, &t, &first) : submit(ctx, &t, job, &first);
    if (rc)
        goto done;
    if (!first) { /* a dry run: the PUT was printed, nothing was submitted */
        mlstage_plan(ctx, "then wait for job %s (a look every %g s) and fetch its outputs",
                     t.job_name, t.poll_s);
        goto done;
    }
    note_studio(ctx, &t, first);
    publish_job(ctx, &t, job_status(first));
    if (mlstage_dry_run(ctx)) {
        mlstage_plan(ctx, "then wait for job %s (now %s) and fetch its outputs", t.job_name,
                     job_status(first));
        goto done;
    }
    if (!attach_to && !mlstage_input_bool(ctx, "wait", 1)) {
        char *hint = reattach_hint(ctx, &t);
        mlstage_info(ctx, "job %s submitted (%s); not waiting. Fetch its outputs later with: %s",
                     t.job_name, job_status(first), hint ? hint : "--set attach=<job name>");
        free(hint);
        summarize(ctx, &t, first, NULL, 0);
        goto done;
    }
    double start = now_mono();
    rc = wait_for(ctx, &t, first, &final);
    out->wall_s = now_mono() - start;
    publish_job(ctx, &t, job_status(final ? final : first));
    if (rc)
        goto done;
    if (strcmp(job_status(final), "Completed") != 0) {
        out->exit_code = 1;
        rc = job_failed(ctx, &t, final);
        goto done;
    }
    rc = collect(ctx, &t, job, final, out->wall_s);
done:
    json_object_put(first);
    json_object_put(final);
    train_free(&t);
    return rc;
}

const struct train_backend train_azureml_backend = {
    .name = "azureml",
    .plan = NULL, /* run() is its own plan: the core prints each request it would send */
    .run = azureml_run,
};
