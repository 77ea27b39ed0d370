/* deploy.c — the deploy stage: its inputs as data, and run() on the backend's table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aml.h"
#include "deploy.h"
#include "plugin_backend.h"
#include "plugin_input.h"
#include "smoke.h"

static const char deploy_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"endpoint\", \"model\"],"
    "\"properties\": {"
    "  \"endpoint\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9][A-Za-z0-9._-]*$\","
    "    \"maxLength\": 64, \"description\": \"the endpoint's name\"},"
    "  \"model\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9][A-Za-z0-9._-]*$\","
    "    \"maxLength\": 64, \"description\": \"the registered model to serve\"},"
    "  \"version\": {\"type\": [\"integer\", \"string\"], \"default\": \"candidate\","
    "    \"description\": \"a version number, latest, or an alias (candidate: what register "
    "marked last)\"},"
    "  \"command\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"local: the scoring server's shell command; {model_dir}, {port}, "
    "{model} and {version} are filled in (PORT and MODEL_DIR are also in its environment)\"},"
    "  \"health_path\": {\"type\": \"string\", \"pattern\": \"^/\", \"default\": \"/health\"},"
    "  \"startup_timeout\": {\"type\": \"number\", \"exclusiveMinimum\": 0,"
    "    \"maximum\": 3600, \"default\": 60,"
    "    \"description\": \"seconds to wait for the health path to answer 2xx\"},"
    "  \"sample_requests\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"the smoke-test file (requests and expected answers)\"},"
    "  \"set_alias\": {\"type\": [\"string\", \"null\"],"
    "    \"pattern\": \"^[A-Za-z][A-Za-z0-9_-]*$\", \"maxLength\": 64,"
    "    \"description\": \"alias to point at the deployed version on success (production)\"},"
    "  \"keep_running\": {\"type\": \"boolean\", \"default\": false,"
    "    \"description\": \"leave the server running after the stage and print its URL\"},"
    "  \"rollback\": {\"type\": \"boolean\", \"default\": false,"
    "    \"description\": \"switch back to the previous slot instead of deploying\"},"
    /* The azureml backend's own inputs: optional in the schema, checked by that backend. */
    AML_WORKSPACE_INPUTS_SCHEMA
    "  \"instance_type\": {\"type\": [\"string\", \"null\"], \"default\": \"Standard_DS3_v2\","
    "    \"description\": \"azureml: the VM size of the deployment's instances\"},"
    "  \"instance_count\": {\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100,"
    "    \"default\": 1, \"description\": \"azureml: how many instances serve the deployment\"},"
    "  \"environment\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the scoring environment: an ARM id, "
    "azureml://registries/R/environments/N/versions/V (or labels/latest), or azureml:N:V; "
    "needed unless the model is an MLflow model\"},"
    "  \"code\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the folder holding the scoring script, relative to the "
    "workspace, uploaded as a code asset\"},"
    "  \"scoring_script\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the scoring script in code, with init() and run()\"},"
    "  \"datastore\": {\"type\": [\"string\", \"null\"], \"default\": \"workspaceblobstore\","
    "    \"description\": \"azureml: the blob datastore the code snapshot goes to\"}"
    "}}";

static const struct deploy_backend *const backends[] = {&deploy_local_backend,
                                                        &deploy_azureml_backend};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

/* The table's names, for plugin_backend_pick, which does not know its struct. */
static const char *backend_name(size_t i)
{
    return backends[i]->name;
}

static void publish(struct mlstage_ctx *ctx, const struct deploy_request *req,
                    const struct deploy_result *res)
{
    mlstage_output_set(ctx, "endpoint", req->endpoint);
    mlstage_output_set(ctx, "slot", res->slot ? res->slot : "");
    if (res->version)
        mlstage_output_setf(ctx, "version", "%d", res->version);
    else
        mlstage_output_set(ctx, "version", "");
    if (res->previous_version)
        mlstage_output_setf(ctx, "previous_version", "%d", res->previous_version);
    else
        mlstage_output_set(ctx, "previous_version", "");
    mlstage_output_set(ctx, "url", res->url ? res->url : "");
    mlstage_output_set(ctx, "smoke_passed", res->smoke ? res->smoke : "false");
}

