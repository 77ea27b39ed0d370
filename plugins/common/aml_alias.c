/* aml_alias.c — model versions by reference, and the alias tags (mlstage.alias.NAME=true) that name
 * them. */
#include "aml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough pages of a version listing for any alias: one holder, a few during a handover. */
#define ALIAS_MAX_PAGES 20

static int all_digits(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* The versions of `model` tagged alias=true, newest first: *out is a new array of resources. */
static int alias_holders(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                         const char *alias, json_object **out)
{
    char *filter = aml_fmt(AML_ALIAS_TAG_PREFIX "%s=true", alias);
    char *enc = filter ? mlstage_url_encode(filter) : NULL;
    char *url =
        enc ? aml_path(ws, "/models/%s/versions?tags=%s&$orderBy=createdtime%%20desc", model, enc)
            : NULL;
    json_object *all = json_object_new_array();
    int rc = url ? 0 : mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    for (int page = 0; rc == 0 && url && page < ALIAS_MAX_PAGES; page++) {
        json_object *doc = NULL;
        rc = mlstage_arm_request(ctx, "GET", url, AML_API_VERSION, NULL, NULL, &doc);
        free(url);
        url = NULL;
        if (rc == 0) {
            json_object *value = aml_get(doc, "value", NULL);
            for (size_t i = 0; value && i < json_object_array_length(value); i++)
                json_object_array_add(all, json_object_get(json_object_array_get_idx(value, i)));
            const char *next = aml_str(doc, "nextLink", NULL);
            if (next && *next)
                url = strdup(next);
        }
        json_object_put(doc);
    }
    free(url);
    free(enc);
    free(filter);
    if (rc == MLSTAGE_ENOTFOUND)
        rc = mlstage_error_set(ctx, rc, "workspace %s has no model %s", ws->name, model);
    if (rc) {
        json_object_put(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int latest_version(struct mlstage_ctx *ctx, const struct aml_workspace *ws,
                          const char *model, char **version)
{
    json_object *doc = NULL;
    char *path = aml_path(ws, "/models/%s", model);
    int rc = path ? mlstage_arm_request(ctx, "GET", path, AML_API_VERSION, NULL, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    free(path);
    const char *latest = rc == 0 ? aml_str(doc, "properties", "latestVersion", NULL) : NULL;
    if (rc == MLSTAGE_ENOTFOUND)
        rc = mlstage_error_set(ctx, rc, "workspace %s has no model %s", ws->name, model);
    else if (rc == 0 && !(latest && *latest))
        rc = mlstage_error_set(ctx, MLSTAGE_ENOTFOUND, "model %s has no versions yet", model);
    else if (rc == 0)
        *version = strdup(latest);
    json_object_put(doc);
    return rc;
}

/* 0 when version `version` of `model` exists; ENOTFOUND (message set) when it does not. */
static int version_exists(struct mlstage_ctx *ctx, const struct aml_workspace *ws,
                          const char *model, const char *version)
{
    char *path = aml_path(ws, "/models/%s/versions/%s", model, version);
    int rc = path ? mlstage_arm_request(ctx, "GET", path, AML_API_VERSION, NULL, NULL, NULL)
                  : MLSTAGE_ENOMEM;
    free(path);
    if (rc == MLSTAGE_ENOTFOUND)
        rc = mlstage_error_set(ctx, rc, "model %s has no version %s in workspace %s", model,
                               version, ws->name);
    return rc;
}

int aml_model_resolve(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                      const char *ref, char **version)
{
    *version = NULL;
    if (!aml_valid_name(model))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.model: \"%s\" is not a model name",
                                 model);
    if (strcmp(ref, "latest") == 0)
        return latest_version(ctx, ws, model, version);
    if (all_digits(ref)) {
        int rc = version_exists(ctx, ws, model, ref);
        if (rc == 0 && !(*version = strdup(ref)))
            rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        return rc;
    }
    if (!aml_valid_name(ref))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.version: \"%s\" is neither a version, latest, nor an "
                                 "alias name",
                                 ref);
    json_object *holders = NULL;
    int rc = alias_holders(ctx, ws, model, ref, &holders);
    if (rc)
        return rc;
    size_t n = json_object_array_length(holders);
    const char *newest = n ? aml_str(json_object_array_get_idx(holders, 0), "name", NULL) : NULL;
    if (newest) {
        if (n > 1)
            mlstage_warn(ctx,
                         "%zu versions of model %s carry alias %s (tag %s%s=true); taking the "
                         "newest, %s",
                         n, model, ref, AML_ALIAS_TAG_PREFIX, ref, newest);
        if (!(*version = strdup(newest)))
            rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    } else if (version_exists(ctx, ws, model, ref) == 0) {
        /* Not an alias, but a version named like one. */
        if (!(*version = strdup(ref)))
            rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    } else {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOTFOUND,
                               "no version of model %s carries alias %s (tag %s%s=true) in "
                               "workspace %s: register sets an alias with its alias input; or "
                               "deploy a version number, or latest",
                               model, ref, AML_ALIAS_TAG_PREFIX, ref, ws->name);
    }
    json_object_put(holders);
    return rc;
}

/*
 * PUTs version resource `res` of `model` back with the alias tag set (on)
 * or removed: a model version's tags are mutable, the rest stays as read.
 */
static int put_tagged(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                      json_object *res, const char *tag, int on)
{
    const char *name = aml_str(res, "name", NULL);
    json_object *props = NULL;
    if (!name || json_object_deep_copy(aml_get(res, "properties", NULL), &props, NULL) != 0 ||
        !props)
        return mlstage_error_set(ctx, MLSTAGE_EREMOTE,
                                 "model %s: a version came without its name or properties", model);
    json_object_object_del(props, "provisioningState"); /* read-only */
    json_object *tags = aml_get(props, "tags", NULL);
    if (!tags || !json_object_is_type(tags, json_type_object)) {
        tags = json_object_new_object();
        json_object_object_add(props, "tags", tags);
    }
    if (on)
        json_object_object_add(tags, tag, json_object_new_string("true"));
    else
        json_object_object_del(tags, tag);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "properties", props);
    char *path = aml_path(ws, "/models/%s/versions/%s", model, name);
    int rc = path ? mlstage_arm_request(ctx, "PUT", path, AML_API_VERSION, body, NULL, NULL)
                  : MLSTAGE_ENOMEM;
    free(path);
    json_object_put(body);
    return rc;
}

int aml_alias_set(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                  const char *alias, const char *version, char **previous)
{
    json_object *holders = NULL, *target = NULL;
    char *tag = aml_fmt(AML_ALIAS_TAG_PREFIX "%s", alias);
    char *path = aml_path(ws, "/models/%s/versions/%s", model, version);
    const char *before = NULL;
    int rc = tag && path ? 0 : mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    if (previous)
        *previous = NULL;
    if (rc == 0)
        rc = alias_holders(ctx, ws, model, alias, &holders);
    if (rc == 0)
        rc = mlstage_arm_request(ctx, "GET", path, AML_API_VERSION, NULL, NULL, &target);
    if (rc)
        goto done;
    /* First the new holder, then the old ones let go: the alias always names a version. */
    const char *have = aml_str(target, "properties", "tags", tag, NULL);
    if (!(have && strcmp(have, "true") == 0) && (rc = put_tagged(ctx, ws, model, target, tag, 1)))
        goto done;
    for (size_t i = 0; i < json_object_array_length(holders); i++) {
        json_object *h = json_object_array_get_idx(holders, i);
        const char *name = aml_str(h, "name", NULL);
        if (!name || strcmp(name, version) == 0)
            continue;
        if (!before)
            before = name;
        if ((rc = put_tagged(ctx, ws, model, h, tag, 0)) != 0)
            goto done;
    }
    if (!mlstage_dry_run(ctx)) {
        if (before)
            mlstage_info(ctx, "alias %s of model %s: version %s -> %s", alias, model, before,
                         version);
        else
            mlstage_info(ctx, "alias %s of model %s -> version %s", alias, model, version);
    }
    if (previous && before)
        *previous = strdup(before);
done:
    json_object_put(holders);
    json_object_put(target);
    free(tag);
    free(path);
    return rc;
}
