/* test_notify_teams.c — the notify-teams plugin through the real binary, posting to a real
 * listener.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "httpd.h"
#include "testutil.h"

/* A Workflows webhook URL whose path and signature are both secret. */
#define HOOK_PATH                                                                                  \
    "/workflows/wf5ecretPath77/triggers/manual/paths/invoke?api-version=2016-06-01"                \
    "&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=S1gSecretValue99"
#define HOOK_PATH_SECRET "wf5ecretPath77"
#define HOOK_SIG_SECRET  "S1gSecretValue99"
#define CARD_TYPE        "application/vnd.microsoft.card.adaptive"
#define APPROVAL_URL     "https://dev.azure.com/contoso/mlops/_build/results?buildId=7&view=approvals"
#define WEBHOOK_LIMIT    (28 * 1024)

static char *ws;
static struct httpd *server;
static char *hook_url;

static void setup(void)
{
    if (server)
        httpd_stop(server);
    free(hook_url);
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
    server = httpd_start();
    hook_url = httpd_url(server, HOOK_PATH);
}

static void cleanup(void)
{
    if (server)
        httpd_stop(server);
    server = NULL;
    free(hook_url);
    hook_url = NULL;
    tu_rm_rf(ws);
    free(ws);
    ws = NULL;
}

/* A notify-teams manifest whose webhook comes from the TEAMS_WEBHOOK_URL secret. */
static char *manifest(const char *name, const char *inputs)
{
    char *path = tu_fmt("%s/%s.yml", ws, name);
    char *body = tu_fmt("task: notify\nplugin: notify-teams\nsecrets: [TEAMS_WEBHOOK_URL]\n"
                        "inputs:\n  webhook_url: ${secret.TEAMS_WEBHOOK_URL}\n%s",
                        inputs);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, body), 0);
    free(body);
    return path;
}

/* Runs mlstage on the workspace with the webhook secret set; `env` adds to the environment. */
static void run(const char *const *args, const char *const *env, struct tu_cmd *res)
{
    const char *argv[40];
    size_t n = 0;
    for (const char *const *a = args; *a; a++)
        argv[n++] = *a;
    argv[n++] = "--workspace";
    argv[n++] = ws;
    argv[n] = NULL;
    char *secret = tu_fmt("TEAMS_WEBHOOK_URL=%s", hook_url);
    const char *full_env[40] = {
        "TF_BUILD", "GITHUB_ACTIONS", "GITHUB_OUTPUT", "MLSTAGE_PLUGIN_PATH", "NO_COLOR=1", secret};
    size_t e = 6;
    for (const char *const *v = env; v && *v; v++)
        full_env[e++] = *v;
    full_env[e] = NULL;
    tu_mlstage(argv, full_env, ws, res);
    free(secret);
}

/* A git repository in the workspace, with an origin on GitHub and one commit by a known author. */
static char *git_repo(void)
{
    struct tu_cmd res;
    char *cmd = tu_fmt("cd '%s' && git init -q -b main . && "
                       "git remote add origin git@github.com:example/diabetes.git && "
                       "printf '*.yml\\n*.json\\n' > .gitignore && echo data > README && "
                       "git add README .gitignore && "
                       "git -c user.name='Ada Lovelace' -c user.email=ada@example.com "
                       "commit -q -m 'Tune alpha for the diabetes model' && "
                       "git rev-parse HEAD",
                       ws);
    tu_sh(cmd, NULL, NULL, &res);
    CU_ASSERT_EQUAL_FATAL(res.exit_code, 0);
    char *sha = strndup(res.out, 40);
    tu_cmd_free(&res);
    free(cmd);
    return sha;
}

static json_object *parse(const char *text)
{
    json_object *doc = text ? json_tokener_parse(text) : NULL;
    CU_ASSERT_PTR_NOT_NULL(doc);
    return doc;
}

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *sget(json_object *o, const char *key)
{
    json_object *v = get(o, key);
    return v ? json_object_get_string(v) : NULL;
}

/* The card inside a received webhook message, or NULL. Borrowed. */
static json_object *card_of(json_object *message)
{
    json_object *att = get(message, "attachments");
    return att ? get(json_object_array_get_idx(att, 0), "content") : NULL;
}

/* Every TextBlock under `node`, depth first, appended to `out`. */
static void text_blocks(json_object *node, json_object *out)
{
    if (json_object_is_type(node, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(node); i++)
            text_blocks(json_object_array_get_idx(node, i), out);
    } else if (json_object_is_type(node, json_type_object)) {
        const char *type = sget(node, "type");
        if (type && strcmp(type, "TextBlock") == 0)
            json_object_array_add(out, json_object_get(node));
        json_object_object_foreach(node, key, val)
        {
            (void)key;
            text_blocks(val, out);
        }
    }
}

