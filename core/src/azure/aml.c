/* aml.c — Azure Machine Learning for plugins: the workspace's Resource Manager path, pageable
 * lists, and mlstage's alias convention on workspace model versions. */
#include "azure_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/context.h>
#include <mlstage/error.h>

/* A list that keeps handing out nextLinks is a broken service, not a big workspace. */
#define ARM_LIST_MAX_PAGES 1000

int mlstage_arm_list(struct mlstage_ctx *ctx, const char *path, const char *api_version,
                     json_object **items)
{
    json_object *all = json_object_new_array();
    char *next = NULL;
    int rc = 0, pages = 0;
    *items = NULL;
    const char *url = path;
    while (url) {
        json_object *page = NULL, *value = NULL;
        if (++pages > ARM_LIST_MAX_PAGES) {
            rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE,
                                   "GET %s: still more pages after %d; the service keeps "
                                   "returning nextLink",
                                   path, ARM_LIST_MAX_PAGES);
            break;
        }
        rc = mlstage_arm_request(ctx, "GET", url, api_version, NULL, NULL, &page);
        if (rc) {
            json_object_put(page);
            break;
        }
        if (json_object_object_get_ex(page, "value", &value) &&
            json_object_is_type(value, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(value); i++)
                json_object_array_add(all, json_object_get(json_object_array_get_idx(value, i)));
        }
        const char *link = azure_json_str(page, "nextLink");
        free(next);
        next = link && *link ? xstrdup(link) : NULL;
        url = next;
        json_object_put(page);
    }
    free(next);
    if (rc == 0)
        *items = all;
    else
        json_object_put(all);
    return rc;
}

int mlstage_aml_workspace_path(struct mlstage_ctx *ctx, const char *subscription_id,
                               const char *resource_group, const char *workspace, char **path)
{
    *path = NULL;
    const char *names[] = {"subscription_id", "resource_group", "workspace"};
    const char *values[] = {subscription_id, resource_group, workspace};
    const char *absent[3];
    int n = 0;
    for (size_t i = 0; i < 3; i++)
        if (!values[i] || !*values[i])
            absent[n++] = names[i];
    struct buf missing;
    buf_init(&missing);
    for (int i = 0; i < n; i++)
        buf_printf(&missing, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", absent[i]);
    if (n) {
        int rc = mlstage_error_set(
            ctx, MLSTAGE_EINPUT,
            "the azureml backend needs the Azure ML workspace: input%s %s %s not set (set %s in "
            "the manifest, e.g. subscription_id: ${var.subscription_id:-}, or pass --set "
            "subscription_id=... --set resource_group=... --set workspace=...)",
            n > 1 ? "s" : "", missing.data, n > 1 ? "are" : "is", n > 1 ? "them" : "it");
        buf_free(&missing);
        return rc;
    }
    buf_free(&missing);
    char *enc[3];
    for (size_t i = 0; i < 3; i++)
        enc[i] = mlstage_url_encode(values[i]);
    struct buf b;
    buf_init(&b);
    buf_printf(&b,
               "/subscriptions/%s/resourceGroups/%s/providers/"
               "Microsoft.MachineLearningServices/workspaces/%s",
               enc[0], enc[1], enc[2]);
    for (size_t i = 0; i < 3; i++)
        free(enc[i]);
    *path = buf_steal(&b);
    return 0;
}

/* A version name as a positive number, or 0 when it is not one ("1.2", "v3", "007" count as 0). */
static long version_number(const char *name)
{
    if (!name || !*name || name[0] == '0' || strlen(name) > 9)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return strtol(name, NULL, 10);
}

int mlstage_aml_model_alias_get(struct mlstage_ctx *ctx, const char *workspace_path,
                                const char *model, const char *alias, json_object **version)
{
    *version = NULL;
    if (!workspace_path || !model || !alias || !*model || !*alias)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "alias lookup needs a workspace, a model "
                                 "and an alias");
    struct buf tag, path;
    buf_init(&tag);
    buf_init(&path);
    buf_printf(&tag, MLSTAGE_AML_ALIAS_TAG_PREFIX "%s=true", alias);
    char *enc_tag = mlstage_url_encode(tag.data), *enc_model = mlstage_url_encode(model);
    buf_printf(&path, "%s/models/%s/versions?tags=%s", workspace_path, enc_model, enc_tag);
    free(enc_tag);
    free(enc_model);
    json_object *items = NULL;
    int rc = mlstage_arm_list(ctx, path.data, MLSTAGE_AML_API_VERSION, &items);
    if (rc == MLSTAGE_ENOTFOUND) {
        /* No such model yet: nothing carries the alias. */
        rc = 0;
        goto done;
    }
    if (rc)
        goto done;
    json_object *best = NULL;
    long best_n = -1;
    size_t holders = 0, name_len = strlen(tag.data) - strlen("=true");
    char *name = strndup(tag.data, name_len);
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *v = json_object_array_get_idx(items, i), *props = NULL, *tags = NULL;
        /* The filter is the service's; that the version carries the tag is checked here. */
        if (!json_object_object_get_ex(v, "properties", &props) ||
            !json_object_object_get_ex(props, "tags", &tags) ||
            strcmp(azure_json_str(tags, name) ?: "", "true") != 0)
            continue;
        holders++;
        long n = version_number(azure_json_str(v, "name"));
        /* The list is newest first: among names that are not numbers, the first one wins. */
        if (n > best_n) {
            best = v;
            best_n = n;
        }
    }
    if (holders > 1)
        mlstage_log(ctx, MLSTAGE_LOG_WARN,
                    "%zu versions of model %s carry the tag %s; taking version %s (an alias move "
                    "was interrupted, or someone tagged by hand)",
                    holders, model, tag.data, azure_json_str(best, "name"));
    if (best)
        *version = json_object_get(best);
    free(name);
done:
    json_object_put(items);
    buf_free(&tag);
    buf_free(&path);
    return rc;
}
