/* register.c — the register stage: its inputs as data, and run() on the backend's table. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plugin_backend.h"
#include "plugin_input.h"
#include "register.h"

static const char register_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"model\"],"
    "\"properties\": {"
    "  \"model\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9][A-Za-z0-9._-]*$\","
    "    \"maxLength\": 64, \"description\": \"the registered model's name\"},"
    "  \"model_dir\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"the model's files: a folder (taken recursively) or one file; "
    "give it or model_uri\"},"
    "  \"model_uri\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the model files already in the workspace, e.g. train's "
    "model_uri output; registered in place, nothing uploaded\"},"
    "  \"metrics\": {\"type\": [\"object\", \"string\", \"null\"],"
    "    \"description\": \"metrics: a mapping, a JSON object as text, or a JSON file's path\"},"
    "  \"params\": {\"type\": [\"object\", \"string\", \"null\"],"
    "    \"description\": \"parameters: a mapping, a JSON object as text, or a JSON file's path\"},"
    "  \"tags\": {\"type\": \"object\", \"default\": {},"
    "    \"additionalProperties\": {\"type\": [\"string\", \"number\", \"boolean\"]},"
    "    \"description\": \"extra tags, added to the provenance tags (commit, branch, run)\"},"
    "  \"alias\": {\"type\": [\"string\", \"null\"], \"pattern\": \"^[A-Za-z][A-Za-z0-9_-]*$\","
    "    \"maxLength\": 64, \"description\": \"an alias to point at the version (candidate)\"},"
    "  \"description\": {\"type\": [\"string\", \"null\"], \"maxLength\": 4096},"
    "  \"subscription_id\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the Azure subscription of the workspace\"},"
    "  \"resource_group\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the workspace's resource group\"},"
    "  \"workspace\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the Azure Machine Learning workspace\"}"
    "}}";

static const struct register_backend *const backends[] = {&register_local_backend,
                                                          &register_azureml_backend};
#define N_BACKENDS (sizeof(backends) / sizeof(backends[0]))

void register_result_free(struct register_result *res)
{
    json_object_put(res->doc);
    free(res->uri);
    free(res->path);
    free(res->id);
    memset(res, 0, sizeof(*res));
}

/* The table's names, for plugin_backend_pick, which does not know its struct. */
static const char *backend_name(size_t i)
{
    return backends[i]->name;
}

/*
 * An object-valued input given as a mapping, as JSON text, or as the path
 * of a JSON file (what a train stage publishes). *out: new reference, or
 * NULL when the input is absent.
 */
static int object_input(struct mlstage_ctx *ctx, const char *key, json_object **out)
{
    json_object *v = mlstage_input(ctx, key);
    *out = NULL;
    if (!v || json_object_is_type(v, json_type_null))
        return 0;
    if (json_object_is_type(v, json_type_object)) {
        *out = json_object_get(v);
        return 0;
    }
    const char *text = json_object_get_string(v);
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '{') {
        enum json_tokener_error jerr = json_tokener_success;
        json_object *doc = json_tokener_parse_verbose(text, &jerr);
        if (!doc || !json_object_is_type(doc, json_type_object)) {
            json_object_put(doc);
            return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.%s: not a JSON object: %s", key,
                                     json_tokener_error_desc(jerr));
        }
        *out = doc;
        return 0;
    }
    if (!*text)
        return 0;
    json_object *doc = NULL;
    int rc = mlstage_json_read(text, &doc);
    if (rc == MLSTAGE_ENOTFOUND)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.%s: %s does not exist", key, text);
    if (rc == MLSTAGE_EINPUT)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.%s: %s is not valid JSON", key, text);
    if (rc)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "inputs.%s: cannot read %s", key, text);
    if (!json_object_is_type(doc, json_type_object)) {
        json_object_put(doc);
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.%s: %s holds no JSON object", key,
                                 text);
    }
    *out = doc;
    return 0;
}

/* The tags input as an object of strings: numbers and booleans become their text. */
static json_object *string_tags(struct mlstage_ctx *ctx)
{
    json_object *tags = json_object_new_object(), *given = mlstage_input(ctx, "tags");
    if (!given || !json_object_is_type(given, json_type_object))
        return tags;
    json_object_object_foreach(given, key, val)
    {
        json_object_object_add(tags, key, json_object_new_string(json_object_get_string(val)));
    }
    return tags;
}

