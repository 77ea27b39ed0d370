/* train.c — the train plugin: its descriptor, its inputs turned into one job, the backend chosen.
 */
#include "aml.h"
#include "plugin_backend.h"
#include "train.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TRAIN_VERSION "0.1.0"

/* The characters a word may hold and still be typed without quotes in a shell. */
#define SHELL_SAFE "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-"

static const char train_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"oneOf\": [{\"required\": [\"command\"]}, {\"required\": [\"argv\"]}],"
    "\"properties\": {"
    "  \"command\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"the training command, run by /bin/sh -c (give command or argv)\"},"
    "  \"argv\": {\"type\": \"array\", \"minItems\": 1, \"items\": {\"type\": \"string\"},"
    "    \"description\": \"the training command as an argument list, run without a shell\"},"
    "  \"cwd\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"where the command runs, relative to the workspace (default: the "
    "workspace)\"},"
    "  \"env\": {\"type\": \"object\","
    "    \"additionalProperties\": {\"type\": [\"string\", \"number\", \"boolean\"]},"
    "    \"description\": \"extra environment variables for the command\"},"
    "  \"params\": {\"type\": \"object\","
    "    \"additionalProperties\": {\"type\": [\"string\", \"number\", \"boolean\"]},"
    "    \"description\": \"hyperparameters: each NAME becomes MLSTAGE_PARAM_NAME in the "
    "command's environment and is recorded in the outputs\"},"
    "  \"timeout\": {\"type\": [\"number\", \"string\"], \"exclusiveMinimum\": 0,"
    "    \"pattern\": \"^([0-9]+([.][0-9]+)?(ms|s|m|h|d))+$|^[0-9]+([.][0-9]+)?$\","
    "    \"description\": \"stop the command after this long: seconds, or 90s, 30m, 1h30m\"},"
    "  \"model_dir\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"model\","
    "    \"description\": \"the folder the command writes the model to, relative to the run's "
    "outputs folder unless absolute\"},"
    "  \"metrics_file\": {\"type\": \"string\", \"minLength\": 1, \"default\": \"metrics.json\","
    "    \"description\": \"the JSON object of numbers the command writes, relative to the "
    "run's outputs folder unless absolute\"},"
    "  \"artifacts\": {\"type\": \"array\", \"items\": {\"type\": \"string\", \"minLength\": 1},"
    "    \"default\": [],"
    "    \"description\": \"more files or folders to stamp, relative to the run's outputs "
    "folder unless absolute\"},"
    /* The azureml backend's own inputs: optional in the schema, checked by that backend. */
    AML_WORKSPACE_INPUTS_SCHEMA
    /* what the job runs, where, and in what */
    "  \"code\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the folder uploaded as the job's code snapshot, relative "
    "to the workspace; the command runs in it as it runs in cwd locally\"},"
    "  \"compute\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the compute cluster's name, or its ARM id\"},"
    "  \"environment\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the environment: an ARM id, "
    "azureml://registries/R/environments/N/versions/V (or labels/latest), or azureml:N:V\"},"
    "  \"experiment\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the experiment the job belongs to (default: the task's "
    "name)\"},"
    "  \"datastore\": {\"type\": [\"string\", \"null\"], \"default\": \"workspaceblobstore\","
    "    \"description\": \"azureml: the blob datastore for the code snapshot and the job's "
    "outputs\"},"
    "  \"job_inputs\": {\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\"},"
    "    \"description\": \"azureml: data for the job, name -> URI (azureml://..., https://...): "
    "a folder when the URI ends with /, else a file; the command reads ${{inputs.NAME}}\"},"
    "  \"wait\": {\"type\": \"boolean\", \"default\": true,"
    "    \"description\": \"azureml: wait for the job and fetch its outputs; false submits it, "
    "publishes job_name and ends (re-attach later with attach)\"},"
    "  \"attach\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the name of a job submitted earlier: wait for it and fetch "
    "its outputs instead of submitting another\"},"
    "  \"poll_interval\": {\"type\": \"number\", \"exclusiveMinimum\": 0, \"maximum\": 600,"
    "    \"default\": 15,"
    "    \"description\": \"azureml: seconds between looks at the job's status\"}"
    "}}";

/* Every backend this build has; the manifest's backend picks one. */
static const struct train_backend *const train_backends[] = {
    &train_local_backend,
    &train_azureml_backend,
};

#define N_BACKENDS (sizeof(train_backends) / sizeof(train_backends[0]))

/* ---- shared helpers ------------------------------------------------------ */

void train_format_number(double value, char out[32])
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, value);
        if (strtod(out, NULL) == value)
            break;
    }
}

