/* test_evaluate.c — the evaluate plugin through the real binary: champions, rules, the report. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include <mlstage/error.h>
#include <mlstage/registry.h>

#include "ctx.h"
#include "testutil.h"

static char *ws;
static int registered; /* versions registered so far, so each has its own files */

static void setup(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
    registered = 0;
}

/*
 * Registers a version of `model` with `metrics` (JSON text) through the
 * public registry API, as the register stage would, and points `alias`
 * (when not NULL) at it. Returns the version.
 */
static int register_version(const char *model, const char *metrics, const char *alias)
{
    struct mlstage_ctx *ctx = ctx_new();
    ctx->workspace_dir = strdup(ws);
    ctx->run_id = strdup("20261123T000000.000Z-000000");
    ctx->task = strdup("register");
    char *dir = tu_fmt("%s/model-src-%d", ws, ++registered);
    char *file = tu_fmt("%s/model.pkl", dir);
    char *content = tu_fmt("weights of version %d\n", registered);
    mkdir(dir, 0755);
    tu_write(file, content);
    json_object *m = json_tokener_parse(metrics), *out = NULL, *v = NULL;
    struct mlstage_model_spec spec = {.name = model, .path = dir, .metrics = m};
    struct mlstage_registry *reg = NULL;
    int version = 0;
    CU_ASSERT_EQUAL_FATAL(mlstage_registry_open(ctx, &reg), 0);
    int rc = mlstage_registry_register(reg, &spec, &out, NULL);
    if (rc)
        fprintf(stderr, "register: %s\n", mlstage_error_message(ctx));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    if (json_object_object_get_ex(out, "version", &v))
        version = json_object_get_int(v);
    if (alias)
        CU_ASSERT_EQUAL(mlstage_registry_set_alias(reg, model, alias, version, NULL), 0);
    mlstage_registry_close(reg);
    json_object_put(out);
    json_object_put(m);
    free(content);
    free(file);
    free(dir);
    ctx_free(ctx);
    return version;
}

/* An evaluate manifest comparing `metrics` (inline YAML/JSON) with diabetes@production. */
static char *manifest(const char *name, const char *metrics, const char *extra)
{
    char *path = tu_fmt("%s/%s.yml", ws, name);
    char *body = tu_fmt("task: evaluate\nplugin: evaluate\ninputs:\n  model: diabetes\n"
                        "  metrics: %s\n  metric: rmse\n%s",
                        metrics, extra ? extra : "");
    CU_ASSERT_EQUAL_FATAL(tu_write(path, body), 0);
    free(body);
    return path;
}

static void run(const char *const *args, struct tu_cmd *res)
{
    const char *argv[40];
    size_t n = 0;
    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    const char *env[] = {
        "TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "NO_COLOR=1", NULL};
    tu_mlstage(argv, env, ws, res);
}

static const char *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

/* Runs the manifest with --output json; returns the document (put it) and the exit code. */
static json_object *evaluate(const char *manifest_path, const char *const *more, int *exit_code)
{
    const char *args[20] = {"run", manifest_path, "--output", "json"};
    size_t n = 4;
    for (const char *const *m = more; m && *m; m++)
        args[n++] = *m;
    args[n] = NULL;
    struct tu_cmd res;
    run(args, &res);
    *exit_code = res.exit_code;
    json_object *doc = json_tokener_parse(res.out ? res.out : "");
    if (!doc)
        fprintf(stderr, "\nno JSON on stdout:\n%s\n--- stderr\n%s\n", res.out, res.err);
    CU_ASSERT_PTR_NOT_NULL(doc);
    tu_cmd_free(&res);
    return doc;
}

static json_object *outputs_of(json_object *doc)
{
    json_object *v = NULL;
    json_object_object_get_ex(doc, "outputs", &v);
    return v;
}

#define THRESHOLDS "  thresholds:\n    r2: {min: 0.3}\n"

static void test_no_champion_promotes_when_thresholds_hold(void)
{
    setup();
    char *m = manifest("first", "{rmse: 54.0, r2: 0.45, mae: 44.2}", THRESHOLDS);
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    json_object *out = outputs_of(doc);
    CU_ASSERT_STRING_EQUAL(jget(out, "promote"), "true");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_version"), "none");
    CU_ASSERT_STRING_EQUAL(jget(out, "candidate_rmse"), "54");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_rmse"), "none");
    CU_ASSERT_STRING_EQUAL(jget(out, "delta_rmse"), "none");
    CU_ASSERT_STRING_EQUAL(jget(out, "thresholds_passed"), "true");
    TU_ASSERT_CONTAINS(jget(out, "reason"), "no production version yet");
    json_object_put(doc);
    free(m);
}

static void test_no_champion_rejects_when_a_threshold_fails(void)
{
    setup();
    char *m = manifest("weak", "{rmse: 54.0, r2: 0.21}", THRESHOLDS);
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 0); /* a rejection is not a failure */
    json_object *out = outputs_of(doc);
    CU_ASSERT_STRING_EQUAL(jget(out, "promote"), "false");
    CU_ASSERT_STRING_EQUAL(jget(out, "thresholds_passed"), "false");
    TU_ASSERT_CONTAINS(jget(out, "reason"), "r2 = 0.21 is below its minimum 0.3");
    json_object_put(doc);
    free(m);
}

