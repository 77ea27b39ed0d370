/* register_azureml.c — the azureml backend of register: the files go to the workspace's default
 * datastore as block blobs (or are already in the workspace: model_uri), then a model version is
 * created with the commit's tags. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aml.h"
#include "register.h"

#define AML MLSTAGE_AML_API_VERSION
/* Tags mlstage reads back: the digest makes registration idempotent. */
#define TAG_DIGEST     "mlstage.digest"
#define TAG_PROVENANCE "mlstage.provenance_sha256"
#define PROP_DIGEST    "mlstage.digest"
#define PROP_PARAM     "mlstage.param."
/* Blobs live under mlstage/<model>/<this many hex digits of the digest>/. */
#define DIGEST_DIR_LEN 16
/* Someone else taking the number we chose, again and again, is not a race any more. */
#define PUT_ATTEMPTS 5
/* ModelVersions_CreateOrUpdate pathPattern of the name. */
#define AML_NAME_MAX 255

/* One registration's state: the workspace, the files, and where they go. */
struct aml_run {
    char *ws; /* the workspace's Resource Manager path */
    const char *sub, *rg, *wsname;
    char *versions;                              /* <ws>/models/<model>/versions */
    json_object *files;                          /* NULL for a model_uri: its files are not read */
    char digest[MLSTAGE_SHA256_HEX_LEN + 1];     /* "" for a model_uri */
    char provenance[MLSTAGE_SHA256_HEX_LEN + 1]; /* "" when the folder has no statement */
    /* the default datastore */
    char *datastore, *account, *container, *endpoint, *credentials_type;
    char *prefix; /* mlstage/<model>/<digest prefix> */
};

static void run_free(struct aml_run *r)
{
    free(r->ws);
    free(r->versions);
    json_object_put(r->files);
    free(r->datastore);
    free(r->account);
    free(r->container);
    free(r->endpoint);
    free(r->credentials_type);
    free(r->prefix);
    memset(r, 0, sizeof(*r));
}

/* The shortest text that reads back as the same double: 54.01, not 54.009999999999998. */
static void number_text(double v, char out[40])
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* ---- the workspace and the files ---------------------------------------------------------- */

static int check_model_name(struct mlstage_ctx *ctx, const char *model)
{
    int ok = model && isalnum((unsigned char)model[0]) && strlen(model) <= AML_NAME_MAX;
    for (const char *p = model; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '-' || *p == '_';
    if (!ok)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.model: \"%s\" cannot name an Azure ML model: it must "
                                 "match ^[a-zA-Z0-9][a-zA-Z0-9\\-_]{0,254}$ (no dots)",
                                 model ? model : "");
    return 0;
}

/*
 * A model_uri must be an Azure ML URI of files the workspace can read, as
 * train's model_uri output is (azureml://datastores/<d>/paths/<p>/) or a
 * job's output (azureml://jobs/<job>/outputs/<o>/paths/<p>): a local path
 * or another scheme would be registered as a version that points nowhere.
 */
static int check_model_uri(struct mlstage_ctx *ctx, const char *uri)
{
    static const char scheme[] = "azureml://";
    const char *rest = strncmp(uri, scheme, strlen(scheme)) == 0 ? uri + strlen(scheme) : NULL;
    int ok = rest && rest[strspn(rest, "/")] != '\0';
    for (const char *p = uri; ok && *p; p++)
        ok = !isspace((unsigned char)*p) && !iscntrl((unsigned char)*p);
    if (ok && (strncmp(rest, "datastores/", 11) == 0 || strncmp(rest, "subscriptions/", 14) == 0)) {
        /* The datastore form must name a datastore and a path inside it. */
        char *ds = NULL, *path = NULL;
        ok = aml_datastore_uri_split(ctx, uri, &ds, &path) == 0 && *ds && path[strspn(path, "/")];
        free(ds);
        free(path);
    }
    if (!ok)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.model_uri: \"%s\" is not an Azure ML URI of the model's "
                                 "files: expected azureml://datastores/<datastore>/paths/<path> "
                                 "(train's model_uri output) or "
                                 "azureml://jobs/<job>/outputs/<output>/paths/<path>; for files "
                                 "on this machine use inputs.model_dir",
                                 uri);
    return 0;
}

