/* test_pipeline_set.c — a pipeline stage's `set:` values may pass earlier stages' outputs to a
 * manifest file. */
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "testutil.h"

static char *ws;

static void setup(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
    /* A stage manifest that knows nothing of pipelines: it takes its label from a variable. */
    char *stage = tu_fmt("%s/labelled.yml", ws);
    tu_write(stage, "task: labelled\nplugin: test-plugin\ninputs:\n  mode: ok\n"
                    "  label: ${var.label:-standalone}\n");
    free(stage);
}

static char *pipeline(const char *name, const char *set_value, const char *when)
{
    char *path = tu_fmt("%s/%s.yml", ws, name);
    char *body = tu_fmt("pipeline: demo\nstages:\n"
                        "  - task: first\n    plugin: test-plugin\n"
                        "    inputs: {mode: ok, label: from-first}\n"
                        "  - manifest: labelled.yml\n%s"
                        "    set:\n      label: \"%s\"\n",
                        when ? when : "", set_value);
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
    argv[n++] = "--plugin-path";
    argv[n++] = MLSTAGE_TEST_PLUGIN_DIR;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    const char *env[] = {"TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "NO_COLOR=1", NULL};
    tu_mlstage(argv, env, ws, res);
}

static void test_set_passes_an_earlier_stage_output_to_a_manifest_file(void)
{
    setup();
    char *p = pipeline("pass", "${stages.first.outputs.label}-again", NULL);
    struct tu_cmd res;
    run((const char *[]){"pipeline", "run", p, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "hello from the test plugin, label from-first-again\n");
    TU_ASSERT_NOT_CONTAINS(res.err, "${stages");
    tu_cmd_free(&res);
    /* and the stage manifest still runs on its own */
    char *stage = tu_fmt("%s/labelled.yml", ws);
    run((const char *[]){"run", stage, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "label=standalone\n");
    tu_cmd_free(&res);
    free(stage);
    free(p);
}

static void test_a_dry_run_passes_placeholders(void)
{
    setup();
    char *p = pipeline("dry", "${stages.first.outputs.label}", NULL);
    struct tu_cmd res;
    run((const char *[]){"pipeline", "run", p, "--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "label <stages.first.outputs.label>\n");
    tu_cmd_free(&res);
    free(p);
}

static void test_a_bad_reference_in_set_names_its_position(void)
{
    setup();
    char *p = pipeline("bad", "${stages.frist.outputs.label}", NULL);
    struct tu_cmd res;
    run((const char *[]){"pipeline", "run", p, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "bad.yml:8:14: set.label:");
    TU_ASSERT_CONTAINS(res.err, "there is no stage 'frist'");
    tu_cmd_free(&res);
    run((const char *[]){"validate", p, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "there is no stage 'frist'");
    tu_cmd_free(&res);
    free(p);
}

static void test_a_skipped_stage_does_not_expand_its_set(void)
{
    setup();
    /* The reference could not resolve, but the stage does not run, so it is never needed. */
    char *p = pipeline("skip", "${stages.first.outputs.nonexistent}", "    when: false\n");
    struct tu_cmd res;
    run((const char *[]){"pipeline", "run", p, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "skipped");
    tu_cmd_free(&res);
    free(p);
}

/*
 * --from reuses an earlier stage's outputs only from a run of the same pipeline with the same
 * --set values: another pipeline's stage of the same name may have built something else.
 */
static void test_from_reuses_only_this_pipelines_runs_with_the_same_set_values(void)
{
    setup();
    char *p = pipeline("this", "${stages.first.outputs.label}-again", NULL);
    char *other = pipeline("other", "${stages.first.outputs.label}-again", NULL);
    struct tu_cmd res;
    run((const char *[]){"pipeline", "run", other, "--set", "x=1", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    /* Only the other pipeline has run `first`. */
    run((const char *[]){"pipeline", "run", p, "--from", "labelled", "--set", "x=1", NULL}, &res);
    TU_ASSERT_CONTAINS(res.err, "--- first: not selected, and no earlier successful run");
    TU_ASSERT_NOT_CONTAINS(res.err, "using the outputs of run");
    tu_cmd_free(&res);
    run((const char *[]){"pipeline", "run", p, "--set", "x=1", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    /* Other --set values: not the same run. */
    run((const char *[]){"pipeline", "run", p, "--from", "labelled", "--set", "x=2", NULL}, &res);
    TU_ASSERT_CONTAINS(res.err, "--- first: not selected, and no earlier successful run");
    tu_cmd_free(&res);
    run((const char *[]){"pipeline", "run", p, "--from", "labelled", "--set", "x=1", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "--- first: not selected, using the outputs of run");
    TU_ASSERT_CONTAINS(res.err, "label from-first-again\n");
    tu_cmd_free(&res);
    /* A dry run plans with the same outputs, not placeholders. */
    run((const char *[]){"pipeline", "run", p, "--from", "labelled", "--set", "x=1", "--dry-run",
                         NULL},
        &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "label from-first-again\n");
    tu_cmd_free(&res);
    free(other);
    free(p);
}

static void cleanup(void)
{
    tu_rm_rf(ws);
    free(ws);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"set passes an earlier stage's output to a manifest file",
         test_set_passes_an_earlier_stage_output_to_a_manifest_file},
        {"a dry run passes placeholders", test_a_dry_run_passes_placeholders},
        {"a bad reference in set names its position",
         test_a_bad_reference_in_set_names_its_position},
        {"a skipped stage does not expand its set", test_a_skipped_stage_does_not_expand_its_set},
        {"--from reuses only this pipeline's runs with the same --set values",
         test_from_reuses_only_this_pipelines_runs_with_the_same_set_values},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "pipeline set", tests);
    cleanup();
    return rc;
}