char *train_argv_text(const char *const *argv)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    for (const char *const *a = argv; *a; a++) {
        if (a != argv)
            fputc(' ', f);
        if (**a && strspn(*a, SHELL_SAFE) == strlen(*a)) {
            fputs(*a, f);
            continue;
        }
        fputc('\'', f);
        for (const char *p = *a; *p; p++) {
            if (*p == '\'')
                fputs("'\\''", f);
            else
                fputc(*p, f);
        }
        fputc('\'', f);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---- the job ------------------------------------------------------------- */

/* Everything the job points to, owned here. */
struct job_store {
    struct train_job job;
    char *cwd, *model_dir, *metrics_file, *log_path;
    char **argv, **env, **artifacts;
    size_t n_argv, n_env, n_artifacts;
};

static void store_free(struct job_store *s)
{
    free(s->cwd);
    free(s->model_dir);
    free(s->metrics_file);
    free(s->log_path);
    for (size_t i = 0; i < s->n_argv; i++)
        free(s->argv[i]);
    for (size_t i = 0; i < s->n_env; i++)
        free(s->env[i]);
    for (size_t i = 0; i < s->n_artifacts; i++)
        free(s->artifacts[i]);
    free(s->argv);
    free(s->env);
    free(s->artifacts);
}

/* `path` as is when absolute, else under `base`. New string. */
static char *resolve(const char *base, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    if (asprintf(&out, "%s/%s", base, path) < 0)
        return NULL;
    return out;
}

/* A NULL-terminated list of owned strings, grown one at a time. */
static int list_push(char ***list, size_t *n, char *owned)
{
    if (!owned)
        return MLSTAGE_ENOMEM;
    char **grown = realloc(*list, (*n + 2) * sizeof(**list));
    if (!grown) {
        free(owned);
        return MLSTAGE_ENOMEM;
    }
    *list = grown;
    grown[(*n)++] = owned;
    grown[*n] = NULL;
    return 0;
}

/* The text of a scalar input value: strings as written, numbers as short as exact, booleans. */
static const char *scalar_text(json_object *v, char tmp[32])
{
    switch (json_object_get_type(v)) {
    case json_type_int: snprintf(tmp, 32, "%" PRId64, json_object_get_int64(v)); return tmp;
    case json_type_double: train_format_number(json_object_get_double(v), tmp); return tmp;
    case json_type_boolean: return json_object_get_boolean(v) ? "true" : "false";
    default: return json_object_get_string(v);
    }
}

static int valid_env_name(const char *name)
{
    if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_'))
            return 0;
    return 1;
}

/* "learning-rate" → "MLSTAGE_PARAM_LEARNING_RATE". */
static char *param_env_name(const char *param)
{
    char *name = NULL;
    if (asprintf(&name, "MLSTAGE_PARAM_%s", param) < 0)
        return NULL;
    for (char *p = name + strlen("MLSTAGE_PARAM_"); *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    return name;
}

static int add_env(struct mlstage_ctx *ctx, struct job_store *s)
{
    json_object *env = mlstage_input(ctx, "env");
    char tmp[32], *entry;
    if (env) {
        json_object_object_foreach(env, key, val)
        {
            if (!valid_env_name(key))
                return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                         "inputs.env.%s: not a valid environment variable name "
                                         "(expected [A-Za-z_][A-Za-z0-9_]*)",
                                         key);
            if (asprintf(&entry, "%s=%s", key, scalar_text(val, tmp)) < 0 ||
                list_push(&s->env, &s->n_env, entry) != 0)
                return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        }
    }
    json_object *params = mlstage_input(ctx, "params");
    if (!params)
        return 0;
    size_t first_param = s->n_env;
    json_object_object_foreach(params, key, val)
    {
        char *name = param_env_name(key);
        if (!name)
            return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        size_t nlen = strlen(name);
        for (size_t i = first_param; i < s->n_env; i++) {
            if (strncmp(s->env[i], name, nlen) == 0 && s->env[i][nlen] == '=') {
                mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                  "inputs.params.%s: another parameter also becomes %s; "
                                  "rename one of them",
                                  key, name);
                free(name);
                return MLSTAGE_EINPUT;
            }
        }
        int n = asprintf(&entry, "%s=%s", name, scalar_text(val, tmp));
        free(name);
        if (n < 0 || list_push(&s->env, &s->n_env, entry) != 0)
            return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    return 0;
}

/* Seconds in "90", "90s", "30m", "1h30m", "500ms" (the form the schema's pattern admits). */
static double duration_seconds(const char *s)
{
    double total = 0;
    while (*s) {
        char *end;
        double v = strtod(s, &end);
        s = end;
        if (strncmp(s, "ms", 2) == 0) {
            v /= 1000;
            s += 2;
        } else if (*s == 's') {
            s++;
        } else if (*s == 'm') {
            v *= 60;
            s++;
        } else if (*s == 'h') {
            v *= 3600;
            s++;
        } else if (*s == 'd') {
            v *= 86400;
            s++;
        }
        total += v;
    }
    return total;
}

static int job_build(struct mlstage_ctx *ctx, struct job_store *s)
{
    struct train_job *job = &s->job;
    const char *outputs = mlstage_outputs_dir(ctx);
    int rc;

    job->command = mlstage_input_string(ctx, "command", NULL);
    json_object *argv = mlstage_input(ctx, "argv");
    for (size_t i = 0; argv && i < json_object_array_length(argv); i++)
        if ((rc = list_push(&s->argv, &s->n_argv,
                            strdup(json_object_get_string(json_object_array_get_idx(argv, i))))))
            return mlstage_error_set(ctx, rc, "out of memory");
    job->argv = (const char *const *)s->argv;

    const char *cwd = mlstage_input_string(ctx, "cwd", NULL);
    s->cwd = cwd ? resolve(mlstage_workspace_dir(ctx), cwd) : strdup(mlstage_workspace_dir(ctx));
    s->model_dir = resolve(outputs, mlstage_input_string(ctx, "model_dir", "model"));
    s->metrics_file = resolve(outputs, mlstage_input_string(ctx, "metrics_file", "metrics.json"));
    s->log_path = resolve(mlstage_run_dir(ctx), "train.log");
    if (!s->cwd || !s->model_dir || !s->metrics_file || !s->log_path)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    job->cwd = s->cwd;
    job->model_dir = s->model_dir;
    job->metrics_file = s->metrics_file;
    job->log_path = s->log_path;

    struct stat st;
    if (!mlstage_dry_run(ctx) && (stat(s->cwd, &st) != 0 || !S_ISDIR(st.st_mode)))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.cwd: %s is not a folder", s->cwd);

    json_object *extra = mlstage_input(ctx, "artifacts");
    for (size_t i = 0; extra && i < json_object_array_length(extra); i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(extra, i));
        if ((rc = list_push(&s->artifacts, &s->n_artifacts, resolve(outputs, p))))
            return mlstage_error_set(ctx, rc, "out of memory");
    }
    if (!s->artifacts && !(s->artifacts = calloc(1, sizeof(*s->artifacts))))
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    job->artifacts = (const char *const *)s->artifacts;

    if ((rc = add_env(ctx, s)) != 0)
        return rc;
    if (!s->env && !(s->env = calloc(1, sizeof(*s->env))))
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    job->env = (const char *const *)s->env;
    job->params = mlstage_input(ctx, "params");

    json_object *timeout = mlstage_input(ctx, "timeout");
    if (timeout)
        job->timeout_s = json_object_is_type(timeout, json_type_string)
                             ? duration_seconds(json_object_get_string(timeout))
                             : json_object_get_double(timeout);
    if (timeout && !(job->timeout_s > 0))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.timeout: expected a positive duration such as 90s, "
                                 "30m or 1h30m, got \"%s\"",
                                 json_object_get_string(timeout));
    return 0;
}