static void test_a_better_candidate_beats_the_champion(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 72.0, \"r2\": 0.1}", NULL);
    int champion = register_version("diabetes", "{\"rmse\": 60.0, \"r2\": 0.35}", "production");
    register_version("diabetes", "{\"rmse\": 10.0, \"r2\": 0.99}", NULL); /* latest, not champion */
    CU_ASSERT_EQUAL(champion, 2);
    char *m = manifest("better", "{rmse: 54.0, r2: 0.45}",
                       THRESHOLDS "  min_improvement: {absolute: 1.5}\n");
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    json_object *out = outputs_of(doc);
    CU_ASSERT_STRING_EQUAL(jget(out, "promote"), "true");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_version"), "2");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_rmse"), "60");
    CU_ASSERT_STRING_EQUAL(jget(out, "delta_rmse"), "-6");
    CU_ASSERT_STRING_EQUAL(jget(out, "delta_relative_rmse"), "-0.1");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_r2"), "0.35");
    TU_ASSERT_CONTAINS(jget(out, "reason"), "from 60 (version 2) to 54");
    json_object_put(doc);
    free(m);
}

static void test_a_worse_candidate_is_rejected_with_exit_0(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 54.0, \"r2\": 0.45}", "production");
    char *m = manifest("worse", "{rmse: 72.3, r2: 0.31}", THRESHOLDS);
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    json_object *out = outputs_of(doc);
    CU_ASSERT_STRING_EQUAL(jget(out, "promote"), "false");
    CU_ASSERT_STRING_EQUAL(jget(out, "champion_version"), "1");
    CU_ASSERT_STRING_EQUAL(jget(out, "delta_rmse"), "18.3");
    TU_ASSERT_CONTAINS(jget(out, "reason"), "Keep version 1");
    TU_ASSERT_CONTAINS(jget(out, "reason"), "not better than version 1's 54");
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "succeeded");
    json_object_put(doc);
    free(m);
}

static void test_fail_on_reject_exits_1(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 54.0, \"r2\": 0.45}", "production");
    char *m = manifest("strict", "{rmse: 72.3, r2: 0.31}", "  fail_on_reject: true\n");
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 1);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "promote"), "false");
    TU_ASSERT_CONTAINS(jget(doc, "error"), "fail_on_reject is true");
    json_object_put(doc);
    /* and a candidate that is promoted still exits 0 */
    char *better = manifest("strict-ok", "{rmse: 50.0, r2: 0.5}", "  fail_on_reject: true\n");
    doc = evaluate(better, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "promote"), "true");
    json_object_put(doc);
    free(better);
    free(m);
}