/* The first TextBlock whose text contains `needle`, or NULL. Borrowed from `card`. */
static json_object *block_with(json_object *card, const char *needle)
{
    json_object *all = json_object_new_array(), *found = NULL;
    text_blocks(card, all);
    for (size_t i = 0; i < json_object_array_length(all) && !found; i++) {
        json_object *tb = json_object_array_get_idx(all, i);
        if (tu_contains(sget(tb, "text"), needle))
            found = tb;
    }
    json_object_put(all);
    return found;
}

/* The value of the fact titled `title` in the card's FactSet, or NULL. */
static const char *fact(json_object *card, const char *title)
{
    json_object *body = get(card, "body");
    for (size_t i = 0; i < json_object_array_length(body); i++) {
        json_object *el = json_object_array_get_idx(body, i);
        if (!tu_contains(sget(el, "type"), "FactSet"))
            continue;
        json_object *facts = get(el, "facts");
        for (size_t j = 0; j < json_object_array_length(facts); j++) {
            json_object *f = json_object_array_get_idx(facts, j);
            if (strcmp(sget(f, "title"), title) == 0)
                return sget(f, "value");
        }
    }
    return NULL;
}

/* The stage's outputs from `--output json`; a new reference. */
static json_object *outputs_of(struct tu_cmd *res)
{
    json_object *doc = parse(res->out);
    json_object *outputs = json_object_get(get(doc, "outputs"));
    json_object_put(doc);
    return outputs;
}

static char *run_dir_of(struct tu_cmd *res)
{
    json_object *doc = parse(res->out);
    const char *dir = sget(doc, "run_dir");
    char *copy = dir ? strdup(dir) : NULL;
    json_object_put(doc);
    return copy;
}

static const char *const accepted[] = {"Content-Type: text/plain", NULL};

static const char FULL_INPUTS[] =
    "  model: diabetes\n"
    "  version: 3\n"
    "  promote: true\n"
    "  reason: rmse improved by 3.5 % over the champion\n"
    "  metrics:\n"
    "    rmse: {candidate: 53.1, champion: 55.0, direction: minimize}\n"
    "    r2: {candidate: 0.40, champion: 0.45, direction: maximize}\n"
    "    mae: 42.5\n"
    "  approval_url: " APPROVAL_URL "\n"
    "  mention: jane@contoso.com\n";

/* ---- the card ---------------------------------------------------------- */

