/* test_aml.c — the core's Azure ML helpers against the Azure fake: the workspace path, pageable
 * lists, the alias convention on model versions, blob URLs. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <mlstage/azure.h>
#include <mlstage/error.h>

#include "azurefake.h"
#include "azuretest.h"
#include "ctx.h"
#include "mask.h"
#include "testutil.h"

static struct azf fake;

#define REQUIRE_FAKE()                                                                             \
    do {                                                                                           \
        if (!fake.url)                                                                             \
            CU_FAIL_FATAL("the Azure fake did not start (python3 "                                 \
                          "tests/servers/azure_fake/server.py)");                                  \
    } while (0)

/* A context whose Azure calls go to the fake with its client secret. */
static struct mlstage_ctx *fake_ctx(void)
{
    mask_reset();
    azt_env_clear();
    setenv("AZURE_AUTHORITY_HOST", fake.url, 1);
    setenv("MLSTAGE_ARM_ENDPOINT", fake.url, 1);
    setenv("AZURE_TENANT_ID", AZF_TENANT, 1);
    setenv("AZURE_CLIENT_ID", AZF_CLIENT, 1);
    setenv("AZURE_CLIENT_SECRET", AZF_SECRET, 1);
    azf_reset(&fake);
    return ctx_new();
}

/* Creates version `version` of `model` with `tags` (JSON text) through the Resource Manager. */
static void put_version(struct mlstage_ctx *ctx, const char *model, const char *version,
                        const char *tags)
{
    char *body = tu_fmt("{\"properties\": {\"modelType\": \"custom_model\", \"modelUri\": "
                        "\"azureml://datastores/workspaceblobstore/paths/m/%s\", \"tags\": %s}}",
                        version, tags);
    json_object *doc = json_tokener_parse(body);
    char *path = tu_fmt(AZF_WS_PATH "/models/%s/versions/%s", model, version);
    int rc = mlstage_arm_request(ctx, "PUT", path, MLSTAGE_AML_API_VERSION, doc, NULL, NULL);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(ctx));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    free(path);
    json_object_put(doc);
    free(body);
}

static void test_the_workspace_path_names_every_missing_input(void)
{
    struct mlstage_ctx *ctx = ctx_new();
    char *path = NULL;
    CU_ASSERT_EQUAL(mlstage_aml_workspace_path(ctx, AZF_SUB, AZF_RG, AZF_WS, &path), 0);
    CU_ASSERT_STRING_EQUAL(path, AZF_WS_PATH);
    free(path);
    CU_ASSERT_EQUAL(mlstage_aml_workspace_path(ctx, "", AZF_RG, NULL, &path), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(path);
    const char *msg = mlstage_error_message(ctx);
    TU_ASSERT_CONTAINS(msg, "inputs subscription_id and workspace are not set");
    TU_ASSERT_CONTAINS(msg, "--set subscription_id=");
    CU_ASSERT_EQUAL(mlstage_aml_workspace_path(ctx, AZF_SUB, NULL, AZF_WS, &path), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "input resource_group is not set");
    /* A name that needs encoding cannot reach another path. */
    CU_ASSERT_EQUAL(mlstage_aml_workspace_path(ctx, AZF_SUB, AZF_RG, "ws/../x", &path), 0);
    TU_ASSERT_CONTAINS(path, "/workspaces/ws%2F..%2Fx");
    free(path);
    ctx_free(ctx);
}

static void test_a_list_follows_next_link_across_pages(void)
{
    REQUIRE_FAKE();
    struct mlstage_ctx *ctx = fake_ctx();
    CU_ASSERT_EQUAL(azf_call(&fake, "POST", "/_fake/config", "{\"page_size\": 2}", NULL), 200);
    static const char *const versions[] = {"1", "2", "3", "4", "5"};
    for (size_t i = 0; i < 5; i++)
        put_version(ctx, "paged", versions[i], "{}");
    json_object *items = NULL;
    int rc = mlstage_arm_list(ctx, AZF_WS_PATH "/models/paged/versions?listViewType=All",
                              MLSTAGE_AML_API_VERSION, &items);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(json_object_array_length(items), 5);
    json_object *log = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(log, "GET", "/models/paged/versions"), 3);
    json_object_put(log);
    json_object_put(items);
    /* A 404 is ENOTFOUND, as for one request. */
    rc = mlstage_arm_list(ctx, AZF_WS_PATH "/models/x/versions/9/nothing", MLSTAGE_AML_API_VERSION,
                          &items);
    CU_ASSERT_TRUE(rc != 0);
    CU_ASSERT_PTR_NULL(items);
    ctx_free(ctx);
}

