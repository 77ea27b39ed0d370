/* test_infra_bicep.c — the infra-bicep plugin through the real binary: offline checks of the
 * templates and parameter files, Bicep compilation, secrets, and the local backend's request. */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"

#define TEMPLATE   MLSTAGE_SOURCE_DIR "/templates/infra/main.json"
#define BICEP      MLSTAGE_SOURCE_DIR "/templates/infra/main.bicep"
#define PARAMS_DIR MLSTAGE_SOURCE_DIR "/templates/infra/parameters"
#define DATA       MLSTAGE_TEST_DATA_DIR "/infra"

static char *ws;

static void setup(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
}

static char *manifest(const char *name, const char *body)
{
    char *path = tu_fmt("%s/%s.yml", ws, name);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, body), 0);
    return path;
}

/* A manifest for the plugin with `template`, `parameters` (or NULL) and extra input lines. */
static char *infra_manifest(const char *template, const char *params, const char *extra)
{
    char *body = tu_fmt("task: infra\nplugin: infra-bicep\ninputs:\n  template: %s\n%s%s%s%s",
                        template, params ? "  parameters: " : "", params ? params : "",
                        params ? "\n" : "", extra ? extra : "");
    char *path = manifest("infra", body);
    free(body);
    return path;
}

/* Runs mlstage with the built plugins, in `cwd` (NULL: the workspace), with extra env. */
static void run_in(const char *cwd, const char *const *args, const char *const *env,
                   struct tu_cmd *res)
{
    const char *argv[40];
    size_t n = 0;
    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    const char *base_env[40] = {"TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "NO_COLOR=1",
                                "MLSTAGE_PLUGIN_PATH"};
    size_t e = 5;
    for (const char *const *v = env; v && *v; v++)
        base_env[e++] = *v;
    base_env[e] = NULL;
    tu_mlstage(argv, base_env, cwd ? cwd : ws, res);
}

static void run(const char *const *args, const char *const *env, struct tu_cmd *res)
{
    run_in(NULL, args, env, res);
}

static json_object *parse(const char *text)
{
    json_object *doc = json_tokener_parse(text ? text : "");
    CU_ASSERT_PTR_NOT_NULL(doc);
    return doc;
}

static const char *jpath(json_object *o, const char *dotted)
{
    char key[128];
    const char *p = dotted;
    while (o && *p) {
        size_t n = strcspn(p, ".");
        snprintf(key, sizeof(key), "%.*s", (int)n, p);
        if (!json_object_object_get_ex(o, key, &o))
            return NULL;
        p += n + (p[n] == '.');
    }
    return o ? json_object_get_string(o) : NULL;
}

/* The `outputs` of a --output json run, as a new object. */
static json_object *outputs_of(struct tu_cmd *res)
{
    json_object *doc = parse(res->out), *out = NULL;
    if (doc && json_object_object_get_ex(doc, "outputs", &out))
        json_object_get(out);
    json_object_put(doc);
    return out;
}

/* ---- the real templates -------------------------------------------------------------- */

static void test_main_json_passes_with_each_environments_parameter_file(void)
{
    static const char *const envs[] = {"dev", "qa", "prod"};
    setup();
    for (size_t i = 0; i < 3; i++) {
        char *params = tu_fmt("%s/%s.parameters.json", PARAMS_DIR, envs[i]);
        char *m = infra_manifest(TEMPLATE, params, NULL);
        struct tu_cmd res;
        run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 0);
        json_object *out = outputs_of(&res);
        CU_ASSERT_STRING_EQUAL(jpath(out, "resources"), "6");
        CU_ASSERT_STRING_EQUAL(jpath(out, "mode"), "validate");
        CU_ASSERT_EQUAL(strlen(jpath(out, "template_hash")), 64);
        json_object_put(out);
        tu_cmd_free(&res);
        free(m);
        free(params);
    }
}