static int open_run(struct mlstage_ctx *ctx, const struct register_request *req, struct aml_run *r)
{
    int rc;
    r->sub = mlstage_input_string(ctx, "subscription_id", NULL);
    r->rg = mlstage_input_string(ctx, "resource_group", NULL);
    r->wsname = mlstage_input_string(ctx, "workspace", NULL);
    if ((rc = mlstage_aml_workspace_path(ctx, r->sub, r->rg, r->wsname, &r->ws)) != 0 ||
        (rc = check_model_name(ctx, req->model)) != 0)
        return rc;
    json_object_object_foreach(req->tags, key, val)
    {
        (void)val;
        if (strncmp(key, MLSTAGE_AML_ALIAS_TAG_PREFIX, strlen(MLSTAGE_AML_ALIAS_TAG_PREFIX)) == 0 ||
            strcmp(key, TAG_DIGEST) == 0 || strcmp(key, TAG_PROVENANCE) == 0)
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.tags.%s: mlstage sets this tag itself (aliases with "
                                     "inputs.alias)",
                                     key);
    }
    char *model = mlstage_url_encode(req->model);
    r->versions = aml_fmt("%s/models/%s/versions", r->ws, model);
    free(model);
    if (req->model_uri) {
        /* Registered in place: nothing here to hash or upload. */
        if ((rc = check_model_uri(ctx, req->model_uri)) != 0)
            return rc;
        return r->versions ? 0 : mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    /* The same walk and hash as the local registry, so the digest means the same everywhere. */
    if ((rc = mlstage_model_digest(ctx, req->model_dir, &r->files, r->digest)) != 0)
        return rc;
    r->prefix = aml_fmt("mlstage/%s/%.*s", req->model, DIGEST_DIR_LEN, r->digest);
    char base[PATH_MAX];
    if (realpath(req->model_dir, base)) {
        size_t n = strlen(base);
        while (n > 1 && base[n - 1] == '/')
            base[--n] = '\0';
        char *statement = aml_fmt("%s.intoto.json", base);
        struct stat st;
        if (statement && stat(statement, &st) == 0 && S_ISREG(st.st_mode) &&
            mlstage_sha256_file(statement, r->provenance, NULL) != 0)
            r->provenance[0] = '\0';
        free(statement);
    }
    return r->versions && r->prefix ? 0 : mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
}

/* ---- model versions -------------------------------------------------------------------- */

/*
 * The versions of the model that `query` selects (a list, newest first),
 * or an empty list when the model does not exist yet.
 */
static int list_versions(struct mlstage_ctx *ctx, const struct aml_run *r, const char *query,
                         json_object **items)
{
    char *path = aml_fmt("%s?%s", r->versions, query);
    int rc = path ? mlstage_arm_list(ctx, path, AML, items) : MLSTAGE_ENOMEM;
    free(path);
    if (rc == MLSTAGE_ENOTFOUND) {
        *items = json_object_new_array();
        rc = 0;
    }
    return rc;
}

static const char *digest_of(json_object *v)
{
    return aml_string_of(aml_object_of(aml_object_of(v, "properties"), "tags"), TAG_DIGEST);
}

static const char *model_uri_of(json_object *v)
{
    return aml_string_of(aml_object_of(v, "properties"), "modelUri");
}

/* The highest-numbered version of `items` whose field `get` reads is `want`: new reference, or
 * NULL. */
static json_object *highest_with(json_object *items, const char *(*get)(json_object *),
                                 const char *want)
{
    json_object *found = NULL;
    int best = 0;
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        json_object *v = json_object_array_get_idx(items, i);
        /* A list's filter is the service's; the comparison is ours. */
        if (strcmp(get(v) ?: "", want) != 0)
            continue;
        int n = aml_version_number(aml_string_of(v, "name"));
        if (n > best) {
            best = n;
            found = v;
        }
    }
    return found ? json_object_get(found) : NULL;
}

/* The version registered with these files (highest number), or *found NULL. */
static int find_by_digest(struct mlstage_ctx *ctx, const struct aml_run *r, json_object **found)
{
    json_object *items = NULL;
    char *filter = aml_fmt(TAG_DIGEST "=%s", r->digest);
    char *enc = mlstage_url_encode(filter);
    char *query = aml_fmt("tags=%s", enc);
    *found = NULL;
    int rc = list_versions(ctx, r, query, &items);
    free(query);
    free(enc);
    free(filter);
    if (rc)
        return rc;
    *found = highest_with(items, digest_of, r->digest);
    json_object_put(items);
    return 0;
}

/*
 * The version registered with this modelUri (highest number), or *found
 * NULL. The list cannot filter on modelUri, so every active version is read.
 */
static int find_by_uri(struct mlstage_ctx *ctx, const struct aml_run *r, const char *uri,
                       json_object **found)
{
    json_object *items = NULL;
    *found = NULL;
    int rc = list_versions(ctx, r, "listViewType=ActiveOnly", &items);
    if (rc)
        return rc;
    *found = highest_with(items, model_uri_of, uri);
    json_object_put(items);
    return 0;
}