static void test_an_alias_is_the_highest_version_carrying_its_tag(void)
{
    REQUIRE_FAKE();
    struct mlstage_ctx *ctx = fake_ctx();
    json_object *v = NULL;
    /* no model at all */
    CU_ASSERT_EQUAL(mlstage_aml_model_alias_get(ctx, AZF_WS_PATH, "diabetes", "production", &v), 0);
    CU_ASSERT_PTR_NULL(v);
    put_version(ctx, "diabetes", "1", "{\"mlstage.alias.production\": \"true\"}");
    put_version(ctx, "diabetes", "2", "{\"mlstage.alias.candidate\": \"true\"}");
    CU_ASSERT_EQUAL(mlstage_aml_model_alias_get(ctx, AZF_WS_PATH, "diabetes", "production", &v), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(v, "name")), "1");
    json_object_put(v);
    /* an interrupted move leaves two holders: the higher number is the alias's version */
    put_version(ctx, "diabetes", "10", "{\"mlstage.alias.production\": \"true\"}");
    put_version(ctx, "diabetes", "9", "{\"mlstage.alias.production\": \"true\"}");
    CU_ASSERT_EQUAL(mlstage_aml_model_alias_get(ctx, AZF_WS_PATH, "diabetes", "production", &v), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(v, "name")), "10");
    json_object_put(v);
    CU_ASSERT_EQUAL(mlstage_aml_model_alias_get(ctx, AZF_WS_PATH, "diabetes", "staging", &v), 0);
    CU_ASSERT_PTR_NULL(v);
    /* the lookup is one filtered list, not a scan of every version */
    json_object *log = azf_requests(&fake);
    json_object *last = json_object_array_get_idx(log, json_object_array_length(log) - 1);
    TU_ASSERT_CONTAINS(json_object_get_string(json_object_object_get(last, "query")),
                       "tags=mlstage.alias.staging%3Dtrue");
    json_object_put(log);
    ctx_free(ctx);
}

static void test_a_blob_url_is_encoded_and_follows_the_endpoint_override(void)
{
    azt_env_clear();
    char *u = mlstage_blob_url("https://acct.blob.core.windows.net/", "c", "m/a b/x#1.pkl");
    CU_ASSERT_STRING_EQUAL(u, "https://acct.blob.core.windows.net/c/m/a%20b/x%231.pkl");
    free(u);
    u = mlstage_blob_url("https://acct.blob.core.windows.net", "c", NULL);
    CU_ASSERT_STRING_EQUAL(u, "https://acct.blob.core.windows.net/c");
    free(u);
    setenv("MLSTAGE_BLOB_ENDPOINT", "http://127.0.0.1:10000/devstoreaccount1", 1);
    u = mlstage_blob_url("https://acct.blob.core.windows.net", "c", "f");
    CU_ASSERT_STRING_EQUAL(u, "http://127.0.0.1:10000/devstoreaccount1/c/f");
    free(u);
    CU_ASSERT_PTR_NULL(mlstage_blob_url("https://x", "", "f"));
    azt_env_clear();
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"the workspace path names every missing input",
         test_the_workspace_path_names_every_missing_input},
        {"a list follows nextLink across pages", test_a_list_follows_next_link_across_pages},
        {"an alias is the highest version carrying its tag",
         test_an_alias_is_the_highest_version_carrying_its_tag},
        {"a blob URL is encoded and follows the endpoint override",
         test_a_blob_url_is_encoded_and_follows_the_endpoint_override},
        {NULL, NULL}};
    azf_start(&fake, NULL);
    int rc = tu_main(argc, argv, "azure ml helpers", tests);
    if (fake.pid && azf_stop(&fake) != 0) {
        fprintf(stderr, "the Azure fake did not stop cleanly\n");
        rc = rc ? rc : 1;
    }
    return rc;
}
