/* test_train.c — the train plugin through the real binary: the example project, failures,
 * timeouts, secrets, dry runs and backends. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "testutil.h"

#define PYTHON   "/usr/bin/python3"
#define TRAIN_PY MLSTAGE_SOURCE_DIR "/examples/diabetes/train.py"

static char *ws;    /* the workspace: a git repository with one commit */
static char *mdir;  /* manifests live outside it, so the work tree stays clean */
static int sklearn; /* /usr/bin/python3 can import sklearn */
static int sklearn_checked;

static void setup(void)
{
    tu_rm_rf(ws);
    tu_rm_rf(mdir);
    free(ws);
    free(mdir);
    ws = tu_tmpdir();
    mdir = tu_tmpdir();
    char *readme = tu_fmt("%s/README.md", ws);
    tu_write(readme, "a workspace for the train tests\n");
    free(readme);
    struct tu_cmd res;
    tu_sh("git init -q . && git add README.md && "
          "git -c user.name=test -c user.email=test@example.com commit -q -m init",
          NULL, ws, &res);
    CU_ASSERT_EQUAL_FATAL(res.exit_code, 0);
    tu_cmd_free(&res);
}

/* Tests that train the real example skip (with a message) when sklearn is missing. */
static int have_sklearn(void)
{
    if (!sklearn_checked) {
        struct tu_cmd res;
        tu_sh(PYTHON " -c 'import sklearn'", NULL, NULL, &res);
        sklearn = res.exit_code == 0;
        sklearn_checked = 1;
        tu_cmd_free(&res);
    }
    if (!sklearn) {
        fprintf(stderr, "\nskipped: " PYTHON " cannot import sklearn (apt-get install "
                        "python3-sklearn)\n");
        CU_PASS("skipped: " PYTHON " cannot import sklearn");
    }
    return sklearn;
}

static char *manifest(const char *name, const char *body)
{
    char *path = tu_fmt("%s/%s.yml", mdir, name);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, body), 0);
    return path;
}

static void run(const char *const *args, const char *const *env, struct tu_cmd *res)
{
    const char *argv[40];
    size_t n = 0;
    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    const char *base_env[40] = {"TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT",
                                "GITHUB_STEP_SUMMARY", "NO_COLOR=1"};
    size_t e = 5;
    for (const char *const *v = env; v && *v; v++)
        base_env[e++] = *v;
    base_env[e] = NULL;
    tu_mlstage(argv, base_env, ws, res);
}

static json_object *parse(const char *text)
{
    json_object *doc = json_tokener_parse(text ? text : "");
    CU_ASSERT_PTR_NOT_NULL(doc);
    return doc;
}

static const char *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

/* For building paths from a value a FATAL assertion has vouched for (gcc cannot tell). */
static const char *nz(const char *s)
{
    return s ? s : "(missing)";
}

static json_object *jobj(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v))
        return NULL;
    return v;
}

/* The sha256sum of a file, as 64 hex digits (caller frees). */
static char *sha256sum(const char *path)
{
    struct tu_cmd res;
    char *cmd = tu_fmt("sha256sum '%s' | cut -d' ' -f1", path);
    tu_sh(cmd, NULL, NULL, &res);
    free(cmd);
    char *hex = strndup(res.out ? res.out : "", 64);
    tu_cmd_free(&res);
    return hex;
}

/* A command that writes a model folder and metrics, as a training script would. */
#define FAKE_TRAINING                                                                              \
    "mkdir -p \"$MLSTAGE_OUTPUTS_DIR/model\" && echo weights > \"$MLSTAGE_OUTPUTS_DIR/model/w\" "  \
    "&& echo '{\"rmse\": 50.5, \"r2\": 0.5}' > \"$MLSTAGE_OUTPUTS_DIR/metrics.json\""