/* The version that already holds what req registers: the same files, or the same model_uri. */
static int find_same(struct mlstage_ctx *ctx, const struct register_request *req,
                     const struct aml_run *r, json_object **found)
{
    return req->model_uri ? find_by_uri(ctx, r, req->model_uri, found)
                          : find_by_digest(ctx, r, found);
}

/* The highest version number the model has used, archived versions included (0: none). */
static int highest_version(struct mlstage_ctx *ctx, const struct aml_run *r, int *highest)
{
    json_object *items = NULL;
    *highest = 0;
    int rc = list_versions(ctx, r, "listViewType=All", &items);
    if (rc)
        return rc;
    for (size_t i = 0; i < json_object_array_length(items); i++) {
        int n = aml_version_number(aml_string_of(json_object_array_get_idx(items, i), "name"));
        if (n > *highest)
            *highest = n;
    }
    json_object_put(items);
    return 0;
}

/* ---- the datastore --------------------------------------------------------------------- */

static int read_datastore(struct mlstage_ctx *ctx, struct aml_run *r, json_object *ds)
{
    json_object *p = aml_object_of(ds, "properties");
    const char *type = aml_string_of(p, "datastoreType");
    const char *name = aml_string_of(ds, "name");
    if (!name || !type || strcmp(type, "AzureBlob") != 0)
        return mlstage_error_set(ctx, MLSTAGE_EAUTH,
                                 "datastore %s of workspace %s is %s, not AzureBlob: register "
                                 "uploads model files as block blobs",
                                 name ? name : "(unnamed)", r->wsname, type ? type : "untyped");
    const char *account = aml_string_of(p, "accountName"),
               *container = aml_string_of(p, "containerName");
    if (!account || !container)
        return mlstage_error_set(ctx, MLSTAGE_EAUTH,
                                 "datastore %s of workspace %s names no storage account or "
                                 "container",
                                 name, r->wsname);
    const char *suffix = aml_string_of(p, "endpoint"), *protocol = aml_string_of(p, "protocol");
    r->datastore = strdup(name);
    r->account = strdup(account);
    r->container = strdup(container);
    /* A datastore gives the cloud's suffix ("core.windows.net"), not the account's URL. */
    r->endpoint = aml_fmt("%s://%s.blob.%s", protocol ? protocol : "https", account,
                          suffix ? suffix : "core.windows.net");
    json_object *creds = aml_object_of(p, "credentials");
    r->credentials_type = strdup(aml_string_of(creds, "credentialsType") ?: "None");
    return 0;
}

/* The workspace's default datastore (Datastores_List with isDefault=true). */
static int default_datastore(struct mlstage_ctx *ctx, struct aml_run *r)
{
    json_object *items = NULL;
    char *path = aml_fmt("%s/datastores?isDefault=true", r->ws);
    int rc = mlstage_arm_list(ctx, path, AML, &items);
    free(path);
    if (rc)
        return rc;
    json_object *pick = NULL;
    for (size_t i = 0; i < json_object_array_length(items) && !pick; i++) {
        json_object *d = json_object_array_get_idx(items, i), *is = NULL;
        if (json_object_object_get_ex(aml_object_of(d, "properties"), "isDefault", &is) &&
            json_object_get_boolean(is))
            pick = d;
    }
    if (!pick)
        rc = mlstage_error_set(ctx, MLSTAGE_EAUTH,
                               "workspace %s has no default datastore to upload the model to",
                               r->wsname);
    else
        rc = read_datastore(ctx, r, pick);
    json_object_put(items);
    return rc;
}

/* A named datastore (Datastores_Get), for the files of a version registered before. */
static int named_datastore(struct mlstage_ctx *ctx, struct aml_run *r, const char *name)
{
    char *enc = mlstage_url_encode(name);
    char *path = aml_fmt("%s/datastores/%s", r->ws, enc);
    json_object *ds = NULL;
    int rc = mlstage_arm_request(ctx, "GET", path, AML, NULL, NULL, &ds);
    if (rc == 0)
        rc = read_datastore(ctx, r, ds);
    json_object_put(ds);
    free(path);
    free(enc);
    return rc;
}

