/* test_deploy.c — the deploy plugin through `mlstage run tasks/deploy.yml`: blue/green, smoke
 * tests, failures that leave the endpoint alone, rollback, and no server left behind. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include <mlstage/fs.h>

#include "example.h"
#include "testutil.h"

static char *ws;     /* the workspace of the current test: versions 1 and 2 registered */
static char *models; /* trained once: models/0 (alpha 0.5), models/1 (alpha 1.0) */

static void register_model(int i)
{
    char *dir = tu_fmt("model_dir=%s/%d/model", models, i);
    char *metrics = tu_fmt("metrics=%s/%d/metrics.json", models, i);
    struct tu_cmd res;
    ex_mlstage(ws,
               (const char *[]){"run", "tasks/register.yml", "--set", dir, "--set", metrics, NULL},
               NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(dir);
    free(metrics);
}

/* A fresh workspace with versions 1 and 2; 0 when the example cannot run here. */
static int setup(void)
{
    static const double alphas[] = {0.5, 1.0};
    if (!ex_have_sklearn())
        return 0;
    ex_become_subreaper();
    if (!models) {
        models = tu_tmpdir();
        CU_ASSERT_EQUAL_FATAL(ex_train(models, alphas, 2), 0);
    }
    tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
    register_model(0);
    register_model(1);
    return 1;
}

/* `mlstage run tasks/deploy.yml --output json` with extra arguments. */
static json_object *deploy(const char *const *extra, struct tu_cmd *res)
{
    const char *args[32] = {"run", "tasks/deploy.yml", "--output", "json"};
    size_t n = 4;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, NULL, res);
    return ex_json(res->out);
}

static char *record_path(void)
{
    return tu_fmt("%s/.mlstage/endpoints/diabetes.json", ws);
}

static json_object *record(void)
{
    char *path = record_path();
    json_object *doc = NULL;
    mlstage_json_read(path, &doc);
    free(path);
    return doc;
}

static char *record_bytes(void)
{
    char *path = record_path();
    char *text = tu_read(path, NULL);
    free(path);
    return text;
}

static json_object *slot_of(json_object *rec, const char *slot)
{
    json_object *slots = NULL, *s = NULL;
    json_object_object_get_ex(rec, "slots", &slots);
    json_object_object_get_ex(slots, slot, &s);
    return s;
}

static int traffic_of(json_object *rec, const char *slot)
{
    json_object *t = NULL;
    json_object_object_get_ex(rec, "traffic", &t);
    return json_object_get_int(json_object_object_get(t, slot));
}

/* The version an alias points at, or 0 when it is not set. */
static int alias_version(const char *alias)
{
    char *ref = tu_fmt("diabetes@%s", alias);
    struct tu_cmd res;
    ex_mlstage(ws, (const char *[]){"models", "show", ref, "--output", "json", NULL}, NULL, &res);
    json_object *doc = res.exit_code == 0 ? ex_json(res.out) : NULL;
    int v = doc ? json_object_get_int(json_object_object_get(doc, "version")) : 0;
    json_object_put(doc);
    tu_cmd_free(&res);
    free(ref);
    return v;
}

/* The pid a run reported for the server it started in `slot`, or 0. */
static pid_t started_pid(const char *err, const char *slot)
{
    char *needle = tu_fmt("slot %s: started the scoring server", slot);
    const char *p = strstr(err, needle);
    free(needle);
    p = p ? strstr(p, " as pid ") : NULL;
    return p ? (pid_t)atol(p + 8) : 0;
}

static pid_t slot_pid(json_object *rec, const char *slot)
{
    return (pid_t)json_object_get_int(json_object_object_get(slot_of(rec, slot), "pid"));
}

/* GET /health and POST /score at url answer as a live diabetes server does. */
static void assert_serves(const char *url)
{
    char *answer = NULL, *health = tu_fmt("%s/health", url), *score = tu_fmt("%s/score", url);
    CU_ASSERT_EQUAL(ex_http("GET", health, NULL, &answer), 200);
    TU_ASSERT_CONTAINS(answer, "\"status\": \"ok\"");
    free(answer);
    CU_ASSERT_EQUAL(ex_http("POST", score, "{\"data\": [[0,0,0,0,0,0,0,0,0,0]]}", &answer), 200);
    TU_ASSERT_CONTAINS(answer, "\"predictions\": [");
    free(answer);
    free(health);
    free(score);
}

