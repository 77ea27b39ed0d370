/* azure.h — Azure for plugins: the credential chain, Resource Manager with long-running operations,
 * block uploads to Blob Storage and reading small blobs back. */
#ifndef MLSTAGE_AZURE_H
#define MLSTAGE_AZURE_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <mlstage/export.h>
#include <mlstage/fs.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;

/* ---- credentials -------------------------------------------------------- */

/* The audience of Azure Storage data-plane tokens. */
#define MLSTAGE_AZURE_SCOPE_STORAGE "https://storage.azure.com/.default"

/*
 * An access token for `scope` ("<resource>/.default"), from the first
 * source that is set up, in the order and with the variables of
 * azure-identity's DefaultAzureCredential:
 *
 *   1. EnvironmentCredential: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET;
 *   2. WorkloadIdentityCredential: AZURE_TENANT_ID, AZURE_CLIENT_ID and the
 *      assertion in AZURE_FEDERATED_TOKEN_FILE (re-read when older than 600 s);
 *   3. GitHubActionsCredential: the runner's OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL,
 *      ACTIONS_ID_TOKEN_REQUEST_TOKEN; audience api://AzureADTokenExchange) as the
 *      client assertion for AZURE_TENANT_ID / AZURE_CLIENT_ID;
 *   4. ManagedIdentityCredential: IDENTITY_ENDPOINT + IDENTITY_HEADER, else IMDS
 *      (IMDS_ENDPOINT or http://169.254.169.254, probed with a short connect
 *      timeout); AZURE_CLIENT_ID selects a user-assigned identity;
 *   5. AzureCliCredential: `az account get-access-token` when az is on PATH.
 *
 * The Entra host is AZURE_AUTHORITY_HOST (default login.microsoftonline.com).
 * AZURE_TOKEN_CREDENTIALS narrows the chain as in azure-identity: "dev"
 * (the CLI only), "prod" (1-4), or one source's name.
 *
 * A source that is not set up is skipped; one that is set up but fails
 * ends the chain (as azure-identity does, so a wrong secret never falls
 * through to another identity). Tokens are cached per scope until five
 * minutes before they expire, registered as secrets (masked in every log,
 * output and file) and never logged. The request for a token is read-only:
 * a dry run sends it.
 *
 * On success *token is a new string the caller frees with free(), and
 * *expires_on (may be NULL) the expiry in seconds since the epoch.
 * Otherwise MLSTAGE_EAUTH with one message listing each source tried and
 * why it failed (MLSTAGE_EREMOTE when a configured source's service kept
 * failing after retries). Thread-safe.
 */
MLSTAGE_API int mlstage_azure_token(struct mlstage_ctx *ctx, const char *scope, char **token,
                                    int64_t *expires_on);

/*
 * Forgets the cached token for `scope`, so that the next mlstage_azure_token
 * fetches a new one: for a service that rejects a token as expired.
 */
MLSTAGE_API void mlstage_azure_token_invalidate(struct mlstage_ctx *ctx, const char *scope);

/* ---- Resource Manager --------------------------------------------------- */

/*
 * The Resource Manager endpoint the mlstage_arm_* calls send to:
 * MLSTAGE_ARM_ENDPOINT, or https://management.azure.com, without a trailing
 * '/'. For plans and messages that must show the exact URL of a request a
 * plugin prepares (a plugin never reads the environment itself). A new
 * string the caller frees with free().
 */
MLSTAGE_API char *mlstage_arm_endpoint(const struct mlstage_ctx *ctx);

/*
 * One Resource Manager request. `path` is either a path under the endpoint
 * (MLSTAGE_ARM_ENDPOINT, default https://management.azure.com), such as
 * "/subscriptions/.../resourceGroups/rg", or an absolute URL on that
 * endpoint's host (a nextLink, a Location). `api_version` is appended as
 * api-version= unless NULL or already in the URL. `body` (borrowed; NULL
 * for none) is sent as JSON.
 *
 * Every request carries a bearer token for "<endpoint>/.default" from the
 * credential chain, a new x-ms-client-request-id and User-Agent
 * mlstage/<version>. 429 and 5xx are retried with Retry-After by the core
 * HTTP client; a 401 ExpiredAuthenticationToken is retried once with a new
 * token. A POST whose last path segment reads (list*, get*, whatIf,
 * validate, checkNameAvailability, exportTemplate: listKeys, listSecrets,
 * getLogs) is read-only; every other PUT, PATCH, POST and DELETE is only
 * printed in a dry run (status 0, no token needed).
 *
 * *status (may be NULL) receives the HTTP status (0 when planned), and
 * *response (may be NULL) a new reference to the parsed JSON body, or NULL
 * when the body is empty; the caller puts it. Both are set for failures
 * too. Returns 0 for 2xx; otherwise the ARM error (code, message, target,
 * details, additionalInfo) with method, URL and x-ms-correlation-request-id
 * in the error slot and MLSTAGE_EAUTH (401, 403), MLSTAGE_ENOTFOUND (404),
 * MLSTAGE_EREMOTE (retries exhausted) or MLSTAGE_EFAIL (other statuses).
 */