static void test_card_envelope_facts_metrics_and_actions(void)
{
    setup();
    char *sha = git_repo();
    char *m = manifest("notify", FULL_INPUTS);
    httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(server), 1);
    const struct httpd_request *req = httpd_request(server, 0);
    CU_ASSERT_STRING_EQUAL(req->method, "POST");
    CU_ASSERT_STRING_EQUAL(req->target, HOOK_PATH);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(req, "content-type"), "application/json");

    json_object *msg = parse(req->body);
    CU_ASSERT_STRING_EQUAL(sget(msg, "type"), "message");
    json_object *att = get(msg, "attachments");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(att), 1);
    CU_ASSERT_STRING_EQUAL(sget(json_object_array_get_idx(att, 0), "contentType"), CARD_TYPE);
    json_object *card = card_of(msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(card);
    CU_ASSERT_STRING_EQUAL(sget(card, "type"), "AdaptiveCard");
    CU_ASSERT_STRING_EQUAL(sget(card, "version"), "1.4");

    /* Title first, then the decision in green. */
    json_object *first = json_object_array_get_idx(get(card, "body"), 0);
    CU_ASSERT_STRING_EQUAL(sget(first, "text"), "Model diabetes version 3");
    json_object *decision = block_with(card, "Decision: promote");
    CU_ASSERT_PTR_NOT_NULL_FATAL(decision);
    CU_ASSERT_STRING_EQUAL(sget(decision, "color"), "Good");
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "rmse improved by 3.5 % over the champion"));

    /* Facts: inputs for the model, the context's git facts for the rest. */
    CU_ASSERT_STRING_EQUAL(fact(card, "Model"), "diabetes");
    CU_ASSERT_STRING_EQUAL(fact(card, "Version"), "3");
    char *commit = tu_fmt("[%.7s](https://github.com/example/diabetes/commit/%s) "
                          "Tune alpha for the diabetes model",
                          sha, sha);
    CU_ASSERT_STRING_EQUAL(fact(card, "Commit"), commit);
    CU_ASSERT_STRING_EQUAL(fact(card, "Branch"), "main");
    CU_ASSERT_STRING_EQUAL(fact(card, "Author"), "Ada Lovelace");
    char *run_dir = run_dir_of(&res);
    CU_ASSERT_STRING_EQUAL(fact(card, "Run"), run_dir);

    /* Metrics: one row each, deltas coloured by whether they improved. */
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "Metric"));
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "Champion"));
    json_object *rmse_delta = block_with(card, "-1.9 (-3.5 %)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rmse_delta);
    CU_ASSERT_STRING_EQUAL(sget(rmse_delta, "color"), "Good");
    json_object *r2_delta = block_with(card, "-0.05 (-11.1 %)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r2_delta);
    CU_ASSERT_STRING_EQUAL(sget(r2_delta, "color"), "Attention");
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "42.5"));

    /* Buttons: approve first, then the run. */
    json_object *actions = get(card, "actions");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(actions), 2);
    json_object *approve = json_object_array_get_idx(actions, 0);
    CU_ASSERT_STRING_EQUAL(sget(approve, "type"), "Action.OpenUrl");
    CU_ASSERT_STRING_EQUAL(sget(approve, "url"), APPROVAL_URL);
    json_object *open_run = json_object_array_get_idx(actions, 1);
    CU_ASSERT_STRING_EQUAL(sget(open_run, "type"), "Action.OpenUrl");
    char *file_url = tu_fmt("file://%s", run_dir);
    CU_ASSERT_STRING_EQUAL(sget(open_run, "url"), file_url);

    /* The mention: a tag in the text and the entity Teams resolves it with. */
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "<at>jane</at>"));
    json_object *entity = json_object_array_get_idx(get(get(card, "msteams"), "entities"), 0);
    CU_ASSERT_STRING_EQUAL(sget(entity, "text"), "<at>jane</at>");
    CU_ASSERT_STRING_EQUAL(sget(get(entity, "mentioned"), "id"), "jane@contoso.com");

    /* Outputs, and the card kept in the run as sent, with its provenance. */
    json_object *outputs = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "status"), "sent");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "http_status"), "202");
    char *bytes = tu_fmt("%zu", req->body_len);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "card_bytes"), bytes);
    char *card_path = tu_fmt("%s/outputs/card.json", run_dir);
    char *saved_text = tu_read(card_path, NULL);
    json_object *saved = parse(saved_text);
    CU_ASSERT_TRUE(json_object_equal(saved, card));
    char *statement = tu_fmt("%s.intoto.json", card_path);
    struct stat st;
    CU_ASSERT_EQUAL(stat(statement, &st), 0);
    char *summary_path = tu_fmt("%s/summary.md", run_dir);
    char *summary = tu_read(summary_path, NULL);
    TU_ASSERT_CONTAINS(summary, "**Teams notification** sent: HTTP 202");
    free(summary);
    free(summary_path);

    free(statement);
    json_object_put(saved);
    free(saved_text);
    free(card_path);
    free(bytes);
    json_object_put(outputs);
    free(file_url);
    free(run_dir);
    free(commit);
    json_object_put(msg);
    tu_cmd_free(&res);
    free(m);
    free(sha);
}

static void test_rejection_is_red_and_works_outside_git_and_in_azure_devops(void)
{
    setup();
    char *m = manifest("reject", "  model: diabetes\n  promote: \"false\"\n"
                                 "  reason: candidate rmse 58.2 is worse than 55.0\n");
    httpd_push_response(server, 202, NULL, NULL);
    const char *ado[] = {"TF_BUILD=True",
                         "SYSTEM_COLLECTIONURI=https://dev.azure.com/contoso/",
                         "SYSTEM_TEAMPROJECT=mlops",
                         "BUILD_BUILDID=4711",
                         "BUILD_SOURCEBRANCH=refs/heads/main",
                         NULL};
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, ado, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.out, "##vso[task.setvariable variable=status;isOutput=true]sent");
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(server), 1);
    json_object *msg = parse(httpd_request(server, 0)->body);
    json_object *card = card_of(msg);
    json_object *decision = block_with(card, "Decision: rejected");
    CU_ASSERT_PTR_NOT_NULL_FATAL(decision);
    CU_ASSERT_STRING_EQUAL(sget(decision, "color"), "Attention");
    CU_ASSERT_STRING_EQUAL(fact(card, "Commit"), "none (not a git repository)");
    CU_ASSERT_PTR_NULL(fact(card, "Version"));
    CU_ASSERT_STRING_EQUAL(fact(card, "Run"), "[Azure DevOps run 4711](https://dev.azure.com/"
                                              "contoso/mlops/_build/results?buildId=4711)");
    /* No approval_url: the only button opens the build. */
    json_object *actions = get(card, "actions");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(actions), 1);
    CU_ASSERT_STRING_EQUAL(sget(json_object_array_get_idx(actions, 0), "url"),
                           "https://dev.azure.com/contoso/mlops/_build/results?buildId=4711");
    CU_ASSERT_PTR_NULL(block_with(card, "Metrics"));
    json_object_put(msg);
    tu_cmd_free(&res);
    free(m);
}