static void test_relative_and_absolute_improvement_differ(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 100.0}", "production");
    /* 2 better: 2 % relative */
    char *abs_ok = manifest("abs-ok", "{rmse: 98.0}", "  min_improvement: {absolute: 1.5}\n");
    char *abs_no = manifest("abs-no", "{rmse: 98.0}", "  min_improvement: {absolute: 2.5}\n");
    char *rel_ok = manifest("rel-ok", "{rmse: 98.0}", "  min_improvement: {relative: 0.015}\n");
    char *rel_no = manifest("rel-no", "{rmse: 98.0}", "  min_improvement: {relative: 0.03}\n");
    const char *paths[] = {abs_ok, abs_no, rel_ok, rel_no};
    const char *want[] = {"true", "false", "true", "false"};
    for (size_t i = 0; i < 4; i++) {
        int code;
        json_object *doc = evaluate(paths[i], NULL, &code);
        CU_ASSERT_EQUAL(code, 0);
        const char *promote = jget(outputs_of(doc), "promote");
        CU_ASSERT_STRING_EQUAL(promote ? promote : "(none)", want[i]);
        if (strcmp(want[i], "false") == 0)
            TU_ASSERT_CONTAINS(jget(outputs_of(doc), "reason"), "lower min_improvement");
        json_object_put(doc);
    }
    /* both forms at once are refused before anything runs */
    char *both =
        manifest("both", "{rmse: 98.0}", "  min_improvement: {absolute: 1, relative: 0.01}\n");
    struct tu_cmd res;
    run((const char *[]){"run", both, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "min_improvement");
    tu_cmd_free(&res);
    free(both);
    free(abs_ok);
    free(abs_no);
    free(rel_ok);
    free(rel_no);
}

static void test_maximize_direction_prefers_higher(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 54.0, \"r2\": 0.40}", "production");
    char *higher = tu_fmt("%s/higher.yml", ws);
    tu_write(higher, "task: evaluate\nplugin: evaluate\ninputs:\n  model: diabetes\n"
                     "  metrics: {rmse: 60.0, r2: 0.48}\n  metric: r2\n  direction: maximize\n");
    int code;
    json_object *doc = evaluate(higher, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "promote"), "true");
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "direction"), "maximize");
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "metric"), "r2");
    json_object_put(doc);
    char *lower = tu_fmt("%s/lower.yml", ws);
    tu_write(lower, "task: evaluate\nplugin: evaluate\ninputs:\n  model: diabetes\n"
                    "  metrics: {rmse: 50.0, r2: 0.38}\n  metric: r2\n  direction: maximize\n");
    doc = evaluate(lower, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "promote"), "false");
    TU_ASSERT_CONTAINS(jget(outputs_of(doc), "reason"), "higher is better");
    json_object_put(doc);
    free(lower);
    free(higher);
}

static void test_metrics_come_from_a_file_or_json_text(void)
{
    setup();
    char *file = tu_fmt("%s/metrics.json", ws);
    tu_write(file, "{\"rmse\": 53.5, \"r2\": 0.5}\n");
    /* a path relative to the workspace, an absolute path, JSON text (as a stage output is) */
    const char *forms[] = {"metrics.json", file, "'{\"rmse\": 53.5, \"r2\": 0.5}'"};
    for (size_t i = 0; i < 3; i++) {
        char *m = manifest("forms", forms[i], THRESHOLDS);
        int code;
        json_object *doc = evaluate(m, NULL, &code);
        CU_ASSERT_EQUAL(code, 0);
        const char *rmse = jget(outputs_of(doc), "candidate_rmse");
        CU_ASSERT_STRING_EQUAL(rmse ? rmse : "(none)", "53.5");
        json_object_put(doc);
        free(m);
    }
    /* --set, as a pipeline or a person passes a training run's metrics_file */
    char *m = manifest("var", "${var.metrics:-missing.json}", THRESHOLDS);
    char *set = tu_fmt("metrics=%s", file);
    int code;
    json_object *doc = evaluate(m, (const char *[]){"--set", set, NULL}, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "promote"), "true");
    json_object_put(doc);
    /* a missing file is an input error naming it */
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "missing.json");
    tu_cmd_free(&res);
    free(set);
    free(m);
    free(file);
}

