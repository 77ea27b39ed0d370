/* azurefake.h — tests/servers/azure_fake (Entra, Resource Manager, Azure ML) and a real Azurite,
 * started from C tests, with the control calls and the environment mlstage needs. */
#ifndef MLSTAGE_TEST_AZUREFAKE_H
#define MLSTAGE_TEST_AZUREFAKE_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include <json-c/json.h>

/* The fake's defaults (tests/servers/azure_fake/README.md). */
#define AZF_TENANT "11111111-1111-1111-1111-111111111111"
#define AZF_CLIENT "22222222-2222-2222-2222-222222222222"
#define AZF_SECRET "fake+secret/with&special=chars%"
#define AZF_SUB    "00000000-1111-2222-3333-444444444444"
#define AZF_RG     "rg-mlstage"
#define AZF_WS     "mlw-mlstage"
#define AZF_WS_PATH                                                                                \
    "/subscriptions/" AZF_SUB "/resourceGroups/" AZF_RG                                            \
    "/providers/Microsoft.MachineLearningServices/workspaces/" AZF_WS
/* The container of the fake's default datastore (workspaceblobstore) on Azurite. */
#define AZF_CONTAINER "azureml-blobstore"

/* Azurite's well-known development account (public, in its README). */
#define AZURITE_ACCOUNT "devstoreaccount1"
#define AZURITE_KEY                                                                                \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/* ---- Azurite ------------------------------------------------------------------------------ */

struct azurite {
    pid_t pid;
    int port;
    char *dir;
    char *endpoint; /* http://127.0.0.1:PORT/devstoreaccount1 */
    char *why;      /* why it is not running */
};

/*
 * Starts azurite-blob from tests/node (npm ci --prefix tests/node) on an
 * ephemeral loopback port, in memory, in its own process group. 0 when it
 * listens; otherwise -1 and a->why says what to install.
 */
int azurite_start(struct azurite *a);
void azurite_stop(struct azurite *a);

/*
 * A request signed with the account key: `path` is under the account
 * ("/container/blob?comp=..."). Returns the status; *body (may be NULL)
 * receives the body (free), *len its length, *etag (may be NULL) the ETag.
 */
long azurite_request(const struct azurite *a, const char *method, const char *path, char **body,
                     size_t *len, char **etag);

/* ---- the fake ---------------------------------------------------------------------------- */

struct azf {
    pid_t pid;
    int port;
    char *url; /* http://127.0.0.1:PORT */
    FILE *out; /* its stdout, kept open while it runs */
    char *env[16];
};

/*
 * Starts server.py on an ephemeral port with Retry-After 0, its default
 * datastore on `azurite_endpoint` (NULL: the fake's default). 0 when it
 * answered "listening"; -1 with the reason on stderr.
 */
int azf_start(struct azf *f, const char *azurite_endpoint);
/* SIGTERM, then waits; returns its exit status (0 when it stopped cleanly). */
int azf_stop(struct azf *f);

/* A control or ARM call without auth; *answer (may be NULL) the parsed body (put it). */
long azf_call(const struct azf *f, const char *method, const char *path, const char *body,
              json_object **answer);
/* POST /_fake/reset, then the config that makes tests fast (retry_after 0). */
void azf_reset(const struct azf *f);
/* POST /_fake/faults with `rules` (JSON text). */
void azf_fault(const struct azf *f, const char *rules);
/* The requests the fake received (GET /_fake/requests), a new array. */
json_object *azf_requests(const struct azf *f);
/*
 * The fake's own record of workspace model `model`: its versions by name,
 * {"1": {"properties": {...}}, ...} (an empty object when it has none). A new reference.
 */
json_object *azf_model_versions(const struct azf *f, const char *model);
/* How many logged requests have this method and a path matching `path_substring`. */
size_t azf_count(json_object *requests, const char *method, const char *path_substring);

/*
 * The environment for an mlstage run against the fake: the authority and
 * Resource Manager endpoints, the client-secret credentials, and
 * MLSTAGE_BLOB_ENDPOINT when `blob_endpoint` is not NULL. NULL-terminated;
 * owned by `f`, valid until the next call or azf_stop.
 */
const char *const *azf_env(struct azf *f, const char *blob_endpoint);

#endif