/* ---- delivery ---------------------------------------------------------- */

static void test_any_2xx_is_success(void)
{
    setup();
    char *m = manifest("ok", "  model: diabetes\n");
    /* Workflows answers 202 with nothing; the retired Office 365 connectors 200 and "1". */
    httpd_push_response(server, 202, NULL, NULL);
    httpd_push_response(server, 200, accepted, "1");
    struct tu_cmd res;
    for (int i = 0; i < 2; i++) {
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 0);
        TU_ASSERT_CONTAINS(res.out, "status=sent\n");
        TU_ASSERT_CONTAINS(res.out, i == 0 ? "http_status=202\n" : "http_status=200\n");
        tu_cmd_free(&res);
    }
    CU_ASSERT_EQUAL(httpd_request_count(server), 2);
    free(m);
}

static void test_429_with_retry_after_then_202_succeeds_on_the_second_attempt(void)
{
    setup();
    char *m = manifest("throttled", "  model: diabetes\n");
    const char *ra[] = {"Retry-After: 1", NULL};
    httpd_push_response(server, 429, ra, "{\"error\":{\"code\":\"TooManyRequests\"}}");
    httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(server), 2);
    /* The second attempt waited as asked (a lower bound only). */
    CU_ASSERT_TRUE(httpd_request(server, 1)->t_mono - httpd_request(server, 0)->t_mono >= 1.0);
    CU_ASSERT_STRING_EQUAL(httpd_request(server, 0)->body, httpd_request(server, 1)->body);
    TU_ASSERT_CONTAINS(res.err, "after 2 attempts");
    json_object *outputs = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "status"), "sent");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "http_status"), "202");
    char *dir = run_dir_of(&res);
    char *log_path = tu_fmt("%s/http.log", dir);
    char *log = tu_read(log_path, NULL);
    TU_ASSERT_CONTAINS(log, "attempt 1/5 -> 429");
    TU_ASSERT_CONTAINS(log, "(Retry-After)");
    TU_ASSERT_CONTAINS(log, "attempt 2/5 -> 202");
    free(log);
    free(log_path);
    free(dir);
    json_object_put(outputs);
    tu_cmd_free(&res);
    free(m);
}

static void test_5xx_until_attempts_run_out_exits_5(void)
{
    setup();
    char *m = manifest("down", "  model: diabetes\n  max_attempts: 3\n");
    for (int i = 0; i < 3; i++)
        httpd_push_response(server, 500, NULL, "{\"error\":{\"code\":\"ServiceUnavailable\"}}");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 5);
    CU_ASSERT_EQUAL(httpd_request_count(server), 3);
    TU_ASSERT_CONTAINS(res.err, "the Teams webhook did not take the card");
    TU_ASSERT_CONTAINS(res.err, "gave up after 3 attempts");
    TU_ASSERT_CONTAINS(res.err, "HTTP 500");
    json_object *outputs = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "status"), "failed");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "http_status"), "500");
    json_object_put(outputs);
    tu_cmd_free(&res);

    /* fail_on_error: false makes it a warning: the pipeline goes on. */
    char *soft = manifest("soft", "  max_attempts: 2\n  fail_on_error: false\n");
    httpd_push_response(server, 503, NULL, NULL);
    httpd_push_response(server, 503, NULL, NULL);
    run((const char *[]){"run", soft, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "fail_on_error is false");
    TU_ASSERT_CONTAINS(res.out, "status=failed\n");
    CU_ASSERT_EQUAL(httpd_request_count(server), 5);
    tu_cmd_free(&res);
    free(soft);
    free(m);
}

static void test_400_exits_1_with_the_status_and_the_answer(void)
{
    setup();
    char *m = manifest("bad", "  model: diabetes\n");
    const char *json[] = {"Content-Type: application/json", NULL};
    httpd_push_response(server, 400, json,
                        "{\"error\":{\"code\":\"InvalidRequestContent\",\"message\":\"The "
                        "request content is not valid for the trigger schema\"}}");
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    CU_ASSERT_EQUAL(httpd_request_count(server), 1); /* a 4xx is final */
    TU_ASSERT_CONTAINS(res.err, "the Teams webhook refused the card: HTTP 400");
    TU_ASSERT_CONTAINS(res.err, "InvalidRequestContent");
    TU_ASSERT_CONTAINS(res.err, "not valid for the trigger schema");
    json_object *outputs = outputs_of(&res);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "status"), "failed");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "http_status"), "400");
    json_object_put(outputs);
    tu_cmd_free(&res);
    free(m);
}

