/* aml_workspace.c — the Azure ML workspace an azureml half works in, its datastores, and small
 * helpers.
 */
#include "aml.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Margin kept from the stage's timeout, to say what goes on before the host stops the plugin. */
#define AML_DEADLINE_MARGIN_S 15.0
/* A long-running wait without a stage timeout: the core's own bound. */
#define AML_DEADLINE_DEFAULT_S 3600.0

/* ---- helpers -------------------------------------------------------------- */

static json_object *walk(json_object *o, va_list ap)
{
    const char *key;
    while (o && (key = va_arg(ap, const char *)) != NULL) {
        json_object *next = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &next))
            return NULL;
        o = next;
    }
    return o;
}

const char *aml_str(json_object *o, ...)
{
    va_list ap;
    va_start(ap, o);
    json_object *v = walk(o, ap);
    va_end(ap);
    if (!v || json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
        return NULL;
    return json_object_get_string(v);
}

json_object *aml_get(json_object *o, ...)
{
    va_list ap;
    va_start(ap, o);
    json_object *v = walk(o, ap);
    va_end(ap);
    return v && (json_object_is_type(v, json_type_object) ||
                 json_object_is_type(v, json_type_array))
               ? v
               : NULL;
}

const char *aml_string_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

json_object *aml_object_of(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

int aml_version_number(const char *name)
{
    if (!name || !*name || name[0] == '0' || strlen(name) > 9)
        return 0;
    for (const char *p = name; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return (int)strtol(name, NULL, 10);
}

char *aml_fmt(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : out;
}

double aml_deadline(struct mlstage_ctx *ctx)
{
    double left = mlstage_time_left(ctx);
    if (left < 0)
        return AML_DEADLINE_DEFAULT_S;
    if (left > 2 * AML_DEADLINE_MARGIN_S)
        return left - AML_DEADLINE_MARGIN_S;
    return left > 2 ? left / 2 : 1;
}

void aml_sleep(double seconds)
{
    if (seconds <= 0)
        return;
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

int aml_valid_name(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 255 || !isalnum((unsigned char)name[0]))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_'))
            return 0;
    return 1;
}

/* ---- the workspace ---------------------------------------------------------- */

static int valid_subscription(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* Resource group names: 1-90 of letters, digits, '_', '-', '.', '(' and ')', not ending in '.'. */
static int valid_resource_group(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 90 || s[n - 1] == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_-.()", *p)))
            return 0;
    return 1;
}

/* Workspace names: 3-33 of letters, digits, '_' and '-', starting with a letter or digit. */
static int valid_workspace(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 33 || !isalnum((unsigned char)s[0]))
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

int aml_workspace_from_inputs(struct mlstage_ctx *ctx, struct aml_workspace *ws)
{
    static const struct {
        const char *key;
        int (*valid)(const char *);
        const char *form;
    } fields[] = {
        {"subscription_id", valid_subscription, "a subscription id (a GUID)"},
        {"resource_group", valid_resource_group, "a resource group name"},
        {"workspace", valid_workspace, "an Azure ML workspace name"},
    };
    const char *values[3];
    char missing[256] = "", bad[1024] = "";
    memset(ws, 0, sizeof(*ws));
    for (size_t i = 0; i < 3; i++) {
        const char *v = mlstage_input_string(ctx, fields[i].key, NULL);
        values[i] = v;
        if (!v || !*v)
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), "%s%s",
                     missing[0] ? ", " : "", fields[i].key);
        else if (!fields[i].valid(v))
            snprintf(bad + strlen(bad), sizeof(bad) - strlen(bad),
                     "%sinputs.%s: \"%.100s\" is not %s", bad[0] ? "; " : "", fields[i].key, v,
                     fields[i].form);
    }
    if (missing[0])
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "the azureml backend needs the workspace: inputs %s %s not set "
                                 "(in a manifest from ${var.subscription_id:-} and so on; in CI "
                                 "--set subscription_id=... --set resource_group=... --set "
                                 "workspace=...)",
                                 missing, strchr(missing, ',') ? "are" : "is");
    if (bad[0])
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s", bad);
    ws->subscription = strdup(values[0]);
    ws->resource_group = strdup(values[1]);
    ws->name = strdup(values[2]);
    ws->path = aml_fmt("/subscriptions/%s/resourceGroups/%s/providers/"
                       "Microsoft.MachineLearningServices/workspaces/%s",
                       values[0], values[1], values[2]);
    if (!ws->subscription || !ws->resource_group || !ws->name || !ws->path) {
        aml_workspace_free(ws);
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    return 0;
}

void aml_workspace_free(struct aml_workspace *ws)
{
    if (!ws)
        return;
    free(ws->subscription);
    free(ws->resource_group);
    free(ws->name);
    free(ws->path);
    memset(ws, 0, sizeof(*ws));
}

char *aml_path(const struct aml_workspace *ws, const char *fmt, ...)
{
    char *tail = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&tail, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *out = aml_fmt("%s%s", ws->path, tail);
    free(tail);
    return out;
}

int aml_workspace_location(struct mlstage_ctx *ctx, const struct aml_workspace *ws, char **location)
{
    json_object *doc = NULL;
    *location = NULL;
    int rc = mlstage_arm_request(ctx, "GET", ws->path, AML_API_VERSION, NULL, NULL, &doc);
    if (rc == 0) {
        const char *loc = aml_str(doc, "location", NULL);
        if (loc && *loc)
            *location = strdup(loc);
        else
            rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE, "workspace %s: the answer has no location",
                                   ws->name);
    }
    json_object_put(doc);
    return rc;
}

/* ---- datastores ---------------------------------------------------------------- */

void aml_datastore_free(struct aml_datastore *ds)
{
    if (!ds)
        return;
    free(ds->name);
    free(ds->account);
    free(ds->container);
    free(ds->url);
    free(ds->key);
    free(ds->sas);
    memset(ds, 0, sizeof(*ds));
}

/* The secrets of an AccountKey or SAS datastore, registered for masking before anything else. */
static int datastore_secrets(struct mlstage_ctx *ctx, const struct aml_workspace *ws,
                             struct aml_datastore *ds)
{
    json_object *doc = NULL;
    char *path = aml_path(ws, "/datastores/%s/listSecrets", ds->name);
    int rc = path ? mlstage_arm_request(ctx, "POST", path, AML_API_VERSION, NULL, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    free(path);
    if (rc)
        goto done;
    const char *type = aml_str(doc, "secretsType", NULL);
    const char *key = aml_str(doc, "key", NULL), *sas = aml_str(doc, "sasToken", NULL);
    if (key && *key)
        mlstage_secret_register(ctx, key);
    if (sas && *sas)
        mlstage_secret_register(ctx, sas);
    if (type && strcmp(type, "AccountKey") == 0 && key && *key) {
        ds->key = strdup(key);
        ds->target.auth = MLSTAGE_BLOB_SHARED_KEY;
        ds->target.account_key = ds->key;
    } else if (type && strcmp(type, "Sas") == 0 && sas && *sas) {
        ds->sas = strdup(sas);
        ds->target.auth = MLSTAGE_BLOB_SAS;
        ds->target.sas = ds->sas;
    } else {
        rc = mlstage_error_set(ctx, MLSTAGE_EAUTH,
                               "datastore %s: listSecrets gave no account key or SAS token "
                               "(secretsType %s); give the identity a storage role instead and "
                               "make the datastore identity-based",
                               ds->name, type ? type : "missing");
    }
done:
    json_object_put(doc);
    return rc;
}

int aml_datastore_open(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *name,
                       struct aml_datastore *ds)
{
    json_object *doc = NULL;
    memset(ds, 0, sizeof(*ds));
    if (!aml_valid_name(name))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "\"%s\" is not a datastore name",
                                 name ? name : "");
    char *path = aml_path(ws, "/datastores/%s", name);
    int rc = path ? mlstage_arm_request(ctx, "GET", path, AML_API_VERSION, NULL, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    free(path);
    if (rc)
        goto done;
    json_object *props = aml_get(doc, "properties", NULL);
    const char *type = aml_str(props, "datastoreType", NULL);
    const char *account = aml_str(props, "accountName", NULL);
    const char *container = aml_str(props, "containerName", NULL);
    const char *endpoint = aml_str(props, "endpoint", NULL);
    const char *protocol = aml_str(props, "protocol", NULL);
    if (!type || strcmp(type, "AzureBlob") != 0 || !account || !container) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "datastore %s of workspace %s is not an Azure Blob datastore "
                               "(datastoreType %s); name a blob datastore (workspaceblobstore is "
                               "every workspace's)",
                               name, ws->name, type ? type : "missing");
        goto done;
    }
    ds->name = strdup(name);
    ds->account = strdup(account);
    ds->container = strdup(container);
    ds->url = aml_fmt("%s://%s.blob.%s", protocol && *protocol ? protocol : "https", account,
                      endpoint && *endpoint ? endpoint : "core.windows.net");
    if (!ds->name || !ds->account || !ds->container || !ds->url) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    ds->target.endpoint = ds->url;
    ds->target.container = ds->container;
    ds->target.account_name = ds->account;
    const char *creds = aml_str(props, "credentials", "credentialsType", NULL);
    if (creds && strcmp(creds, "None") == 0) {
        /* Identity-based: the credential chain's storage token, with the identity's own role. */
        ds->target.auth = MLSTAGE_BLOB_BEARER;
    } else {
        rc = datastore_secrets(ctx, ws, ds);
    }
done:
    json_object_put(doc);
    if (rc)
        aml_datastore_free(ds);
    return rc;
}

int aml_datastore_uri_split(struct mlstage_ctx *ctx, const char *uri, char **datastore, char **path)
{
    *datastore = *path = NULL;
    const char *ds = uri && strncmp(uri, "azureml://", 10) == 0 ? strstr(uri, "datastores/") : NULL;
    if (ds && ds != uri + 10 && ds[-1] != '/')
        ds = NULL;
    const char *name = ds ? ds + strlen("datastores/") : NULL;
    const char *paths = name ? strstr(name, "/paths/") : NULL;
    if (!paths || paths == name)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "\"%s\" is not a datastore URI "
                                 "(azureml://datastores/<datastore>/paths/<path>)",
                                 uri ? uri : "");
    *datastore = strndup(name, (size_t)(paths - name));
    *path = strdup(paths + strlen("/paths/"));
    if (!*datastore || !*path) {
        free(*datastore);
        free(*path);
        *datastore = *path = NULL;
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    return 0;
}
