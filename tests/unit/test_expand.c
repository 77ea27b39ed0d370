/* test_expand.c — ${...} references: resolution, errors with exact positions, and re-typing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expand.h"
#include "manifest.h"
#include "testutil.h"

static struct mls_err err;

/* The environment the tests see: a fixed table instead of the process's. */
static const char *fake_getenv(const char *name)
{
    if (strcmp(name, "HOME") == 0)
        return "/home/ml";
    if (strcmp(name, "EMPTY") == 0)
        return "";
    return NULL;
}

struct fixture {
    json_object *vars, *secrets, *declared, *git, *stages;
    struct expand_env env;
};

static void fixture_init(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->vars = json_tokener_parse("{\"alpha\": \"0.3\", \"flag\": \"true\", \"blank\": \"\", "
                                 "\"model-dir\": \"out/model\", \"n\": 5}");
    f->secrets = json_tokener_parse("{\"TOKEN\": \"s3cr3t\"}");
    f->declared = json_tokener_parse("[\"TOKEN\", \"UNSET_SECRET\"]");
    f->git = json_tokener_parse("{\"commit\": \"0123456789abcdef0123456789abcdef01234567\", "
                                "\"short_commit\": \"0123456\", \"branch\": \"main\"}");
    f->stages = json_tokener_parse(
        "{\"train\": {\"status\": \"succeeded\", \"outputs\": {\"model_dir\": \"m\", "
        "\"metrics\": {\"rmse\": 0.5}, \"promote\": true}},"
        " \"evaluate\": {\"status\": \"pending\", \"outputs\": {}},"
        " \"register\": {\"status\": \"skipped\", \"outputs\": {}},"
        " \"deploy\": {\"status\": \"failed\", \"outputs\": {\"slot\": \"blue\"}}}");
    f->env.getenv_fn = fake_getenv;
    f->env.vars = f->vars;
    f->env.secrets = f->secrets;
    f->env.declared = f->declared;
    f->env.run_id = "20261123-092156-ab12";
    f->env.run_dir = ".mlstage/runs/20261123-092156-ab12";
    f->env.outputs_dir = ".mlstage/runs/20261123-092156-ab12/outputs";
    f->env.git = f->git;
    f->env.stages = f->stages;
}

static void fixture_free(struct fixture *f)
{
    json_object_put(f->vars);
    json_object_put(f->secrets);
    json_object_put(f->declared);
    json_object_put(f->git);
    json_object_put(f->stages);
}

static void expect_expands(const struct expand_env *env, const char *in, const char *want)
{
    char *out = NULL;
    size_t off = 99;
    err_clear(&err);
    int rc = expand_string(env, in, &out, &off, &err);
    if (rc != 0 || !out || strcmp(out, want) != 0)
        fprintf(stderr, "\n\"%s\": expected \"%s\", got rc %d \"%s\" %s\n", in, want, rc,
                out ? out : "(null)", err.msg);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL(out);
    if (out)
        CU_ASSERT_STRING_EQUAL(out, want);
    free(out);
}

