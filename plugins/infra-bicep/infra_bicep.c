/* infra_bicep.c — the infra-bicep stage: its inputs as data, the offline checks, and run() on
 * the backend's table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "infra_bicep.h"
#include "plugin_backend.h"

static const char infra_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"template\"],"
    "\"properties\": {"
    "  \"template\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"an ARM template (.json) or a Bicep file (.bicep, compiled with bicep "
    "or az bicep); relative to the workspace\"},"
    "  \"parameters\": {\"type\": [\"string\", \"null\"], \"minLength\": 1,"
    "    \"description\": \"an ARM parameter file (*.parameters.json); relative to the "
    "workspace\"},"
    "  \"parameter_values\": {\"type\": \"object\", \"default\": {},"
    "    \"description\": \"parameter values by name, overriding the parameter file\"},"
    "  \"mode\": {\"type\": \"string\", \"enum\": [\"validate\", \"what-if\", \"deploy\"],"
    "    \"default\": \"validate\","
    "    \"description\": \"validate the deployment, preview its changes, or deploy it\"},"
    "  \"deployment_mode\": {\"type\": \"string\", \"enum\": [\"Incremental\", \"Complete\"],"
    "    \"default\": \"Incremental\","
    "    \"description\": \"Complete deletes resources of the group the template does not "
    "declare\"},"
    "  \"subscription_id\": {\"type\": [\"string\", \"null\"],"
    "    \"pattern\": \"^([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    "[0-9A-Fa-f]{12})?$\","
    "    \"description\": \"the subscription id (required by the azureml backend; empty: not "
    "given)\"},"
    "  \"resource_group\": {\"type\": [\"string\", \"null\"], \"maxLength\": 90,"
    "    \"description\": \"the resource group deployed to (required by the azureml backend; "
    "empty: not given)\"},"
    "  \"deployment_name\": {\"type\": [\"string\", \"null\"], \"minLength\": 1,"
    "    \"maxLength\": 64, \"pattern\": \"^[-A-Za-z0-9_.()]+$\","
    "    \"description\": \"default: <task>-<short commit>\"},"
    "  \"tags\": {\"type\": \"object\", \"default\": {},"
    "    \"additionalProperties\": {\"type\": \"string\", \"maxLength\": 256},"
    "    \"description\": \"tags on the deployment, besides the provenance tags\"},"
    "  \"expect_template_hash\": {\"type\": [\"string\", \"null\"],"
    "    \"pattern\": \"^([0-9a-f]{64})?$\","
    "    \"description\": \"the template_hash a what-if reported: refuse a template that has "
    "changed since (empty: no check)\"},"
    "  \"wait_timeout\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 86400,"
    "    \"default\": 3600,"
    "    \"description\": \"seconds to wait for a long-running operation\"}"
    "}}";

static const struct infra_backend *const backends[] = {&infra_local_backend,
                                                       &infra_azureml_backend};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

/* The table's names, for plugin_backend_pick, which does not know its struct. */
static const char *backend_name(size_t i)
{
    return backends[i]->name;
}

/* ---- shared helpers ----------------------------------------------------------- */

json_object *infra_get_ci(json_object *obj, const char *key)
{
    json_object *v = NULL;
    if (!json_object_is_type(obj, json_type_object))
        return NULL;
    if (json_object_object_get_ex(obj, key, &v))
        return v;
    json_object_object_foreach(obj, k, val)
    {
        if (strcasecmp(k, key) == 0)
            return val;
    }
    return NULL;
}

int infra_has_ci(json_object *obj, const char *key)
{
    if (!json_object_is_type(obj, json_type_object))
        return 0;
    json_object_object_foreach(obj, k, val)
    {
        (void)val;
        if (strcasecmp(k, key) == 0)
            return 1;
    }
    return 0;
}

char *infra_resolve(struct mlstage_ctx *ctx, const char *path)
{
    char *out = NULL;
    if (path[0] == '/')
        return strdup(path);
    if (asprintf(&out, "%s/%s", mlstage_workspace_dir(ctx), path) < 0)
        return NULL;
    return out;
}