/*
 * How many live children this process has (servers that outlived their
 * run are reparented to it). One killed a moment ago may still be exiting:
 * a leak is one still there after 3 s.
 */
static size_t children_settled(size_t expected)
{
    pid_t pids[16];
    size_t n = ex_children(pids, 16);
    for (int i = 0; i < 300 && n > expected; i++) {
        usleep(10000);
        n = ex_children(pids, 16);
    }
    return n;
}

/*
 * Stops the servers the endpoint record keeps running, then requires that
 * nothing is left: every recorded pid gone, no child of ours alive.
 */
static void finish(void)
{
    json_object *rec = record();
    for (int i = 0; i < 2; i++) {
        pid_t pid = slot_pid(rec, i ? "green" : "blue");
        if (pid > 0) {
            CU_ASSERT_EQUAL(ex_stop_group(pid), 0);
            CU_ASSERT_TRUE(kill(pid, 0) != 0 && errno == ESRCH);
        }
    }
    json_object_put(rec);
    pid_t left[16];
    size_t n = children_settled(0);
    ex_children(left, 16);
    if (n) {
        fprintf(stderr, "\n%zu process(es) left behind:", n);
        for (size_t i = 0; i < n && i < 16; i++) {
            char *cmd = tu_fmt("ps -o pid,pgid,cmd -p %ld >&2", (long)left[i]);
            if (system(cmd) != 0)
                fprintf(stderr, " %ld", (long)left[i]);
            free(cmd);
            ex_stop_group(left[i]);
        }
    }
    CU_ASSERT_EQUAL(n, 0);
}

static void a_first_deploy_serves_v1_from_blue_and_sets_production(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc =
        deploy((const char *[]){"--set", "version=1", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "endpoint"), "diabetes");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    const char *url = ex_output(doc, "url");
    CU_ASSERT_TRUE_FATAL(url && strncmp(url, "http://127.0.0.1:", 17) == 0);
    TU_ASSERT_CONTAINS(res.err, "slot blue: healthy");
    TU_ASSERT_CONTAINS(res.err, "smoke 2/4 two patients: POST /score -> 200");
    TU_ASSERT_CONTAINS(res.err, "smoke 4/4 rejects a malformed row: POST /score -> 400");
    CU_ASSERT_EQUAL(alias_version("production"), 1);

    json_object *rec = record(), *blue = slot_of(rec, "blue");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rec);
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "name"), "diabetes");
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "active_slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "url"), url);
    CU_ASSERT_EQUAL(traffic_of(rec, "blue"), 100);
    CU_ASSERT_EQUAL(traffic_of(rec, "green"), 0);
    CU_ASSERT_PTR_NULL(slot_of(rec, "green"));
    CU_ASSERT_STRING_EQUAL(ex_str(blue, "model"), "diabetes");
    CU_ASSERT_STRING_EQUAL(ex_str(blue, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_str(blue, "status"), "running");
    CU_ASSERT_STRING_EQUAL(ex_str(blue, "url"), url);
    CU_ASSERT_EQUAL(strlen(ex_str(blue, "digest")), 64);
    CU_ASSERT_PTR_NOT_NULL(ex_str(blue, "started"));
    pid_t pid = slot_pid(rec, "blue");
    CU_ASSERT_EQUAL(pid, started_pid(res.err, "blue"));
    CU_ASSERT_TRUE(ex_alive(pid));
    json_object *history = json_object_object_get(rec, "history");
    CU_ASSERT_EQUAL(json_object_array_length(history), 1);
    CU_ASSERT_STRING_EQUAL(ex_str(json_object_array_get_idx(history, 0), "action"), "deploy");
    char *head = ex_git(ws, "HEAD");
    CU_ASSERT_STRING_EQUAL(ex_str(json_object_object_get(rec, "tags"), "mlstage.commit"), head);
    free(head);
    assert_serves(url);

    char *summary_path = tu_fmt("%s/summary.md", ex_str(doc, "run_dir"));
    char *summary = tu_read(summary_path, NULL);
    TU_ASSERT_CONTAINS(summary, "model `diabetes` version 1 deployed");
    TU_ASSERT_CONTAINS(summary, "true (4 of 4 requests passed)");
    free(summary);
    free(summary_path);
    json_object_put(rec);
    json_object_put(doc);
    tu_cmd_free(&res);
    finish();
}