/* ---- run ----------------------------------------------------------------- */

/* The table's names, for plugin_backend_pick, which does not know its struct. */
static const char *backend_name(size_t i)
{
    return train_backends[i]->name;
}

/* The command's log is an artefact even when the command failed: it says why. */
static int declare_log(struct mlstage_ctx *ctx, const struct train_job *job, int run_rc)
{
    struct stat st;
    if (stat(job->log_path, &st) != 0)
        return run_rc;
    char *saved = run_rc ? strdup(mlstage_error_message(ctx)) : NULL;
    int rc = mlstage_artifact_add(ctx, job->log_path, NULL);
    if (run_rc) {
        mlstage_error_set(ctx, run_rc, "%s", saved ? saved : mlstage_strerror(run_rc));
        rc = run_rc;
    }
    free(saved);
    return rc;
}

static int train_run(struct mlstage_ctx *ctx)
{
    struct job_store store;
    struct train_outcome outcome = {0};
    const struct train_backend *backend = NULL;
    size_t which = 0;
    int rc;
    memset(&store, 0, sizeof(store));
    if ((rc = plugin_backend_pick(ctx, "train", backend_name, N_BACKENDS, &which)) != 0)
        return rc;
    backend = train_backends[which];
    if ((rc = job_build(ctx, &store)) != 0)
        goto done;
    if (mlstage_dry_run(ctx) && backend->plan) {
        backend->plan(ctx, &store.job);
        mlstage_plan(ctx, "then collect the model folder %s and the metrics file %s, log in %s",
                     store.job.model_dir, store.job.metrics_file, store.job.log_path);
        goto done;
    }
    rc = backend->run(ctx, &store.job, &outcome);
    if (outcome.remote)
        goto done;
    rc = declare_log(ctx, &store.job, rc);
    if (rc == 0)
        rc = train_collect(ctx, &store.job, &outcome);
done:
    store_free(&store);
    return rc;
}

static const struct mlstage_plugin train_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "train",
    .version = TRAIN_VERSION,
    .summary = "run the training command; collect, stamp and publish the model, metrics and log",
    .input_schema = train_schema,
    .run = train_run,
};

MLSTAGE_PLUGIN_DEFINE(train_plugin)
