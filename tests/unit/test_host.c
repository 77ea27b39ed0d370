/* test_host.c — the plugin host through the real binary: loading, ABI, crashes, hangs, outputs, CI
 * syntax. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "testutil.h"

static char *ws;

static void setup(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
}

/* Writes a manifest for the test plugin with the given inputs block. */
static char *manifest(const char *name, const char *body)
{
    char *path = tu_fmt("%s/%s.yml", ws, name);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, body), 0);
    return path;
}

static void run(const char *const *args, const char *const *env, struct tu_cmd *res)
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
    const char *base_env[40] = {"TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "NO_COLOR=1"};
    size_t e = 4;
    for (const char *const *v = env; v && *v; v++)
        base_env[e++] = *v;
    base_env[e] = NULL;
    tu_mlstage(argv, base_env, ws, res);
}

static json_object *parse(const char *text)
{
    json_object *doc = json_tokener_parse(text);
    CU_ASSERT_PTR_NOT_NULL(doc);
    return doc;
}

static const char *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v))
        return NULL;
    return json_object_get_string(v);
}

static char *run_dir_of(struct tu_cmd *res)
{
    json_object *doc = parse(res->out);
    char *dir = doc ? strdup(jget(doc, "run_dir")) : NULL;
    json_object_put(doc);
    return dir;
}

