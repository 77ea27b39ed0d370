/* test_deploy_azureml.c — deploy's azureml backend through `mlstage run tasks/deploy.yml --backend
 * azureml`, against azure_fake with Azurite behind its datastore: blue then green, failures that
 * never move the traffic (or put it back), rollback, dry runs, and no key anywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "amltest.h"
#include "example.h"
#include "testutil.h"

#define SMOKE    MLSTAGE_TEST_DATA_DIR "/smoke/azure_fake_sum.json"
#define ENDPOINT "diabetes"
#define MODEL_ID AMLT_WS_PATH "/models/diabetes/versions/"

static char *ws; /* the current test's workspace: a git clone of examples/ and tasks/ */
static struct tu_cmd *outputs[16];
static size_t n_outputs; /* every run's output, for the secret check */

/*
 * A clean fake with model diabetes: version 1, version 2 (the candidate),
 * version 3 whose container cannot start, version 4 whose scoring is broken.
 */
static void setup(void)
{
    amlt_require();
    amlt_reset();
    tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
    amlt_register_model("diabetes", "1", NULL);
    amlt_register_model("diabetes", "2", "{\"mlstage.alias.candidate\": \"true\"}");
    amlt_register_model("diabetes", "3", "{\"FAKE_DEPLOY_FAIL\": \"init() raises\"}");
    amlt_register_model("diabetes", "4", "{\"note\": \"FAKE_SCORE_BROKEN\"}");
}

/* Frees the runs kept for the secret check. */
static void forget_outputs(void)
{
    for (size_t i = 0; i < n_outputs; i++) {
        tu_cmd_free(outputs[i]);
        free(outputs[i]);
    }
    n_outputs = 0;
}

/* `mlstage run tasks/deploy.yml --backend azureml --output json`, the workspace and smoke file. */
static json_object *deploy(const char *const *extra)
{
    const char *args[40] = {"run",       "tasks/deploy.yml",
                            "--backend", "azureml",
                            "--output",  "json",
                            "--set",     "subscription_id=" AMLT_SUB,
                            "--set",     "resource_group=" AMLT_RG,
                            "--set",     "workspace=" AMLT_WS,
                            "--set",     "sample_requests=" SMOKE};
    size_t n = 14;
    for (const char *const *e = extra; e && *e && n < 38; e++)
        args[n++] = *e;
    args[n] = NULL;
    struct tu_cmd *res = calloc(1, sizeof(*res));
    ex_mlstage(ws, args, amlt_env(), res);
    if (n_outputs < sizeof(outputs) / sizeof(outputs[0]))
        outputs[n_outputs++] = res;
    return ex_json(res->out);
}

/* The last run's captured output. */
static struct tu_cmd *last(void)
{
    return outputs[n_outputs - 1];
}

static json_object *state_endpoint(json_object **state)
{
    *state = amlt_json("GET", "/_fake/state", NULL);
    return amlt_at(*state, "state", "ml", AMLT_SUB "/" AMLT_RG "/" AMLT_WS, "endpoints", ENDPOINT,
                   NULL);
}

/* The endpoint's traffic to `slot` as the fake holds it; -1 when the endpoint does not exist. */
static int traffic(const char *slot)
{
    json_object *state = NULL, *ep = state_endpoint(&state);
    int pct = ep ? json_object_get_int(amlt_at(ep, "properties", "traffic", slot, NULL)) : -1;
    json_object_put(state);
    return pct;
}

/* "Bearer sha256:<12 hex>": how the fake logs an Authorization header carrying the primary key. */
static char *primary_key_as_logged(void)
{
    json_object *state = NULL, *ep = state_endpoint(&state);
    char *out = tu_fmt("Bearer %s", amlt_str(ep, "keys", "primaryKey", NULL));
    json_object_put(state);
    return out;
}

/* Whether model version `version` carries alias tag `alias`. */
static int has_alias(const char *version, const char *alias)
{
    char *path = tu_fmt(AMLT_WS_PATH "/models/diabetes/versions/%s", version);
    char *tag = tu_fmt("mlstage.alias.%s", alias);
    json_object *doc = NULL;
    amlt_arm("GET", path, NULL, &doc);
    const char *v = amlt_str(doc, "properties", "tags", tag, NULL);
    int yes = v && strcmp(v, "true") == 0;
    json_object_put(doc);
    free(tag);
    free(path);
    return yes;
}

