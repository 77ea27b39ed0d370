/* test_infra_bicep.c — the infra-bicep plugin through the real binary: offline checks of the
 * templates and parameter files, Bicep compilation, secrets, and the local backend's request. */
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"
#include "util.h"

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

/* CU_ASSERT_STRING_EQUAL with NULL allowed (strcmp must never see it) and both shown. */
#define ASSERT_STR(actual, expected)                                                               \
    do {                                                                                           \
        const char *a_ = (actual), *e_ = (expected);                                               \
        int ok_ = a_ && strcmp(a_, e_) == 0;                                                       \
        if (!ok_)                                                                                  \
            fprintf(stderr, "\nexpected \"%s\", got %s%s%s\n", e_, a_ ? "\"" : "",                 \
                    a_ ? a_ : "NULL", a_ ? "\"" : "");                                             \
        CU_ASSERT_TRUE(ok_);                                                                       \
    } while (0)

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
        ASSERT_STR(jpath(out, "resources"), "6");
        ASSERT_STR(jpath(out, "mode"), "validate");
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
    ASSERT_STR(jpath(out, "mode"), "what-if");
    char *request = tu_read(jpath(out, "request_file"), NULL);
    json_object *req = parse(request);
    ASSERT_STR(jpath(req, "body.properties.parameters.environment.value"), "prod");
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
    ASSERT_STR(jpath(req, "body.properties.parameters.environment.value"), "qa");
    ASSERT_STR(jpath(req, "body.properties.parameters.logRetentionInDays.value"), "90");
    ASSERT_STR(jpath(req, "body.properties.parameters.baseName.value"), "mlstage");
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
    ASSERT_STR(args, "build --stdout " BICEP "\n");
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "resources"), "6");
    char *compiled = tu_read(jpath(out, "template_file"), NULL),
         *prebuilt = tu_read(TEMPLATE, NULL);
    CU_ASSERT_PTR_NOT_NULL(compiled);
    ASSERT_STR(compiled ? compiled : "", prebuilt ? prebuilt : "-");
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
    ASSERT_STR(jpath(out, "deployment_name"), "infra-qa-1");
    ASSERT_STR(jpath(out, "mode"), "deploy");
    char *request = tu_read(jpath(out, "request_file"), NULL);
    json_object *req = parse(request);
    ASSERT_STR(jpath(req, "method"), "PUT");
    ASSERT_STR(jpath(req, "url"), url);
    ASSERT_STR(jpath(req, "body.properties.mode"), "Incremental");
    ASSERT_STR(jpath(req, "body.properties.template.contentVersion"), "1.0.0.0");
    ASSERT_STR(jpath(req, "body.properties.parameters.environment.value"), "qa");
    ASSERT_STR(jpath(req, "body.tags.owner"), "ml-team");
    json_object *tags = NULL;
    json_object_object_get_ex(json_object_object_get(req, "body"), "tags", &tags);
    CU_ASSERT_PTR_NOT_NULL(json_object_object_get(tags, "mlstage.run_id"));
    ASSERT_STR(json_object_get_string(json_object_object_get(tags, "mlstage.task")), "infra");
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
    ASSERT_STR(jpath(req, "body.properties.mode"), "Complete");
    ASSERT_STR(jpath(req, "body.properties.whatIfSettings.resultFormat"), "FullResourcePayloads");
    CU_ASSERT_PTR_NULL(jpath(req, "body.tags"));
    json_object_put(req);
    free(request);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

/* The deploy job passes the what-if's template_hash: a template changed in between is refused. */
static void test_deploy_refuses_a_template_changed_since_the_what_if(void)
{
    setup();
    char *m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json", "  mode: what-if\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    char *hash = strdup(jpath(out, "template_hash") ? jpath(out, "template_hash") : "");
    CU_ASSERT_EQUAL(strlen(hash), 64);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);

    char *extra = tu_fmt("  mode: deploy\n  expect_template_hash: \"%s\"\n", hash);
    m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json", extra);
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(m);
    free(extra);

    /* The same hash against another template: refused before anything is sent. */
    char *changed = tu_fmt("%s/changed.json", ws);
    char *text = tu_read(TEMPLATE, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    char *at = strstr(text, "\"contentVersion\": \"1.0.0.0\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    at[strlen("\"contentVersion\": \"1.0.0.")] = '1';
    CU_ASSERT_EQUAL_FATAL(tu_write(changed, text), 0);
    extra = tu_fmt("  mode: deploy\n  expect_template_hash: \"%s\"\n", hash);
    m = infra_manifest(changed, PARAMS_DIR "/dev.parameters.json", extra);
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "has changed since the what-if");
    TU_ASSERT_NOT_CONTAINS(res.err, "PUT https://");
    tu_cmd_free(&res);
    free(m);
    free(extra);
    free(text);
    free(changed);
    free(hash);
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