static void test_ok_plugin_publishes_outputs_and_run_record(void)
{
    setup();
    char *m = manifest("ok", "task: greet\nplugin: test-plugin\ninputs:\n  mode: ok\n  count: 3\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "greeting=hello\n");
    TU_ASSERT_CONTAINS(res.out, "count=3\n");
    TU_ASSERT_CONTAINS(res.out, "label=x\n"); /* schema default applied */
    TU_ASSERT_CONTAINS(res.err, "hello from the test plugin");
    tu_cmd_free(&res);

    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = parse(res.out);
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "succeeded");
    CU_ASSERT_STRING_EQUAL(jget(doc, "task"), "greet");
    json_object *plugin = NULL, *outputs = NULL;
    json_object_object_get_ex(doc, "plugin", &plugin);
    CU_ASSERT_STRING_EQUAL(jget(plugin, "version"), "1.2.3");
    json_object_object_get_ex(doc, "outputs", &outputs);
    CU_ASSERT_STRING_EQUAL(jget(outputs, "greeting"), "hello");
    char *record = tu_fmt("%s/run.json", jget(doc, "run_dir"));
    char *text = tu_read(record, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_object *rec = parse(text);
    CU_ASSERT_STRING_EQUAL(jget(rec, "status"), "succeeded");
    CU_ASSERT_STRING_EQUAL(jget(rec, "exit_code"), "0");
    char *outputs_json = tu_fmt("%s/outputs.json", jget(doc, "run_dir"));
    char *otext = tu_read(outputs_json, NULL);
    TU_ASSERT_CONTAINS(otext, "\"greeting\": \"hello\"");
    free(otext);
    free(outputs_json);
    json_object_put(rec);
    free(text);
    free(record);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_run_ids_sort_by_time(void)
{
    setup();
    char *m = manifest("ok", "task: greet\nplugin: test-plugin\ninputs:\n  mode: ok\n");
    char *ids[3];
    for (int i = 0; i < 3; i++) {
        struct tu_cmd res;
        run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 0);
        json_object *doc = parse(res.out);
        ids[i] = strdup(jget(doc, "run_id"));
        json_object_put(doc);
        tu_cmd_free(&res);
    }
    CU_ASSERT_TRUE(strcmp(ids[0], ids[1]) < 0);
    CU_ASSERT_TRUE(strcmp(ids[1], ids[2]) < 0);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    free(m);
}

static void test_crash_is_reported_with_signal_name_and_exit_70(void)
{
    setup();
    char *m = manifest("crash", "task: boom\nplugin: test-plugin\ninputs:\n  mode: crash\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 70);
    TU_ASSERT_CONTAINS(res.err, "SIGSEGV");
    TU_ASSERT_CONTAINS(res.err, "about to crash");
    tu_cmd_free(&res);
    free(m);
}

static void test_abort_is_reported_as_sigabrt(void)
{
    setup();
    char *m = manifest("abort", "task: boom\nplugin: test-plugin\ninputs:\n  mode: abort\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 70);
    TU_ASSERT_CONTAINS(res.err, "SIGABRT");
    tu_cmd_free(&res);
    free(m);
}

static void test_plugin_exiting_without_result_is_an_internal_error(void)
{
    setup();
    char *m = manifest("exit", "task: quit\nplugin: test-plugin\ninputs:\n  mode: exit\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 70);
    TU_ASSERT_CONTAINS(res.err, "without reporting a result (exit status 7)");
    tu_cmd_free(&res);
    free(m);
}

static void test_timeout_stops_a_hanging_plugin_with_124(void)
{
    setup();
    char *m = manifest("hang", "task: hang\nplugin: test-plugin\ntimeout: 1s\n"
                               "kill_grace: 1s\ninputs:\n  mode: hang\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    CU_ASSERT_TRUE(res.wall_s < 20); /* hang guard only */
    json_object *doc = parse(res.out);
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "timed_out");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static double time_left_reported(const char *manifest_body)
{
    char *m = manifest("left", manifest_body);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = parse(res.out), *outputs = NULL;
    json_object_object_get_ex(doc, "outputs", &outputs);
    const char *left = jget(outputs, "time_left");
    double v = left ? strtod(left, NULL) : -99;
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
    return v;
}

static void test_a_plugin_knows_how_long_its_timeout_leaves_it(void)
{
    setup();
    double left = time_left_reported("task: left\nplugin: test-plugin\ntimeout: 90s\n"
                                     "inputs:\n  mode: time-left\n");
    CU_ASSERT_TRUE(left > 60 && left <= 90);
    /* Without a timeout there is no deadline to tell. */
    CU_ASSERT_DOUBLE_EQUAL(time_left_reported("task: left\nplugin: test-plugin\n"
                                              "inputs:\n  mode: time-left\n"),
                           -1, 1e-9);
}

static void test_timeout_kills_a_plugin_that_ignores_sigterm(void)
{
    setup();
    char *m = manifest("hang2", "task: hang\nplugin: test-plugin\ntimeout: 1s\n"
                                "kill_grace: 1s\ninputs:\n  mode: hang-ignore-term\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    TU_ASSERT_CONTAINS(res.err, "killed after the grace period");
    CU_ASSERT_TRUE(res.wall_s >= 2.0); /* timeout plus grace: SIGTERM was ignored */
    CU_ASSERT_TRUE(res.wall_s < 20);
    tu_cmd_free(&res);
    free(m);
}

/* Non-zero once `pid` has ended (a zombie waiting for init to reap it counts as ended). */
static int process_gone(pid_t pid)
{
    for (int i = 0; i < 500; i++) { /* hang guard: 10 s */
        if (kill(pid, 0) != 0)
            return 1;
        char *path = tu_fmt("/proc/%ld/stat", (long)pid);
        char *stat = tu_read(path, NULL);
        free(path);
        char *close_paren = stat ? strrchr(stat, ')') : NULL;
        int zombie = close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
        free(stat);
        if (zombie)
            return 1;
        usleep(20000);
    }
    return 0;
}

static pid_t pid_from(const char *pidfile)
{
    char *text = tu_read(pidfile, NULL);
    pid_t pid = text ? (pid_t)atol(text) : 0;
    free(text);
    return pid;
}

static void test_timeout_also_stops_the_command_a_plugin_runs(void)
{
    setup();
    char *pidfile = tu_fmt("%s/command.pid", ws);
    char *body = tu_fmt("task: hang\nplugin: test-plugin\ntimeout: 1s\nkill_grace: 1s\n"
                        "inputs:\n  mode: subprocess-hang\n  value: %s\n",
                        pidfile);
    char *m = manifest("hangcmd", body);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    TU_ASSERT_CONTAINS(res.err, "started");
    pid_t pid = pid_from(pidfile);
    CU_ASSERT_TRUE_FATAL(pid > 1);
    int gone = process_gone(pid);
    if (!gone)
        kill(pid, SIGKILL);
    CU_ASSERT_TRUE(gone);
    tu_cmd_free(&res);
    free(m);
    free(body);
    free(pidfile);
}

static void test_a_crashing_plugin_does_not_leave_its_command_running(void)
{
    setup();
    char *pidfile = tu_fmt("%s/command.pid", ws);
    char *body = tu_fmt("task: crash\nplugin: test-plugin\nkill_grace: 1s\n"
                        "inputs:\n  mode: subprocess-crash\n  value: %s\n",
                        pidfile);
    char *m = manifest("crashcmd", body);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 70);
    TU_ASSERT_CONTAINS(res.err, "SIGSEGV");
    pid_t pid = pid_from(pidfile);
    CU_ASSERT_TRUE_FATAL(pid > 1);
    int gone = process_gone(pid);
    if (!gone)
        kill(pid, SIGKILL);
    CU_ASSERT_TRUE(gone);
    tu_cmd_free(&res);
    free(m);
    free(body);
    free(pidfile);
}

static void test_wrong_abi_is_refused_with_exit_3(void)
{
    setup();
    char *m = manifest("abi", "task: abi\nplugin: bad-abi\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 3);
    TU_ASSERT_CONTAINS(res.err, "ABI 999");
    TU_ASSERT_NOT_CONTAINS(res.err, "must never run");
    tu_cmd_free(&res);
    free(m);
}

static void test_unloadable_plugins_exit_3(void)
{
    setup();
    const char *plugins[] = {"bad-schema", "no-entry", "misnamed", "crash-on-load", "nonexistent"};
    const char *expect[] = {"propertys", "does not export mlstage_plugin_init", "something-else",
                            "crashed while loading", "not found"};
    for (size_t i = 0; i < 5; i++) {
        char *body = tu_fmt("task: t\nplugin: %s\n", plugins[i]);
        char *m = manifest("p", body);
        struct tu_cmd res;
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 3);
        TU_ASSERT_CONTAINS(res.err, expect[i]);
        tu_cmd_free(&res);
        free(m);
        free(body);
    }
}

static void test_invalid_input_exits_2_with_the_manifest_position(void)
{
    setup();
    char *m = manifest("bad", "task: greet\nplugin: test-plugin\ninputs:\n  mode: ok\n"
                              "  count: lots\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "bad.yml:5:10:");
    TU_ASSERT_CONTAINS(res.err, "inputs.count");
    tu_cmd_free(&res);
    /* In CI the position becomes the runner's annotation of that file and line. */
    char *vso = tu_fmt("##vso[task.logissue type=error;sourcepath=%s;linenumber=5;"
                       "columnnumber=10;]inputs.count",
                       m);
    run((const char *[]){"run", m, NULL}, (const char *[]){"TF_BUILD=True", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.out, vso);
    tu_cmd_free(&res);
    char *gh = tu_fmt("::error file=%s,line=5,col=10::inputs.count", m);
    run((const char *[]){"run", m, NULL}, (const char *[]){"GITHUB_ACTIONS=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.out, gh);
    tu_cmd_free(&res);
    free(gh);
    free(vso);
    free(m);
}

static void test_set_overrides_a_declared_input_with_its_type(void)
{
    setup();
    char *m = manifest("ok", "task: greet\nplugin: test-plugin\ninputs:\n  mode: ok\n"
                             "  label: ${var.label:-plain}\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--set", "count=7", "--set", "label=fancy", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "count=7\n");
    TU_ASSERT_CONTAINS(res.out, "label=fancy\n");
    tu_cmd_free(&res);
    run((const char *[]){"run", m, "--set", "count=many", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "--set count");
    tu_cmd_free(&res);
    free(m);
}

static void test_failure_exits_1_and_keeps_partial_outputs(void)
{
    setup();
    char *m = manifest("fail", "task: work\nplugin: test-plugin\ninputs:\n  mode: fail\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    json_object *doc = parse(res.out), *outputs = NULL;
    CU_ASSERT_STRING_EQUAL(jget(doc, "status"), "failed");
    TU_ASSERT_CONTAINS(jget(doc, "error"), "the work failed on purpose");
    json_object_object_get_ex(doc, "outputs", &outputs);
    CU_ASSERT_STRING_EQUAL(jget(outputs, "partial"), "yes");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_artifacts_get_statements_whose_digest_matches_sha256sum(void)
{
    setup();
    char *m = manifest("art", "task: make\nplugin: test-plugin\ninputs:\n  mode: artifacts\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *dir = run_dir_of(&res);
    tu_cmd_free(&res);
    char *statement = tu_fmt("%s/outputs/metrics.json.intoto.json", dir);
    char *text = tu_read(statement, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    struct tu_cmd sum;
    char *cmd = tu_fmt("sha256sum '%s/outputs/metrics.json' | cut -d' ' -f1", dir);
    tu_sh(cmd, NULL, NULL, &sum);
    sum.out[64] = '\0';
    TU_ASSERT_CONTAINS(text, sum.out);
    TU_ASSERT_CONTAINS(text, "https://in-toto.io/Statement/v1");
    tu_cmd_free(&sum);
    char *model_statement = tu_fmt("%s/outputs/model.intoto.json", dir);
    char *mtext = tu_read(model_statement, NULL);
    TU_ASSERT_CONTAINS(mtext, "model/weights.bin");
    TU_ASSERT_CONTAINS(mtext, "model/config.json");
    char *summary = tu_fmt("%s/summary.md", dir);
    char *stext = tu_read(summary, NULL);
    TU_ASSERT_CONTAINS(stext, "| rmse | 53.1 |");

    /* verify passes, then fails after one byte changes */
    char *artefact = tu_fmt("%s/outputs/model", dir);
    run((const char *[]){"provenance", "verify", artefact, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    char *weights = tu_fmt("%s/outputs/model/weights.bin", dir);
    tu_write(weights, "0123456780");
    run((const char *[]){"provenance", "verify", artefact, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    tu_cmd_free(&res);

    free(weights);
    free(artefact);
    free(stext);
    free(summary);
    free(mtext);
    free(model_statement);
    free(cmd);
    free(text);
    free(statement);
    free(dir);
    free(m);
}

static void test_secret_appears_nowhere_even_verbose(void)
{
    setup();
    const char *secret = "s3cr3t-Value-7Q9";
    char *m = manifest("sec", "task: leak\nplugin: test-plugin\nsecrets: [TEST_SECRET]\n"
                              "inputs:\n  mode: secret\n");
    char *env = tu_fmt("TEST_SECRET=%s", secret);
    const char *envs[] = {env, NULL};
    struct tu_cmd res;
    run((const char *[]){"run", m, "-v", NULL}, envs, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, "runtime-token-4242-xyz");
    TU_ASSERT_CONTAINS(res.err, "the secret is ***");
    TU_ASSERT_CONTAINS(res.err, "stdout mentions ***");
    tu_cmd_free(&res);
    /* the run folder, with CI syntax and json output too */
    char *gh_out = tu_fmt("%s/gh_output", ws);
    char *gh_env = tu_fmt("GITHUB_OUTPUT=%s", gh_out);
    const char *envs2[] = {env, "GITHUB_ACTIONS=true", gh_env, NULL};
    run((const char *[]){"run", m, "-v", "--output", "json", NULL}, envs2, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, secret);
    tu_cmd_free(&res);
    char *grep =
        tu_fmt("grep -r -l -F -e '%s' -e 'runtime-token-4242-xyz' '%s' || echo clean", secret, ws);
    tu_sh(grep, NULL, NULL, &res);
    CU_ASSERT_STRING_EQUAL(res.out, "clean\n");
    if (strcmp(res.out, "clean\n") != 0)
        fprintf(stderr, "secret found in: %s\n", res.out);
    tu_cmd_free(&res);
    free(grep);
    free(gh_env);
    free(gh_out);
    free(env);
    free(m);
}

static void test_azure_devops_gets_exact_logging_commands(void)
{
    setup();
    char *m = manifest("out", "task: out\nplugin: test-plugin\ninputs:\n  mode: outputs\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, (const char *[]){"TF_BUILD=True", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "##vso[task.setvariable variable=special;isOutput=true]50%AZP25 "
                                "done; [a] b]c:d,e\n");
    TU_ASSERT_CONTAINS(res.out, "##vso[task.setvariable variable=multiline;isOutput=true]"
                                "line one%0Aline two%0D%0Aline three\n");
    tu_cmd_free(&res);
    free(m);
}

/* --output json keeps stdout for its document; the runner finds its commands on stderr. */
static void test_json_output_under_azure_devops_stays_one_document(void)
{
    setup();
    char *m = manifest("out", "task: out\nplugin: test-plugin\ninputs:\n  mode: outputs\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL},
        (const char *[]){"TF_BUILD=True", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = json_tokener_parse(res.out), *outputs = NULL, *v = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_TRUE(json_object_object_get_ex(doc, "outputs", &outputs) &&
                   json_object_object_get_ex(outputs, "special", &v));
    TU_ASSERT_NOT_CONTAINS(res.out, "##vso[");
    TU_ASSERT_CONTAINS(res.err, "##vso[task.setvariable variable=special;isOutput=true]50%AZP25 "
                                "done; [a] b]c:d,e\n");
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_github_gets_outputs_in_github_output(void)
{
    setup();
    char *m = manifest("out", "task: out\nplugin: test-plugin\ninputs:\n  mode: outputs\n");
    char *file = tu_fmt("%s/github_output", ws);
    char *env = tu_fmt("GITHUB_OUTPUT=%s", file);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, (const char *[]){"GITHUB_ACTIONS=true", env, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *text = tu_read(file, NULL);
    TU_ASSERT_CONTAINS(text, "special=50% done; [a] b]c:d,e\n");
    TU_ASSERT_CONTAINS(text, "multiline<<ghadelimiter_");
    TU_ASSERT_CONTAINS(text, "\nline one\nline two\r\nline three\nghadelimiter_");
    TU_ASSERT_NOT_CONTAINS(res.out, "special=");
    free(text);
    tu_cmd_free(&res);
    free(env);
    free(file);
    free(m);
}

static void test_dry_run_records_the_plan(void)
{
    setup();
    char *m = manifest("plan", "task: plan\nplugin: test-plugin\ninputs:\n  mode: plan\n"
                               "  label: thing\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--dry-run", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: would create thing");
    json_object *doc = parse(res.out), *plan = NULL;
    json_object_object_get_ex(doc, "plan", &plan);
    CU_ASSERT_EQUAL(json_object_array_length(plan), 1);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

static void test_plugin_subprocess_output_is_streamed(void)
{
    setup();
    char *m = manifest("sub", "task: sub\nplugin: test-plugin\ninputs:\n  mode: subprocess\n"
                              "  value: v42\n");
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "line one");
    TU_ASSERT_CONTAINS(res.err, "value=v42");
    TU_ASSERT_CONTAINS(res.err, "run=20");
    TU_ASSERT_CONTAINS(res.out, "exit_code=3\n");
    tu_cmd_free(&res);
    free(m);
}

static void test_plugins_lists_descriptors_and_broken_ones(void)
{
    setup();
    struct tu_cmd res;
    run((const char *[]){"plugins", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 3); /* the test folder holds broken plugins on purpose */
    json_object *doc = parse(res.out), *plugins = NULL, *broken = NULL;
    json_object_object_get_ex(doc, "plugins", &plugins);
    json_object_object_get_ex(doc, "broken", &broken);
    int found = 0;
    for (size_t i = 0; i < json_object_array_length(plugins); i++) {
        json_object *p = json_object_array_get_idx(plugins, i), *inputs = NULL;
        if (strcmp(jget(p, "name"), "test-plugin") == 0) {
            found = 1;
            CU_ASSERT_STRING_EQUAL(jget(p, "version"), "1.2.3");
            CU_ASSERT_STRING_EQUAL(jget(p, "abi"), "1");
            CU_ASSERT_TRUE(json_object_object_get_ex(p, "inputs", &inputs));
        }
    }
    CU_ASSERT_TRUE(found);
    TU_ASSERT_CONTAINS(json_object_to_json_string(broken), "bad-abi");
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void test_usage_errors_exit_2(void)
{
    setup();
    struct tu_cmd res;
    run((const char *[]){"run", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    tu_cmd_free(&res);
    run((const char *[]){"run", "x.yml", "--output", "xml", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "--output expects text or json");
    tu_cmd_free(&res);
    run((const char *[]){"run", "missing.yml", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "missing.yml");
    tu_cmd_free(&res);
    run((const char *[]){"frobnicate", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    tu_cmd_free(&res);
    /* An option the command would ignore is refused, not dropped. */
    const char *ignored[][4] = {{"run", "x.yml", "--only", "deploy"},
                                {"provenance", "verify", "--set", "a=b"},
                                {"plugins", "--backend", "azureml", NULL},
                                {"models", "list", "--dry-run", NULL},
                                {"validate", "x.yml", "--backend", "azureml"}};
    const char *named[] = {"--only", "--set", "--backend", "--dry-run", "--backend"};
    for (size_t i = 0; i < 5; i++) {
        const char *args[5] = {ignored[i][0], ignored[i][1], ignored[i][2], ignored[i][3], NULL};
        run(args, NULL, &res);
        TU_ASSERT_EXIT(&res, 2);
        char *want = tu_fmt("does not take %s", named[i]);
        TU_ASSERT_CONTAINS(res.err, want);
        free(want);
        tu_cmd_free(&res);
    }
    const char *helps[] = {"run", "validate", "plugins", "provenance", "pipeline"};
    for (size_t i = 0; i < 5; i++) {
        run((const char *[]){helps[i], "--help", NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 0);
        TU_ASSERT_CONTAINS(res.out, "usage: mlstage");
        tu_cmd_free(&res);
    }
}

static void test_validate_checks_inputs_without_running(void)
{
    setup();
    char *good = manifest("good", "task: greet\nplugin: test-plugin\ninputs:\n  mode: crash\n");
    char *bad = manifest("bad", "task: greet\nplugin: test-plugin\ninputs:\n  mode: explode\n");
    struct tu_cmd res;
    run((const char *[]){"validate", good, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0); /* crash mode is valid input: validate must not run it */
    tu_cmd_free(&res);
    run((const char *[]){"validate", good, bad, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.out, "bad.yml:4:9:");
    tu_cmd_free(&res);
    free(good);
    free(bad);
}

/*
 * The agent reads git in the background while it starts the plugin. When that was a thread,
 * a plugin child forked while it held a lock (OpenSSL's, initialised by libgit2 through
 * libssh2; the allocator's) inherited the lock held forever and hung at its first hash: 1 to
 * 5 runs in 100 inside a real repository (this source tree), more under the sanitizers. The
 * race has no hook to widen it, so this runs the child's hashing 200 times from the source
 * tree: with a thread back in the agent at fork time, a hang is all but certain.
 */
static void test_plugin_child_never_inherits_a_half_initialised_library(void)
{
    setup();
    struct tu_cmd res;
    char *m = manifest("hash", "task: hash\nplugin: test-plugin\ninputs:\n  mode: artifacts\n");
    const char *env[] = {"TF_BUILD", "GITHUB_ACTIONS", "NO_COLOR=1", NULL};
    int hung = 0, failed = 0;
    for (int i = 0; i < 200 && !hung && !failed; i++) {
        tu_run((const char *[]){MLSTAGE_BIN, "run", m, "-q", "--plugin-path",
                                MLSTAGE_TEST_PLUGIN_DIR, "--workspace", ws, NULL},
               env, MLSTAGE_SOURCE_DIR, NULL, 20, &res);
        hung = res.timed_out;
        failed = res.exit_code != 0;
        if (hung || failed)
            fprintf(stderr, "\nrun %d: exit %d, timed out %d\n%s\n", i, res.exit_code,
                    res.timed_out, res.err);
        tu_cmd_free(&res);
    }
    CU_ASSERT_FALSE(hung);
    CU_ASSERT_FALSE(failed);
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
        {"ok plugin publishes outputs and a run record",
         test_ok_plugin_publishes_outputs_and_run_record},
        {"run ids sort by time", test_run_ids_sort_by_time},
        {"crash is reported with the signal name and exit 70",
         test_crash_is_reported_with_signal_name_and_exit_70},
        {"abort is reported as SIGABRT", test_abort_is_reported_as_sigabrt},
        {"plugin exiting without a result is an internal error",
         test_plugin_exiting_without_result_is_an_internal_error},
        {"timeout stops a hanging plugin with 124", test_timeout_stops_a_hanging_plugin_with_124},
        {"a plugin knows how long its timeout leaves it",
         test_a_plugin_knows_how_long_its_timeout_leaves_it},
        {"timeout kills a plugin that ignores SIGTERM",
         test_timeout_kills_a_plugin_that_ignores_sigterm},
        {"timeout also stops the command a plugin runs",
         test_timeout_also_stops_the_command_a_plugin_runs},
        {"a crashing plugin does not leave its command running",
         test_a_crashing_plugin_does_not_leave_its_command_running},
        {"wrong ABI is refused with exit 3", test_wrong_abi_is_refused_with_exit_3},
        {"unloadable plugins exit 3", test_unloadable_plugins_exit_3},
        {"invalid input exits 2 with the manifest position",
         test_invalid_input_exits_2_with_the_manifest_position},
        {"--set overrides a declared input with its type",
         test_set_overrides_a_declared_input_with_its_type},
        {"failure exits 1 and keeps partial outputs",
         test_failure_exits_1_and_keeps_partial_outputs},
        {"artefacts get statements whose digest matches sha256sum",
         test_artifacts_get_statements_whose_digest_matches_sha256sum},
        {"a secret appears nowhere, even with -v", test_secret_appears_nowhere_even_verbose},
        {"Azure DevOps gets exact logging commands", test_azure_devops_gets_exact_logging_commands},
        {"GitHub gets outputs in GITHUB_OUTPUT", test_github_gets_outputs_in_github_output},
        {"--output json under Azure DevOps stays one document",
         test_json_output_under_azure_devops_stays_one_document},
        {"dry run records the plan", test_dry_run_records_the_plan},
        {"plugin subprocess output is streamed", test_plugin_subprocess_output_is_streamed},
        {"plugins lists descriptors and broken ones",
         test_plugins_lists_descriptors_and_broken_ones},
        {"usage errors exit 2", test_usage_errors_exit_2},
        {"validate checks inputs without running", test_validate_checks_inputs_without_running},
        {"a plugin child never inherits a half-initialised library",
         test_plugin_child_never_inherits_a_half_initialised_library},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "host", tests);
    cleanup();
    return rc;
}