/* The requests since `since` with `method` whose path contains `part` (and ends there if `end`). */
static json_object *requests_to(long since, const char *method, const char *part, int end)
{
    json_object *all = amlt_requests(since), *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *r = json_object_array_get_idx(all, i);
        const char *path = amlt_str(r, "path", NULL), *hit = strstr(path, part);
        if (strcmp(amlt_str(r, "method", NULL), method) == 0 && hit &&
            (!end || hit[strlen(part)] == '\0'))
            json_object_array_add(out, json_object_get(r));
    }
    json_object_put(all);
    return out;
}

/* No request since `since` changed anything: only reads (GET, token, listKeys, getLogs...). */
static void assert_nothing_mutated(long since)
{
    json_object *all = amlt_requests(since);
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *r = json_object_array_get_idx(all, i);
        const char *m = amlt_str(r, "method", NULL), *path = amlt_str(r, "path", NULL);
        const char *seg = strrchr(path, '/');
        int reads = strcmp(m, "GET") == 0 ||
                    (strcmp(m, "POST") == 0 &&
                     (strstr(path, "/oauth2/v2.0/token") || strcmp(seg, "/listKeys") == 0 ||
                      strcmp(seg, "/getLogs") == 0 || strcmp(seg, "/listSecrets") == 0));
        if (!reads)
            fprintf(stderr, "\nunexpected %s %s\n", m, path);
        CU_ASSERT_TRUE(reads);
    }
    json_object_put(all);
}

/* Neither key of the endpoint, nor the client secret, storage key or a token, anywhere. */
static void assert_no_secrets(void)
{
    char *primary = NULL, *secondary = NULL;
    CU_ASSERT_EQUAL_FATAL(amlt_endpoint_keys(ENDPOINT, &primary, &secondary), 0);
    const char *secrets[] = {primary, secondary, AMLT_CLIENT_SECRET, AMLT_AZURITE_KEY, "eyJ", NULL};
    char *runs = tu_fmt("%s/.mlstage", ws);
    for (const char *const *s = secrets; *s; s++) {
        for (size_t i = 0; i < n_outputs; i++) {
            TU_ASSERT_NOT_CONTAINS(outputs[i]->out, *s);
            TU_ASSERT_NOT_CONTAINS(outputs[i]->err, *s);
        }
        if (amlt_dir_contains(runs, *s))
            fprintf(stderr, "\n\"%s\" found in %s\n", *s, runs);
        CU_ASSERT_FALSE(amlt_dir_contains(runs, *s));
    }
    free(runs);
    free(primary);
    free(secondary);
}