/* broken_score.py: score.py that answers 500 on /score. */
static char *write_broken_score(void)
{
    char *src = tu_fmt("%s/examples/diabetes/score.py", ws);
    char *text = tu_read(src, NULL);
    const char *line = "            preds = est.predict(rows)\n";
    char *at = text ? strstr(text, line) : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    *at = '\0';
    char *broken = tu_fmt("%s            self.reply(500, {\"error\": \"broken on purpose\"})\n"
                          "            return\n%s",
                          text, at + strlen(line));
    char *path = tu_fmt("%s/broken_score.py", ws);
    tu_write(path, broken);
    free(broken);
    free(text);
    free(src);
    return path;
}

static void a_broken_v2_exits_1_shows_the_answer_and_leaves_v1_serving(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *first =
        deploy((const char *[]){"--set", "version=1", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    char *v1_url = strdup(ex_output(first, "url"));
    char *before = record_bytes();
    free(write_broken_score());

    json_object *doc = deploy(
        (const char *[]){
            "--set", "version=2", "--set", "keep_running=true", "--set",
            "command=/usr/bin/python3 broken_score.py --model {model_dir} --port {port}", NULL},
        &res);
    TU_ASSERT_EXIT(&res, 1);
    CU_ASSERT_STRING_EQUAL(ex_str(doc, "status"), "failed");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "false");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "url"), "");
    /* What the endpoint answered, and the server's own last lines. */
    TU_ASSERT_CONTAINS(res.err, "smoke 2/4 two patients: POST /score -> HTTP 500");
    TU_ASSERT_CONTAINS(res.err, "the endpoint answered: {\"error\": \"broken on purpose\"}");
    TU_ASSERT_CONTAINS(res.err, "the scoring server of slot green, last");
    TU_ASSERT_CONTAINS(res.err, "| [score] 127.0.0.1 \"POST /score HTTP/1.1\" 500");
    TU_ASSERT_CONTAINS(res.err, "endpoint diabetes is unchanged: slot blue still has version 1");
    /* The record and the alias are exactly as they were; v1 still answers. */
    char *after = record_bytes();
    CU_ASSERT_STRING_EQUAL(after, before);
    CU_ASSERT_EQUAL(alias_version("production"), 1);
    assert_serves(v1_url);
    pid_t green = started_pid(res.err, "green");
    CU_ASSERT_TRUE(green > 0);
    ex_reap();
    CU_ASSERT_FALSE(ex_alive(green));
    CU_ASSERT_EQUAL(children_settled(1), 1); /* v1's server only */
    free(after);
    free(before);
    free(v1_url);
    json_object_put(doc);
    json_object_put(first);
    tu_cmd_free(&res);
    finish();
}

static void a_server_that_exits_or_never_answers_fails_within_the_bound(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = deploy((const char *[]){"--set",
                                               "command=echo 'cannot load the model: boom' >&2; "
                                               "exit 3",
                                               NULL},
                              &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "the scoring server of slot blue exited before GET /health");
    TU_ASSERT_CONTAINS(res.err, "| cannot load the model: boom");
    TU_ASSERT_CONTAINS(res.err, "endpoint diabetes was not created");
    json_object_put(doc);
    tu_cmd_free(&res);

    doc = deploy((const char *[]){"--set", "command=sleep 30", "--set", "startup_timeout=1", NULL},
                 &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "did not answer GET http://127.0.0.1:");
    TU_ASSERT_CONTAINS(res.err, "within startup_timeout 1 s");
    CU_ASSERT_TRUE(res.wall_s < 15);
    pid_t pid = started_pid(res.err, "blue");
    CU_ASSERT_TRUE(pid > 0);
    ex_reap();
    CU_ASSERT_FALSE(ex_alive(pid));
    char *path = record_path();
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    CU_ASSERT_EQUAL(alias_version("production"), 0);
    free(path);
    json_object_put(doc);
    tu_cmd_free(&res);
    finish();
}