/* ---- the 28 KB limit ----------------------------------------------------- */

/*
 * A manifest with a 60 KB reason and 300 metrics with long names, 100 of
 * them asked for: far over the limit, so the card has to be cut down.
 */
static char *oversized_manifest(void)
{
    size_t cap = 200000, n = 0;
    char *inputs = malloc(cap);
    n += (size_t)snprintf(inputs + n, cap - n,
                          "  model: diabetes\n  version: 9\n  promote: true\n"
                          "  max_metrics: 100\n"
                          "  reason: \"");
    for (int i = 0; i < 6000; i++)
        n += (size_t)snprintf(inputs + n, cap - n, "because %d ", i % 10);
    n += (size_t)snprintf(inputs + n, cap - n, "END-OF-REASON\"\n  metrics:\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(inputs + n, cap - n,
                              "    metric_%03d_with_a_rather_long_descriptive_name_for_the_table: "
                              "{candidate: %d.25, champion: %d.5, direction: minimize}\n",
                              i, i, i + 1);
    char *m = manifest("huge", inputs);
    free(inputs);
    return m;
}

static void test_oversized_inputs_give_a_card_under_28_kb(void)
{
    setup();
    char *m = oversized_manifest();
    httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(server), 1);
    const struct httpd_request *req = httpd_request(server, 0);
    /* Under the limit whether "28 KB" means 28,672 or 28,000 bytes. */
    CU_ASSERT_TRUE(req->body_len < WEBHOOK_LIMIT);
    CU_ASSERT_TRUE(req->body_len < 28000);
    CU_ASSERT_TRUE(req->body_len > 8000); /* shortened, not emptied */
    json_object *msg = parse(req->body);
    json_object *card = card_of(msg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(card);
    json_object *reason = block_with(card, "because 0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
    TU_ASSERT_NOT_CONTAINS(sget(reason, "text"), "END-OF-REASON");
    TU_ASSERT_CONTAINS(sget(reason, "text"), "\xE2\x80\xA6");
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "metric_000_with"));
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "more metrics not shown"));
    CU_ASSERT_PTR_NULL(block_with(card, "metric_299_with"));
    /* What still matters survives the cuts. */
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "Decision: promote"));
    CU_ASSERT_STRING_EQUAL(fact(card, "Version"), "9");
    TU_ASSERT_CONTAINS(res.err, "shortened to stay under the 28 KB webhook limit");
    json_object *outputs = outputs_of(&res);
    char *bytes = tu_fmt("%zu", req->body_len);
    CU_ASSERT_STRING_EQUAL(sget(outputs, "card_bytes"), bytes);
    free(bytes);
    json_object_put(outputs);
    json_object_put(msg);
    tu_cmd_free(&res);
    free(m);
}

static void test_max_metrics_caps_the_table(void)
{
    setup();
    char *m = manifest("cap", "  max_metrics: 2\n"
                              "  metrics: '{\"a\": 1, \"b\": 2, \"c\": 3, \"d\": 4}'\n");
    httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *msg = parse(httpd_request(server, 0)->body);
    json_object *card = card_of(msg);
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "and 2 more metrics not shown"));
    json_object *all = json_object_new_array();
    text_blocks(card, all);
    int rows = 0;
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        const char *t = sget(json_object_array_get_idx(all, i), "text");
        rows += strcmp(t, "a") == 0 || strcmp(t, "b") == 0 || strcmp(t, "c") == 0 ||
                strcmp(t, "d") == 0;
    }
    CU_ASSERT_EQUAL(rows, 2);
    json_object_put(all);
    json_object_put(msg);
    tu_cmd_free(&res);
    free(m);
}

/* ---- the webhook URL is a secret ----------------------------------------- */

static void assert_no_secret(const char *where, const char *text)
{
    if (tu_contains(text, HOOK_PATH_SECRET) || tu_contains(text, HOOK_SIG_SECRET))
        fprintf(stderr, "\nthe webhook URL leaked into %s:\n%s\n", where, text);
    CU_ASSERT_FALSE(tu_contains(text, HOOK_PATH_SECRET));
    CU_ASSERT_FALSE(tu_contains(text, HOOK_SIG_SECRET));
}