static void blue_then_green_with_the_smoke_test_before_the_traffic_moves(void)
{
    setup();
    long since = amlt_requests_next();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "endpoint"), ENDPOINT);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    char *url = tu_fmt("%s/score/" ENDPOINT, amlt_url());
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "url"), url);
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    struct tu_cmd *res = last();
    TU_ASSERT_CONTAINS(res->err, "smoke 1/3: /health skipped");
    TU_ASSERT_CONTAINS(res->err, "smoke 2/3 two rows: POST /score -> 200");
    TU_ASSERT_CONTAINS(res->err,
                       "smoke 3/3 rejects a malformed row: POST /score -> 424 (the model's 400)");

    /* A new endpoint with key auth in the workspace's region, then the deployment. */
    json_object *eps = requests_to(since, "PUT", "/onlineEndpoints/" ENDPOINT, 1);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(eps), 2); /* created, then its traffic */
    json_object *create = json_object_array_get_idx(eps, 0);
    CU_ASSERT_STRING_EQUAL(amlt_str(create, "json", "properties", "authMode", NULL), "Key");
    CU_ASSERT_STRING_EQUAL(amlt_str(create, "json", "location", NULL), "westeurope");
    CU_ASSERT_PTR_NULL(amlt_at(create, "json", "properties", "traffic", NULL));
    json_object *deps = requests_to(since, "PUT", "/deployments/blue", 1);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(deps), 1);
    json_object *d = amlt_at(json_object_array_get_idx(deps, 0), "json", NULL);
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "properties", "endpointComputeType", NULL), "Managed");
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "properties", "model", NULL), MODEL_ID "1");
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "properties", "instanceType", NULL), "Standard_DS3_v2");
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "sku", "name", NULL), "Default");
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(d, "sku", "capacity", NULL)), 1);
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "properties", "codeConfiguration", "scoringScript", NULL),
                           "score_azureml.py");
    TU_ASSERT_CONTAINS(amlt_str(d, "properties", "codeConfiguration", "codeId", NULL),
                       AMLT_WS_PATH "/codes/mlstage-diabetes/versions/");
    char *head = ex_git(ws, "HEAD");
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "tags", "mlstage.commit", NULL), head);
    CU_ASSERT_STRING_EQUAL(amlt_str(d, "tags", "mlstage.model_version", NULL), "1");
    json_object_put(deps);
    json_object_put(eps);
    json_object_put(doc);

    /* v2 (the candidate alias) goes to green, is tested there, and only then gets the traffic. */
    since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "version=candidate", NULL});
    TU_ASSERT_EXIT(last(), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "1");
    CU_ASSERT_EQUAL(traffic("green"), 100);
    CU_ASSERT_EQUAL(traffic("blue"), 0);
    CU_ASSERT_TRUE(has_alias("2", "production"));
    CU_ASSERT_FALSE(has_alias("1", "production"));
    TU_ASSERT_CONTAINS(last()->err, "slot blue keeps version 1 at 0% for a rollback");
    json_object *scores = requests_to(since, "POST", "/score/" ENDPOINT, 1);
    eps = requests_to(since, "PUT", "/onlineEndpoints/" ENDPOINT, 1);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(scores), 2);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(eps), 1);
    char *key = primary_key_as_logged();
    for (size_t i = 0; i < 2; i++) {
        json_object *s = json_object_array_get_idx(scores, i);
        CU_ASSERT_STRING_EQUAL(amlt_str(s, "headers", "azureml-model-deployment", NULL), "green");
        CU_ASSERT_STRING_EQUAL(amlt_str(s, "headers", "authorization", NULL), key);
        CU_ASSERT_TRUE(
            json_object_get_int(amlt_at(s, "seq", NULL)) <
            json_object_get_int(amlt_at(json_object_array_get_idx(eps, 0), "seq", NULL)));
    }
    json_object *t =
        amlt_at(json_object_array_get_idx(eps, 0), "json", "properties", "traffic", NULL);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(t, "green", NULL)), 100);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(t, "blue", NULL)), 0);
    assert_no_secrets();
    free(key);
    json_object_put(scores);
    json_object_put(eps);
    free(head);
    free(url);
    json_object_put(doc);
    forget_outputs();
}

static void a_deployment_that_fails_to_provision_shows_its_logs_and_moves_nothing(void)
{
    setup();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    long since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "version=3", NULL});
    TU_ASSERT_EXIT(last(), 1);
    CU_ASSERT_STRING_EQUAL(ex_str(doc, "status"), "failed");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "false");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "url"), "");
    const char *err = last()->err;
    TU_ASSERT_CONTAINS(err, "deployment green of endpoint " ENDPOINT " failed; the traffic never "
                            "moved (the other slot serves as before)");
    TU_ASSERT_CONTAINS(err, "ResourceNotReady");
    TU_ASSERT_CONTAINS(err, "container log of deployment green (inference server");
    TU_ASSERT_CONTAINS(err, "| RuntimeError: azure_fake: model diabetes:3 is named or tagged "
                            "FAKE_DEPLOY_FAIL");
    /* The logs were asked for as the reference says; the endpoint was never touched. */
    json_object *logs = requests_to(since, "POST", "/deployments/green/getLogs", 1);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(logs), 1);
    CU_ASSERT_STRING_EQUAL(
        amlt_str(json_object_array_get_idx(logs, 0), "json", "containerType", NULL),
        "InferenceServer");
    CU_ASSERT_PTR_NOT_NULL(amlt_at(json_object_array_get_idx(logs, 0), "json", "tail", NULL));
    json_object *eps = requests_to(since, "PUT", "/onlineEndpoints/" ENDPOINT, 1);
    CU_ASSERT_EQUAL(json_object_array_length(eps), 0);
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_EQUAL(traffic("green"), 0);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    CU_ASSERT_FALSE(has_alias("3", "production"));
    assert_no_secrets();
    json_object_put(eps);
    json_object_put(logs);
    json_object_put(doc);
    forget_outputs();
}

