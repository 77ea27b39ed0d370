/* test_evaluate_azureml.c — the evaluate plugin's azureml backend through `mlstage run
 * tasks/evaluate.yml --backend azureml`: the champion from the workspace's model versions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include <mlstage/azure.h>
#include <mlstage/error.h>

#include "azurefake.h"
#include "azuretest.h"
#include "ctx.h"
#include "example.h"
#include "mask.h"
#include "testutil.h"

static struct azurite azurite;
static struct azf fake;
static char *ws; /* a git repository holding tasks/ and candidate metrics */

static void setup(void)
{
    if (!fake.url)
        CU_FAIL_FATAL("the Azure fake did not start (tests/servers/azure_fake/server.py)");
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
    char *cmd = tu_fmt("cp -R '%s/tasks' . && mkdir -p model && "
                       "printf 'weights\\n' > model/model.pkl && "
                       "printf '{\"rmse\": 50.0, \"r2\": 0.5}\\n' > better.json && "
                       "printf '{\"rmse\": 60.0, \"r2\": 0.4}\\n' > worse.json && "
                       "printf '{\"rmse\": 54.01, \"r2\": 0.45}\\n' > champion.json && "
                       "printf '.mlstage/\\n' > .gitignore && git init -q . && git add -A && "
                       "git -c user.name=mlstage-test -c user.email=test@mlstage.local "
                       "commit -qm 'a project'",
                       MLSTAGE_SOURCE_DIR);
    struct tu_cmd res;
    tu_sh(cmd, NULL, ws, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(cmd);
    azf_reset(&fake);
}

/*
 * Creates version `version` of model diabetes through the Resource Manager,
 * as register would leave it: `properties` and `tags` are JSON text.
 */
static void put_version(const char *version, const char *properties, const char *tags)
{
    mask_reset();
    azt_env_clear();
    setenv("AZURE_AUTHORITY_HOST", fake.url, 1);
    setenv("MLSTAGE_ARM_ENDPOINT", fake.url, 1);
    setenv("AZURE_TENANT_ID", AZF_TENANT, 1);
    setenv("AZURE_CLIENT_ID", AZF_CLIENT, 1);
    setenv("AZURE_CLIENT_SECRET", AZF_SECRET, 1);
    struct mlstage_ctx *ctx = ctx_new();
    char *body = tu_fmt("{\"properties\": {\"modelType\": \"custom_model\", \"modelUri\": "
                        "\"azureml://datastores/workspaceblobstore/paths/mlstage/diabetes/%s\", "
                        "\"properties\": %s, \"tags\": %s}}",
                        version, properties, tags);
    json_object *doc = json_tokener_parse(body);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    char *path = tu_fmt(AZF_WS_PATH "/models/diabetes/versions/%s", version);
    int rc = mlstage_arm_request(ctx, "PUT", path, MLSTAGE_AML_API_VERSION, doc, NULL, NULL);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(ctx));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(path);
    json_object_put(doc);
    free(body);
    ctx_free(ctx);
    azt_env_clear();
}

#define WORKSPACE_ARGS                                                                             \
    "--set", "subscription_id=" AZF_SUB, "--set", "resource_group=" AZF_RG, "--set",               \
        "workspace=" AZF_WS

/* `mlstage run tasks/<task>.yml --backend azureml --output json` with the workspace and `extra`. */
static json_object *run_task(const char *task, const char *const *extra, struct tu_cmd *res)
{
    char *manifest = tu_fmt("tasks/%s.yml", task);
    const char *args[32] = {"run",      manifest, "--backend",   "azureml",
                            "--output", "json",   WORKSPACE_ARGS};
    size_t n = 12;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, azf_env(&fake, azurite.endpoint), res);
    free(manifest);
    json_object *doc = ex_json(res->out);
    if (!doc)
        fprintf(stderr, "\nno JSON on stdout:\n%s\n--- stderr\n%s\n", res->out, res->err);
    return doc;
}

static json_object *evaluate(const char *metrics_file, const char *const *extra, struct tu_cmd *res)
{
    char *set = tu_fmt("metrics=%s", metrics_file);
    const char *args[16] = {"--set", set};
    size_t n = 2;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    json_object *doc = run_task("evaluate", args, res);
    free(set);
    return doc;
}

#define CHAMPION_PROPS "{\"mlstage.metric.rmse\": \"54.01\", \"mlstage.metric.r2\": \"0.45\"}"

