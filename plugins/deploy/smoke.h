/* smoke.h — the smoke-test file a deployment must pass: loading, checking its form, running it. */
#ifndef MLSTAGE_PLUGIN_SMOKE_H
#define MLSTAGE_PLUGIN_SMOKE_H

#include <mlstage/mlstage.h>

/*
 * The format (examples/diabetes/requests/sample.json):
 *
 *   {"description": "...",
 *    "requests": [{
 *      "name": "two patients",            optional; "request N" otherwise
 *      "method": "POST",                  optional; GET, or POST when there is a body
 *      "path": "/score",                  required, starts with "/"
 *      "headers": {"X-Name": "value"},    optional
 *      "body": {...},                     optional; JSON (a string is sent as it is)
 *      "expect": {                        optional; a 2xx status otherwise
 *        "status": 200,                   or a list of statuses
 *        "json": {...},                   a subset the answer must contain (objects by key,
 *                                         arrays element by element, numbers by value)
 *        "checks": [{"path": "predictions[0]",     a.b[0].c; "" or "$" is the whole answer
 *                    "length": 2, "min": 25, "max": 346,
 *                    "approx": 190.2, "tolerance": 40,
 *                    "contains": "10 numbers",     substring, or an element of an array
 *                    "equals": ...}]}}]}
 *
 * Unknown keys are errors, so that a misspelt expectation never passes
 * silently.
 */

/* Reads and checks the file; *suite is a new reference. MLSTAGE_EINPUT names file and item. */
int smoke_load(struct mlstage_ctx *ctx, const char *path, json_object **suite);

/* How many requests the suite holds. */
size_t smoke_count(json_object *suite);

/*
 * Sends every request to base_url (no trailing slash) with `headers`
 * (NULL-terminated "Name: value", or NULL) added, and checks each answer.
 * Every request runs even after a failure; each is logged, a failure with
 * what the endpoint answered. Returns 0 when all passed, MLSTAGE_EFAIL
 * with the first failure in the error slot otherwise. *failed counts them.
 */
int smoke_run(struct mlstage_ctx *ctx, json_object *suite, const char *base_url,
              const char *const *headers, int *failed);

/* The path of the requests that go to an online endpoint's scoring URI. */
#define SMOKE_SCORING_PATH "/score"
/*
 * Azure ML answers 424 when the model's container answered anything but
 * 200, and puts the container's own status in this header.
 */
#define SMOKE_MODEL_STATUS_HEADER "ms-azureml-model-error-statuscode"

/* How many of the suite's requests go to a scoring URI (path SMOKE_SCORING_PATH). */
size_t smoke_count_scoring(json_object *suite);

/*
 * smoke_run against a managed online endpoint: the requests to
 * SMOKE_SCORING_PATH are sent to `scoring_uri` and the others (a health
 * path, which such an endpoint does not expose) are skipped, saying so.
 * An answer's status is the model's own where Azure ML wrapped it in a
 * 424 (SMOKE_MODEL_STATUS_HEADER), so that the same file holds for a local
 * server and an endpoint. *sent counts the requests sent.
 */
int smoke_run_endpoint(struct mlstage_ctx *ctx, json_object *suite, const char *scoring_uri,
                       const char *const *headers, int *failed, int *sent);

/*
 * How an answer is quoted in messages: at most 300 bytes (and `cap - 4`;
 * cap is at least 8), control characters flattened to spaces, "..." when cut.
 */
void smoke_excerpt(const char *text, size_t len, char *out, size_t cap);

#endif