/* ---- against the fake Resource Manager (tests/servers/azure_fake) ------------------------- */

#define FAKE_SUB "00000000-1111-2222-3333-444444444444"
#define FAKE_RG  "rg-mlstage"

static struct {
    pid_t pid;
    FILE *out;
    int port;
} fake = {-1, NULL, 0};

/* Starts the fake once for the suite: it prints its port, then nothing more on stdout. */
static int fake_start(void)
{
    int fds[2];
    char line[128];
    if (fake.pid > 0)
        return 0;
    if (pipe(fds) != 0)
        return -1;
    fake.pid = fork();
    if (fake.pid == 0) {
        /* Whatever happens to the test, the server goes with it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", MLSTAGE_SOURCE_DIR "/tests/servers/azure_fake/server.py",
               "--port", "0", "--retry-after", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    fake.out = fdopen(fds[0], "r");
    if (fake.pid < 0 || !fake.out || !fgets(line, sizeof(line), fake.out) ||
        sscanf(line, "listening http://127.0.0.1:%d", &fake.port) != 1) {
        fprintf(stderr, "\nazure_fake did not start\n");
        fake.port = 0;
        return -1;
    }
    return 0;
}

static void fake_stop(void)
{
    int status;
    if (fake.pid > 0) {
        kill(fake.pid, SIGTERM);
        waitpid(fake.pid, &status, 0);
    }
    if (fake.out)
        fclose(fake.out);
    fake.pid = -1;
    fake.out = NULL;
}

/* A call to the fake's control API; returns the body (caller frees) or NULL. */
static char *fake_call(const char *method, const char *path, const char *body)
{
    struct tu_cmd res;
    char *url = tu_fmt("http://127.0.0.1:%d%s", fake.port, path);
    const char *with_body[] = {"curl",
                               "-sS",
                               "--max-time",
                               "20",
                               "-X",
                               method,
                               "-H",
                               "Content-Type: application/json",
                               "--data-binary",
                               body,
                               url,
                               NULL};
    const char *without[] = {"curl", "-sS", "--max-time", "20", "-X", method, url, NULL};
    tu_run(body ? with_body : without, NULL, NULL, NULL, 30, &res);
    char *out = res.exit_code == 0 ? strdup(res.out) : NULL;
    if (!out)
        fprintf(stderr, "\ncurl %s %s: exit %d\n%s\n", method, path, res.exit_code, res.err);
    tu_cmd_free(&res);
    free(url);
    return out;
}

/* A fresh fake: resources, tokens, faults and the request log cleared. */
static void fake_reset(void)
{
    CU_ASSERT_EQUAL_FATAL(fake_start(), 0);
    free(fake_call("POST", "/_fake/reset", "{}"));
    free(fake_call("POST", "/_fake/config", "{\"retry_after\": 0}"));
}

/* The requests the fake received under /subscriptions, as a new array. */
static json_object *fake_requests(void)
{
    char *text = fake_call("GET", "/_fake/requests", NULL);
    json_object *doc = parse(text), *list = NULL;
    if (doc && json_object_object_get_ex(doc, "requests", &list))
        json_object_get(list);
    else if (json_object_is_type(doc, json_type_array))
        list = json_object_get(doc);
    json_object_put(doc);
    free(text);
    return list;
}

/* How many requests matched METHOD and a path containing `part`. */
static int count_requests(json_object *list, const char *method, const char *part)
{
    int n = 0;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *r = json_object_array_get_idx(list, i);
        const char *m = jpath(r, "method"), *p = jpath(r, "path");
        if (m && p && strcmp(m, method) == 0 && strstr(p, part))
            n++;
    }
    return n;
}

/* The environment that points the core's credential chain and ARM client at the fake. */
struct fake_env {
    char *authority, *arm;
    const char *v[16];
};

static void fake_env_init(struct fake_env *e)
{
    e->authority = tu_fmt("AZURE_AUTHORITY_HOST=http://127.0.0.1:%d", fake.port);
    e->arm = tu_fmt("MLSTAGE_ARM_ENDPOINT=http://127.0.0.1:%d", fake.port);
    const char *v[] = {e->authority,
                       e->arm,
                       "AZURE_TENANT_ID=11111111-1111-1111-1111-111111111111",
                       "AZURE_CLIENT_ID=22222222-2222-2222-2222-222222222222",
                       "AZURE_CLIENT_SECRET=fake+secret/with&special=chars%",
                       "AZURE_FEDERATED_TOKEN_FILE",
                       "ACTIONS_ID_TOKEN_REQUEST_URL",
                       "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                       "IDENTITY_ENDPOINT",
                       "IDENTITY_HEADER",
                       "IMDS_ENDPOINT=http://127.0.0.1:9",
                       "AZURE_TOKEN_CREDENTIALS",
                       NULL};
    memcpy(e->v, v, sizeof(v));
}

static void fake_env_free(struct fake_env *e)
{
    free(e->authority);
    free(e->arm);
}

/* An azureml manifest against the fake's subscription and resource group. */
static char *azure_manifest(const char *params, const char *mode, const char *extra)
{
    char *more = tu_fmt("  mode: %s\n  subscription_id: " FAKE_SUB "\n  resource_group: " FAKE_RG
                        "\n  deployment_name: infra-test\n  wait_timeout: 60\n%s",
                        mode, extra ? extra : "");
    char *body = tu_fmt("task: infra\nplugin: infra-bicep\nbackend: azureml\ninputs:\n"
                        "  template: %s\n  parameters: %s\n%s",
                        TEMPLATE, params, more);
    char *path = manifest("infra-azure", body);
    free(body);
    free(more);
    return path;
}

static void run_azure(const char *m, const char *const *extra_args, struct tu_cmd *res)
{
    struct fake_env e;
    const char *argv[16] = {"run", m, "--output", "json"};
    size_t n = 4;
    for (const char *const *a = extra_args; a && *a; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    fake_env_init(&e);
    run(argv, e.v, res);
    fake_env_free(&e);
}

static void test_azureml_validate_posts_to_validate(void)
{
    setup();
    fake_reset();
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "validate", NULL);
    struct tu_cmd res;
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    /* dev creates no registry: its condition is false */
    ASSERT_STR(jpath(out, "validated_resources"), "5");
    ASSERT_STR(jpath(out, "provisioning_state"), "Succeeded");
    json_object *reqs = fake_requests();
    CU_ASSERT_EQUAL(count_requests(reqs, "POST", "/deployments/infra-test/validate"), 1);
    CU_ASSERT_EQUAL(count_requests(reqs, "PUT", "/deployments/"), 0);
    json_object_put(reqs);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_deploys_with_lro_and_publishes_outputs(void)
{
    setup();
    fake_reset();
    char *m = azure_manifest(PARAMS_DIR "/qa.parameters.json", "deploy", "  tags: {owner: ml}\n");
    struct tu_cmd res;
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "provisioning_state"), "Succeeded");
    ASSERT_STR(jpath(out, "output_workspaceName"), "mlw-mlstage-qa");
    ASSERT_STR(jpath(out, "output_workspaceId"),
               "/subscriptions/" FAKE_SUB "/resourceGroups/" FAKE_RG
               "/providers/Microsoft.MachineLearningServices/workspaces/"
               "mlw-mlstage-qa");
    TU_ASSERT_CONTAINS(jpath(out, "output_storageAccountName"), "stmlstageqa");
    TU_ASSERT_CONTAINS(jpath(out, "output_keyVaultName"), "kv-mlstage-qa-");
    ASSERT_STR(jpath(out, "output_applicationInsightsName"), "appi-mlstage-qa");
    ASSERT_STR(jpath(out, "deployment_name"), "infra-test");
    TU_ASSERT_CONTAINS(res.err, "deployed infra-test into " FAKE_RG ": Succeeded");
    json_object *reqs = fake_requests();
    CU_ASSERT_EQUAL(count_requests(reqs, "PUT", "/deployments/infra-test"), 1);
    /* The long-running operation was followed to its end. */
    CU_ASSERT_TRUE(count_requests(reqs, "GET", "/deployments/infra-test") >= 2);
    /* The deployment carries the provenance tags and the manifest's. */
    for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
        json_object *r = json_object_array_get_idx(reqs, i);
        if (strcmp(jpath(r, "method"), "PUT") != 0)
            continue;
        json_object *tags = NULL;
        json_object_object_get_ex(json_object_object_get(r, "json"), "tags", &tags);
        ASSERT_STR(json_object_get_string(json_object_object_get(tags, "owner")), "ml");
        ASSERT_STR(json_object_get_string(json_object_object_get(tags, "mlstage.task")), "infra");
        CU_ASSERT_PTR_NOT_NULL(json_object_object_get(tags, "mlstage.commit"));
        TU_ASSERT_CONTAINS(jpath(r, "query"), "api-version=2025-04-01");
    }
    json_object_put(reqs);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