static void no_champion_yet_promotes_a_candidate_that_meets_the_thresholds(void)
{
    setup();
    /* a version exists, but nothing carries the production tag */
    put_version("1", CHAMPION_PROPS, "{\"mlstage.alias.candidate\": \"true\"}");
    CU_ASSERT_EQUAL(azf_call(&fake, "DELETE", "/_fake/requests", NULL, NULL), 200);
    struct tu_cmd res;
    json_object *doc = evaluate("better.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "promote"), "true");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_version"), "none");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_rmse"), "none");
    TU_ASSERT_CONTAINS(ex_output(doc, "reason"), "no production version yet");
    TU_ASSERT_CONTAINS(res.err, "carries the tag mlstage.alias.production=true");
    /* One filtered list of the workspace's versions: nothing else was asked, nothing written. */
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "GET", "/models/diabetes/versions"), 1);
    TU_ASSERT_CONTAINS(json_object_to_json_string(reqs), "tags=mlstage.alias.production%3Dtrue");
    CU_ASSERT_EQUAL(azf_count(reqs, "PUT", "/"), 0);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void the_production_version_is_the_champion_compared_by_the_rules(void)
{
    setup();
    put_version("1", CHAMPION_PROPS, "{\"mlstage.alias.production\": \"true\"}");
    /* a better-looking version that is not production does not count */
    put_version("2", "{\"mlstage.metric.rmse\": \"10\", \"mlstage.metric.r2\": \"0.9\"}",
                "{\"mlstage.alias.candidate\": \"true\"}");
    struct tu_cmd res;
    json_object *better = evaluate("better.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(better, "promote"), "true");
    CU_ASSERT_STRING_EQUAL(ex_output(better, "champion_version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(better, "champion_rmse"), "54.01");
    CU_ASSERT_STRING_EQUAL(ex_output(better, "champion_r2"), "0.45");
    CU_ASSERT_STRING_EQUAL(ex_output(better, "delta_rmse"), "-4.01");
    TU_ASSERT_CONTAINS(ex_output(better, "reason"), "from 54.01 (version 1) to 50");
    tu_cmd_free(&res);

    json_object *worse = evaluate("worse.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(worse, "promote"), "false");
    CU_ASSERT_STRING_EQUAL(ex_output(worse, "champion_version"), "1");
    TU_ASSERT_CONTAINS(ex_output(worse, "reason"), "Keep version 1");
    /* the same report as locally: the chart is in the run and stamped */
    const char *chart = ex_output(worse, "chart_file");
    char *statement = tu_fmt("%s.intoto.json", chart ? chart : "");
    CU_ASSERT_EQUAL(access(statement, R_OK), 0);
    free(statement);
    tu_cmd_free(&res);

    json_object *strict =
        evaluate("worse.json", (const char *[]){"--set", "fail_on_reject=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    json_object_put(strict);
    json_object_put(worse);
    json_object_put(better);
    tu_cmd_free(&res);
}

static void a_production_version_without_recorded_metrics_is_kept_with_a_reason(void)
{
    setup();
    /* registered by hand, outside mlstage: no mlstage.metric.* properties */
    put_version("3", "{}", "{\"mlstage.alias.production\": \"true\"}");
    struct tu_cmd res;
    json_object *doc = evaluate("better.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_version"), "3");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_rmse"), "none");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "promote"), "false");
    TU_ASSERT_CONTAINS(ex_output(doc, "reason"), "Keep version 3: it records no rmse");
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_production_tag_on_a_version_that_is_not_numbered_is_an_error(void)
{
    setup();
    put_version("beta", CHAMPION_PROPS, "{\"mlstage.alias.production\": \"true\"}");
    struct tu_cmd res;
    json_object *doc = evaluate("better.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "version \"beta\" of model diabetes carries the tag");
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_dry_run_reads_the_champion_and_sends_nothing_else(void)
{
    setup();
    put_version("1", CHAMPION_PROPS, "{\"mlstage.alias.production\": \"true\"}");
    CU_ASSERT_EQUAL(azf_call(&fake, "DELETE", "/_fake/requests", NULL, NULL), 200);
    struct tu_cmd res;
    json_object *doc = evaluate("better.json", (const char *[]){"--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_version"), "1");
    json_object *reqs = azf_requests(&fake);
    for (size_t i = 0; i < json_object_array_length(reqs); i++) {
        json_object *r = json_object_array_get_idx(reqs, i), *m = NULL, *p = NULL;
        json_object_object_get_ex(r, "method", &m);
        json_object_object_get_ex(r, "path", &p);
        int read = strcmp(json_object_get_string(m), "GET") == 0 ||
                   strstr(json_object_get_string(p), "/oauth2/") != NULL;
        CU_ASSERT_TRUE(read);
    }
    TU_ASSERT_NOT_CONTAINS(res.err, "eyJ");
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_version_register_made_production_is_the_champion_evaluate_reads(void)
{
    setup();
    if (!azurite.endpoint) {
        fprintf(stderr, "\n%s\n", azurite.why ? azurite.why : "Azurite is not running");
        CU_FAIL_FATAL("Azurite is not running: npm ci --prefix tests/node");
    }
    long status =
        azurite_request(&azurite, "PUT", "/" AZF_CONTAINER "?restype=container", NULL, NULL, NULL);
    CU_ASSERT_TRUE(status == 201 || status == 409);
    struct tu_cmd res;
    json_object *reg =
        run_task("register",
                 (const char *[]){"--set", "model_dir=model", "--set", "metrics=champion.json",
                                  "--set", "alias=production", NULL},
                 &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(reg, "version"), "1");
    tu_cmd_free(&res);
    /* register writes the metrics where evaluate reads them: the two agree on the convention */
    json_object *doc = evaluate("better.json", NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_rmse"), "54.01");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "champion_r2"), "0.45");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "promote"), "true");
    json_object_put(doc);
    json_object_put(reg);
    tu_cmd_free(&res);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"no champion yet: promotes a candidate that meets the thresholds",
         no_champion_yet_promotes_a_candidate_that_meets_the_thresholds},
        {"the production version is the champion, compared by the rules",
         the_production_version_is_the_champion_compared_by_the_rules},
        {"a production version without recorded metrics is kept, saying why",
         a_production_version_without_recorded_metrics_is_kept_with_a_reason},
        {"a production tag on a version that is not numbered is an error",
         a_production_tag_on_a_version_that_is_not_numbered_is_an_error},
        {"a dry run reads the champion and sends nothing else",
         a_dry_run_reads_the_champion_and_sends_nothing_else},
        {"a version register made production is the champion evaluate reads",
         a_version_register_made_production_is_the_champion_evaluate_reads},
        {NULL, NULL}};
    azt_env_clear();
    azurite_start(&azurite);
    azf_start(&fake, azurite.endpoint);
    int rc = tu_main(argc, argv, "evaluate (azureml)", tests);
    if (fake.pid && azf_stop(&fake) != 0) {
        fprintf(stderr, "the Azure fake did not stop cleanly\n");
        rc = rc ? rc : 1;
    }
    azurite_stop(&azurite);
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