void infra_problem(struct infra_problems *pr, const char *file, int line, int col,
                   const char *subject, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    mlstage_log_issue(pr->ctx, MLSTAGE_LOG_ERROR, file, line, col, "%s", msg);
    pr->count++;
    /* Each subject once, in the order first met. */
    size_t slen = strlen(subject), have = pr->subjects ? strlen(pr->subjects) : 0;
    if (infra_problems_about(pr, subject))
        return;
    char *grown = realloc(pr->subjects, have + slen + 3);
    if (!grown)
        return;
    snprintf(grown + have, slen + 3, "%s%s", have ? ", " : "", subject);
    pr->subjects = grown;
}

int infra_problems_about(const struct infra_problems *pr, const char *subject)
{
    size_t slen = strlen(subject);
    for (const char *p = pr->subjects; p && (p = strstr(p, subject)); p += slen)
        if ((p == pr->subjects || p[-1] == ' ') && (p[slen] == ',' || p[slen] == '\0'))
            return 1;
    return 0;
}

int infra_problems_finish(struct infra_problems *pr, const char *what, const char *file)
{
    int rc = 0;
    if (pr->count)
        rc = mlstage_error_set(pr->ctx, MLSTAGE_EINPUT,
                               "%zu problem%s with the %s of %s (listed "
                               "above): %s",
                               pr->count, pr->count == 1 ? "" : "s", what, file,
                               pr->subjects ? pr->subjects : "");
    free(pr->subjects);
    pr->subjects = NULL;
    pr->count = 0;
    return rc;
}

int infra_find_key(const char *text, const char *within, const char *key, int *col)
{
    const char *p = text;
    if (!text)
        return 0;
    if (within) {
        int wline = infra_find_key(text, NULL, within, NULL);
        if (!wline)
            return 0;
        for (int l = 1; l < wline && p; l++)
            p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL;
        if (!p)
            return 0;
    }
    size_t klen = strlen(key);
    for (; (p = strchr(p, '"')); p++) {
        if (strncmp(p + 1, key, klen) != 0 || p[1 + klen] != '"')
            continue;
        const char *q = p + 2 + klen;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n')
            q++;
        if (*q != ':')
            continue;
        int line = 1;
        const char *bol = text;
        for (const char *s = text; s < p; s++)
            if (*s == '\n')
                line++, bol = s + 1;
        if (col)
            *col = (int)(p - bol) + 1;
        return line;
    }
    return 0;
}

/* ---- the job ---------------------------------------------------------------------- */

static void job_free(struct infra_job *job)
{
    infra_template_free(&job->tmpl);
    free(job->parameters_path);
    json_object_put(job->parameters);
    free(job->deployment_name);
    json_object_put(job->tags);
}

/* The deployment's tags: the manifest's, then the provenance tags, which always win. */
static json_object *deployment_tags(struct mlstage_ctx *ctx)
{
    json_object *tags = json_object_new_object(), *given = mlstage_input(ctx, "tags");
    json_object *prov = mlstage_provenance_tags(ctx);
    if (json_object_is_type(given, json_type_object)) {
        json_object_object_foreach(given, key, val)
        {
            json_object_object_add(tags, key, json_object_get(val));
        }
    }
    json_object_object_foreach(prov, key, val)
    {
        /* ARM caps tag values at 256 characters. */
        const char *s = json_object_get_string(val);
        json_object_object_add(
            tags, key, json_object_new_string_len(s, strlen(s) > 256 ? 256 : (int)strlen(s)));
    }
    json_object_put(prov);
    return tags;
}