MLSTAGE_API int mlstage_arm_request(struct mlstage_ctx *ctx, const char *method, const char *path,
                                    const char *api_version, json_object *body, long *status,
                                    json_object **response);

/*
 * Sends a request like mlstage_arm_request and, when it starts a
 * long-running operation, waits for it: 201/202 with Azure-AsyncOperation
 * (preferred) or Location, or a provisioningState that is not yet
 * Succeeded, Failed or Canceled. Polls honour Retry-After (default 5 s)
 * and stop at `deadline_s` after the request (0: 3600 s).
 *
 * *result (may be NULL) receives a new reference the caller puts: for PUT
 * and PATCH the resource from a final GET; for POST the Location's final
 * body (or the operation status); for DELETE NULL. In a dry run a
 * mutating request is printed, nothing is polled and *result is NULL.
 *
 * A Failed or Canceled operation returns MLSTAGE_EFAIL with its error
 * code, message and details; the deadline passing returns
 * MLSTAGE_ETIMEOUT naming the operation's URL and last status.
 */
MLSTAGE_API int mlstage_arm_request_and_wait(struct mlstage_ctx *ctx, const char *method,
                                             const char *path, const char *api_version,
                                             json_object *body, double deadline_s,
                                             json_object **result);

/* mlstage_arm_request_and_wait with PUT: creates or updates a resource and waits for it. */
MLSTAGE_API int mlstage_arm_put_and_wait(struct mlstage_ctx *ctx, const char *path,
                                         const char *api_version, json_object *body,
                                         double deadline_s, json_object **result);

/*
 * Waits for a resource that is being provisioned (by an earlier request,
 * possibly of another process) to reach a terminal provisioningState:
 * GETs `path` every Retry-After (default 5 s) until Succeeded (0, *result
 * = the resource, a new reference), Failed or Canceled (MLSTAGE_EFAIL
 * with the resource's error), or `deadline_s` (0: 3600 s) passes
 * (MLSTAGE_ETIMEOUT). A resource without provisioningState is done.
 */
MLSTAGE_API int mlstage_arm_wait(struct mlstage_ctx *ctx, const char *path, const char *api_version,
                                 double deadline_s, json_object **result);

/*
 * Every item of a pageable Resource Manager list: GETs `path` (as
 * mlstage_arm_request does, with `api_version`) and then each nextLink in
 * turn, and gathers the pages' "value" arrays. Read-only, so a dry run
 * sends it. On success *items is a new array the caller puts; errors are
 * those of mlstage_arm_request (MLSTAGE_ENOTFOUND for a 404).
 */
MLSTAGE_API int mlstage_arm_list(struct mlstage_ctx *ctx, const char *path, const char *api_version,
                                 json_object **items);

/* ---- Azure Machine Learning ----------------------------------------------- */

/* The Azure Machine Learning REST API version (Microsoft.MachineLearningServices) mlstage uses. */
#define MLSTAGE_AML_API_VERSION "2025-12-01"

/*
 * The Resource Manager path of an Azure ML workspace,
 * "/subscriptions/S/resourceGroups/R/providers/Microsoft.MachineLearningServices/workspaces/W",
 * from the inputs every azureml backend declares: subscription_id,
 * resource_group and workspace. When any is NULL or empty: MLSTAGE_EINPUT
 * with a message naming each missing input and how to set it. On success
 * *path is a new string the caller frees.
 */
MLSTAGE_API int mlstage_aml_workspace_path(struct mlstage_ctx *ctx, const char *subscription_id,
                                           const char *resource_group, const char *workspace,
                                           char **path);

/*
 * Aliases of workspace model versions. Azure ML has none (a registry
 * model has labels, a workspace model version only tags, properties and a
 * free-text stage), so mlstage marks the version an alias points at with
 * the tag MLSTAGE_AML_ALIAS_TAG_PREFIX + alias = "true", for example
 * "mlstage.alias.production": "true". Tags are the mutable part of a
 * version (properties can only be added), and ModelVersions_List filters on
 * them (tags=name=value). Moving an alias PUTs the new holder with the tag,
 * then PUTs each old holder without it; should a move be interrupted, the
 * highest-numbered holder is the alias's version.
 */
#define MLSTAGE_AML_ALIAS_TAG_PREFIX "mlstage.alias."

/*
 * A workspace model version's metrics, where register writes them and
 * evaluate reads the champion's: one entry of the version's properties
 * per metric, MLSTAGE_AML_METRIC_PREFIX + name = the number as text (the
 * shortest text that reads back as the same double), e.g.
 * "mlstage.metric.rmse": "54.01". Properties, not tags: they are written
 * once with the version and cannot be altered afterwards.
 */