static void test_a_missing_metric_is_an_input_error_naming_what_is_there(void)
{
    setup();
    char *m = manifest("nometric", "{mae: 44.0, r2: 0.45}", NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "have no \"rmse\"");
    TU_ASSERT_CONTAINS(res.err, "mae, r2");
    tu_cmd_free(&res);
    free(m);
    m = manifest("nothreshold", "{rmse: 44.0}", "  thresholds:\n    accuracy: {min: 0.9}\n");
    run((const char *[]){"run", m, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "thresholds.accuracy");
    TU_ASSERT_CONTAINS(res.err, "they have: rmse");
    tu_cmd_free(&res);
    free(m);
}

static void test_report_has_a_table_a_mermaid_chart_and_a_well_formed_svg(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 60.0, \"r2\": 0.35, \"a<b&c\": -1}", "production");
    char *m =
        manifest("report", "{rmse: 54.0, r2: 0.45, \"a<b&c\": 2, \"odd|name\": 1}", THRESHOLDS);
    int code;
    json_object *doc = evaluate(m, NULL, &code);
    CU_ASSERT_EQUAL(code, 0);
    const char *run_dir = jget(doc, "run_dir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(run_dir);
    char *summary = tu_fmt("%s/summary.md", run_dir);
    char *md = tu_read(summary, NULL);
    TU_ASSERT_CONTAINS(md, "| metric | candidate | production v1 | delta | delta % |");
    TU_ASSERT_CONTAINS(md, "| **rmse** (lower is better) | 54 | 60 | -6 | -10 % |");
    TU_ASSERT_CONTAINS(md, "odd\\|name");
    TU_ASSERT_CONTAINS(md, "```mermaid\nxychart-beta\n");
    TU_ASSERT_CONTAINS(md, "x-axis [\"candidate\", \"production v1\"]");
    TU_ASSERT_CONTAINS(md, "bar [54, 60]");

    char *svg = tu_fmt("%s/evaluation.svg", run_dir);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(doc), "chart_file"), svg);
    struct tu_cmd res;
    char *check = tu_fmt("python3 -c 'import xml.dom.minidom,sys; "
                         "d = xml.dom.minidom.parse(sys.argv[1]); "
                         "print(d.documentElement.tagName, len(d.getElementsByTagName(\"rect\")))' "
                         "'%s'",
                         svg);
    tu_sh(check, NULL, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "svg ");
    tu_cmd_free(&res);
    char *text = tu_read(svg, NULL);
    TU_ASSERT_CONTAINS(text, "a&lt;b&amp;c");
    TU_ASSERT_CONTAINS(text, "xmlns=\"http://www.w3.org/2000/svg\"");
    /* declared as an artefact: stamped */
    char *statement = tu_fmt("%s.intoto.json", svg);
    struct stat st;
    CU_ASSERT_EQUAL(stat(statement, &st), 0);
    free(statement);
    free(text);
    free(check);
    free(svg);
    free(md);
    free(summary);
    json_object_put(doc);
    free(m);
}