static void test_the_webhook_url_appears_nowhere_even_verbose(void)
{
    setup();
    char *m = manifest("secret", FULL_INPUTS);
    char *gh_out = tu_fmt("%s/github_output", ws);
    char *gh_env = tu_fmt("GITHUB_OUTPUT=%s", gh_out);
    const char *github[] = {"GITHUB_ACTIONS=true", gh_env, NULL};
    const char *ra[] = {"Retry-After: 0", NULL};
    httpd_push_response(server, 202, NULL, NULL);
    httpd_push_response(server, 429, ra, NULL);
    httpd_push_response(server, 202, NULL, NULL);
    for (int i = 0; i < 2; i++)
        httpd_push_response(server, 500, NULL, "oops");
    httpd_push_response(server, 404, NULL, "{\"error\":{\"code\":\"WorkflowNotFound\"}}");

    struct tu_cmd res;
    const char *const *runs[] = {
        (const char *[]){"run", m, "-v", NULL},
        (const char *[]){"run", m, "-v", "--output", "json", NULL},
        (const char *[]){"run", m, "-v", "--set", "max_attempts=2", NULL},
        (const char *[]){"run", m, "-v", NULL},
        (const char *[]){"run", m, "-v", "--dry-run", "--output", "json", NULL},
    };
    const int exits[] = {0, 0, 5, 1, 0};
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        run(runs[i], i == 1 ? github : NULL, &res);
        TU_ASSERT_EXIT(&res, exits[i]);
        assert_no_secret("stdout", res.out);
        assert_no_secret("stderr", res.err);
        tu_cmd_free(&res);
    }
    CU_ASSERT_EQUAL(httpd_request_count(server), 6);

    char *grep = tu_fmt("grep -r -l -F -e '%s' -e '%s' '%s' || echo clean", HOOK_PATH_SECRET,
                        HOOK_SIG_SECRET, ws);
    tu_sh(grep, NULL, NULL, &res);
    CU_ASSERT_STRING_EQUAL(res.out, "clean\n");
    if (strcmp(res.out, "clean\n") != 0)
        fprintf(stderr, "the webhook URL is in: %s\n", res.out);
    tu_cmd_free(&res);
    free(grep);
    free(gh_env);
    free(gh_out);
    free(m);
}

static void test_a_webhook_url_not_declared_secret_is_masked_by_the_plugin(void)
{
    setup();
    char *path = tu_fmt("%s/env.yml", ws);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, "task: notify\nplugin: notify-teams\n"
                                         "inputs:\n  webhook_url: ${env.HOOK}\n"),
                          0);
    char *hook = tu_fmt("HOOK=%s", hook_url);
    const char *env[] = {hook, NULL};
    httpd_push_response(server, 500, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", path, "--set", "max_attempts=1", NULL}, env, &res);
    TU_ASSERT_EXIT(&res, 5);
    assert_no_secret("stderr", res.err);
    tu_cmd_free(&res);
    char *grep = tu_fmt("grep -r -l -F -e '%s' '%s/.mlstage' || echo clean", HOOK_PATH_SECRET, ws);
    tu_sh(grep, NULL, NULL, &res);
    CU_ASSERT_STRING_EQUAL(res.out, "clean\n");
    tu_cmd_free(&res);
    free(grep);
    free(hook);
    free(path);
}

static void test_urls_the_client_would_refuse_are_input_errors_even_in_a_dry_run(void)
{
    setup();
    char *m = manifest("url", "  model: diabetes\n");
    const char *bad[] = {"TEAMS_WEBHOOK_URL=http://teams.example.com/" HOOK_PATH_SECRET,
                         "TEAMS_WEBHOOK_URL=ftp://127.0.0.1/" HOOK_PATH_SECRET,
                         "TEAMS_WEBHOOK_URL=" HOOK_PATH_SECRET, NULL};
    for (size_t i = 0; bad[i]; i++) {
        for (int dry = 0; dry < 2; dry++) {
            struct tu_cmd res;
            const char *env[] = {bad[i], NULL};
            run(dry ? (const char *[]){"run", m, "--dry-run", NULL}
                    : (const char *[]){"run", m, NULL},
                env, &res);
            TU_ASSERT_EXIT(&res, 2);
            TU_ASSERT_CONTAINS(res.err, "inputs.webhook_url: expected an https:// URL");
            assert_no_secret("stderr", res.err);
            TU_ASSERT_NOT_CONTAINS(res.err, "teams.example.com");
            tu_cmd_free(&res);
        }
    }
    CU_ASSERT_EQUAL(httpd_request_count(server), 0);
    free(m);
}

/* ---- dry run ----------------------------------------------------------- */