#define MLSTAGE_AML_METRIC_PREFIX "mlstage.metric."

/*
 * The version of workspace model `model` that `alias` points at, by the
 * convention above: the ModelVersionResource of the highest-numbered
 * version carrying the tag (a new reference the caller puts), or *version
 * NULL when no version carries it or the model does not exist. Read-only.
 * Errors are those of mlstage_arm_request.
 */
MLSTAGE_API int mlstage_aml_model_alias_get(struct mlstage_ctx *ctx, const char *workspace_path,
                                            const char *model, const char *alias,
                                            json_object **version);

/* ---- Blob Storage -------------------------------------------------------- */

enum mlstage_blob_auth {
    MLSTAGE_BLOB_SHARED_KEY = 1, /* account_name + account_key (base64) */
    MLSTAGE_BLOB_SAS = 2,        /* sas: a SAS token (query string) */
    MLSTAGE_BLOB_BEARER = 3      /* a token from the chain for MLSTAGE_AZURE_SCOPE_STORAGE */
};

/* Where blobs go and how to authenticate; all strings borrowed. */
struct mlstage_blob_target {
    /*
     * The account's blob endpoint, e.g. "https://ACCOUNT.blob.core.windows.net"
     * (from a datastore: protocol://accountName.blob.endpoint) or Azurite's
     * "http://127.0.0.1:10000/devstoreaccount1". MLSTAGE_BLOB_ENDPOINT, when
     * set, replaces it.
     */
    const char *endpoint;
    const char *container;
    enum mlstage_blob_auth auth;
    const char *account_name; /* SharedKey */
    const char *account_key;  /* SharedKey; registered as a secret */
    const char *sas;          /* SAS, with or without the leading '?'; registered as a secret */
};

/*
 * The URL of blob `blob_name` (or of the container when NULL or empty) on
 * `endpoint` — or on MLSTAGE_BLOB_ENDPOINT when set, as uploads use it —
 * with each path segment percent-encoded and no credentials: where
 * mlstage_blob_upload_file puts the file. NULL when endpoint or container
 * is missing; otherwise a new string the caller frees.
 */
MLSTAGE_API char *mlstage_blob_url(const char *endpoint, const char *container,
                                   const char *blob_name);

struct mlstage_blob_upload_opts {
    size_t block_size;        /* 0: 4 MiB; grown when the file would need more than 50,000 */
    unsigned concurrency;     /* blocks in flight at once; 0: 4 */
    const char *content_type; /* NULL: application/octet-stream */
};

/*
 * Uploads `local_path` as the block blob `blob_name` ("a/b/model.pkl",
 * '/'-separated, not yet URL-encoded) in the target container. The file
 * is read once: each block is added to the file's SHA-256 as it is read
 * and sent by one of `concurrency` threads (each block retried by the core
 * HTTP client), then Put Block List commits them in order with the digest
 * as metadata (x-ms-meta-sha256). A file no larger than one block goes in
 * one Put Blob. Memory stays near concurrency × block_size whatever the
 * file's size. In a dry run the file is hashed, the upload printed and
 * nothing sent.
 *
 * `opts` may be NULL. On success `sha256_hex` (may be NULL) receives the
 * file's digest and *size (may be NULL) its length. Errors: MLSTAGE_EINPUT
 * (target incomplete), MLSTAGE_EIO / MLSTAGE_ENOTFOUND (the file),
 * MLSTAGE_EAUTH (403 from storage, no token), MLSTAGE_EREMOTE (retries
 * exhausted), MLSTAGE_EFAIL (any other refusal), with the storage error
 * code and the blob URL (SAS signature redacted) in the error slot.
 * Nothing is committed unless every block arrived.
 */
MLSTAGE_API int mlstage_blob_upload_file(struct mlstage_ctx *ctx,
                                         const struct mlstage_blob_target *target,
                                         const char *local_path, const char *blob_name,
                                         const struct mlstage_blob_upload_opts *opts,
                                         char sha256_hex[MLSTAGE_SHA256_HEX_LEN + 1],
                                         uint64_t *size);

/*
 * Reads the blob `blob_name` of the target's container (Get Blob) into
 * memory: *data (NUL-terminated; the caller frees it) and *len (may be
 * NULL). For small files a remote job left behind, such as its metrics:
 * a blob larger than `max` bytes (0: 16 MiB) is refused with
 * MLSTAGE_EFAIL. MLSTAGE_ENOTFOUND when the blob or its container does
 * not exist; otherwise the errors of mlstage_blob_upload_file. A read, so
 * a dry run sends it too.
 */
MLSTAGE_API int mlstage_blob_read(struct mlstage_ctx *ctx, const struct mlstage_blob_target *target,
                                  const char *blob_name, size_t max, char **data, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