static void test_trains_the_example_and_stamps_model_and_metrics(void)
{
    setup();
    if (!have_sklearn())
        return;
    char *m = manifest("train", "task: train\nplugin: train\ninputs:\n"
                                "  command: " PYTHON " " TRAIN_PY
                                " --alpha ${var.alpha:-0.5} --out ${run.outputs_dir}\n"
                                "  params:\n    alpha: 0.5\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "[train] fitting ridge with alpha=0.5");
    json_object *doc = parse(res.out), *outputs = jobj(doc, "outputs");
    const char *run_dir = jget(doc, "run_dir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(run_dir);
    char *want_model = tu_fmt("%s/outputs/model", nz(run_dir));
    char *want_metrics = tu_fmt("%s/outputs/metrics.json", nz(run_dir));
    CU_ASSERT_STRING_EQUAL(jget(outputs, "model_dir"), want_model);
    CU_ASSERT_STRING_EQUAL(jget(outputs, "metrics_file"), want_metrics);
    CU_ASSERT_STRING_EQUAL(jget(outputs, "run_id"), jget(doc, "run_id"));
    CU_ASSERT_STRING_EQUAL(jget(outputs, "params"), "{\"alpha\":0.5}");
    json_object *metrics = parse(jget(outputs, "metrics"));
    CU_ASSERT_PTR_NOT_NULL(jobj(metrics, "rmse"));
    CU_ASSERT_PTR_NOT_NULL(jobj(metrics, "r2"));
    double rmse = atof(jget(outputs, "metric_rmse") ? jget(outputs, "metric_rmse") : "0");
    CU_ASSERT_TRUE(rmse > 40 && rmse < 70); /* README: about 54 with alpha 0.5 */
    CU_ASSERT_PTR_NOT_NULL(jget(outputs, "metric_r2"));

    /* stamped: statements beside model and metrics, digests equal to sha256sum */
    char *model_stmt = tu_fmt("%s.intoto.json", want_model);
    char *metrics_stmt = tu_fmt("%s.intoto.json", want_metrics);
    char *mtext = tu_read(model_stmt, NULL), *stext = tu_read(metrics_stmt, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mtext);
    CU_ASSERT_PTR_NOT_NULL_FATAL(stext);
    char *pkl = tu_fmt("%s/model.pkl", want_model);
    char *pkl_sum = sha256sum(pkl), *metrics_sum = sha256sum(want_metrics);
    TU_ASSERT_CONTAINS(mtext, "\"model/model.pkl\"");
    TU_ASSERT_CONTAINS(mtext, pkl_sum);
    TU_ASSERT_CONTAINS(stext, metrics_sum);
    TU_ASSERT_CONTAINS(stext, "gitCommit");
    struct tu_cmd head;
    tu_sh("git rev-parse HEAD", NULL, ws, &head);
    head.out[40] = '\0';
    TU_ASSERT_CONTAINS(stext, head.out);
    tu_cmd_free(&head);

    /* the command's full log is in the run folder, and stamped too */
    char *log = tu_fmt("%s/train.log", run_dir);
    char *ltext = tu_read(log, NULL);
    TU_ASSERT_CONTAINS(ltext, "[train] loaded diabetes data");
    char *log_stmt = tu_fmt("%s/train.log.intoto.json", run_dir);
    struct stat st;
    CU_ASSERT_EQUAL(stat(log_stmt, &st), 0);

    /* provenance verify passes on both */
    struct tu_cmd verify;
    run((const char *[]){"provenance", "verify", want_model, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 0);
    tu_cmd_free(&verify);
    run((const char *[]){"provenance", "verify", want_metrics, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 0);
    tu_cmd_free(&verify);

    /* the summary has the metrics table */
    char *summary = tu_fmt("%s/summary.md", run_dir);
    char *md = tu_read(summary, NULL);
    TU_ASSERT_CONTAINS(md, "| metric | value |");
    TU_ASSERT_CONTAINS(md, "| rmse | ");
    TU_ASSERT_CONTAINS(md, "| alpha | 0.5 |");

    free(md);
    free(summary);
    free(log_stmt);
    free(ltext);
    free(log);
    free(pkl_sum);
    free(metrics_sum);
    free(pkl);
    free(mtext);
    free(stext);
    free(model_stmt);
    free(metrics_stmt);
    free(want_model);
    free(want_metrics);
    json_object_put(metrics);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_params_and_env_reach_the_command(void)
{
    setup();
    char *m =
        manifest("env", "task: train\nplugin: train\ninputs:\n"
                        "  command: >-\n"
                        "    echo \"alpha=$MLSTAGE_PARAM_ALPHA depth=$MLSTAGE_PARAM_MAX_DEPTH "
                        "foo=$FOO run=$MLSTAGE_RUN_ID\" && " FAKE_TRAINING "\n"
                        "  params:\n    alpha: 0.25\n    max-depth: 3\n"
                        "  env:\n    FOO: bar baz\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "alpha=0.25 depth=3 foo=bar baz run=20");
    json_object *doc = parse(res.out), *outputs = jobj(doc, "outputs");
    CU_ASSERT_STRING_EQUAL(jget(outputs, "params"), "{\"alpha\":0.25,\"max-depth\":3}");
    CU_ASSERT_STRING_EQUAL(jget(outputs, "metric_rmse"), "50.5");
    CU_ASSERT_STRING_EQUAL(jget(outputs, "metric_r2"), "0.5");
    CU_ASSERT_STRING_EQUAL(jget(outputs, "metrics"), "{\"rmse\":50.5,\"r2\":0.5}");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_argv_runs_without_a_shell_in_cwd(void)
{
    setup();
    char *sub = tu_fmt("%s/sub", ws);
    mkdir(sub, 0755);
    char *m = manifest("argv", "task: train\nplugin: train\ninputs:\n"
                               "  cwd: sub\n"
                               "  argv:\n    - sh\n    - -c\n    - >-\n"
                               "      pwd; " FAKE_TRAINING "\n    - ignored\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, sub);
    TU_ASSERT_CONTAINS(res.out, "metric_rmse=50.5\n");
    tu_cmd_free(&res);
    free(m);
    free(sub);
}

static void test_failing_example_exits_1_with_the_last_lines(void)
{
    setup();
    if (!have_sklearn())
        return;
    char *m = manifest("fail", "task: train\nplugin: train\ninputs:\n"
                               "  command: " PYTHON " " TRAIN_PY " --fail\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "failed with exit status 3");
    TU_ASSERT_CONTAINS(res.err, "the last lines of its output");
    TU_ASSERT_CONTAINS(res.err, "[train] failing on purpose (--fail)");
    json_object *doc = parse(res.out);
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "failed");
    TU_ASSERT_CONTAINS(jget(doc, "error"), "[train] failing on purpose (--fail)");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_failing_command_shows_only_its_last_lines(void)
{
    setup();
    char *m = manifest("boom", "task: train\nplugin: train\ninputs:\n"
                               "  command: 'for i in $(seq 1 40); do echo line-$i; done; "
                               "echo boom; exit 3'\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "-q", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "failed with exit status 3");
    TU_ASSERT_CONTAINS(res.err, "line-40\nboom");
    TU_ASSERT_NOT_CONTAINS(res.err, "line-5\n"); /* -q: only the error, with the tail */
    tu_cmd_free(&res);
    free(m);
}

static void test_missing_model_or_bad_metrics_exit_1_naming_the_file(void)
{
    setup();
    char *m = manifest("nomodel", "task: train\nplugin: train\ninputs:\n"
                                  "  command: echo trained nothing\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "left no model folder at ");
    TU_ASSERT_CONTAINS(res.err, "/outputs/model");
    tu_cmd_free(&res);
    free(m);

    const char *bad[] = {"[1, 2]", "{\"rmse\": \"low\"}", "not json", "{}"};
    const char *says[] = {"not a JSON object of numbers: it holds an array", "\"rmse\" is a string",
                          "is not valid JSON", "is an empty object"};
    for (size_t i = 0; i < 4; i++) {
        char *body = tu_fmt("task: train\nplugin: train\ninputs:\n  command: >-\n"
                            "    mkdir -p $MLSTAGE_OUTPUTS_DIR/model &&\n"
                            "    echo '%s' > $MLSTAGE_OUTPUTS_DIR/scores.json\n"
                            "  metrics_file: scores.json\n",
                            bad[i]);
        m = manifest("badmetrics", body);
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 1);
        TU_ASSERT_CONTAINS(res.err, "/outputs/scores.json");
        TU_ASSERT_CONTAINS(res.err, says[i]);
        tu_cmd_free(&res);
        free(m);
        free(body);
    }
}

static void test_timeout_stops_the_command_with_124(void)
{
    setup();
    char *m = manifest("slow", "task: train\nplugin: train\ninputs:\n"
                               "  command: echo started; sleep 60\n  timeout: 1s\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    CU_ASSERT_TRUE(res.wall_s < 30); /* hang guard only */
    TU_ASSERT_CONTAINS(res.err, "ran past its timeout of 1 s");
    TU_ASSERT_CONTAINS(res.err, "started");
    json_object *doc = parse(res.out);
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "failed");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);

    /* the stage's own timeout stops it the same way */
    m = manifest("slow-stage", "task: train\nplugin: train\ntimeout: 1s\nkill_grace: 1s\n"
                               "inputs:\n  command: echo started; sleep 60\n");
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    CU_ASSERT_TRUE(res.wall_s < 30);
    tu_cmd_free(&res);
    free(m);
}

static void test_a_secret_printed_by_the_command_appears_nowhere(void)
{
    setup();
    const char *secret = "tr41n-S3cret-Value-x9";
    char *m = manifest("secret", "task: train\nplugin: train\nsecrets: [TRAIN_TOKEN]\ninputs:\n"
                                 "  command: >-\n"
                                 "    echo \"token is $TOKEN\" && echo \"$TOKEN\" >&2 &&\n"
                                 "    " FAKE_TRAINING "\n"
                                 "  env:\n    TOKEN: ${secret.TRAIN_TOKEN}\n");
    char *env = tu_fmt("TRAIN_TOKEN=%s", secret);
    struct tu_cmd res;
    run((const char *[]){"run", m, "-v", NULL}, (const char *[]){env, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "token is ***");
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, secret);
    tu_cmd_free(&res);
    run((const char *[]){"run", m, "--dry-run", "-v", "--output", "json", NULL},
        (const char *[]){env, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "env: TOKEN=***");
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, secret);
    tu_cmd_free(&res);
    /* no log, record, plan or statement in the run folders holds it */
    char *grep = tu_fmt("grep -r -l -F -e '%s' '%s' || echo clean", secret, ws);
    tu_sh(grep, NULL, NULL, &res);
    CU_ASSERT_STRING_EQUAL(res.out, "clean\n");
    if (strcmp(res.out, "clean\n") != 0)
        fprintf(stderr, "secret found in: %s\n", res.out);
    tu_cmd_free(&res);
    free(grep);
    free(env);
    free(m);
}

static void test_dry_run_prints_the_command_and_runs_nothing(void)
{
    setup();
    char *marker = tu_fmt("%s/ran", ws);
    char *body = tu_fmt("task: train\nplugin: train\ninputs:\n"
                        "  command: >-\n    touch %s && " FAKE_TRAINING "\n"
                        "  params:\n    alpha: 2\n  timeout: 30m\n",
                        marker);
    char *m = manifest("dry", body);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--dry-run", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: run: /bin/sh -c 'touch ");
    TU_ASSERT_CONTAINS(res.err, "plan: env: MLSTAGE_PARAM_ALPHA=2\n");
    TU_ASSERT_CONTAINS(res.err, "plan: in: ");
    TU_ASSERT_CONTAINS(res.err, "plan: timeout: 1800 s");
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(marker, &st), 0); /* nothing ran */
    json_object *doc = parse(res.out);
    char *model = tu_fmt("%s/outputs/model", nz(jget(doc, "run_dir")));
    char *log = tu_fmt("%s/train.log", nz(jget(doc, "run_dir")));
    CU_ASSERT_NOT_EQUAL(stat(model, &st), 0);
    CU_ASSERT_NOT_EQUAL(stat(log, &st), 0);
    json_object *plan = jobj(doc, "plan");
    CU_ASSERT_TRUE(json_object_is_type(plan, json_type_array) &&
                   json_object_array_length(plan) >= 5);
    free(model);
    free(log);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
    free(body);
    free(marker);
}

static void test_dry_run_of_the_example_writes_no_model(void)
{
    setup();
    char *m = manifest("train", "task: train\nplugin: train\ninputs:\n"
                                "  command: " PYTHON " " TRAIN_PY " --out ${run.outputs_dir}\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--dry-run", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: run: /bin/sh -c '" PYTHON " " TRAIN_PY " --out ");
    tu_cmd_free(&res);
    tu_sh("find .mlstage -name model.pkl | wc -l", NULL, ws, &res);
    CU_ASSERT_STRING_EQUAL(res.out, "0\n");
    tu_cmd_free(&res);
    free(m);
}

static void test_backend_azureml_without_a_workspace_is_a_clear_input_error(void)
{
    setup();
    char *m = manifest("azure", "task: train\nplugin: train\nbackend: azureml\ninputs:\n"
                                "  command: >-\n    " FAKE_TRAINING "\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs subscription_id, resource_group, workspace are not set");
    tu_cmd_free(&res);
    run((const char *[]){"run", m, "--backend", "sagemaker", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    tu_cmd_free(&res);
    /* and --backend overrides the manifest either way */
    run((const char *[]){"run", m, "--backend", "local", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(m);
}

static void test_inputs_are_checked_before_anything_runs(void)
{
    setup();
    const char *bodies[] = {
        "  model_dir: model\n",                          /* neither command nor argv */
        "  command: 'true'\n  argv: ['true']\n",         /* both */
        "  command: 'true'\n  timeout: soon\n",          /* not a duration */
        "  command: 'true'\n  env:\n    BAD-NAME: 1\n",  /* not an env name */
        "  command: 'true'\n  params:\n    a: [1, 2]\n", /* not a scalar */
        "  command: 'true'\n  comand: typo\n",           /* unknown input */
    };
    const char *says[] = {"missing required input", "oneOf",           "inputs.timeout",
                          "inputs.env.BAD-NAME",    "inputs.params.a", "comand"};
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        char *body = tu_fmt("task: train\nplugin: train\ninputs:\n%s", bodies[i]);
        char *m = manifest("bad", body);
        struct tu_cmd res;
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 2);
        TU_ASSERT_CONTAINS(res.err, says[i]);
        tu_cmd_free(&res);
        free(m);
        free(body);
    }
}

static void cleanup(void)
{
    tu_rm_rf(ws);
    tu_rm_rf(mdir);
    free(ws);
    free(mdir);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"trains the example and stamps model and metrics",
         test_trains_the_example_and_stamps_model_and_metrics},
        {"params and env reach the command", test_params_and_env_reach_the_command},
        {"argv runs without a shell, in cwd", test_argv_runs_without_a_shell_in_cwd},
        {"a failing example exits 1 with the last lines",
         test_failing_example_exits_1_with_the_last_lines},
        {"a failing command shows only its last lines",
         test_failing_command_shows_only_its_last_lines},
        {"a missing model or bad metrics exit 1 naming the file",
         test_missing_model_or_bad_metrics_exit_1_naming_the_file},
        {"a timeout stops the command with 124", test_timeout_stops_the_command_with_124},
        {"a secret printed by the command appears nowhere",
         test_a_secret_printed_by_the_command_appears_nowhere},
        {"a dry run prints the command and runs nothing",
         test_dry_run_prints_the_command_and_runs_nothing},
        {"a dry run of the example writes no model", test_dry_run_of_the_example_writes_no_model},
        {"backend azureml without a workspace is a clear input error",
         test_backend_azureml_without_a_workspace_is_a_clear_input_error},
        {"inputs are checked before anything runs", test_inputs_are_checked_before_anything_runs},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "train", tests);
    cleanup();
    return rc;
}