static void a_good_v2_goes_green_moves_production_and_stops_v1(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *first =
        deploy((const char *[]){"--set", "version=1", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    pid_t v1 = started_pid(res.err, "blue");
    tu_cmd_free(&res);
    CU_ASSERT_TRUE(ex_alive(v1));

    /* The default version is what register marked candidate: version 2. */
    json_object *doc = deploy((const char *[]){"--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    CU_ASSERT_STRING_NOT_EQUAL(ex_output(doc, "url"), ex_output(first, "url"));
    TU_ASSERT_CONTAINS(res.err, "alias production of model diabetes: version 1 -> 2");
    TU_ASSERT_CONTAINS(res.err, "slot blue: stopping its server");
    CU_ASSERT_EQUAL(alias_version("production"), 2);
    ex_reap();
    CU_ASSERT_FALSE(ex_alive(v1));
    CU_ASSERT_TRUE(kill(v1, 0) != 0 && errno == ESRCH);
    assert_serves(ex_output(doc, "url"));

    json_object *rec = record();
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "active_slot"), "green");
    CU_ASSERT_EQUAL(traffic_of(rec, "green"), 100);
    CU_ASSERT_EQUAL(traffic_of(rec, "blue"), 0);
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "blue"), "status"), "stopped");
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "blue"), "version"), "1");
    CU_ASSERT_EQUAL(slot_pid(rec, "blue"), 0);
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "green"), "status"), "running");
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "green"), "version"), "2");
    CU_ASSERT_EQUAL(slot_pid(rec, "green"), started_pid(res.err, "green"));
    json_object *history = json_object_object_get(rec, "history");
    CU_ASSERT_EQUAL(json_object_array_length(history), 2);
    CU_ASSERT_STRING_EQUAL(ex_str(json_object_array_get_idx(history, 1), "previous_version"), "1");
    json_object_put(rec);
    json_object_put(doc);
    json_object_put(first);
    tu_cmd_free(&res);
    finish();
}

