/* register_local.c — the local backend of register: the embedded registry under .mlstage/registry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aml.h"
#include "register.h"

static const char *str_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) && v ? json_object_get_string(v) : NULL;
}

static int local_create_version(struct mlstage_ctx *ctx, const struct register_request *req,
                                struct register_result *res)
{
    struct mlstage_registry *reg = NULL;
    struct mlstage_model_spec spec = {
        .name = req->model,
        .path = req->model_dir,
        .metrics = req->metrics,
        .params = req->params,
        .tags = req->tags,
        .description = req->description,
    };
    json_object *planned = NULL;
    int rc = mlstage_registry_open(ctx, &reg);
    if (rc)
        return rc;
    rc = mlstage_registry_register(reg, &spec, &res->doc, &res->existed);
    mlstage_registry_close(reg);
    if (rc)
        return rc;
    res->version = json_object_get_int(json_object_object_get(res->doc, "version"));
    res->planned = json_object_object_get_ex(res->doc, "planned", &planned) &&
                   json_object_get_boolean(planned);
    snprintf(res->digest, sizeof(res->digest), "%s",
             str_of(res->doc, "digest") ? str_of(res->doc, "digest") : "");
    res->uri = aml_fmt("mlstage://registry/%s/%d", req->model, res->version);
    /* A planned version has no folder yet; registry.h documents where it will be. */
    res->path = str_of(res->doc, "path")
                    ? strdup(str_of(res->doc, "path"))
                    : aml_fmt("%s/.mlstage/registry/%s/%d/files", mlstage_workspace_dir(ctx),
                              req->model, res->version);
    if (!res->uri || !res->path)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    /*
     * The version's files are an artefact where they now live: the agent writes
     * files.intoto.json beside them, so `mlstage provenance verify` checks a
     * registered version in place. An existing version keeps the statement of
     * the run that made it.
     */
    if (!res->existed && !res->planned)
        return mlstage_artifact_add(ctx, res->path, NULL);
    return 0;
}

static int local_set_alias(struct mlstage_ctx *ctx, const struct register_request *req,
                           struct register_result *res)
{
    struct mlstage_registry *reg = NULL;
    int rc;
    res->alias_previous = 0;
    if (res->planned) {
        /* The registry cannot plan an alias to a version that does not exist yet. */
        mlstage_plan(ctx, "set alias %s of model %s to version %d", req->alias, req->model,
                     res->version);
        return 0;
    }
    rc = mlstage_registry_open(ctx, &reg);
    if (rc)
        return rc;
    rc =
        mlstage_registry_set_alias(reg, req->model, req->alias, res->version, &res->alias_previous);
    mlstage_registry_close(reg);
    return rc;
}

const struct register_backend register_local_backend = {
    .name = "local",
    /* The local registry keeps its own copy of the files: it needs them here. */
    .takes_model_uri = 0,
    .create_version = local_create_version,
    .set_alias = local_set_alias,
};
