/* test_models.c — `mlstage models list|show` through the real binary, on a registry made here. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include <mlstage/error.h>
#include <mlstage/registry.h>

#include "ctx.h"
#include "testutil.h"

static char *ws;

static void setup(void)
{
    if (ws)
        tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
}

/* Registers a one-file model whose content depends on `seed`; returns the version. */
static int register_one(const char *model, int seed, const char *alias)
{
    char *dir = tu_fmt("%s/src-%d", ws, seed), *file = tu_fmt("%s/src-%d/model.pkl", ws, seed);
    char *content = tu_fmt("weights-%d\n", seed);
    mkdir(dir, 0755);
    tu_write(file, content);
    struct mlstage_ctx *ctx = ctx_new();
    ctx->workspace_dir = strdup(ws);
    ctx->run_id = strdup("20261123T000000.000Z-abcdef");
    struct mlstage_registry *reg = NULL;
    json_object *doc = NULL;
    int version = 0;
    struct mlstage_model_spec spec = {.name = model, .path = dir};
    if (mlstage_registry_open(ctx, &reg) == 0 &&
        mlstage_registry_register(reg, &spec, &doc, NULL) == 0) {
        version = json_object_get_int(json_object_object_get(doc, "version"));
        if (alias)
            mlstage_registry_set_alias(reg, model, alias, version, NULL);
    }
    json_object_put(doc);
    mlstage_registry_close(reg);
    ctx_free(ctx);
    free(dir);
    free(file);
    free(content);
    return version;
}

static void models(const char *const *args, struct tu_cmd *res)
{
    const char *argv[16] = {"models"};
    size_t n = 1;
    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    tu_mlstage(argv, (const char *[]){"NO_COLOR=1", NULL}, ws, res);
}

static void the_models_command_is_dispatched_and_lists_an_empty_registry(void)
{
    setup();
    struct tu_cmd res;
    models((const char *[]){"list", "--output", "json", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_NOT_CONTAINS(res.err, "unknown command");
    json_object *doc = json_tokener_parse(res.out);
    CU_ASSERT_TRUE_FATAL(json_object_is_type(doc, json_type_object));
    CU_ASSERT_EQUAL(json_object_object_length(doc), 0);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void list_and_show_reflect_versions_and_aliases(void)
{
    setup();
    CU_ASSERT_EQUAL_FATAL(register_one("diabetes", 1, NULL), 1);
    CU_ASSERT_EQUAL_FATAL(register_one("diabetes", 2, "production"), 2);
    struct tu_cmd res;
    models((const char *[]){"list", "diabetes", "--output", "json", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *list = json_tokener_parse(res.out);
    CU_ASSERT_EQUAL(json_object_array_length(list), 2);
    json_object_put(list);
    tu_cmd_free(&res);

    models((const char *[]){"show", "diabetes@production", "--output", "json", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = json_tokener_parse(res.out);
    CU_ASSERT_EQUAL(json_object_get_int(json_object_object_get(doc, "version")), 2);
    TU_ASSERT_CONTAINS(json_object_to_json_string(json_object_object_get(doc, "aliases")),
                       "\"production\"");
    json_object_put(doc);
    tu_cmd_free(&res);

    models((const char *[]){"list", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "MODEL");
    TU_ASSERT_CONTAINS(res.out, "production");
    tu_cmd_free(&res);
}

static void an_unknown_version_exits_1_and_bad_usage_exits_2(void)
{
    setup();
    register_one("diabetes", 1, NULL);
    struct tu_cmd res;
    models((const char *[]){"show", "diabetes:7", NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "no version 7");
    tu_cmd_free(&res);
    models((const char *[]){"show", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    tu_cmd_free(&res);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"the models command is dispatched and lists an empty registry",
         the_models_command_is_dispatched_and_lists_an_empty_registry},
        {"list and show reflect versions and aliases", list_and_show_reflect_versions_and_aliases},
        {"an unknown version exits 1 and bad usage exits 2",
         an_unknown_version_exits_1_and_bad_usage_exits_2},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "models", tests);
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