static void wipe_free(char *s)
{
    if (s) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

/*
 * How to write to the datastore's container: its account key or SAS
 * (Datastores_ListSecrets) when it keeps credentials, else a storage token
 * of our own identity. *secret receives the key or SAS (wipe_free it).
 */
static int upload_target(struct mlstage_ctx *ctx, struct aml_run *r, struct mlstage_blob_target *t,
                         char **secret)
{
    *secret = NULL;
    memset(t, 0, sizeof(*t));
    t->endpoint = r->endpoint;
    t->container = r->container;
    t->auth = MLSTAGE_BLOB_BEARER;
    const char *kind = r->credentials_type;
    int keeps_secret = strcmp(kind, "AccountKey") == 0 || strcmp(kind, "Sas") == 0;
    if (mlstage_dry_run(ctx)) {
        /* Uploads are only printed: the datastore's secrets are not needed, so not read. */
        if (keeps_secret)
            mlstage_plan(ctx,
                         "POST %s/datastores/%s/listSecrets (the datastore's %s credentials; not "
                         "read in a dry run)",
                         r->ws, r->datastore, kind);
        return 0;
    }
    if (!keeps_secret) {
        /* None (identity-based access), ServicePrincipal, Certificate: our identity's token. */
        mlstage_info(ctx,
                     "datastore %s keeps no account key or SAS (%s): uploading with a storage "
                     "token of this identity, which needs Storage Blob Data Contributor on the "
                     "account",
                     r->datastore, kind);
        return 0;
    }
    char *enc = mlstage_url_encode(r->datastore);
    char *path = aml_fmt("%s/datastores/%s/listSecrets", r->ws, enc);
    json_object *secrets = NULL;
    int rc = mlstage_arm_request(ctx, "POST", path, AML, NULL, NULL, &secrets);
    free(path);
    free(enc);
    if (rc) {
        json_object_put(secrets);
        return rc;
    }
    const char *type = aml_string_of(secrets, "secretsType");
    const char *key = aml_string_of(secrets, "key"), *sas = aml_string_of(secrets, "sasToken");
    /* Masked before anything could print them. */
    if (key)
        mlstage_secret_register(ctx, key);
    if (sas)
        mlstage_secret_register(ctx, sas);
    if (type && strcmp(type, "AccountKey") == 0 && key && *key) {
        t->auth = MLSTAGE_BLOB_SHARED_KEY;
        t->account_name = r->account;
        t->account_key = *secret = strdup(key);
    } else if (type && strcmp(type, "Sas") == 0 && sas && *sas) {
        t->auth = MLSTAGE_BLOB_SAS;
        t->sas = *secret = strdup(sas);
    } else {
        mlstage_info(ctx,
                     "datastore %s returned no usable secret (%s): uploading with a storage token "
                     "of this identity",
                     r->datastore, type ? type : "no secretsType");
    }
    json_object_put(secrets);
    return 0;
}

/* ---- uploads ----------------------------------------------------------------------------- */

/*
 * Uploads every file under the prefix. Each file is hashed again as it is
 * sent; a file that changed since the digest was taken stops everything,
 * so the version can only ever describe what was uploaded.
 */
static int upload_files(struct mlstage_ctx *ctx, struct aml_run *r,
                        const struct mlstage_blob_target *t)
{
    size_t n = json_object_array_length(r->files);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += (uint64_t)json_object_get_int64(
            json_object_object_get(json_object_array_get_idx(r->files, i), "size"));
    mlstage_info(ctx, "%s %zu file%s (%llu bytes) to datastore %s: %s/%s/",
                 mlstage_dry_run(ctx) ? "would upload" : "uploading", n, n == 1 ? "" : "s",
                 (unsigned long long)total, r->datastore, r->container, r->prefix);
    for (size_t i = 0; i < n; i++) {
        json_object *f = json_object_array_get_idx(r->files, i);
        const char *rel = aml_string_of(f, "path"), *file = aml_string_of(f, "file"),
                   *want = aml_string_of(f, "sha256");
        char *blob = aml_fmt("%s/%s", r->prefix, rel);
        char got[MLSTAGE_SHA256_HEX_LEN + 1] = "";
        int rc =
            blob ? mlstage_blob_upload_file(ctx, t, file, blob, NULL, got, NULL) : MLSTAGE_ENOMEM;
        free(blob);
        if (rc)
            return rc;
        if (strcmp(got, want) != 0)
            return mlstage_error_set(ctx, MLSTAGE_EIO,
                                     "%s changed while it was being registered (sha256 %.12s "
                                     "when hashed, %.12s when uploaded): nothing was registered",
                                     file, want, got);
    }
    return 0;
}

/* ---- the version ----------------------------------------------------------------------- */

static char *model_uri(const struct aml_run *r, const char *datastore, const char *path)
{
    /* The long form the Azure ML SDK writes for a workspace datastore path. */
    return aml_fmt(
        "azureml://subscriptions/%s/resourcegroups/%s/workspaces/%s/datastores/%s/paths/%s", r->sub,
        r->rg, r->wsname, datastore, path);
}

/* "metrics" and "params" of a version, read back from its properties. */
static void add_recorded(json_object *record, json_object *props)
{
    json_object *metrics = json_object_new_object(), *params = json_object_new_object();
    size_t mlen = strlen(MLSTAGE_AML_METRIC_PREFIX), plen = strlen(PROP_PARAM);
    json_object_object_add(record, "metrics", metrics);
    json_object_object_add(record, "params", params);
    if (!props)
        return;
    json_object_object_foreach(props, key, val)
    {
        const char *text = json_object_get_string(val);
        if (strncmp(key, MLSTAGE_AML_METRIC_PREFIX, mlen) == 0 && key[mlen]) {
            char *end = NULL;
            errno = 0;
            double d = strtod(text, &end);
            if (end != text && !*end && errno == 0 && isfinite(d))
                json_object_object_add(metrics, key + mlen, json_object_new_double_s(d, text));
        } else if (strncmp(key, PROP_PARAM, plen) == 0 && key[plen]) {
            json_object *parsed = json_tokener_parse(text);
            json_object_object_add(params, key + plen,
                                   parsed ? parsed : json_object_new_string(text));
        }
    }
}

/*
 * The registration's record, shaped like the local model.json: name,
 * version, digest, files, metrics, params, tags, aliases, plus where the
 * version lives (id, modelUri).
 */
static json_object *record_of(struct mlstage_ctx *ctx, const struct register_request *req,
                              const struct aml_run *r, json_object *resource)
{
    json_object *rec = json_object_new_object(), *props = aml_object_of(resource, "properties");
    json_object *tags = aml_object_of(props, "tags"), *sys = aml_object_of(resource, "systemData");
    json_object_object_add(rec, "name", json_object_new_string(req->model));
    json_object_object_add(
        rec, "version", json_object_new_int(aml_version_number(aml_string_of(resource, "name"))));
    if (aml_string_of(sys, "createdAt"))
        json_object_object_add(rec, "created",
                               json_object_new_string(aml_string_of(sys, "createdAt")));
    /* A model_uri's files were not read here: no digest or file list to record. */
    if (r->digest[0])
        json_object_object_add(rec, "digest", json_object_new_string(r->digest));
    json_object *files = json_object_new_array();
    for (size_t i = 0; r->files && i < json_object_array_length(r->files); i++) {
        json_object *f = json_object_array_get_idx(r->files, i), *copy = json_object_new_object();
        json_object_object_add(copy, "path", json_object_get(json_object_object_get(f, "path")));
        json_object_object_add(copy, "sha256",
                               json_object_get(json_object_object_get(f, "sha256")));
        json_object_object_add(copy, "size", json_object_get(json_object_object_get(f, "size")));
        json_object_array_add(files, copy);
    }
    json_object_object_add(rec, "files", files);
    add_recorded(rec, aml_object_of(props, "properties"));
    json_object_object_add(rec, "tags", tags ? json_object_get(tags) : json_object_new_object());
    json_object *aliases = json_object_new_array();
    size_t alen = strlen(MLSTAGE_AML_ALIAS_TAG_PREFIX);
    if (tags) {
        json_object_object_foreach(tags, key, val)
        {
            if (strncmp(key, MLSTAGE_AML_ALIAS_TAG_PREFIX, alen) == 0 && key[alen] &&
                strcmp(json_object_get_string(val), "true") == 0)
                json_object_array_add(aliases, json_object_new_string(key + alen));
        }
    }
    json_object_object_add(rec, "aliases", aliases);
    json_object_object_add(rec, "run_id", json_object_new_string(mlstage_run_id(ctx) ?: ""));
    if (aml_string_of(props, "description"))
        json_object_object_add(rec, "description",
                               json_object_new_string(aml_string_of(props, "description")));
    if (aml_string_of(resource, "id"))
        json_object_object_add(rec, "id", json_object_new_string(aml_string_of(resource, "id")));
    if (aml_string_of(props, "modelUri"))
        json_object_object_add(rec, "modelUri",
                               json_object_new_string(aml_string_of(props, "modelUri")));
    json_object_object_add(rec, "workspace", json_object_new_string(r->ws));
    return rec;
}

/* The ModelVersion body: files by modelUri, the digest and metrics as properties, tags. */
static json_object *version_body(struct mlstage_ctx *ctx, const struct register_request *req,
                                 const struct aml_run *r, const char *uri)
{
    json_object *props = json_object_new_object(), *body = json_object_new_object();
    json_object *tags = mlstage_provenance_tags(ctx), *bag = json_object_new_object();
    json_object_object_foreach(req->tags, tk, tv)
    {
        json_object_object_add(tags, tk, json_object_get(tv));
    }
    if (r->digest[0])
        json_object_object_add(tags, TAG_DIGEST, json_object_new_string(r->digest));
    if (req->alias) {
        /* A new version carries its alias from the start; set_alias then only clears others. */
        char tag[128];
        snprintf(tag, sizeof(tag), MLSTAGE_AML_ALIAS_TAG_PREFIX "%s", req->alias);
        json_object_object_add(tags, tag, json_object_new_string("true"));
    }
    if (r->provenance[0])
        json_object_object_add(tags, TAG_PROVENANCE, json_object_new_string(r->provenance));

    if (r->digest[0])
        json_object_object_add(bag, PROP_DIGEST, json_object_new_string(r->digest));
    if (req->metrics) {
        json_object_object_foreach(req->metrics, mk, mv)
        {
            json_type t = json_object_get_type(mv);
            if (t != json_type_double && t != json_type_int) {
                mlstage_warn(ctx, "metric %s is not a number; it is not recorded with the version",
                             mk);
                continue;
            }
            char key[320], num[40];
            snprintf(key, sizeof(key), MLSTAGE_AML_METRIC_PREFIX "%s", mk);
            number_text(json_object_get_double(mv), num);
            json_object_object_add(bag, key, json_object_new_string(num));
        }
    }
    if (req->params) {
        json_object_object_foreach(req->params, pk, pv)
        {
            char key[320];
            snprintf(key, sizeof(key), PROP_PARAM "%s", pk);
            json_object_object_add(bag, key,
                                   json_object_new_string(json_object_is_type(pv, json_type_string)
                                                              ? json_object_get_string(pv)
                                                              : json_object_to_json_string_ext(
                                                                    pv, JSON_C_TO_STRING_PLAIN)));
        }
    }
    if (req->description)
        json_object_object_add(props, "description", json_object_new_string(req->description));
    /* The SDK's type for a folder of files of any framework (AssetTypes.CUSTOM_MODEL). */
    json_object_object_add(props, "modelType", json_object_new_string("custom_model"));
    json_object_object_add(props, "modelUri", json_object_new_string(uri));
    json_object_object_add(props, "properties", bag);
    json_object_object_add(props, "tags", tags);
    json_object_object_add(body, "properties", props);
    return body;
}

/*
 * PUTs the version under the next free number. A 409 means someone took
 * the number (or registered these very files) meanwhile: look again,
 * then take the next one, a bounded number of times.
 */
static int create(struct mlstage_ctx *ctx, const struct register_request *req, struct aml_run *r,
                  json_object *body, struct register_result *res, json_object **resource)
{
    int tried = 0, rc = 0;
    *resource = NULL;
    for (int attempt = 1; attempt <= PUT_ATTEMPTS; attempt++) {
        int highest = 0;
        if ((rc = highest_version(ctx, r, &highest)) != 0)
            return rc;
        int version = (highest > tried ? highest : tried) + 1;
        char *path = aml_fmt("%s/%d", r->versions, version);
        long status = 0;
        json_object *answer = NULL;
        rc = path ? mlstage_arm_request(ctx, "PUT", path, AML, body, &status, &answer)
                  : MLSTAGE_ENOMEM;
        free(path);
        if (rc == 0) {
            res->version = version;
            res->planned = status == 0;
            if (status == 200) {
                /* The number existed with this very modelUri: these files, registered meanwhile. */
                res->existed = 1;
                mlstage_info(ctx, "version %d of %s was registered with these files meanwhile",
                             version, req->model);
            }
            *resource = answer;
            return 0;
        }
        json_object_put(answer);
        if (status != 409)
            return rc;
        tried = version;
        json_object *same = NULL;
        if ((rc = find_same(ctx, req, r, &same)) != 0)
            return rc;
        if (same) {
            res->existed = 1;
            res->version = aml_version_number(aml_string_of(same, "name"));
            *resource = same;
            return 0;
        }
        mlstage_info(ctx, "version %d of model %s was taken meanwhile (409); trying the next one",
                     version, req->model);
    }
    if (req->model_uri)
        return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                 "model %s: %d version numbers in a row were taken by other "
                                 "registrations while this one tried; nothing was registered",
                                 req->model, PUT_ATTEMPTS);
    return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                             "model %s: %d version numbers in a row were taken by other "
                             "registrations while this one tried; nothing was registered (the "
                             "uploaded files stay under %s/%s/)",
                             req->model, PUT_ATTEMPTS, r->container, r->prefix);
}