static void a_smoke_test_failing_on_the_new_slot_never_shifts_the_traffic(void)
{
    setup();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    long since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "version=4", NULL});
    TU_ASSERT_EXIT(last(), 1);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "false");
    const char *err = last()->err;
    TU_ASSERT_CONTAINS(err, "smoke 2/3 two rows: POST /score -> HTTP 424 (the model's 500)");
    TU_ASSERT_CONTAINS(err, "traffic never moved to green");
    TU_ASSERT_CONTAINS(err, "| RuntimeError: azure_fake: model diabetes:4 is named or tagged "
                            "FAKE_SCORE_BROKEN");
    json_object *eps = requests_to(since, "PUT", "/onlineEndpoints/" ENDPOINT, 1);
    CU_ASSERT_EQUAL(json_object_array_length(eps), 0);
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_EQUAL(traffic("green"), 0);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    assert_no_secrets();
    json_object_put(eps);
    json_object_put(doc);
    forget_outputs();
}

static void a_failure_after_the_traffic_moved_puts_it_back(void)
{
    setup();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    /* The production alias cannot be moved to v2, once v2 already has the traffic. */
    CU_ASSERT_EQUAL_FATAL(
        amlt_fault("{\"match\": \"PUT .*/models/diabetes/versions/2$\", \"status\": 400}"), 0);
    long since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "version=2", NULL});
    TU_ASSERT_EXIT(last(), 1);
    TU_ASSERT_CONTAINS(last()->err, "traffic put back as it was");
    json_object *eps = requests_to(since, "PUT", "/onlineEndpoints/" ENDPOINT, 1);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(eps), 2); /* the switch, then back */
    json_object *back =
        amlt_at(json_object_array_get_idx(eps, 1), "json", "properties", "traffic", NULL);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(back, "blue", NULL)), 100);
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_EQUAL(traffic("green"), 0);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    json_object_put(eps);
    json_object_put(doc);

    /* A traffic update that fails itself leaves the traffic where it was. */
    CU_ASSERT_EQUAL_FATAL(amlt_fault("{\"match\": \"PUT .*/onlineEndpoints/[^/]+$\", "
                                     "\"lro_result\": \"Failed\", \"lro_error\": {\"code\": "
                                     "\"InternalServerError\", \"message\": \"traffic update "
                                     "failed\"}}"),
                          0);
    doc = deploy((const char *[]){"--set", "version=2", NULL});
    TU_ASSERT_EXIT(last(), 1);
    TU_ASSERT_CONTAINS(last()->err, "traffic update failed");
    TU_ASSERT_CONTAINS(last()->err, "traffic is as it was");
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    json_object_put(doc);
    forget_outputs();
}