static void test_task_manifest_checks_an_environment_offline(void)
{
    setup();
    /* Paths in tasks/infra.yml are relative to the workspace, as in the repository. */
    char *link = tu_fmt("%s/templates", ws);
    CU_ASSERT_EQUAL_FATAL(symlink(MLSTAGE_SOURCE_DIR "/templates", link), 0);
    struct tu_cmd res;
    run((const char *[]){"run", MLSTAGE_SOURCE_DIR "/tasks/infra.yml", "--set", "env=prod",
                         "--output", "json", NULL},
        (const char *[]){"AZURE_SUBSCRIPTION_ID", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(jpath(out, "mode"), "what-if");
    char *request = tu_read(jpath(out, "request_file"), NULL);
    json_object *req = parse(request);
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.parameters.environment.value"), "prod");
    TU_ASSERT_CONTAINS(jpath(req, "url"), "/resourcegroups/rg-mlstage/");
    json_object_put(req);
    free(request);
    json_object_put(out);
    tu_cmd_free(&res);
    free(link);
}

/* ---- broken parameter files: every problem, each named --------------------------------- */

struct broken {
    const char *file;
    int problems;
    const char *expect[6]; /* each must appear in stderr */
};

static const struct broken broken_files[] = {
    {"missing",
     2,
     {"missing.parameters.json:4:3: error: parameter 'baseName' has no value",
      "parameter 'environment' has no value", "declares no defaultValue"}},
    {"unknown",
     2,
     {"unknown.parameters.json:11:5: error: parameter 'storageAccountType' is not declared",
      "unknown.parameters.json:14:5: error: parameter 'enableAcr' is not declared",
      "which declares: baseName, environment"}},
    {"wrong-type",
     4,
     {"wrong-type.parameters.json:5:5: error: parameter 'baseName' is declared string",
      "12345 is an Integer", "'logRetentionInDays' is declared int", "\"30\" is a String",
      "'enableContainerRegistry' is declared bool", "'tags' is declared object"}},
    {"not-allowed",
     3,
     {"not-allowed.parameters.json:8:5: error: parameter 'environment': \"staging\" is not one "
      "of the allowed values [\"dev\",\"qa\",\"prod\"]",
      "'storageSku': \"Premium_LRS\" is not one of the allowed values",
      "'containerRegistrySku': \"Classic\""}},
    {"length",
     2,
     {"length.parameters.json:5:5: error: parameter 'baseName': \"ml\" is too short: 2 "
      "characters, minLength is 3",
      "'workspaceName': \"mlw-a-workspace-name-far-longer-than-allowed\" is too long: 44 "
      "characters, maxLength is 33"}},
    {"range",
     2,
     {"range.parameters.json:11:5: error: parameter 'keyVaultSoftDeleteRetentionInDays': 3 is "
      "out of range: minValue is 7",
      "'logRetentionInDays': 1000 is out of range: maxValue is 730"}},
    {"bare-value",
     1,
     {"bare-value.parameters.json:5:5: error: parameter 'baseName' must be written "
      "{\"value\": ...}"}},
};

static void test_each_broken_parameter_file_exits_2_and_names_every_problem(void)
{
    setup();
    for (size_t i = 0; i < sizeof(broken_files) / sizeof(broken_files[0]); i++) {
        const struct broken *b = &broken_files[i];
        char *params = tu_fmt("%s/%s.parameters.json", DATA, b->file);
        char *m = infra_manifest(TEMPLATE, params, NULL);
        struct tu_cmd res;
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 2);
        for (size_t k = 0; k < 6 && b->expect[k]; k++)
            TU_ASSERT_CONTAINS(res.err, b->expect[k]);
        char *count =
            tu_fmt("%d problem%s with the parameters of", b->problems, b->problems == 1 ? "" : "s");
        TU_ASSERT_CONTAINS(res.err, count);
        /* Nothing was started: no request was prepared. */
        TU_ASSERT_NOT_CONTAINS(res.err, "api-version=");
        free(count);
        tu_cmd_free(&res);
        free(m);
        free(params);
    }
}

static void test_malformed_parameter_file_exits_2_with_its_position(void)
{
    setup();
    char *m = infra_manifest(TEMPLATE, DATA "/malformed.parameters.json", NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "malformed.parameters.json:7:1: error: not valid JSON");
    tu_cmd_free(&res);
    free(m);
}

static void test_inline_values_override_the_file_and_are_checked(void)
{
    setup();
    char *m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json",
                             "  parameter_values:\n    environment: qa\n"
                             "    logRetentionInDays: 90\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    char *request = tu_read(jpath(out, "request_file"), NULL);
    json_object *req = parse(request);
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.parameters.environment.value"), "qa");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.parameters.logRetentionInDays.value"), "90");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.parameters.baseName.value"), "mlstage");
    json_object_put(req);
    free(request);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);

    m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json",
                       "  parameter_values:\n    environment: staging\n    sku: Basic\n");
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "infra.yml: error: inputs.parameter_values: parameter "
                                "'environment': \"staging\" is not one of the allowed values");
    TU_ASSERT_CONTAINS(res.err, "inputs.parameter_values: parameter 'sku' is not declared");
    TU_ASSERT_CONTAINS(res.err, "2 problems with the parameters of");
    tu_cmd_free(&res);
    free(m);
}