static int job_inputs(struct mlstage_ctx *ctx, struct infra_job *job)
{
    const char *mode = mlstage_input_string(ctx, "mode", "validate");
    const char *name = mlstage_input_string(ctx, "deployment_name", NULL);
    job->mode = strcmp(mode, "deploy") == 0    ? INFRA_DEPLOY
                : strcmp(mode, "what-if") == 0 ? INFRA_WHAT_IF
                                               : INFRA_VALIDATE;
    job->mode_name = job->mode == INFRA_DEPLOY    ? "deploy"
                     : job->mode == INFRA_WHAT_IF ? "what-if"
                                                  : "validate";
    job->deployment_mode = mlstage_input_string(ctx, "deployment_mode", "Incremental");
    /* Empty means not given: a manifest can read them from variables unset on a laptop. */
    job->subscription_id = mlstage_input_string(ctx, "subscription_id", NULL);
    job->resource_group = mlstage_input_string(ctx, "resource_group", NULL);
    if (job->subscription_id && !*job->subscription_id)
        job->subscription_id = NULL;
    if (job->resource_group && !*job->resource_group)
        job->resource_group = NULL;
    job->wait_timeout_s = (double)mlstage_input_int(ctx, "wait_timeout", 3600);
    job->deployment_name = name ? strdup(name) : infra_default_deployment_name(ctx);
    job->tags = deployment_tags(ctx);
    if (!job->deployment_name)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    return 0;
}

static int infra_run(struct mlstage_ctx *ctx)
{
    const struct infra_backend *backend = NULL;
    struct infra_job job;
    size_t which = 0;
    int rc;
    memset(&job, 0, sizeof(job));
    if ((rc = plugin_backend_pick(ctx, "infra-bicep", backend_name, N_BACKENDS, &which)) != 0 ||
        (rc = job_inputs(ctx, &job)) != 0)
        goto done;
    backend = backends[which];
    /* A pipeline's dry run may not have the files an earlier stage would make: plan instead. */
    if (mlstage_input_pending(ctx, "template") || mlstage_input_pending(ctx, "parameters")) {
        mlstage_plan(ctx, "%s: check %s with %s, then %s with the %s backend", job.deployment_name,
                     mlstage_input_string(ctx, "template", ""),
                     mlstage_input_string(ctx, "parameters", "no parameter file"), job.mode_name,
                     backend->name);
        rc = mlstage_output_set(ctx, "deployment_name", job.deployment_name);
        goto done;
    }
    /* Offline first, whatever the backend: nothing is sent for a template that cannot work. */
    if ((rc = infra_template_load(ctx, mlstage_input_string(ctx, "template", ""), &job.tmpl)) ||
        (rc = infra_params_bind(ctx, &job, mlstage_input_string(ctx, "parameters", NULL),
                                mlstage_input(ctx, "parameter_values"))))
        goto done;
    /* Deploy what was reviewed: a what-if's hash, when given, must still be the template's. */
    const char *expect = mlstage_input_string(ctx, "expect_template_hash", NULL);
    if (expect && *expect && strcmp(expect, job.tmpl.hash) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "inputs.expect_template_hash: %s has changed since the what-if "
                               "(its hash is %.12s, the what-if saw %.12s); preview it again",
                               mlstage_input_string(ctx, "template", ""), job.tmpl.hash, expect);
        goto done;
    }
    mlstage_info(ctx, "%s: %zu parameter value%s checked against %s", job.deployment_name,
                 (size_t)json_object_object_length(job.parameters),
                 json_object_object_length(job.parameters) == 1 ? "" : "s",
                 mlstage_input_string(ctx, "template", ""));
    if ((rc = backend->check(ctx, &job)) != 0)
        goto done;
    rc = backend->run(ctx, &job);
done:
    job_free(&job);
    return rc;
}

static const struct mlstage_plugin infra_bicep_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "infra-bicep",
    .version = "1.0.0",
    .summary = "checks an ARM/Bicep template and its parameters offline, then validates, "
               "previews (what-if) or deploys it to a resource group",
    .input_schema = infra_schema,
    .run = infra_run,
};

MLSTAGE_PLUGIN_DEFINE(infra_bicep_plugin)