static void rollback_moves_the_traffic_back_to_the_other_slot(void)
{
    setup();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    doc = deploy((const char *[]){"--set", "version=2", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    long since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "rollback=true", NULL});
    TU_ASSERT_EXIT(last(), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    CU_ASSERT_EQUAL(traffic("green"), 0);
    CU_ASSERT_TRUE(has_alias("1", "production"));
    CU_ASSERT_FALSE(has_alias("2", "production"));
    /* Nothing was redeployed: the old slot was checked and given the traffic back. */
    json_object *deps = requests_to(since, "PUT", "/deployments/", 0);
    CU_ASSERT_EQUAL(json_object_array_length(deps), 0);
    json_object *scores = requests_to(since, "POST", "/score/" ENDPOINT, 1);
    CU_ASSERT_TRUE(json_object_array_length(scores) > 0);
    CU_ASSERT_STRING_EQUAL(
        amlt_str(json_object_array_get_idx(scores, 0), "headers", "azureml-model-deployment", NULL),
        "blue");
    json_object_put(scores);
    json_object_put(deps);
    json_object_put(doc);

    /* Once more goes forward again; an endpoint never deployed has nothing to roll back. */
    doc = deploy((const char *[]){"--set", "rollback=true", NULL});
    TU_ASSERT_EXIT(last(), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    json_object_put(doc);
    doc = deploy(
        (const char *[]){"--set", "rollback=true", "--set", "endpoint=never-deployed", NULL});
    TU_ASSERT_EXIT(last(), 1);
    TU_ASSERT_CONTAINS(last()->err, "endpoint never-deployed does not exist: nothing to roll back");
    json_object_put(doc);
    forget_outputs();
}

static void a_dry_run_prints_the_requests_and_sends_none_that_mutate(void)
{
    setup();
    json_object *doc = deploy((const char *[]){"--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 0);
    json_object_put(doc);
    long since = amlt_requests_next();
    doc = deploy((const char *[]){"--set", "version=2", "--dry-run", NULL});
    TU_ASSERT_EXIT(last(), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "skipped");
    const char *err = last()->err;
    TU_ASSERT_CONTAINS(err, "plan: PUT ");
    TU_ASSERT_CONTAINS(err, "/onlineEndpoints/" ENDPOINT "/deployments/green?api-version=");
    TU_ASSERT_CONTAINS(err, "\"endpointComputeType\": \"Managed\"");
    TU_ASSERT_CONTAINS(err, "\"traffic\": {");
    TU_ASSERT_CONTAINS(err, "\"mlstage.alias.production\": \"true\"");
    assert_nothing_mutated(since);
    CU_ASSERT_EQUAL(traffic("blue"), 100);
    json_object *state = NULL, *ep = state_endpoint(&state);
    CU_ASSERT_PTR_NULL(amlt_at(ep, "deployments", "green", NULL));
    json_object_put(state);
    CU_ASSERT_TRUE(has_alias("1", "production"));

    /* And a dry run of a first deployment creates nothing either. */
    json_object_put(doc);
    since = amlt_requests_next();
    doc = deploy(
        (const char *[]){"--set", "version=1", "--set", "endpoint=brand-new", "--dry-run", NULL});
    TU_ASSERT_EXIT(last(), 0);
    TU_ASSERT_CONTAINS(last()->err, "/onlineEndpoints/brand-new?api-version=");
    assert_nothing_mutated(since);
    json_object_put(doc);
    forget_outputs();
}

static void wrong_inputs_fail_before_anything_changes(void)
{
    setup();
    long since = amlt_requests_next();
    json_object *doc = deploy((const char *[]){"--set", "endpoint=ab", NULL});
    TU_ASSERT_EXIT(last(), 2);
    TU_ASSERT_CONTAINS(last()->err, "inputs.endpoint: \"ab\" cannot name an online endpoint");
    json_object_put(doc);
    char *no_score = tu_fmt("%s/health-only.json", ws);
    tu_write(no_score, "{\"requests\": [{\"path\": \"/health\"}]}");
    char *set = tu_fmt("sample_requests=%s", no_score);
    doc = deploy((const char *[]){"--set", set, NULL});
    TU_ASSERT_EXIT(last(), 2);
    TU_ASSERT_CONTAINS(last()->err, "has no request to /score");
    json_object_put(doc);
    doc = deploy((const char *[]){"--set", "scoring_script=", "--set", "version=1", NULL});
    TU_ASSERT_EXIT(last(), 2);
    TU_ASSERT_CONTAINS(last()->err, "inputs.code and inputs.scoring_script go together");
    json_object_put(doc);
    doc = deploy((const char *[]){"--set", "version=9", NULL});
    TU_ASSERT_EXIT(last(), 1);
    TU_ASSERT_CONTAINS(last()->err, "model diabetes has no version 9 in workspace " AMLT_WS);
    json_object_put(doc);
    doc = deploy((const char *[]){"--set", "version=staging", NULL});
    TU_ASSERT_EXIT(last(), 1);
    TU_ASSERT_CONTAINS(last()->err, "no version of model diabetes carries alias staging (tag "
                                    "mlstage.alias.staging=true)");
    json_object_put(doc);
    assert_nothing_mutated(since);
    free(set);
    free(no_score);
    forget_outputs();
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"blue then green, with the smoke test before the traffic moves",
         blue_then_green_with_the_smoke_test_before_the_traffic_moves},
        {"a deployment that fails to provision shows its logs and moves nothing",
         a_deployment_that_fails_to_provision_shows_its_logs_and_moves_nothing},
        {"a smoke test failing on the new slot never shifts the traffic",
         a_smoke_test_failing_on_the_new_slot_never_shifts_the_traffic},
        {"a failure after the traffic moved puts it back",
         a_failure_after_the_traffic_moved_puts_it_back},
        {"rollback moves the traffic back to the other slot",
         rollback_moves_the_traffic_back_to_the_other_slot},
        {"a dry run prints the requests and sends none that mutate",
         a_dry_run_prints_the_requests_and_sends_none_that_mutate},
        {"wrong inputs fail before anything changes", wrong_inputs_fail_before_anything_changes},
        {NULL, NULL},
    };
    if (amlt_start() != 0)
        fprintf(stderr, "\n%s\n", amlt_why());
    int rc = tu_main(argc, argv, "deploy (azureml)", tests);
    forget_outputs();
    amlt_stop();
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
