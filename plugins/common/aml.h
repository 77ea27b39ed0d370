/* aml.h — what the azureml halves of the plugins share: the workspace, its datastore, code assets
 * and model alias tags, on the core's Azure client. Compiled into each plugin that needs it. */
#ifndef MLSTAGE_PLUGIN_AML_H
#define MLSTAGE_PLUGIN_AML_H

#include <stddef.h>

#include <mlstage/mlstage.h>

/* Microsoft.MachineLearningServices, as in ../shared/reference/azure/ml/. */
#define AML_API_VERSION "2025-12-01"

/* A model version holds alias NAME when it carries the tag mlstage.alias.NAME = "true". */
#define AML_ALIAS_TAG_PREFIX "mlstage.alias."

/* ---- small JSON and text helpers ----------------------------------------- */

/* o.a.b... as a string (numbers as text), or NULL; the path ends with NULL. Borrowed. */
const char *aml_str(json_object *o, ...);
/* o.a.b... as an object or array, or NULL; the path ends with NULL. Borrowed. */
json_object *aml_get(json_object *o, ...);
/* o.key when it is a string, else NULL (unlike aml_str, not a number as text). Borrowed. */
const char *aml_string_of(json_object *o, const char *key);
/* o.key when it is an object (so it can be walked as one), else NULL. Borrowed. */
json_object *aml_object_of(json_object *o, const char *key);
/* A model version's name as a positive number ("3" is 3), 0 when it is not one ("03", "v3"). */
int aml_version_number(const char *name);
/* printf into a new string, or NULL when out of memory. */
char *aml_fmt(const char *fmt, ...) MLSTAGE_PRINTF(1, 2);
/* Seconds a long-running wait may take: what the stage's timeout leaves, less a margin. */
double aml_deadline(struct mlstage_ctx *ctx);
/* Sleeps, in seconds (fractions too). */
void aml_sleep(double seconds);

/* ---- the workspace --------------------------------------------------------- */

struct aml_workspace {
    char *subscription;
    char *resource_group;
    char *name;
    char *path; /* /subscriptions/.../providers/Microsoft.MachineLearningServices/workspaces/NAME */
};

/*
 * The workspace from the inputs subscription_id, resource_group and
 * workspace, which every azureml half takes. MLSTAGE_EINPUT naming each
 * one that is missing or malformed (they become a URL path: no '/').
 */
int aml_workspace_from_inputs(struct mlstage_ctx *ctx, struct aml_workspace *ws);
void aml_workspace_free(struct aml_workspace *ws);

/*
 * The inputs aml_workspace_from_inputs reads, as properties of a plugin's
 * input schema (text ending in a comma, spliced into "properties"): one
 * declaration, so that every schema says them as the reader takes them.
 * Null is allowed because the local backend does without them.
 */
#define AML_WORKSPACE_INPUTS_SCHEMA                                                                \
    "  \"subscription_id\": {\"type\": [\"string\", \"null\"],"                                    \
    "    \"description\": \"azureml: the workspace's subscription id\"},"                          \
    "  \"resource_group\": {\"type\": [\"string\", \"null\"],"                                     \
    "    \"description\": \"azureml: the workspace's resource group\"},"                           \
    "  \"workspace\": {\"type\": [\"string\", \"null\"],"                                          \
    "    \"description\": \"azureml: the Azure Machine Learning workspace\"},"

/* ws->path followed by the formatted text; a new string, NULL when out of memory. */
char *aml_path(const struct aml_workspace *ws, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);

/* The workspace's Azure region (its "location"); *location is a new string. */
int aml_workspace_location(struct mlstage_ctx *ctx, const struct aml_workspace *ws,
                           char **location);

/* Whether `name` is an asset or job name as the Azure ML paths want it: [A-Za-z0-9][-\w]{0,254}. */
int aml_valid_name(const char *name);

/* ---- datastores -------------------------------------------------------------- */

/* A blob datastore and how to reach it: the target is ready for mlstage_blob_*. */
struct aml_datastore {
    char *name;
    char *account;
    char *container;
    char *url; /* protocol://account.blob.endpoint: how Azure ML's URIs name the account */
    char *key; /* AccountKey credentials, or NULL */
    char *sas; /* SAS credentials, or NULL */
    struct mlstage_blob_target target;
};

/*
 * Looks up blob datastore `name` and its credentials: listSecrets for an
 * AccountKey or SAS datastore (the secret is registered for masking at
 * once), the credential chain's storage token for an identity-based one.
 */
int aml_datastore_open(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *name,
                       struct aml_datastore *ds);
void aml_datastore_free(struct aml_datastore *ds);

/*
 * Splits "azureml://datastores/NAME/paths/PATH" (also with the
 * subscriptions/.../workspaces/... prefix) into the datastore's name and
 * the path inside it, both new strings. MLSTAGE_EINPUT for another form.
 */
int aml_datastore_uri_split(struct mlstage_ctx *ctx, const char *uri, char **datastore,
                            char **path);

/* ---- code assets --------------------------------------------------------------- */

/*
 * Makes folder `dir` a code asset: its files (without .git, .mlstage,
 * __pycache__, *.pyc) are hashed, and unless that content is already a
 * version of code asset "mlstage-<folder name>" they are uploaded to
 * datastore `datastore` under LocalUpload/mlstage/<digest>/<folder name>/
 * and the code container and version (named by the digest) are PUT.
 * *code_id receives the version's ARM id (a new string). In a dry run the
 * uploads and PUTs are printed, not sent.
 */
int aml_code_upload(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *dir,
                    const char *datastore, char **code_id);

/* ---- model versions and their alias tags ------------------------------------------------ */

/*
 * The version `ref` of model `model` names: a version as it is, "latest"
 * (the container's latestVersion), or an alias (the newest version
 * carrying its tag). *version is a new string. MLSTAGE_ENOTFOUND, with a
 * message saying what was looked for, when there is none.
 */
int aml_model_resolve(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                      const char *ref, char **version);

/*
 * Points alias `alias` of `model` at `version`: tags that version
 * mlstage.alias.ALIAS=true first, then removes the tag from every other
 * version that carries it, so that the alias is never without a holder.
 * *previous (may be NULL) receives the version that held it before (a new
 * string), or NULL. In a dry run the PUTs are printed.
 */
int aml_alias_set(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *model,
                  const char *alias, const char *version, char **previous);

#endif