/* What the result says of a version's files: uri (its modelUri) and path (their blob folder). */
static int locate(struct mlstage_ctx *ctx, struct aml_run *r, const char *uri,
                  struct register_result *res)
{
    res->uri = strdup(uri ? uri : "");
    const char *ds = uri ? strstr(uri, "/datastores/") : NULL;
    const char *paths = ds ? strstr(ds, "/paths/") : NULL;
    if (!paths) {
        res->path = strdup(uri ? uri : "");
        return res->uri && res->path ? 0 : MLSTAGE_ENOMEM;
    }
    char *name =
        strndup(ds + strlen("/datastores/"), (size_t)(paths - ds) - strlen("/datastores/"));
    int rc = 0;
    if (!r->datastore || strcmp(r->datastore, name) != 0) {
        free(r->datastore);
        free(r->account);
        free(r->container);
        free(r->endpoint);
        free(r->credentials_type);
        r->datastore = r->account = r->container = r->endpoint = r->credentials_type = NULL;
        rc = named_datastore(ctx, r, name);
    }
    if (rc == 0) {
        res->path = mlstage_blob_url(r->endpoint, r->container, paths + strlen("/paths/"));
    } else {
        /* The version is there either way; only the blob URL of its files is not known. */
        mlstage_warn(ctx, "datastore %s of %s: %s", name, uri, mlstage_error_message(ctx));
        res->path = strdup(uri);
        rc = 0;
    }
    free(name);
    return res->uri && res->path ? rc : MLSTAGE_ENOMEM;
}