static void test_dry_run_prints_the_card_and_sends_nothing(void)
{
    setup();
    char *m = manifest("dry", FULL_INPUTS);
    struct tu_cmd res;
    run((const char *[]){"run", m, "--dry-run", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_EQUAL(httpd_request_count(server), 0);
    TU_ASSERT_CONTAINS(res.err, "plan: POST this card");
    TU_ASSERT_CONTAINS(res.err, "\"AdaptiveCard\"");
    json_object *doc = parse(res.out);
    json_object *plan = get(doc, "plan");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(plan), 1);
    const char *line = json_object_get_string(json_object_array_get_idx(plan, 0));
    /* The plan holds the whole message: it parses once the heading line is off. */
    const char *json_start = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(json_start);
    json_object *msg = parse(json_start + 1);
    json_object *card = card_of(msg);
    CU_ASSERT_STRING_EQUAL(sget(card, "version"), "1.4");
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "Decision: promote"));
    json_object *outputs = get(doc, "outputs");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "status"), "planned");
    CU_ASSERT_STRING_EQUAL(sget(outputs, "http_status"), "0");
    char *card_path = tu_fmt("%s/outputs/card.json", sget(doc, "run_dir"));
    char *saved = tu_read(card_path, NULL);
    json_object *saved_card = parse(saved);
    CU_ASSERT_TRUE(json_object_equal(saved_card, card));
    json_object_put(saved_card);
    free(saved);
    free(card_path);
    json_object_put(msg);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
}

/* ---- inputs ------------------------------------------------------------ */

static void test_bad_inputs_exit_2_naming_the_input(void)
{
    static const struct {
        const char *inputs, *message;
    } cases[] = {
        {"  metrics: 'not json'\n", "inputs.metrics: a string must hold a JSON object"},
        {"  metrics: {rmse: {candidate: 1, direction: lower}}\n",
         "inputs.metrics.rmse.direction: expected \"minimize\" or \"maximize\""},
        {"  metrics: {rmse: {candidate: [1]}}\n",
         "inputs.metrics.rmse.candidate: expected a number, a string or null"},
        {"  metrics: [{candidate: 1}]\n", "inputs.metrics[0]: expected an object with a \"name\""},
        {"  decision: reject\n  promote: true\n", "contradicts inputs.promote"},
        {"  decision: maybe\n", "inputs.decision"},
        {"  approval_url: javascript:alert(1)\n", "inputs.approval_url"},
        {"  mention: {id: 0f8fad5b-d9cb-469f-a165-70867728950e}\n",
         "inputs.mention.name: required"},
    };
    setup();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *m = manifest("bad", cases[i].inputs);
        struct tu_cmd res;
        run((const char *[]){"run", m, NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 2);
        TU_ASSERT_CONTAINS(res.err, cases[i].message);
        tu_cmd_free(&res);
        free(m);
    }
    CU_ASSERT_EQUAL(httpd_request_count(server), 0);
}

static void test_null_inputs_mean_not_given(void)
{
    setup();
    char *m = manifest("nulls", "  title: ${var.title:-}\n  reason: ${var.reason:-}\n"
                                "  metrics: ${var.metrics:-}\n  approval_url: ${var.approval:-}\n"
                                "  promote: ${var.promote:-}\n  mention: ${var.mention:-}\n");
    httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    run((const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *msg = parse(httpd_request(server, 0)->body);
    json_object *card = card_of(msg);
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "mlstage: notify"));
    CU_ASSERT_PTR_NOT_NULL(block_with(card, "Decision: none recorded"));
    CU_ASSERT_EQUAL(json_object_array_length(get(card, "actions")), 1);
    json_object_put(msg);
    tu_cmd_free(&res);
    free(m);
}

/* ---- the official validators (node) -------------------------------------- */

/*
 * Runs tests/node/validate-card.js on `files`; fails the test, saying how
 * to install them, when node or the validators' packages are missing.
 */
static int node_validate(const char *const *files, struct tu_cmd *res)
{
    struct tu_cmd which;
    tu_sh("command -v node", NULL, NULL, &which);
    int have_node = which.exit_code == 0;
    tu_cmd_free(&which);
    struct stat st;
    int have_modules =
        stat(MLSTAGE_SOURCE_DIR "/tests/node/node_modules/adaptivecards/package.json", &st) == 0 &&
        stat(MLSTAGE_SOURCE_DIR "/tests/node/node_modules/ajv/package.json", &st) == 0;
    if (!have_node || !have_modules) {
        fprintf(stderr,
                "\n%s: the card validators need node and their packages: "
                "run `npm ci --prefix tests/node` (Debian: apt-get install nodejs npm)\n",
                have_node ? "tests/node/node_modules is missing" : "node is not installed");
        CU_FAIL("the node card validators are not installed: npm ci --prefix tests/node");
        return -1;
    }
    const char *argv[16] = {"node", MLSTAGE_SOURCE_DIR "/tests/node/validate-card.js"};
    size_t n = 2;
    for (const char *const *f = files; *f && n < 15; f++)
        argv[n++] = *f;
    argv[n] = NULL;
    tu_run(argv, NULL, NULL, NULL, 120, res);
    return 0;
}