/* "rmse=54.01, r2=0.449" for the log and the summary. */
static void metrics_text(json_object *metrics, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    if (!metrics)
        return;
    json_object_object_foreach(metrics, key, val)
    {
        json_type t = json_object_get_type(val);
        if (t != json_type_double && t != json_type_int)
            continue;
        int n = snprintf(out + used, size - used, "%s%s=%.4g", used ? ", " : "", key,
                         json_object_get_double(val));
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

static const char *tag_of(json_object *doc, const char *key)
{
    json_object *tags = NULL, *v = NULL;
    if (json_object_object_get_ex(doc, "tags", &tags) && json_object_object_get_ex(tags, key, &v))
        return json_object_get_string(v);
    return NULL;
}

static void write_summary(struct mlstage_ctx *ctx, const struct register_request *req,
                          const struct register_result *res)
{
    char metrics[512], *md = NULL;
    json_object *m = NULL;
    const char *commit = tag_of(res->doc, "mlstage.commit");
    const char *branch = tag_of(res->doc, "mlstage.branch");
    if (!json_object_object_get_ex(res->doc, "metrics", &m))
        m = req->metrics;
    metrics_text(m, metrics, sizeof(metrics));
    if (asprintf(&md,
                 "### Model `%s` version %d%s\n\n"
                 "| | |\n|---|---|\n"
                 "| version | %d%s |\n"
                 "| digest | %s%.16s%s |\n"
                 "| alias | %s |\n"
                 "| uri | `%s` |\n"
                 "| commit | `%.12s` (%s) |\n"
                 "| metrics | %s |\n",
                 req->model, res->version,
                 res->planned   ? " (planned)"
                 : res->existed ? " (already registered)"
                                : "",
                 res->version,
                 res->planned ? ", would be new"
                 : res->existed
                     ? (req->model_uri ? ", same model_uri as before" : ", same digest as before")
                     : ", new",
                 res->digest[0] ? "`sha256:" : "—", res->digest, res->digest[0] ? "…`" : "",
                 req->alias ? req->alias : "—", res->uri, commit ? commit : "none",
                 branch ? branch : "none", metrics[0] ? metrics : "—") >= 0) {
        mlstage_summary_append(ctx, md);
        free(md);
    }
}

/* registration.json: the version's record, kept with the run and stamped as its artefact. */
static int write_registration(struct mlstage_ctx *ctx, const struct register_request *req,
                              struct register_result *res)
{
    char path[4096];
    json_object *aliases = NULL;
    int rc;
    json_object_object_add(res->doc, "uri", json_object_new_string(res->uri));
    json_object_object_add(res->doc, "existed", json_object_new_boolean(res->existed));
    if (req->alias && !res->planned) {
        /* The record was read before the alias moved. */
        int present = 0;
        if (!json_object_object_get_ex(res->doc, "aliases", &aliases)) {
            aliases = json_object_new_array();
            json_object_object_add(res->doc, "aliases", aliases);
        }
        for (size_t i = 0; i < json_object_array_length(aliases); i++)
            present |= strcmp(json_object_get_string(json_object_array_get_idx(aliases, i)),
                              req->alias) == 0;
        if (!present)
            json_object_array_add(aliases, json_object_new_string(req->alias));
    }
    if (snprintf(path, sizeof(path), "%s/registration.json", mlstage_outputs_dir(ctx)) >=
        (int)sizeof(path))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "run folder path too long");
    if ((rc = mlstage_json_write(ctx, path, res->doc)) != 0)
        return rc;
    /* A planned registration is a plan, not a product: nothing to stamp. */
    return res->planned ? 0 : mlstage_artifact_add(ctx, path, NULL);
}

/*
 * The model's files come from exactly one place: model_dir (here) or
 * model_uri (already in the backend's storage, which not every backend has).
 */
static int check_source(struct mlstage_ctx *ctx, const struct register_backend *backend,
                        const struct register_request *req)
{
    if (!req->model_dir && !req->model_uri)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs model_dir and model_uri: neither is set; give one: "
                                 "model_dir, the model's files here, or (azureml) model_uri, files "
                                 "already in the workspace such as train's model_uri output");
    if (req->model_dir && req->model_uri)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs model_dir (%s) and model_uri (%s) are both set; give one "
                                 "(to register model_uri with a manifest that sets model_dir, "
                                 "clear it: --set model_dir=)",
                                 req->model_dir, req->model_uri);
    if (req->model_uri && !backend->takes_model_uri)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.model_uri: the %s backend registers files from "
                                 "inputs.model_dir, which is not set; model_uri (%s) names files "
                                 "in an Azure ML workspace, which only --backend azureml registers",
                                 backend->name, req->model_uri);
    return 0;
}