static void write_summary(struct mlstage_ctx *ctx, const struct deploy_request *req,
                          const struct deploy_result *res, int rc)
{
    char smoke[96], previous[32], *md = NULL;
    if (res->smoke_total)
        snprintf(smoke, sizeof(smoke), "%s (%d of %d requests passed)",
                 res->smoke ? res->smoke : "false", res->smoke_total - res->smoke_failed,
                 res->smoke_total);
    else
        snprintf(smoke, sizeof(smoke), "%s", res->smoke ? res->smoke : "false");
    if (res->previous_version)
        snprintf(previous, sizeof(previous), "%d", res->previous_version);
    else
        snprintf(previous, sizeof(previous), "—");
    const char *what = rc                     ? "failed; the endpoint is unchanged"
                       : mlstage_dry_run(ctx) ? "planned (dry run)"
                       : req->rollback        ? "rolled back"
                                              : "deployed";
    if (asprintf(&md,
                 "### Endpoint `%s`: model `%s` version %d %s\n\n"
                 "| | |\n|---|---|\n"
                 "| slot | %s (100%% of the traffic%s) |\n"
                 "| previous version | %s |\n"
                 "| smoke test | %s |\n"
                 "| alias | %s |\n"
                 "| url | %s |\n",
                 req->endpoint, req->model, res->version, what, res->slot ? res->slot : "—",
                 rc ? " was not moved" : "", previous, smoke, req->set_alias ? req->set_alias : "—",
                 res->url ? res->url : "— (not running)") >= 0) {
        mlstage_summary_append(ctx, md);
        free(md);
    }
}

static int deploy_run(struct mlstage_ctx *ctx)
{
    const struct deploy_backend *backend = NULL;
    struct deploy_result res = {0};
    json_object *smoke = NULL;
    size_t which = 0;
    int rc;

    if ((rc = plugin_backend_pick(ctx, "deploy", backend_name, N_BACKENDS, &which)) != 0)
        return rc;
    backend = backends[which];
    struct deploy_request req = {
        .endpoint = mlstage_input_string(ctx, "endpoint", NULL),
        .model = mlstage_input_string(ctx, "model", NULL),
        .version = mlstage_input_string(ctx, "version", "candidate"),
        .command = mlstage_input_string(ctx, "command", NULL),
        .health_path = mlstage_input_string(ctx, "health_path", "/health"),
        .startup_timeout_s = mlstage_input_double(ctx, "startup_timeout", 60),
        .sample_requests = plugin_input_optional(ctx, "sample_requests"),
        .set_alias = plugin_input_optional(ctx, "set_alias"),
        .keep_running = mlstage_input_bool(ctx, "keep_running", 0),
        .rollback = mlstage_input_bool(ctx, "rollback", 0),
    };
    if (req.set_alias && strcmp(req.set_alias, "latest") == 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.set_alias: \"latest\" always means the newest version "
                                 "and cannot be set");
    /* A bad smoke file is an input error, found before anything is started. */
    if (req.sample_requests && (rc = smoke_load(ctx, req.sample_requests, &smoke)) != 0)
        return rc;
    req.smoke = smoke;

    rc = req.rollback ? backend->rollback(ctx, &req, &res) : backend->deploy(ctx, &req, &res);
    if (res.slot) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        publish(ctx, &req, &res);
        write_summary(ctx, &req, &res, rc);
        if (rc)
            mlstage_error_set(ctx, rc, "%s", msg);
    }
    free(res.url);
    json_object_put(smoke);
    return rc;
}

static const struct mlstage_plugin deploy_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "deploy",
    .version = "0.1.0",
    .summary = "serve a model version blue/green, smoke-test it, switch traffic or roll back",
    .input_schema = deploy_schema,
    .run = deploy_run,
};

MLSTAGE_PLUGIN_DEFINE(deploy_plugin)