static int azureml_create_version(struct mlstage_ctx *ctx, const struct register_request *req,
                                  struct register_result *res)
{
    struct aml_run r = {0};
    json_object *found = NULL, *body = NULL, *resource = NULL;
    struct mlstage_blob_target target;
    char *secret = NULL, *uri = NULL;
    int rc;
    if ((rc = open_run(ctx, req, &r)) != 0)
        goto done;
    snprintf(res->digest, sizeof(res->digest), "%s", r.digest);

    /* Idempotent: the same files (or model_uri) give back their version; nothing is uploaded. */
    if ((rc = find_same(ctx, req, &r, &found)) != 0)
        goto done;
    if (found) {
        res->existed = 1;
        res->version = aml_version_number(aml_string_of(found, "name"));
        resource = json_object_get(found);
        if (mlstage_dry_run(ctx) && req->model_uri)
            mlstage_plan(ctx, "model %s: %s is already version %d; nothing to register", req->model,
                         req->model_uri, res->version);
        else if (mlstage_dry_run(ctx))
            mlstage_plan(ctx,
                         "model %s: these files are already version %d (digest %.12s); "
                         "nothing to upload or register",
                         req->model, res->version, r.digest);
        goto record;
    }

    if (req->model_uri) {
        /* The files are where the version will point: the workspace reads them in place. */
        uri = strdup(req->model_uri);
    } else {
        if ((rc = default_datastore(ctx, &r)) != 0 ||
            (rc = upload_target(ctx, &r, &target, &secret)) != 0)
            goto done;
        /* Every file is in storage before the version that points at them exists. */
        if ((rc = upload_files(ctx, &r, &target)) != 0)
            goto done;
        uri = model_uri(&r, r.datastore, r.prefix);
    }
    if (!uri) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    body = version_body(ctx, req, &r, uri);
    if ((rc = create(ctx, req, &r, body, res, &resource)) != 0)
        goto done;
    if (res->planned) {
        /* Nothing answered a planned PUT: the record is what was asked for. */
        json_object *planned = json_object_new_object();
        char name[16];
        snprintf(name, sizeof(name), "%d", res->version);
        json_object_object_add(planned, "name", json_object_new_string(name));
        json_object_object_add(planned, "properties",
                               json_object_get(json_object_object_get(body, "properties")));
        resource = planned;
    }

record:
    res->doc = record_of(ctx, req, &r, resource);
    if (res->planned)
        json_object_object_add(res->doc, "planned", json_object_new_boolean(1));
    {
        json_object *props = aml_object_of(resource, "properties");
        if ((rc = locate(ctx, &r, aml_string_of(props, "modelUri"), res)) != 0)
            goto done;
        const char *id = aml_string_of(resource, "id");
        res->id = id ? strdup(id) : aml_fmt("%s/%d", r.versions, res->version);
    }
done:
    json_object_put(found);
    json_object_put(body);
    json_object_put(resource);
    wipe_free(secret);
    free(uri);
    run_free(&r);
    return rc;
}