static void expect_error(const struct expand_env *env, const char *in, size_t offset,
                         const char *what)
{
    char *out = (char *)"sentinel";
    size_t off = 999;
    err_clear(&err);
    int rc = expand_string(env, in, &out, &off, &err);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(err.code, MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(out);
    if (off != offset)
        fprintf(stderr, "\n\"%s\": expected offset %zu, got %zu\n", in, offset, off);
    CU_ASSERT_EQUAL(off, offset);
    TU_ASSERT_CONTAINS(err.msg, what);
}

/* ---- expand_string ---- */

static void test_expands_every_namespace(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_expands(&f.env, "${env.HOME}/data", "/home/ml/data");
    expect_expands(&f.env, "--alpha ${var.alpha}", "--alpha 0.3");
    expect_expands(&f.env, "${var.model-dir}", "out/model");
    expect_expands(&f.env, "${var.n}", "5");
    expect_expands(&f.env, "Bearer ${secret.TOKEN}", "Bearer s3cr3t");
    expect_expands(&f.env, "${run.id}", "20261123-092156-ab12");
    expect_expands(&f.env, "${run.dir}", ".mlstage/runs/20261123-092156-ab12");
    expect_expands(&f.env, "${run.outputs_dir}/m", ".mlstage/runs/20261123-092156-ab12/outputs/m");
    expect_expands(&f.env, "${git.commit}", "0123456789abcdef0123456789abcdef01234567");
    expect_expands(&f.env, "${git.short_commit}@${git.branch}", "0123456@main");
    expect_expands(&f.env, "${stages.train.outputs.model_dir}", "m");
    expect_expands(&f.env, "${stages.train.outputs.promote} == true", "true == true");
    expect_expands(&f.env, "${stages.train.outputs.metrics}", "{\"rmse\":0.5}");
    expect_expands(&f.env, "no references at all", "no references at all");
    expect_expands(&f.env, "", "");
    fixture_free(&f);
}

static void test_applies_defaults_like_the_shell(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_expands(&f.env, "${var.missing:-0.5}", "0.5");
    expect_expands(&f.env, "${var.alpha:-0.5}", "0.3");
    expect_expands(&f.env, "[${var.missing:-}]", "[]");
    expect_expands(&f.env, "${var.blank:-fallback}", "fallback");
    expect_expands(&f.env, "${env.NOPE:-/tmp}", "/tmp");
    expect_expands(&f.env, "${env.EMPTY:-d}", "d");
    expect_expands(&f.env, "[${env.EMPTY}]", "[]");
    expect_expands(&f.env, "${var.missing:-a:-b c}", "a:-b c");
    f.env.vars = NULL;
    expect_expands(&f.env, "${var.alpha:-1}", "1");
    fixture_free(&f);
}

static void test_keeps_literal_dollars(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_expands(&f.env, "$${var.alpha}", "${var.alpha}");
    expect_expands(&f.env, "echo $$ $HOME $1 $", "echo $$ $HOME $1 $");
    expect_expands(&f.env, "a$${b}${var.alpha}", "a${b}0.3");
    fixture_free(&f);
}

static void test_rejects_malformed_references(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_error(&f.env, "abc ${var.alpha", 4, "unclosed ${: expected a closing }");
    expect_error(&f.env, "${}", 0, "${}: an empty reference; expected ${env.NAME}, ${var.NAME}");
    expect_error(&f.env, "x ${alpha}", 2, "${alpha}: a reference needs a namespace and a name");
    expect_error(&f.env, "${var.}", 0, "a reference needs a namespace and a name");
    expect_error(&f.env, "${ var.alpha }", 0, "spaces are not allowed inside ${...}");
    expect_error(&f.env, "${var.a:-${var.b}}", 0, "a default cannot contain a reference");
    expect_error(&f.env, "${secret.TOKEN:-x}", 0, "a default (:-) is only allowed in ${env.NAME");
    expect_error(&f.env, "${run.id:-x}", 0, "only allowed in");
    expect_error(&f.env, "${env.1X}", 0, "'1X' is not an environment variable name");
    fixture_free(&f);
}

static void test_rejects_unknown_namespaces_saying_what_is_allowed(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_error(&f.env, "ok ${var.alpha} ${vars.alpha}", 16,
                 "${vars.alpha}: unknown namespace 'vars'; expected ${env.NAME}, ${var.NAME}, "
                 "${secret.NAME}, ${run.id|dir|outputs_dir}, ${git.commit|short_commit|branch} "
                 "or ${stages.NAME.outputs.KEY} (write $${ for a literal ${)");
    expect_error(&f.env, "${run.folder}", 0,
                 "unknown run key 'folder'; expected ${run.id}, ${run.dir} or ${run.outputs_dir}");
    expect_error(&f.env, "${git.sha}", 0,
                 "unknown git key 'sha'; expected ${git.commit}, ${git.short_commit} or "
                 "${git.branch}");
    fixture_free(&f);
}

static void test_rejects_unset_variables_without_a_default(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_error(&f.env, "--seed=${var.seed}", 7,
                 "${var.seed}: variable seed is not set; pass --set seed=VALUE or give a default: "
                 "${var.seed:-VALUE} (variables set: alpha, flag, blank, model-dir, n)");
    expect_error(&f.env, "${env.NOPE}", 0,
                 "environment variable NOPE is not set; set it, or give a default: "
                 "${env.NOPE:-VALUE}");
    f.env.run_id = NULL;
    expect_error(&f.env, "${run.id}", 0, "run.id is not available here");
    fixture_free(&f);
}

static void test_checks_secrets_are_declared_and_set(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_error(&f.env, "${secret.OTHER}", 0,
                 "secret OTHER is not declared; list it under secrets: in the manifest "
                 "(declared: TOKEN, UNSET_SECRET)");
    expect_error(&f.env, "${secret.UNSET_SECRET}", 0,
                 "secret UNSET_SECRET is declared but not set; export UNSET_SECRET");
    f.env.declared = NULL;
    expect_error(&f.env, "${secret.TOKEN}", 0, "(declared: none)");
    fixture_free(&f);
}

static void test_says_git_references_need_a_repository(void)
{
    struct fixture f;
    fixture_init(&f);
    f.env.git = NULL;
    expect_error(&f.env, "${git.commit}", 0,
                 "${git.commit}: not in a git repository (or it has no commits), so git.commit "
                 "is not available");
    json_object *detached = json_tokener_parse("{\"commit\": \"abc\", \"branch\": null}");
    f.env.git = detached;
    expect_error(&f.env, "${git.branch}", 0, "HEAD is detached");
    expect_expands(&f.env, "${git.commit}", "abc");
    json_object_put(detached);
    fixture_free(&f);
}

static void test_resolves_stage_outputs_by_status(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_error(&f.env, "${stages.train.outputs.model}", 0,
                 "stage 'train' has no output 'model'; its outputs: model_dir, metrics, promote");
    expect_error(&f.env, "${stages.lint.outputs.x}", 0,
                 "there is no stage 'lint' in this pipeline; stages: train, evaluate, register, "
                 "deploy");
    expect_error(&f.env, "${stages.register.outputs.version}", 0,
                 "stage 'register' was skipped, so its output 'version' is not available (its "
                 "outputs: none)");
    expect_error(&f.env, "${stages.deploy.outputs.slot}", 0,
                 "stage 'deploy' failed, so its output 'slot' is not available (its outputs: "
                 "slot)");
    expect_error(&f.env, "${stages.evaluate.outputs.promote}", 0,
                 "stage 'evaluate' has not run yet");
    expect_error(&f.env, "${stages.train.model_dir}", 0, "expected ${stages.NAME.outputs.KEY}");
    expect_error(&f.env, "${stages.train.outputs.}", 0, "expected ${stages.NAME.outputs.KEY}");
    f.env.placeholders = 1;
    expect_expands(&f.env, "${stages.evaluate.outputs.promote} == true",
                   "<stages.evaluate.outputs.promote> == true");
    /* A dry run still catches references that can never resolve. */
    expect_error(&f.env, "${stages.register.outputs.version}", 0, "was skipped");
    f.env.stages = NULL;
    expect_error(&f.env, "${stages.train.outputs.model_dir}", 0,
                 "stage outputs are only available in a pipeline");
    fixture_free(&f);
}

/* ---- expand_type_plain ---- */

static void test_types_expanded_text_like_yaml(void)
{
    json_object *o;
    CU_ASSERT_PTR_NULL(expand_type_plain(""));
    CU_ASSERT_PTR_NULL(expand_type_plain("~"));
    CU_ASSERT_PTR_NULL(expand_type_plain("null"));
    o = expand_type_plain("True");
    CU_ASSERT_TRUE(json_object_is_type(o, json_type_boolean) && json_object_get_boolean(o));
    json_object_put(o);
    o = expand_type_plain("FALSE");
    CU_ASSERT_TRUE(json_object_is_type(o, json_type_boolean) && !json_object_get_boolean(o));
    json_object_put(o);
    const struct {
        const char *text;
        int64_t v;
    } ints[] = {{"0", 0},
                {"-12", -12},
                {"+7", 7},
                {"0x1f", 31},
                {"0o777", 511},
                {"007", 7},
                {"9223372036854775807", INT64_MAX}};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        o = expand_type_plain(ints[i].text);
        CU_ASSERT_TRUE(json_object_is_type(o, json_type_int));
        CU_ASSERT_EQUAL(json_object_get_int64(o), ints[i].v);
        json_object_put(o);
    }
    const struct {
        const char *text;
        double v;
    } floats[] = {{"0.5", 0.5}, {"-.5", -0.5}, {"1e-3", 0.001}, {"2.", 2.0}, {"+1.5E2", 150}};
    for (size_t i = 0; i < sizeof(floats) / sizeof(floats[0]); i++) {
        o = expand_type_plain(floats[i].text);
        CU_ASSERT_TRUE(json_object_is_type(o, json_type_double));
        CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(o), floats[i].v, 1e-12);
        json_object_put(o);
    }
    o = expand_type_plain("-.inf");
    CU_ASSERT_TRUE(isinf(json_object_get_double(o)) && json_object_get_double(o) < 0);
    json_object_put(o);
    o = expand_type_plain(".NaN");
    CU_ASSERT_TRUE(isnan(json_object_get_double(o)));
    json_object_put(o);
    const char *texts[] = {
        "yes",  "0x",    "0o9", "1e", ".", "-", "1.2.3", "12abc", "99999999999999999999",
        "-0x1", "+.nan", " 1"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        o = expand_type_plain(texts[i]);
        if (!json_object_is_type(o, json_type_string))
            fprintf(stderr, "\n\"%s\" was typed as %s\n", texts[i],
                    json_type_to_name(json_object_get_type(o)));
        CU_ASSERT_TRUE(json_object_is_type(o, json_type_string));
        CU_ASSERT_STRING_EQUAL(json_object_get_string(o), texts[i]);
        json_object_put(o);
    }
}