static void test_dry_run_plans_when_the_metrics_are_not_there_yet(void)
{
    setup();
    register_version("diabetes", "{\"rmse\": 54.0}", "production");
    /* what a pipeline's dry run passes for an output of a stage that has not run */
    char *m = manifest("dry", "'<stages.train.outputs.metrics_file>'", NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: compare the candidate metrics in "
                                "<stages.train.outputs.metrics_file> with "
                                "diabetes@production (version 1) by rmse");
    tu_cmd_free(&res);
    /* outside a dry run, the same is an input error */
    run((const char *[]){"run", m, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    tu_cmd_free(&res);
    free(m);
}

static void test_backend_azureml_without_a_workspace_names_the_missing_inputs(void)
{
    setup();
    char *m = manifest("azure", "{rmse: 1}", "  workspace: mlw-mlstage\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--backend", "azureml", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs subscription_id and resource_group are not set");
    tu_cmd_free(&res);
    free(m);
}

/* Runs the project's own manifest with --output json from the workspace; returns its outputs. */
static json_object *run_task(const char *task, const char *const *more, int *exit_code)
{
    char *path = tu_fmt("%s/tasks/%s.yml", ws, task);
    json_object *doc = evaluate(path, more, exit_code);
    free(path);
    return doc;
}

static void test_the_project_manifests_train_and_evaluate_the_example(void)
{
    setup();
    struct tu_cmd res;
    tu_sh("/usr/bin/python3 -c 'import sklearn'", NULL, NULL, &res);
    int have = res.exit_code == 0;
    tu_cmd_free(&res);
    if (!have) {
        fprintf(stderr, "\nskipped: /usr/bin/python3 cannot import sklearn\n");
        CU_PASS("skipped: /usr/bin/python3 cannot import sklearn");
        return;
    }
    char *copy =
        tu_fmt("mkdir -p tasks && cp -r '%s/examples' . && "
               "cp '%s/tasks/train.yml' '%s/tasks/evaluate.yml' tasks/ && git init -q . && "
               "git add . && git -c user.name=t -c user.email=t@example.com commit -qm x",
               MLSTAGE_SOURCE_DIR, MLSTAGE_SOURCE_DIR, MLSTAGE_SOURCE_DIR);
    tu_sh(copy, NULL, ws, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(copy);

    int code;
    json_object *train = run_task("train", NULL, &code);
    CU_ASSERT_EQUAL_FATAL(code, 0);
    const char *metrics_file = jget(outputs_of(train), "metrics_file");
    CU_ASSERT_PTR_NOT_NULL_FATAL(metrics_file);
    char *set = tu_fmt("metrics=%s", metrics_file);
    json_object *first = run_task("evaluate", (const char *[]){"--set", set, NULL}, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(first), "promote"), "true");
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(first), "champion_version"), "none");
    /* it becomes the champion, as register and deploy would make it */
    char *metrics_text = tu_read(metrics_file, NULL);
    register_version("diabetes", metrics_text, "production");
    free(metrics_text);

    /* README: alpha 100 is a worse candidate, which evaluate rejects (and still exits 0) */
    json_object *worse = run_task("train", (const char *[]){"--set", "alpha=100", NULL}, &code);
    CU_ASSERT_EQUAL_FATAL(code, 0);
    char *set2 = tu_fmt("metrics=%s", jget(outputs_of(worse), "metrics_file"));
    json_object *second = run_task("evaluate", (const char *[]){"--set", set2, NULL}, &code);
    CU_ASSERT_EQUAL(code, 0);
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(second), "promote"), "false");
    CU_ASSERT_STRING_EQUAL(jget(outputs_of(second), "champion_version"), "1");
    TU_ASSERT_CONTAINS(jget(outputs_of(second), "reason"), "Keep version 1");
    json_object *strict = run_task(
        "evaluate", (const char *[]){"--set", set2, "--set", "fail_on_reject=true", NULL}, &code);
    CU_ASSERT_EQUAL(code, 1);
    json_object_put(strict);
    json_object_put(second);
    json_object_put(worse);
    json_object_put(first);
    json_object_put(train);
    free(set2);
    free(set);
}

static void cleanup(void)
{
    tu_rm_rf(ws);
    free(ws);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"no champion: promotes when thresholds hold",
         test_no_champion_promotes_when_thresholds_hold},
        {"no champion: rejects when a threshold fails",
         test_no_champion_rejects_when_a_threshold_fails},
        {"a better candidate beats the champion", test_a_better_candidate_beats_the_champion},
        {"a worse candidate is rejected with exit 0",
         test_a_worse_candidate_is_rejected_with_exit_0},
        {"fail_on_reject exits 1", test_fail_on_reject_exits_1},
        {"relative and absolute improvement differ", test_relative_and_absolute_improvement_differ},
        {"maximize direction prefers higher", test_maximize_direction_prefers_higher},
        {"metrics come from a file or JSON text", test_metrics_come_from_a_file_or_json_text},
        {"a missing metric is an input error naming what is there",
         test_a_missing_metric_is_an_input_error_naming_what_is_there},
        {"report has a table, a mermaid chart and a well-formed SVG",
         test_report_has_a_table_a_mermaid_chart_and_a_well_formed_svg},
        {"dry run plans when the metrics are not there yet",
         test_dry_run_plans_when_the_metrics_are_not_there_yet},
        {"backend azureml without a workspace names the missing inputs",
         test_backend_azureml_without_a_workspace_names_the_missing_inputs},
        {"the project's manifests train and evaluate the example",
         test_the_project_manifests_train_and_evaluate_the_example},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "evaluate", tests);
    cleanup();
    return rc;
}