/* ---- aliases ---------------------------------------------------------------------------- */

/* PUTs `version` (a ModelVersionResource) back with the alias tag added or removed. */
static int retag(struct mlstage_ctx *ctx, const struct aml_run *r, json_object *version,
                 const char *tag, int add)
{
    json_object *props = aml_object_of(version, "properties");
    json_object *copy = NULL, *tags = NULL;
    if (!props || json_object_deep_copy(props, &copy, NULL) != 0)
        return mlstage_error_set(ctx, MLSTAGE_EREMOTE, "a model version without properties");
    /* Read-only members are the service's to set. */
    json_object_object_del(copy, "provisioningState");
    if (!json_object_object_get_ex(copy, "tags", &tags) ||
        !json_object_is_type(tags, json_type_object)) {
        tags = json_object_new_object();
        json_object_object_add(copy, "tags", tags);
    }
    if (add)
        json_object_object_add(tags, tag, json_object_new_string("true"));
    else
        json_object_object_del(tags, tag);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "properties", copy);
    char *path = aml_fmt("%s/%s", r->versions, aml_string_of(version, "name"));
    int rc = mlstage_arm_request(ctx, "PUT", path, AML, body, NULL, NULL);
    free(path);
    json_object_put(body);
    return rc;
}

/*
 * Moves the alias as MLSTAGE_AML_ALIAS_TAG_PREFIX describes: the new holder
 * gets the tag first, then every other holder loses it, so that readers
 * always find a holder and, if this is interrupted, the highest one wins.
 */