static void test_broken_template_declarations_exit_2(void)
{
    setup();
    char *m = infra_manifest(DATA "/bad-template.json", NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "unknown top-level member \"resourcez\"");
    TU_ASSERT_CONTAINS(res.err, "\"resources\" is missing");
    TU_ASSERT_CONTAINS(res.err, "bad-template.json:5:5: error: declared with type \"integer\"");
    TU_ASSERT_CONTAINS(res.err, "declared with type (none)");
    TU_ASSERT_CONTAINS(res.err, "4 problems with the template of");
    tu_cmd_free(&res);
    free(m);

    m = infra_manifest(DATA "/no-such-template.json", NULL, NULL);
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "no-such-template.json does not exist");
    tu_cmd_free(&res);
    free(m);
}

/* ---- Bicep ---------------------------------------------------------------------------- */

static void test_bicep_without_a_compiler_exits_2_naming_main_json(void)
{
    setup();
    char *empty = tu_fmt("%s/empty-bin", ws), *path = NULL;
    mkdir(empty, 0755);
    path = tu_fmt("PATH=%s", empty);
    char *m = infra_manifest(BICEP, PARAMS_DIR "/dev.parameters.json", NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, (const char *[]){path, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "neither bicep nor az is on PATH");
    TU_ASSERT_CONTAINS(res.err, "templates/infra/main.json (the prebuilt ARM template beside it)");
    tu_cmd_free(&res);
    free(m);
    free(path);
    free(empty);
}

static void test_bicep_on_path_compiles_the_template(void)
{
    setup();
    char *bin = tu_fmt("%s/bin", ws), *script = tu_fmt("%s/bin/bicep", ws);
    char *args_log = tu_fmt("%s/bicep-args", ws);
    mkdir(bin, 0755);
    /* A stand-in for the Bicep CLI: records its arguments, prints the prebuilt JSON. */
    char *body = tu_fmt("#!/bin/sh\necho \"$@\" > '%s'\necho 'Warning: a linter note' >&2\n"
                        "cat '%s'\n",
                        args_log, TEMPLATE);
    CU_ASSERT_EQUAL_FATAL(tu_write(script, body), 0);
    chmod(script, 0755);
    char *path = tu_fmt("PATH=%s:/usr/bin:/bin", bin);
    char *m = infra_manifest(BICEP, PARAMS_DIR "/qa.parameters.json", NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, (const char *[]){path, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "Warning: a linter note"); /* the compiler's stderr is shown */
    TU_ASSERT_CONTAINS(res.err, "compiled " BICEP " with bicep build --stdout");
    char *args = tu_read(args_log, NULL);
    CU_ASSERT_STRING_EQUAL(args, "build --stdout " BICEP "\n");
    json_object *out = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(jpath(out, "resources"), "6");
    char *compiled = tu_read(jpath(out, "template_file"), NULL),
         *prebuilt = tu_read(TEMPLATE, NULL);
    CU_ASSERT_PTR_NOT_NULL(compiled);
    CU_ASSERT_STRING_EQUAL(compiled ? compiled : "", prebuilt ? prebuilt : "-");
    free(compiled);
    free(prebuilt);
    json_object_put(out);
    tu_cmd_free(&res);

    /* A compile error is an input error that names the compiler's reason. */
    free(body);
    body = tu_fmt("#!/bin/sh\necho 'main.bicep(3,7) : Error BCP018: Expected the \"=\" "
                  "character at this location.' >&2\nexit 1\n");
    CU_ASSERT_EQUAL_FATAL(tu_write(script, body), 0);
    run((const char *[]){"run", m, NULL}, (const char *[]){path, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "bicep build of " BICEP " failed (exit status 1): "
                                "main.bicep(3,7) : Error BCP018");
    tu_cmd_free(&res);
    free(args);
    free(m);
    free(path);
    free(body);
    free(args_log);
    free(script);
    free(bin);
}

/* ---- secrets ---------------------------------------------------------------------------- */

static const char *const secret_values[] = {"Pa55w0rd-never-shown", "0bj3ct-secret-never-shown",
                                            "tooShort-pw", NULL};
static int leaked;

static int scan_file(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    char *text = tu_read(path, NULL);
    for (const char *const *s = secret_values; text && *s; s++) {
        if (strstr(text, *s)) {
            fprintf(stderr, "\nsecret \"%s\" found in %s\n", *s, path);
            leaked++;
        }
    }
    free(text);
    return 0;
}

static void assert_no_secret(struct tu_cmd *res)
{
    for (const char *const *s = secret_values; *s; s++) {
        TU_ASSERT_NOT_CONTAINS(res->out, *s);
        TU_ASSERT_NOT_CONTAINS(res->err, *s);
    }
    leaked = 0;
    nftw(ws, scan_file, 16, FTW_PHYS);
    CU_ASSERT_EQUAL(leaked, 0);
}

static void test_secure_values_appear_nowhere(void)
{
    setup();
    char *m =
        infra_manifest(DATA "/secure.json", DATA "/secure.parameters.json", "  mode: deploy\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "-v", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    /* The request shows that the values are there without showing them. */
    TU_ASSERT_CONTAINS(res.err, "\"adminPassword\": {");
    TU_ASSERT_CONTAINS(res.err, "\"value\": \"***\"");
    assert_no_secret(&res);
    tu_cmd_free(&res);
    free(m);

    /* A secure value that breaks a rule is reported without being quoted. */
    m = infra_manifest(DATA "/secure.json", DATA "/secure-short.parameters.json", NULL);
    run((const char *[]){"run", m, "-v", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "parameter 'adminPassword': (a secure value) is too short: 11 "
                                "characters, minLength is 12");
    assert_no_secret(&res);
    tu_cmd_free(&res);
    free(m);
}

/* ---- the local backend's request ---------------------------------------------------------- */

static void test_local_backend_prints_the_resources_and_the_request(void)
{
    setup();
    char *m = infra_manifest(TEMPLATE, PARAMS_DIR "/qa.parameters.json",
                             "  mode: deploy\n  resource_group: rg-ml-qa\n"
                             "  subscription_id: 00000000-1111-2222-3333-444444444444\n"
                             "  deployment_name: infra-qa-1\n  tags: {owner: ml-team}\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "resources declared by " TEMPLATE " (6)");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.MachineLearningServices/workspaces@2025-12-01  name "
                                "[parameters('workspaceName')]");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.ContainerRegistry/registries@2023-07-01  name "
                                "[variables('containerRegistryName')]  if "
                                "[parameters('enableContainerRegistry')]");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.Storage/storageAccounts@2023-05-01");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.KeyVault/vaults@2023-07-01");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.Insights/components@2020-02-02");
    TU_ASSERT_CONTAINS(res.err, "Microsoft.OperationalInsights/workspaces@2023-09-01");
    static const char url[] =
        "https://management.azure.com/subscriptions/00000000-1111-2222-3333-444444444444/"
        "resourcegroups/rg-ml-qa/providers/Microsoft.Resources/deployments/infra-qa-1"
        "?api-version=2025-04-01";
    TU_ASSERT_CONTAINS(res.err, url);
    TU_ASSERT_CONTAINS(res.err, "PUT https://management.azure.com/");

    json_object *out = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(jpath(out, "deployment_name"), "infra-qa-1");
    CU_ASSERT_STRING_EQUAL(jpath(out, "mode"), "deploy");
    char *request = tu_read(jpath(out, "request_file"), NULL);
    json_object *req = parse(request);
    CU_ASSERT_STRING_EQUAL(jpath(req, "method"), "PUT");
    CU_ASSERT_STRING_EQUAL(jpath(req, "url"), url);
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.mode"), "Incremental");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.template.contentVersion"), "1.0.0.0");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.parameters.environment.value"), "qa");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.tags.owner"), "ml-team");
    json_object *tags = NULL;
    json_object_object_get_ex(json_object_object_get(req, "body"), "tags", &tags);
    CU_ASSERT_PTR_NOT_NULL(json_object_object_get(tags, "mlstage.run_id"));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(json_object_object_get(tags, "mlstage.task")),
                           "infra");
    /* The request is an artefact with its provenance statement beside it. */
    char *statement = tu_fmt("%s.intoto.json", jpath(out, "request_file"));
    struct stat sb;
    CU_ASSERT_EQUAL(stat(statement, &sb), 0);
    free(statement);
    json_object_put(req);
    free(request);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);

    /* what-if posts to .../whatIf without tags (DeploymentWhatIf has none). */
    m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json",
                       "  mode: what-if\n  deployment_mode: Complete\n");
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "POST https://management.azure.com/subscriptions/"
                                "{subscriptionId}/resourcegroups/{resourceGroupName}/providers/"
                                "Microsoft.Resources/deployments/");
    out = outputs_of(&res);
    request = tu_read(jpath(out, "request_file"), NULL);
    req = parse(request);
    TU_ASSERT_CONTAINS(jpath(req, "url"), "/whatIf?api-version=2025-04-01");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.mode"), "Complete");
    CU_ASSERT_STRING_EQUAL(jpath(req, "body.properties.whatIfSettings.resultFormat"),
                           "FullResourcePayloads");
    CU_ASSERT_PTR_NULL(jpath(req, "body.tags"));
    json_object_put(req);
    free(request);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

