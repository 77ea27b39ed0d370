/* amltest.h — the world the azureml halves are tested in: azure_fake (Entra, ARM, Azure ML) with a
 * real Azurite behind its default datastore, started once per suite. */
#ifndef MLSTAGE_AMLTEST_H
#define MLSTAGE_AMLTEST_H

#include <stddef.h>

#include <json-c/json.h>

/* The workspace azure_fake serves (its README). */
#define AMLT_SUB "00000000-1111-2222-3333-444444444444"
#define AMLT_RG  "rg-mlstage"
#define AMLT_WS  "mlw-mlstage"
#define AMLT_WS_PATH                                                                               \
    "/subscriptions/" AMLT_SUB "/resourceGroups/" AMLT_RG                                          \
    "/providers/Microsoft.MachineLearningServices/workspaces/" AMLT_WS
#define AMLT_API           "api-version=2025-12-01"
#define AMLT_CLIENT_SECRET "fake+secret/with&special=chars%"
#define AMLT_AZURITE_KEY                                                                           \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AMLT_CONTAINER "azureml-blobstore"

/*
 * Starts Azurite (tests/node, in memory) with the datastore's container,
 * then azure_fake pointing its default datastore at it. 0 when both run;
 * otherwise -1 and amlt_why() says why (install hints included).
 */
int amlt_start(void);
void amlt_stop(void);
const char *amlt_why(void);

/* CU_FAIL_FATAL unless both servers run. */
void amlt_require(void);

/* http://127.0.0.1:PORT of azure_fake. */
const char *amlt_url(void);

/*
 * The environment mlstage needs to reach them: Entra and ARM on the fake,
 * the client secret, MLSTAGE_BLOB_ENDPOINT on Azurite, every other
 * credential source unset. NULL-terminated "K=V" / "K" entries.
 */
const char *const *amlt_env(void);

/* Back to a clean fake (resources, faults, request log), fast: Retry-After 0. */
void amlt_reset(void);

/* A request to the fake; *answer (may be NULL) is the body, a new string. The HTTP status. */
long amlt_http(const char *method, const char *path, const char *body, const char *const *headers,
               char **answer);
/* The same, parsed: a new reference, or NULL when the answer is not JSON. */
json_object *amlt_json(const char *method, const char *path, const char *body);

/* Adds fault rules (POST /_fake/faults); 0 when the fake took them. */
int amlt_fault(const char *rules_json);

/* The request log since `since` (0: all): a new array of {seq, method, path, status, json, ...}. */
json_object *amlt_requests(long since);
/* The seq the next request will get. */
long amlt_requests_next(void);

/* An ARM request with a token of the fake's own: for setting up and checking, not for mlstage. */
long amlt_arm(const char *method, const char *path, const char *body, json_object **answer);

/* Registers model version NAME:VERSION in the workspace with `tags_json` (an object, or NULL). */
void amlt_register_model(const char *name, const char *version, const char *tags_json);

/* The endpoint's primary and secondary keys (listKeys), new strings; 0 when it has them. */
int amlt_endpoint_keys(const char *endpoint, char **primary, char **secondary);

/* Writes `content` to blob `name` of the datastore's container in Azurite; 0 on success. */
int amlt_blob_put(const char *name, const char *content);
/* Reads blob `name` back; a new string, or NULL when absent. */
char *amlt_blob_get(const char *name);

/* A member of an object by a path of keys ending with NULL: borrowed, or NULL. */
json_object *amlt_at(json_object *o, ...);
/* The same as a string (numbers as text), or NULL. */
const char *amlt_str(json_object *o, ...);

/* Non-zero when `needle` appears in any file under `dir` (recursively). */
int amlt_dir_contains(const char *dir, const char *needle);

#endif
