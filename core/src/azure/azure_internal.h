/* azure_internal.h — what the Azure client's files share inside the core, and the seams tests use.
 */
#ifndef MLSTAGE_AZURE_INTERNAL_H
#define MLSTAGE_AZURE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include <mlstage/azure.h>
#include <mlstage/http.h>

#include "util.h"

#define AZURE_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define AZURE_DEFAULT_ARM       "https://management.azure.com"
#define AZURE_DEFAULT_IMDS      "http://169.254.169.254"
#define AZURE_IMDS_PATH         "/metadata/identity/oauth2/token"
#define AZURE_GITHUB_AUDIENCE   "api://AzureADTokenExchange"
/* A cached token is used until this long before it expires (azure-identity refreshes then too). */
#define AZURE_TOKEN_MARGIN_S 300
/* azure-identity's WorkloadIdentityCredential re-reads its assertion file after this long. */
#define AZURE_ASSERTION_REREAD_S 600
/* The IMDS probe: off Azure the address does not answer, so give up on connecting quickly. */
#define AZURE_IMDS_PROBE_CONNECT_S 0.5
/* azure-identity's AzureCliCredential process_timeout. */
#define AZURE_CLI_TIMEOUT_S 10.0

/*
 * The per-context state of the Azure client: cached tokens, the source
 * that worked, the federated assertion read from its file. Created on
 * first use and freed by ctx_free.
 */
struct azure_state;
struct azure_state *azure_state_new(void);
struct azure_state *azure_state_of(struct mlstage_ctx *ctx);
void azure_state_free(struct azure_state *st);

/*
 * Seconds since the epoch as the Azure client sees them: the wall clock
 * plus azure_clock_skew_s, which tests move forward to age caches.
 */
extern double azure_clock_skew_s;
double azure_now(void);

/* The value of an environment variable, or NULL when unset or empty. */
const char *azure_env(const char *name);

/* A random (version 4) UUID, lower-case, as x-ms-client-request-id wants it. */
void azure_uuid(char out[37]);

/* A JSON member as a string, or NULL when absent, null or not a string. Borrowed. */
const char *azure_json_str(json_object *o, const char *key);

/* Parses a whole body as JSON: a new reference, or NULL when empty or not JSON. */
json_object *azure_json_parse(const char *body, size_t len);

/* "https://management.azure.com" or MLSTAGE_ARM_ENDPOINT, without a trailing '/'; caller frees. */
char *arm_endpoint(void);

/*
 * The message for a failed Resource Manager answer: method and (redacted)
 * URL, status, error code, message and target, each detail and each
 * additionalInfo, the correlation and request ids. `body` may be anything
 * (JSON or not). The caller frees.
 */
char *arm_error_describe(const char *method, const char *safe_url, long status, const char *body,
                         size_t body_len, const char *correlation_id, const char *request_id);

/*
 * Appends an ErrorDetail (code: message (target), its details nested and
 * its additionalInfo) to `b`, indented by `depth`. Also used for a Failed
 * operation's error.
 */
void arm_error_detail_append(struct buf *b, json_object *err, int depth);

/*
 * The SharedKey string-to-sign for a request (see the storage reference):
 * `headers` are the request's own "Name: value" lines, `content_length`
 * the body's length, `url` the full request URL. The caller frees.
 */
char *blob_string_to_sign(const char *method, const char *url, const char *const *headers,
                          size_t content_length, const char *account);

#endif