static int azureml_set_alias(struct mlstage_ctx *ctx, const struct register_request *req,
                             struct register_result *res)
{
    struct aml_run r = {0};
    json_object *holders = NULL, *mine = NULL;
    char *tag = aml_fmt(MLSTAGE_AML_ALIAS_TAG_PREFIX "%s", req->alias);
    int rc = 0;
    res->alias_previous = 0;
    r.sub = mlstage_input_string(ctx, "subscription_id", NULL);
    r.rg = mlstage_input_string(ctx, "resource_group", NULL);
    r.wsname = mlstage_input_string(ctx, "workspace", NULL);
    if ((rc = mlstage_aml_workspace_path(ctx, r.sub, r.rg, r.wsname, &r.ws)) != 0)
        goto done;
    char *model = mlstage_url_encode(req->model);
    r.versions = aml_fmt("%s/models/%s/versions", r.ws, model);
    free(model);
    char *filter = aml_fmt("%s=true", tag), *enc = mlstage_url_encode(filter);
    char *query = aml_fmt("tags=%s", enc);
    rc = list_versions(ctx, &r, query, &holders);
    free(query);
    free(enc);
    free(filter);
    if (rc)
        goto done;
    /* A version this run created (or plans) got the tag in its own PUT. */
    int fresh = !res->existed, held = fresh;
    for (size_t i = json_object_array_length(holders); i-- > 0;) {
        /* The filter is the service's; that a version carries the tag is checked here. */
        json_object *v = json_object_array_get_idx(holders, i);
        if (strcmp(aml_string_of(aml_object_of(aml_object_of(v, "properties"), "tags"), tag) ?: "",
                   "true") != 0)
            json_object_array_del_idx(holders, i, 1);
    }
    for (size_t i = 0; i < json_object_array_length(holders); i++) {
        int n = aml_version_number(aml_string_of(json_object_array_get_idx(holders, i), "name"));
        if (n == res->version)
            held = 1;
        /* "Before": what the alias resolved to, not counting the tag this run just wrote. */
        if (n > res->alias_previous && !(fresh && n == res->version))
            res->alias_previous = n;
    }
    if (!held) {
        char *path = aml_fmt("%s/%d", r.versions, res->version);
        rc = mlstage_arm_request(ctx, "GET", path, AML, NULL, NULL, &mine);
        free(path);
        if (rc || (rc = retag(ctx, &r, mine, tag, 1)) != 0)
            goto done;
        json_object *tags = NULL;
        if (res->doc && json_object_object_get_ex(res->doc, "tags", &tags) && !mlstage_dry_run(ctx))
            json_object_object_add(tags, tag, json_object_new_string("true"));
    }
    for (size_t i = 0; i < json_object_array_length(holders); i++) {
        json_object *v = json_object_array_get_idx(holders, i);
        if (aml_version_number(aml_string_of(v, "name")) == res->version)
            continue;
        if ((rc = retag(ctx, &r, v, tag, 0)) != 0)
            goto done;
    }
done:
    json_object_put(holders);
    json_object_put(mine);
    free(tag);
    run_free(&r);
    return rc;
}

const struct register_backend register_azureml_backend = {
    .name = "azureml",
    .takes_model_uri = 1,
    .create_version = azureml_create_version,
    .set_alias = azureml_set_alias,
};