/* Saves the i-th received message as a file for the validators; the caller frees the path. */
static char *save_request(size_t i, const char *name)
{
    char *path = tu_fmt("%s/%s", ws, name);
    CU_ASSERT_EQUAL(tu_write(path, httpd_request(server, i)->body), 0);
    return path;
}

static void test_node_cards_pass_the_official_schema_and_microsofts_parser(void)
{
    setup();
    free(git_repo());
    char *full = manifest("full", FULL_INPUTS);
    char *reject = manifest("reject", "  model: diabetes\n  decision: reject\n");
    char *huge = oversized_manifest();
    for (int i = 0; i < 3; i++)
        httpd_push_response(server, 202, NULL, NULL);
    struct tu_cmd res;
    const char *const manifests[] = {full, reject, huge};
    for (int i = 0; i < 3; i++) {
        run((const char *[]){"run", manifests[i], NULL}, NULL, &res);
        TU_ASSERT_EXIT(&res, 0);
        tu_cmd_free(&res);
    }
    run((const char *[]){"run", full, "--dry-run", "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *dir = run_dir_of(&res);
    char *dry_card = tu_fmt("%s/outputs/card.json", dir);
    tu_cmd_free(&res);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(server), 3);
    char *sent[3] = {save_request(0, "full.message.json"), save_request(1, "reject.message.json"),
                     save_request(2, "huge.message.json")};

    const char *files[] = {sent[0], sent[1], sent[2], dry_card, NULL};
    if (node_validate(files, &res) == 0) {
        if (res.exit_code != 0)
            fprintf(stderr, "\n%s%s\n", res.out, res.err);
        CU_ASSERT_EQUAL(res.exit_code, 0);
        TU_ASSERT_CONTAINS(res.out, "4 passed, 0 failed");
        tu_cmd_free(&res);

        /* The validators can fail: a 1.5 Table in a 1.4 card, and a colour Teams lacks. */
        char *broken = tu_fmt("%s/broken.json", ws);
        tu_write(broken, "{\"type\":\"AdaptiveCard\",\"version\":\"1.4\",\"body\":["
                         "{\"type\":\"Table\",\"columns\":[]},"
                         "{\"type\":\"TextBlock\",\"text\":\"x\",\"color\":\"Purple\"}]}");
        const char *bad[] = {broken, NULL};
        node_validate(bad, &res);
        CU_ASSERT_EQUAL(res.exit_code, 1);
        TU_ASSERT_CONTAINS(res.out, "Unknown element type \"Table\"");
        TU_ASSERT_CONTAINS(res.out, "schema:");
        tu_cmd_free(&res);
        free(broken);
    }
    for (int i = 0; i < 3; i++)
        free(sent[i]);
    free(dry_card);
    free(dir);
    free(huge);
    free(reject);
    free(full);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"the card: envelope, facts, metrics and actions",
         test_card_envelope_facts_metrics_and_actions},
        {"a rejection is red, and works outside git and in Azure DevOps",
         test_rejection_is_red_and_works_outside_git_and_in_azure_devops},
        {"any 2xx is success", test_any_2xx_is_success},
        {"429 with Retry-After then 202 succeeds on the second attempt",
         test_429_with_retry_after_then_202_succeeds_on_the_second_attempt},
        {"5xx until the attempts run out exits 5", test_5xx_until_attempts_run_out_exits_5},
        {"400 exits 1 with the status and the answer",
         test_400_exits_1_with_the_status_and_the_answer},
        {"oversized inputs give a card under 28 KB", test_oversized_inputs_give_a_card_under_28_kb},
        {"max_metrics caps the table", test_max_metrics_caps_the_table},
        {"the webhook URL appears nowhere, even verbose",
         test_the_webhook_url_appears_nowhere_even_verbose},
        {"a webhook URL not declared secret is masked by the plugin",
         test_a_webhook_url_not_declared_secret_is_masked_by_the_plugin},
        {"URLs the client would refuse are input errors, even in a dry run",
         test_urls_the_client_would_refuse_are_input_errors_even_in_a_dry_run},
        {"a dry run prints the card and sends nothing",
         test_dry_run_prints_the_card_and_sends_nothing},
        {"bad inputs exit 2 naming the input", test_bad_inputs_exit_2_naming_the_input},
        {"null inputs mean not given", test_null_inputs_mean_not_given},
        {"node: cards pass the official schema and Microsoft's parser",
         test_node_cards_pass_the_official_schema_and_microsofts_parser},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "notify-teams", tests);
    cleanup();
    return rc;
}