/* ---- expand_tree ---- */

static struct manifest_doc *load(const char *yaml)
{
    struct manifest_doc *doc = NULL;
    int rc = manifest_load_buf("t.yml", yaml, strlen(yaml), &doc, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return doc;
}

/* Expands /inputs of `yaml` and asserts the error starts with "t.yml:<where> " and has `what`. */
static void expect_tree_error(const struct expand_env *env, const char *yaml, const char *where,
                              const char *what)
{
    struct manifest_doc *doc = load(yaml);
    json_object *inputs = NULL, *out = NULL;
    json_object_object_get_ex(doc->root, "inputs", &inputs);
    err_clear(&err);
    CU_ASSERT_EQUAL(expand_tree(env, doc, "/inputs", inputs, &out, &err), MLSTAGE_EINPUT);
    CU_ASSERT_PTR_NULL(out);
    char *prefix = tu_fmt("t.yml:%s ", where);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fprintf(stderr, "\nexpected a message starting \"%s\", got:\n%s\n", prefix, err.msg);
    CU_ASSERT_EQUAL(strncmp(err.msg, prefix, strlen(prefix)), 0);
    TU_ASSERT_CONTAINS(err.msg, what);
    free(prefix);
    json_object_put(out);
    manifest_doc_free(doc);
}

static void test_points_at_the_reference_in_plain_scalars(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_tree_error(
        &f.env, "inputs:\n  command: python3 train.py --alpha ${var.alpha} --seed ${var.seed}\n",
        "2:57:", "${var.seed}: variable seed is not set");
    /* Columns count characters, not bytes. */
    expect_tree_error(&f.env, "inputs:\n  msg: héllo ${nope.x}\n",
                      "2:14:", "unknown namespace 'nope'");
    /* A plain scalar folded over lines: the reference on its own line. */
    expect_tree_error(&f.env, "inputs:\n  cmd: python3 train.py\n    --seed ${var.seed}\n",
                      "3:12:", "variable seed is not set");
    fixture_free(&f);
}

static void test_points_at_the_reference_in_quoted_scalars(void)
{
    struct fixture f;
    fixture_init(&f);
    /* The opening quote and the escapes before the reference are counted. */
    expect_tree_error(&f.env, "inputs:\n  a: \"say \\\"hi\\\" ${var.seed}\"\n",
                      "2:18:", "variable seed is not set");
    expect_tree_error(&f.env, "inputs:\n  a: 'it''s ${var.seed}'\n",
                      "2:13:", "variable seed is not set");
    /* "$${" is a literal and does not shift the count of references. */
    expect_tree_error(&f.env, "inputs:\n  a: \"$${x} ${var.seed}\"\n",
                      "2:13:", "variable seed is not set");
    fixture_free(&f);
}

static void test_points_at_the_reference_in_block_scalars(void)
{
    struct fixture f;
    fixture_init(&f);
    expect_tree_error(
        &f.env, "inputs:\n  script: |\n    set -e\n    echo ${var.alpha}\n    run ${var.seed}\n",
        "5:9:", "variable seed is not set");
    expect_tree_error(&f.env, "inputs:\n  text: >\n    one\n    two ${env.NOPE}\n",
                      "4:9:", "environment variable NOPE is not set");
    fixture_free(&f);
}

static void test_falls_back_to_the_scalar_mark_when_the_source_differs(void)
{
    struct fixture f;
    fixture_init(&f);
    /* "\x24{" is "${" after unescaping but not in the source: the scalar's own mark. */
    expect_tree_error(&f.env, "inputs:\n  a: \"\\x24{var.seed}\"\n",
                      "2:6:", "variable seed is not set");
    /* Inside an aliased value: the alias's mark. */
    expect_tree_error(&f.env, "defaults: &d {cmd: \"${var.seed}\"}\ninputs:\n  x: *d\n",
                      "3:6:", "variable seed is not set");
    fixture_free(&f);
}

static void test_reports_errors_below_an_unmarked_pointer(void)
{
    struct fixture f;
    fixture_init(&f);
    json_object *node = json_tokener_parse("{\"a\": [\"${var.seed}\"]}");
    json_object *out = NULL;
    CU_ASSERT_EQUAL(expand_tree(&f.env, NULL, "", node, &out, &err), MLSTAGE_EINPUT);
    CU_ASSERT_STRING_EQUAL(err.msg, "${var.seed}: variable seed is not set; pass --set "
                                    "seed=VALUE or give a default: ${var.seed:-VALUE} "
                                    "(variables set: alpha, flag, blank, model-dir, n)");
    json_object_put(node);
    fixture_free(&f);
}

static void test_retypes_plain_scalars_after_expansion(void)
{
    struct fixture f;
    fixture_init(&f);
    struct manifest_doc *doc = load("inputs:\n"
                                    "  alpha: ${var.alpha:-0.5}\n"
                                    "  quoted: \"${var.alpha:-0.5}\"\n"
                                    "  default: ${var.beta:-0.5}\n"
                                    "  flag: ${var.flag}\n"
                                    "  empty: ${var.nothing:-}\n"
                                    "  count: ${var.n}\n"
                                    "  text: alpha=${var.alpha}\n"
                                    "  literal: $${var.alpha}\n"
                                    "  block: |\n    ${var.n}\n"
                                    "  list:\n    - ${var.n}\n    - '${var.n}'\n    - 3\n"
                                    "  nested:\n    deep:\n      x: ${git.short_commit}\n"
                                    "  keep: [1, true, null, 2.5]\n");
    json_object *inputs = NULL, *out = NULL, *v = NULL;
    json_object_object_get_ex(doc->root, "inputs", &inputs);
    char *before = xstrdup(json_object_to_json_string(inputs));
    int rc = expand_tree(&f.env, doc, "/inputs", inputs, &out, &err);
    if (rc)
        fprintf(stderr, "\n%s\n", err.msg);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_PTR_NOT_EQUAL(out, inputs);
    /* The document is not touched. */
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string(inputs), before);