static void rollback_returns_to_blue_and_v1_and_stops_v2(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = NULL;

    /* Nothing to roll back to yet. */
    doc = deploy((const char *[]){"--set", "rollback=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "endpoint diabetes has no previous deployment to roll back to");
    json_object_put(doc);
    tu_cmd_free(&res);

    doc = deploy((const char *[]){"--set", "version=1", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object_put(doc);
    tu_cmd_free(&res);
    doc = deploy((const char *[]){"--set", "version=2", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    pid_t v2 = started_pid(res.err, "green");
    json_object_put(doc);
    tu_cmd_free(&res);

    doc = deploy((const char *[]){"--set", "rollback=true", "--set", "keep_running=true", NULL},
                 &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "previous_version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    TU_ASSERT_CONTAINS(res.err,
                       "rolling back from slot green (version 2) to slot blue (version 1)");
    CU_ASSERT_EQUAL(alias_version("production"), 1);
    ex_reap();
    CU_ASSERT_FALSE(ex_alive(v2));
    assert_serves(ex_output(doc, "url"));
    json_object *rec = record();
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "active_slot"), "blue");
    CU_ASSERT_EQUAL(traffic_of(rec, "blue"), 100);
    CU_ASSERT_EQUAL(traffic_of(rec, "green"), 0);
    CU_ASSERT_EQUAL(slot_pid(rec, "blue"), started_pid(res.err, "blue"));
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "green"), "status"), "stopped");
    json_object *history = json_object_object_get(rec, "history");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(history), 3);
    json_object *last = json_object_array_get_idx(history, 2);
    CU_ASSERT_STRING_EQUAL(ex_str(last, "action"), "rollback");
    CU_ASSERT_STRING_EQUAL(ex_str(last, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_str(last, "previous_version"), "2");
    json_object_put(rec);
    json_object_put(doc);
    tu_cmd_free(&res);

    /* Without keep_running a rollback only switches: no server is started. */
    doc = deploy((const char *[]){"--set", "rollback=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "skipped");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "url"), "");
    TU_ASSERT_NOT_CONTAINS(res.err, "started the scoring server");
    CU_ASSERT_EQUAL(alias_version("production"), 2);
    rec = record();
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "active_slot"), "green");
    CU_ASSERT_EQUAL(slot_pid(rec, "blue"), 0);
    CU_ASSERT_EQUAL(slot_pid(rec, "green"), 0);
    json_object_put(rec);
    json_object_put(doc);
    tu_cmd_free(&res);
    finish();
}

static void a_dry_run_plans_starts_nothing_and_changes_nothing(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = deploy((const char *[]){"--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *dir = tu_fmt("%s/.mlstage/endpoints", ws);
    CU_ASSERT_NOT_EQUAL(access(dir, F_OK), 0); /* not even the lock */
    json_object_put(doc);
    tu_cmd_free(&res);

    doc = deploy((const char *[]){"--set", "version=1", "--set", "keep_running=true", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    pid_t v1 = started_pid(res.err, "blue");
    json_object_put(doc);
    tu_cmd_free(&res);
    char *before = record_bytes();
    CU_ASSERT_EQUAL(children_settled(1), 1);

    doc = deploy((const char *[]){"--set", "version=2", "--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "skipped");
    const char *plan = json_object_to_json_string_ext(json_object_object_get(doc, "plan"),
                                                      JSON_C_TO_STRING_NOSLASHESCAPE);
    TU_ASSERT_CONTAINS(plan, "start the scoring server for model diabetes version 2 in slot green");
    TU_ASSERT_CONTAINS(plan, "run 4 smoke requests");
    TU_ASSERT_CONTAINS(plan, "set alias production of model diabetes to version 2");
    char *stop = tu_fmt("stop the server of slot blue (pid %ld, version 1)", (long)v1);
    TU_ASSERT_CONTAINS(plan, stop);
    TU_ASSERT_NOT_CONTAINS(res.err, "started the scoring server");
    char *after = record_bytes();
    CU_ASSERT_STRING_EQUAL(after, before);
    CU_ASSERT_EQUAL(alias_version("production"), 1);
    CU_ASSERT_EQUAL(children_settled(1), 1);
    CU_ASSERT_TRUE(ex_alive(v1));
    free(stop);
    free(after);
    free(before);
    free(dir);
    json_object_put(doc);
    tu_cmd_free(&res);
    finish();
}

static void without_keep_running_nothing_is_left_running(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = deploy(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "url"), "");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "smoke_passed"), "true");
    TU_ASSERT_CONTAINS(res.err, "its server was stopped (keep_running: false)");
    pid_t pid = started_pid(res.err, "blue");
    ex_reap();
    CU_ASSERT_TRUE(pid > 0 && !ex_alive(pid));
    json_object *rec = record();
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "blue"), "status"), "stopped");
    CU_ASSERT_EQUAL(slot_pid(rec, "blue"), 0);
    CU_ASSERT_PTR_NULL(json_object_object_get(rec, "url"));
    CU_ASSERT_EQUAL(alias_version("production"), 2);
    json_object_put(rec);
    json_object_put(doc);
    tu_cmd_free(&res);
    finish();
}

static void two_deploys_of_one_endpoint_never_interleave(void)
{
    if (!setup())
        return;
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct tu_cmd res;
            char *set = tu_fmt("version=%d", i + 1);
            json_object_put(deploy((const char *[]){"--set", set, NULL}, &res));
            if (res.exit_code != 0)
                fprintf(stderr, "deploy %d exited %d:\n%s\n", i + 1, res.exit_code, res.err);
            _exit(res.exit_code == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    json_object *rec = record();
    json_object *history = json_object_object_get(rec, "history");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(history), 2);
    json_object *h0 = json_object_array_get_idx(history, 0),
                *h1 = json_object_array_get_idx(history, 1);
    /* One after the other: blue then green, the second knowing the first. */
    CU_ASSERT_STRING_EQUAL(ex_str(h0, "slot"), "blue");
    CU_ASSERT_STRING_EQUAL(ex_str(h1, "slot"), "green");
    CU_ASSERT_PTR_NULL(json_object_object_get(h0, "previous_version"));
    CU_ASSERT_STRING_EQUAL(ex_str(h1, "previous_version"), ex_str(h0, "version"));
    CU_ASSERT_STRING_EQUAL(ex_str(rec, "active_slot"), "green");
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "blue"), "version"), ex_str(h0, "version"));
    CU_ASSERT_STRING_EQUAL(ex_str(slot_of(rec, "green"), "version"), ex_str(h1, "version"));
    CU_ASSERT_EQUAL(alias_version("production"), atoi(ex_str(h1, "version")));
    json_object_put(rec);
    finish();
}