static void test_deployment_name_defaults_to_task_and_short_commit(void)
{
    setup();
    char *m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json", NULL);
    struct tu_cmd res;
    /* From the source tree, a git repository. */
    run_in(MLSTAGE_SOURCE_DIR, (const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    const char *name = jpath(out, "deployment_name");
    CU_ASSERT_PTR_NOT_NULL_FATAL(name);
    CU_ASSERT_EQUAL(strncmp(name, "infra-", 6), 0);
    CU_ASSERT_TRUE(strlen(name) >= 6 + 7 && strlen(name) <= 64);
    CU_ASSERT_EQUAL(strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                 "-_.()"),
                    strlen(name));
    json_object_put(out);
    tu_cmd_free(&res);

    /* A name the deployment-name pattern refuses is an input error. */
    free(m);
    m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json",
                       "  deployment_name: \"infra/dev\"\n");
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "deployment_name");
    tu_cmd_free(&res);
    free(m);
}

static void cleanup(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = NULL;
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"main.json passes with each environment's parameter file",
         test_main_json_passes_with_each_environments_parameter_file},
        {"tasks/infra.yml checks an environment offline",
         test_task_manifest_checks_an_environment_offline},
        {"each broken parameter file exits 2 and names every problem",
         test_each_broken_parameter_file_exits_2_and_names_every_problem},
        {"a malformed parameter file exits 2 with its position",
         test_malformed_parameter_file_exits_2_with_its_position},
        {"inline values override the file and are checked",
         test_inline_values_override_the_file_and_are_checked},
        {"broken template declarations exit 2", test_broken_template_declarations_exit_2},
        {".bicep without a compiler exits 2 naming main.json",
         test_bicep_without_a_compiler_exits_2_naming_main_json},
        {"bicep on PATH compiles the template", test_bicep_on_path_compiles_the_template},
        {"secure values appear nowhere", test_secure_values_appear_nowhere},
        {"local backend prints the resources and the request",
         test_local_backend_prints_the_resources_and_the_request},
        {"deployment name defaults to task and short commit",
         test_deployment_name_defaults_to_task_and_short_commit},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "infra-bicep", tests);
    cleanup();
    return rc;
}
