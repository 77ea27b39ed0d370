/* evaluate_azureml.c — the azureml backend of evaluate: the champion is the workspace model
 * version that carries the alias tag, with the metrics register recorded in its properties. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aml.h"
#include "evaluate.h"

/* The metrics register recorded: properties MLSTAGE_AML_METRIC_PREFIX<name> = number text. */
static json_object *metrics_of(json_object *props)
{
    json_object *metrics = json_object_new_object();
    size_t plen = strlen(MLSTAGE_AML_METRIC_PREFIX);
    if (!props)
        return metrics;
    json_object_object_foreach(props, key, val)
    {
        if (strncmp(key, MLSTAGE_AML_METRIC_PREFIX, plen) != 0 || !key[plen] ||
            !json_object_is_type(val, json_type_string))
            continue;
        const char *text = json_object_get_string(val);
        char *end = NULL;
        errno = 0;
        double d = strtod(text, &end);
        if (end != text && !*end && errno == 0 && isfinite(d))
            json_object_object_add(metrics, key + plen, json_object_new_double_s(d, text));
    }
    return metrics;
}

static int azureml_champion(struct mlstage_ctx *ctx, const char *model, const char *alias,
                            json_object **out)
{
    const char *sub = mlstage_input_string(ctx, "subscription_id", NULL);
    const char *rg = mlstage_input_string(ctx, "resource_group", NULL);
    const char *ws = mlstage_input_string(ctx, "workspace", NULL);
    char *path = NULL;
    json_object *version = NULL;
    *out = NULL;
    int rc = mlstage_aml_workspace_path(ctx, sub, rg, ws, &path);
    if (rc)
        return rc;
    for (const char *p = model; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                   "inputs.model: \"%s\" cannot name an Azure ML model: it must "
                                   "match ^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$ (no dots)",
                                   model);
            goto done;
        }
    if ((rc = mlstage_aml_model_alias_get(ctx, path, model, alias, &version)) != 0)
        goto done;
    if (!version) {
        /* Nothing promoted yet: the candidate would be the first champion. */
        mlstage_info(
            ctx,
            "no version of model %s in workspace %s carries the tag " MLSTAGE_AML_ALIAS_TAG_PREFIX
            "%s=true: there is no champion yet",
            model, ws, alias);
        goto done;
    }
    const char *name = aml_string_of(version, "name");
    int number = aml_version_number(name);
    if (!number) {
        rc = mlstage_error_set(
            ctx, MLSTAGE_EFAIL,
            "version \"%s\" of model %s carries the tag " MLSTAGE_AML_ALIAS_TAG_PREFIX
            "%s=true, but evaluate compares numbered versions (as register "
            "makes them); move the tag to a numbered version",
            name ? name : "", model, alias);
        goto done;
    }
    json_object *props = aml_object_of(version, "properties"), *tags = aml_object_of(props, "tags");
    json_object *champion = json_object_new_object();
    json_object_object_add(champion, "name", json_object_new_string(model));
    json_object_object_add(champion, "version", json_object_new_int(number));
    json_object_object_add(champion, "metrics", metrics_of(aml_object_of(props, "properties")));
    json_object_object_add(champion, "tags",
                           tags ? json_object_get(tags) : json_object_new_object());
    if (aml_string_of(version, "id"))
        json_object_object_add(champion, "id",
                               json_object_new_string(aml_string_of(version, "id")));
    mlstage_info(ctx, "champion: %s version %d (%s), from workspace %s", model, number, alias, ws);
    *out = champion;
done:
    json_object_put(version);
    free(path);
    return rc;
}

const struct evaluate_backend evaluate_azureml_backend = {
    .name = "azureml",
    .champion = azureml_champion,
};