static int register_run(struct mlstage_ctx *ctx)
{
    const struct register_backend *backend = NULL;
    struct register_result res = {0};
    json_object *metrics = NULL, *params = NULL, *tags = NULL;
    char mtext[512];
    size_t which = 0;
    int rc;

    if ((rc = plugin_backend_pick(ctx, "register", backend_name, N_BACKENDS, &which)) != 0)
        return rc;
    backend = backends[which];
    struct register_request req = {
        .model = mlstage_input_string(ctx, "model", NULL),
        .model_dir = plugin_input_optional(ctx, "model_dir"),
        .model_uri = plugin_input_optional(ctx, "model_uri"),
        .alias = mlstage_input_string(ctx, "alias", NULL),
        .description = mlstage_input_string(ctx, "description", NULL),
    };
    if (req.alias && strcmp(req.alias, "latest") == 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.alias: \"latest\" always means the newest version and "
                                 "cannot be set");
    if ((rc = check_source(ctx, backend, &req)) != 0)
        return rc;
    const char *source = req.model_dir ? req.model_dir : req.model_uri;
    struct stat st;
    if (mlstage_dry_run(ctx) && ((req.model_dir && stat(req.model_dir, &st) != 0) ||
                                 (req.model_uri && strstr(req.model_uri, "<stages.")))) {
        /* In a pipeline's dry run the model is made by a stage that has not run. */
        mlstage_plan(ctx,
                     "register %s as a new version of model %s (its files do not exist yet: an "
                     "earlier stage makes them)%s%s",
                     source, req.model, req.alias ? ", then point alias " : "",
                     req.alias ? req.alias : "");
        goto done;
    }
    if ((rc = object_input(ctx, "metrics", &metrics)) != 0 ||
        (rc = object_input(ctx, "params", &params)) != 0)
        goto done;
    tags = string_tags(ctx);
    req.metrics = metrics;
    req.params = params;
    req.tags = tags;

    mlstage_info(ctx, "registering %s as model %s (%s backend)", source, req.model, backend->name);
    if ((rc = backend->create_version(ctx, &req, &res)) != 0)
        goto done;
    /* A model_uri's files were not read, so there is no digest to show. */
    char known[96] = "";
    if (res.digest[0])
        snprintf(known, sizeof(known), " (digest %.12s)", res.digest);
    if (res.existed)
        mlstage_info(ctx,
                     "model %s: %s already registered as version %d%s; nothing new was "
                     "written",
                     req.model, req.model_uri ? "this model_uri is" : "these files are",
                     res.version, known);
    else if (res.planned)
        mlstage_info(ctx, "model %s: would register version %d%s", req.model, res.version, known);
    else
        mlstage_info(ctx, "model %s: registered version %d%s at %s", req.model, res.version, known,
                     res.uri);
    metrics_text(metrics, mtext, sizeof(mtext));
    if (mtext[0])
        mlstage_info(ctx, "metrics: %s", mtext);

    if (req.alias) {
        if ((rc = backend->set_alias(ctx, &req, &res)) != 0)
            goto done;
        if (!res.planned && !mlstage_dry_run(ctx)) {
            if (res.alias_previous == res.version)
                mlstage_info(ctx, "alias %s already pointed at version %d", req.alias, res.version);
            else if (res.alias_previous)
                mlstage_info(ctx, "alias %s: version %d -> %d", req.alias, res.alias_previous,
                             res.version);
            else
                mlstage_info(ctx, "alias %s -> version %d", req.alias, res.version);
        }
    }

    if ((rc = write_registration(ctx, &req, &res)) != 0)
        goto done;
    mlstage_output_set(ctx, "model", req.model);
    mlstage_output_setf(ctx, "version", "%d", res.version);
    mlstage_output_set(ctx, "existed", res.existed ? "true" : "false");
    mlstage_output_set(ctx, "digest", res.digest);
    mlstage_output_set(ctx, "uri", res.uri);
    mlstage_output_set(ctx, "path", res.path);
    if (res.id)
        mlstage_output_set(ctx, "id", res.id);
    write_summary(ctx, &req, &res);
done:
    register_result_free(&res);
    json_object_put(metrics);
    json_object_put(params);
    json_object_put(tags);
    return rc;
}

static const struct mlstage_plugin register_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "register",
    .version = "0.1.0",
    .summary = "register a model version with its files, digests, metrics and commit tags",
    .input_schema = register_schema,
    .run = register_run,
};

MLSTAGE_PLUGIN_DEFINE(register_plugin)