    CU_ASSERT_TRUE(json_pointer_get(out, "/alpha", &v) == 0 &&
                   json_object_is_type(v, json_type_double));
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(v), 0.3, 1e-12);
    json_pointer_get(out, "/quoted", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "0.3");
    json_pointer_get(out, "/default", &v);
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(v), 0.5, 1e-12);
    json_pointer_get(out, "/flag", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v));
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "empty", &v));
    CU_ASSERT_PTR_NULL(v);
    json_pointer_get(out, "/count", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_int));
    CU_ASSERT_EQUAL(json_object_get_int(v), 5);
    json_pointer_get(out, "/text", &v);
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "alpha=0.3");
    json_pointer_get(out, "/literal", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "${var.alpha}");
    json_pointer_get(out, "/block", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "5\n");
    json_pointer_get(out, "/list/0", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_int));
    json_pointer_get(out, "/list/1", &v);
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    json_pointer_get(out, "/nested/deep/x", &v);
    /* A commit stays text even where YAML would read "0123456" as a number. */
    CU_ASSERT_TRUE(json_object_is_type(v, json_type_string));
    CU_ASSERT_STRING_EQUAL(json_object_get_string(v), "0123456");
    json_pointer_get(out, "/keep", &v);
    CU_ASSERT_STRING_EQUAL(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN),
                           "[1,true,null,2.5]");
    free(before);
    json_object_put(out);
    manifest_doc_free(doc);
    fixture_free(&f);
}