static void bad_backends_versions_and_smoke_files_fail_before_anything_starts(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = deploy((const char *[]){"--backend", "azureml", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "the azureml backend needs the workspace: inputs "
                                "subscription_id, resource_group, workspace are not set");
    json_object_put(doc);
    tu_cmd_free(&res);

    doc = deploy((const char *[]){"--set", "version=staging", NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "model diabetes has no alias \"staging\" (register sets");
    json_object_put(doc);
    tu_cmd_free(&res);

    char *smoke = tu_fmt("%s/typo.json", ws);
    tu_write(smoke, "{\"requests\": [{\"path\": \"/health\", \"expect\": {\"stauts\": 200}}]}");
    char *set = tu_fmt("sample_requests=%s", smoke);
    doc = deploy((const char *[]){"--set", set, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "requests[0].expect: unknown key \"stauts\"");
    TU_ASSERT_NOT_CONTAINS(res.err, "started the scoring server");
    json_object_put(doc);
    tu_cmd_free(&res);

    tu_write(smoke, "{\"requests\": [{\"path\": \"/score\", \"expect\": {\"checks\": "
                    "[{\"path\": \"predictions[\", \"length\": 1}]}}]}");
    doc = deploy((const char *[]){"--set", set, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "requests[0].expect.checks[0]: \"path\" must be");
    json_object_put(doc);
    tu_cmd_free(&res);

    char *path = record_path();
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    free(path);
    free(set);
    free(smoke);
    finish();
}

static void every_failed_expectation_is_reported(void)
{
    if (!setup())
        return;
    const char *zeros = "{\"data\": [[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]]}";
    char *smoke = tu_fmt("%s/strict.json", ws);
    char *body =
        tu_fmt("{\"requests\": ["
               " {\"name\": \"subset\", \"path\": \"/health\","
               "  \"expect\": {\"status\": 200, \"json\": {\"status\": \"degraded\"}}},"
               " {\"name\": \"length\", \"path\": \"/score\", \"body\": %s,"
               "  \"expect\": {\"checks\": [{\"path\": \"predictions\", \"length\": 3}]}},"
               " {\"name\": \"bounds\", \"path\": \"/score\", \"body\": %s,"
               "  \"expect\": {\"checks\": [{\"path\": \"predictions[0]\", \"min\": 1000},"
               "   {\"path\": \"predictions[0]\", \"max\": 1},"
               "   {\"path\": \"predictions[0]\", \"approx\": 0, \"tolerance\": 1}]}},"
               " {\"name\": \"missing\", \"path\": \"/score\", \"body\": %s,"
               "  \"expect\": {\"checks\": [{\"path\": \"predictions[5]\", \"min\": 0},"
               "   {\"path\": \"scores\", \"length\": 1}]}},"
               " {\"name\": \"contains\", \"method\": \"POST\", \"path\": \"/score\","
               "  \"body\": {\"data\": [[1, 2]]},"
               "  \"expect\": {\"status\": 400, \"checks\": [{\"path\": \"error\", \"contains\": "
               "\"nope\"}]}},"
               " {\"name\": \"status\", \"path\": \"/nothing-here\", \"expect\": {\"status\": "
               "[200, 201]}},"
               " {\"name\": \"lists\", \"path\": \"/score\", \"body\": %s,"
               "  \"expect\": {\"checks\": [{\"path\": \"predictions\", \"contains\": 0},"
               "   {\"path\": \"predictions\", \"equals\": [0]}]}},"
               " {\"name\": \"passes\", \"path\": \"/score\", \"body\": %s,"
               "  \"expect\": {\"status\": 200, \"json\": {}, \"checks\": ["
               "   {\"path\": \"predictions\", \"length\": 1},"
               "   {\"path\": \"$.predictions[0]\", \"min\": 100, \"max\": 200},"
               "   {\"path\": \"predictions[0]\", \"approx\": 152, \"tolerance\": 20}]}}"
               "]}",
               zeros, zeros, zeros, zeros, zeros);
    tu_write(smoke, body);
    char *set = tu_fmt("sample_requests=%s", smoke);
    struct tu_cmd res;
    json_object *doc = deploy((const char *[]){"--set", set, NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "json.status: expected \"degraded\", got \"ok\"");
    TU_ASSERT_CONTAINS(res.err, "predictions has length 1, expected 3");
    TU_ASSERT_CONTAINS(res.err, "expected at least 1000");
    TU_ASSERT_CONTAINS(res.err, "expected at most 1");
    TU_ASSERT_CONTAINS(res.err, "expected 0 ± 1");
    TU_ASSERT_CONTAINS(res.err, "predictions[5]: predictions has 1 element");
    TU_ASSERT_CONTAINS(res.err, "scores: the answer has no key \"scores\"");
    TU_ASSERT_CONTAINS(res.err, "does not contain \"nope\"");
    TU_ASSERT_CONTAINS(res.err, "expected status [200,201], got 404");
    TU_ASSERT_CONTAINS(res.err, "does not contain 0");
    TU_ASSERT_CONTAINS(res.err, ", expected [0]");
    /* Checks that hold pass: the last request is fine. */
    TU_ASSERT_CONTAINS(res.err, "smoke 8/8 passes: POST /score -> 200 in ");
    TU_ASSERT_CONTAINS(res.err, "smoke test failed: 7 of 8 requests");
    CU_ASSERT_EQUAL(alias_version("production"), 0);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(set);
    free(body);
    free(smoke);
    finish();
}

static void a_stage_stopped_by_its_timeout_takes_its_server_down(void)
{
    if (!setup())
        return;
    /* tasks/deploy.yml with a 2 s stage timeout, and a server that never becomes healthy. */
    char *src = tu_fmt("%s/tasks/deploy.yml", ws), *text = tu_read(src, NULL);
    char *at = text ? strstr(text, "timeout: 30m\n") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    memcpy(at, "timeout: 2s \n", 13);
    char *m = tu_fmt("%s/short.yml", ws);
    tu_write(m, text);
    struct tu_cmd res;
    ex_mlstage(ws,
               (const char *[]){"run", m, "--set", "command=sleep 60", "--set",
                                "startup_timeout=300", NULL},
               NULL, &res);
    TU_ASSERT_EXIT(&res, 124);
    CU_ASSERT_TRUE(res.wall_s < 30);
    pid_t pid = started_pid(res.err, "blue");
    CU_ASSERT_TRUE(pid > 0);
    usleep(100000);
    ex_reap();
    CU_ASSERT_FALSE(ex_alive(pid));
    tu_cmd_free(&res);
    free(m);
    free(text);
    free(src);
    finish();
}

static void the_example_server_stops_promptly_on_sigterm(void)
{
    if (!setup())
        return;
    int out[2];
    CU_ASSERT_EQUAL_FATAL(pipe(out), 0);
    char *script = tu_fmt("%s/examples/diabetes/score.py", ws);
    char *model = tu_fmt("%s/0/model", models);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        execl(EX_PYTHON, EX_PYTHON, script, "--model", model, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    char line[256] = "";
    FILE *f = fdopen(out[0], "r");
    const char *got = fgets(line, sizeof(line), f);
    TU_ASSERT_CONTAINS(got, "listening on http://127.0.0.1:");
    kill(pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) == 0; i++)
        usleep(10000);
    /* Within 3 s and cleanly: a server that ignores SIGTERM costs every stop its grace period. */
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    fclose(f);
    free(model);
    free(script);
    finish();
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"a first deploy serves v1 from blue and sets production",
         a_first_deploy_serves_v1_from_blue_and_sets_production},
        {"a broken v2 exits 1, shows the answer and leaves v1 serving",
         a_broken_v2_exits_1_shows_the_answer_and_leaves_v1_serving},
        {"a server that exits or never answers fails within the bound",
         a_server_that_exits_or_never_answers_fails_within_the_bound},
        {"a good v2 goes green, moves production and stops v1",
         a_good_v2_goes_green_moves_production_and_stops_v1},
        {"rollback returns to blue and v1 and stops v2",
         rollback_returns_to_blue_and_v1_and_stops_v2},
        {"a dry run plans, starts nothing and changes nothing",
         a_dry_run_plans_starts_nothing_and_changes_nothing},
        {"without keep_running nothing is left running",
         without_keep_running_nothing_is_left_running},
        {"two deploys of one endpoint never interleave",
         two_deploys_of_one_endpoint_never_interleave},
        {"bad backends, versions and smoke files fail before anything starts",
         bad_backends_versions_and_smoke_files_fail_before_anything_starts},
        {"every failed expectation is reported", every_failed_expectation_is_reported},
        {"a stage stopped by its timeout takes its server down",
         a_stage_stopped_by_its_timeout_takes_its_server_down},
        {"the example server stops promptly on SIGTERM",
         the_example_server_stops_promptly_on_sigterm},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "deploy", tests);
    tu_rm_rf(ws);
    tu_rm_rf(models);
    free(ws);
    free(models);
    return rc;
}