/* With Retry-After 1 s on every answer, the fake counts any poll sent before it ran out. */
static void test_azureml_polls_no_sooner_than_retry_after(void)
{
    setup();
    fake_reset();
    free(fake_call("POST", "/_fake/config", "{\"retry_after\": 1, \"lro_polls\": 2}"));
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "deploy", NULL);
    struct tu_cmd res;
    double t0 = now_mono();
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    /* The 201, then two polls "in progress", each saying wait 1 s. */
    CU_ASSERT_TRUE(now_mono() - t0 >= 3.0);
    char *text = fake_call("GET", "/_fake/state", NULL);
    json_object *doc = parse(text), *st = NULL, *early = NULL;
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "state", &st) &&
                   json_object_object_get_ex(st, "early_polls", &early));
    CU_ASSERT_EQUAL(json_object_get_int(early), 0);
    json_object_put(doc);
    free(text);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_what_if_lists_the_changes_after_a_deploy(void)
{
    setup();
    fake_reset();
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "deploy", NULL);
    struct tu_cmd res;
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(m);

    /* Longer log retention and a registry: one resource to create, two to change. */
    m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "what-if",
                       "  parameter_values:\n    logRetentionInDays: 90\n"
                       "    enableContainerRegistry: true\n");
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "changes_create"), "1");
    ASSERT_STR(jpath(out, "changes_modify"), "2");
    ASSERT_STR(jpath(out, "changes_delete"), "0");
    ASSERT_STR(jpath(out, "changes_nochange"), "3");
    ASSERT_STR(jpath(out, "has_changes"), "true");
    TU_ASSERT_CONTAINS(res.err, "+ Create    /subscriptions/" FAKE_SUB "/resourceGroups/" FAKE_RG
                                "/providers/Microsoft.ContainerRegistry/registries/crmlstagedev");
    TU_ASSERT_CONTAINS(res.err, "~ Modify    /subscriptions/" FAKE_SUB "/resourceGroups/" FAKE_RG
                                "/providers/Microsoft.OperationalInsights/workspaces/"
                                "log-mlstage-dev");
    TU_ASSERT_CONTAINS(res.err, "~ retentionInDays: 30 => 90");
    TU_ASSERT_CONTAINS(res.err, "= NoChange  /subscriptions/");
    TU_ASSERT_CONTAINS(res.err, "1 to create, 2 to modify, 0 to delete, 3 unchanged, 0 ignored");
    json_object *doc = parse(res.out);
    char *summary = tu_fmt("%s/summary.md", jpath(doc, "run_dir"));
    json_object_put(doc);
    char *md = tu_read(summary, NULL);
    TU_ASSERT_CONTAINS(md, "| Create | `/subscriptions/");
    TU_ASSERT_CONTAINS(md, "1 to create, 2 to modify, 0 to delete");
    json_object *reqs = fake_requests();
    CU_ASSERT_EQUAL(count_requests(reqs, "POST", "/deployments/infra-test/whatIf"), 1);
    json_object_put(reqs);
    free(md);
    free(summary);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_failed_deployment_exits_1_with_details(void)
{
    setup();
    fake_reset();
    /* The fake fails any deployment with its magic word in a resource name. */
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "deploy",
                             "  parameter_values:\n    baseName: fakearmfail\n");
    struct tu_cmd res;
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "deployment infra-test into " FAKE_RG " failed");
    TU_ASSERT_CONTAINS(res.err, "DeploymentFailed");
    TU_ASSERT_CONTAINS(res.err, "ResourceDeploymentFailure");
    TU_ASSERT_CONTAINS(res.err,
                       "Microsoft.OperationalInsights/workspaces log-fakearmfail-dev failed: "
                       "BadRequest: azure_fake: resource 'log-fakearmfail-dev' failed");
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "provisioning_state"), "Failed");
    CU_ASSERT_PTR_NULL(jpath(out, "output_workspaceName"));
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_retries_429_with_retry_after_then_succeeds(void)
{
    setup();
    fake_reset();
    free(fake_call("POST", "/_fake/faults",
                   "{\"match\": \"PUT .*/deployments/infra-test$\", \"times\": 2, "
                   "\"status\": 429, \"retry_after\": \"1\"}"));
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "deploy", NULL);
    struct tu_cmd res;
    run_azure(m, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "provisioning_state"), "Succeeded");
    json_object *reqs = fake_requests();
    CU_ASSERT_EQUAL(count_requests(reqs, "PUT", "/deployments/infra-test"), 3);
    /* Retry-After was waited for: the fake marks a retry that came early. */
    for (size_t i = 0; reqs && i < json_object_array_length(reqs); i++) {
        const char *fault = jpath(json_object_array_get_idx(reqs, i), "fault");
        CU_ASSERT_TRUE(!fault || strcmp(fault, "early-retry") != 0);
    }
    json_object_put(reqs);
    json_object_put(out);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_dry_run_sends_no_put(void)
{
    setup();
    fake_reset();
    char *m = azure_manifest(PARAMS_DIR "/dev.parameters.json", "deploy", NULL);
    struct tu_cmd res;
    run_azure(m, (const char *[]){"--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *url = tu_fmt("PUT http://127.0.0.1:%d/subscriptions/" FAKE_SUB "/resourcegroups/" FAKE_RG
                       "/providers/Microsoft.Resources/deployments/infra-test?api-version="
                       "2025-04-01",
                       fake.port);
    TU_ASSERT_CONTAINS(res.err, url);
    TU_ASSERT_CONTAINS(res.err, "\"enableContainerRegistry\": {");
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "provisioning_state"), "planned");
    json_object *reqs = fake_requests();
    CU_ASSERT_EQUAL(count_requests(reqs, "PUT", "/"), 0);
    CU_ASSERT_EQUAL(count_requests(reqs, "DELETE", "/"), 0);
    json_object_put(reqs);
    json_object_put(out);
    free(url);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_needs_a_subscription_and_resource_group(void)
{
    setup();
    fake_reset();
    char *m = infra_manifest(TEMPLATE, PARAMS_DIR "/dev.parameters.json", NULL);
    struct tu_cmd res;
    run_azure(m, (const char *[]){"--backend", "azureml", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "set inputs.subscription_id and inputs.resource_group");
    json_object *reqs = fake_requests();
    CU_ASSERT_PTR_NOT_NULL(reqs);
    CU_ASSERT_EQUAL(reqs ? json_object_array_length(reqs) : 1, 0);
    json_object_put(reqs);
    tu_cmd_free(&res);
    free(m);
}

static void test_azureml_secure_values_appear_nowhere(void)
{
    setup();
    fake_reset();
    char *body = tu_fmt("task: infra\nplugin: infra-bicep\nbackend: azureml\ninputs:\n"
                        "  template: %s/secure.json\n  parameters: %s/secure.parameters.json\n"
                        "  mode: deploy\n  subscription_id: " FAKE_SUB "\n"
                        "  resource_group: " FAKE_RG "\n",
                        DATA, DATA);
    char *m = manifest("secure-azure", body);
    struct tu_cmd res;
    run_azure(m, (const char *[]){"-v", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *out = outputs_of(&res);
    ASSERT_STR(jpath(out, "output_label"), "demo");
    json_object_put(out);
    assert_no_secret(&res);
    tu_cmd_free(&res);
    free(m);
    free(body);
}

static void cleanup(void)
{
    fake_stop();
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
        {"azureml polls no sooner than Retry-After", test_azureml_polls_no_sooner_than_retry_after},
        {"local backend prints the resources and the request",
         test_local_backend_prints_the_resources_and_the_request},
        {"deploy refuses a template changed since the what-if",
         test_deploy_refuses_a_template_changed_since_the_what_if},
        {"deployment name defaults to task and short commit",
         test_deployment_name_defaults_to_task_and_short_commit},
        {"azureml: validate posts to .../validate", test_azureml_validate_posts_to_validate},
        {"azureml: deploys with a long-running operation and publishes the outputs",
         test_azureml_deploys_with_lro_and_publishes_outputs},
        {"azureml: what-if lists the changes after a deploy",
         test_azureml_what_if_lists_the_changes_after_a_deploy},
        {"azureml: a failed deployment exits 1 with its details",
         test_azureml_failed_deployment_exits_1_with_details},
        {"azureml: 429 with Retry-After is retried, then succeeds",
         test_azureml_retries_429_with_retry_after_then_succeeds},
        {"azureml: a dry run sends no PUT", test_azureml_dry_run_sends_no_put},
        {"azureml: needs a subscription and a resource group",
         test_azureml_needs_a_subscription_and_resource_group},
        {"azureml: secure values appear nowhere", test_azureml_secure_values_appear_nowhere},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "infra-bicep", tests);
    cleanup();
    return rc;
}