static void test_does_not_expand_keys(void)
{
    struct fixture f;
    fixture_init(&f);
    struct manifest_doc *doc = load("inputs:\n  ${var.alpha}: x\n");
    json_object *inputs = NULL, *out = NULL;
    json_object_object_get_ex(doc->root, "inputs", &inputs);
    CU_ASSERT_EQUAL_FATAL(expand_tree(&f.env, doc, "/inputs", inputs, &out, &err), 0);
    CU_ASSERT_TRUE(json_object_object_get_ex(out, "${var.alpha}", NULL));
    json_object_put(out);
    manifest_doc_free(doc);
    fixture_free(&f);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"expands env, var, secret, run, git and stage references", test_expands_every_namespace},
        {"applies :- defaults when unset or empty, as the shell does",
         test_applies_defaults_like_the_shell},
        {"keeps $${ as a literal ${ and other dollars as they are", test_keeps_literal_dollars},
        {"rejects unclosed, empty, spaced and nested references",
         test_rejects_malformed_references},
        {"rejects unknown namespaces and keys, saying what is allowed",
         test_rejects_unknown_namespaces_saying_what_is_allowed},
        {"rejects unset variables without a default, naming --set",
         test_rejects_unset_variables_without_a_default},
        {"requires secrets to be declared and set", test_checks_secrets_are_declared_and_set},
        {"says git references need a repository and a branch",
         test_says_git_references_need_a_repository},
        {"resolves stage outputs by status, with placeholders in dry runs",
         test_resolves_stage_outputs_by_status},
        {"types expanded text as YAML 1.2 would", test_types_expanded_text_like_yaml},
        {"points at the ${ of a reference in plain scalars",
         test_points_at_the_reference_in_plain_scalars},
        {"points at the ${ in quoted scalars, counting the quote and escapes",
         test_points_at_the_reference_in_quoted_scalars},
        {"points at the ${ in block scalars", test_points_at_the_reference_in_block_scalars},
        {"falls back to the scalar's or alias's mark when the source differs",
         test_falls_back_to_the_scalar_mark_when_the_source_differs},
        {"reports errors without a document as the bare message",
         test_reports_errors_below_an_unmarked_pointer},
        {"re-types plain scalars after expansion and copies the rest",
         test_retypes_plain_scalars_after_expansion},
        {"does not expand mapping keys", test_does_not_expand_keys},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "expand", tests);
}
