/* test_pipeline_demo.c — the demo pipeline end to end, the way issue 3 is checked on a fresh clone.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "example.h"
#include "httpd.h"
#include "testutil.h"

static char *ws;
static struct httpd *hook;

static void setup(void)
{
    if (ws)
        tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
    if (hook)
        httpd_stop(hook);
    hook = httpd_start();
}

/* Every request to the stand-in webhook answers 202, as Teams Workflows does. */
static void accept_cards(int n)
{
    for (int i = 0; i < n; i++)
        httpd_push_response(hook, 202, NULL, "");
}

static void pipeline(const char *const *extra, struct tu_cmd *res)
{
    char *url = httpd_url(hook, "/workflows/hook-s3cr3t-path?sig=s3cr3t-sig");
    char *env_hook = tu_fmt("TEAMS_WEBHOOK_URL=%s", url);
    const char *args[32] = {"pipeline", "run", "tasks/pipeline.yml", "--output", "json"};
    size_t n = 5;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, (const char *[]){env_hook, NULL}, res);
    free(env_hook);
    free(url);
}

static json_object *stage_of(json_object *doc, const char *name)
{
    json_object *stages = NULL;
    json_object_object_get_ex(doc, "stages", &stages);
    for (size_t i = 0; i < json_object_array_length(stages); i++) {
        json_object *s = json_object_array_get_idx(stages, i);
        if (strcmp(ex_str(s, "name"), name) == 0)
            return s;
    }
    return NULL;
}

static const char *stage_status(json_object *doc, const char *name)
{
    json_object *s = stage_of(doc, name);
    return s ? ex_str(s, "status") : "(missing)";
}

static const char *stage_output(json_object *doc, const char *name, const char *key)
{
    json_object *s = stage_of(doc, name), *outputs = NULL;
    if (!s || !json_object_object_get_ex(s, "outputs", &outputs))
        return NULL;
    return ex_str(outputs, key);
}

static int versions_registered(void)
{
    char *dir = tu_fmt("%s/.mlstage/registry/diabetes", ws);
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] >= '1' && e->d_name[0] <= '9';
    if (d)
        closedir(d);
    free(dir);
    return n;
}

static void main_job_registers_version_1_with_the_commit_and_a_verifiable_statement(void)
{
    if (!ex_have_sklearn())
        return;
    setup();
    accept_cards(2);
    struct tu_cmd res;
    pipeline(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = ex_json(res.out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "train"), "succeeded");
    CU_ASSERT_STRING_EQUAL(stage_output(doc, "evaluate", "promote"), "true");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "register"), "succeeded");
    CU_ASSERT_STRING_EQUAL(stage_output(doc, "register", "version"), "1");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "deploy"), "succeeded");
    CU_ASSERT_STRING_EQUAL(stage_output(doc, "deploy", "smoke_passed"), "true");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "notify"), "succeeded");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "notify-rejected"), "skipped");
    CU_ASSERT_EQUAL(httpd_request_count(hook), 1);

    /* Version 1 carries the commit and a clean tree. */
    struct tu_cmd show;
    ex_mlstage(ws,
               (const char *[]){"models", "show", "diabetes@production", "--output", "json", NULL},
               NULL, &show);
    TU_ASSERT_EXIT(&show, 0);
    json_object *v = ex_json(show.out), *tags = NULL;
    CU_ASSERT_STRING_EQUAL(ex_str(v, "version"), "1");
    json_object_object_get_ex(v, "tags", &tags);
    char *head = ex_git(ws, "HEAD");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.commit"), head);
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.dirty"), "false");
    char *branch = ex_git(ws, "--abbrev-ref HEAD");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.branch"), branch);
    free(branch);

    /* The trained model's statement verifies, and names the same commit. */
    const char *model_dir = stage_output(doc, "train", "model_dir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(model_dir);
    struct tu_cmd verify;
    ex_mlstage(ws, (const char *[]){"provenance", "verify", model_dir, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 0);
    char *statement = tu_fmt("%s.intoto.json", model_dir);
    char *text = tu_read(statement, NULL);
    TU_ASSERT_CONTAINS(text, head);
    TU_ASSERT_CONTAINS(text, "https://slsa.dev/provenance/v1");

    /* The webhook URL, a secret, appears in no file of the workspace. */
    struct tu_cmd grep;
    char *cmd =
        tu_fmt("grep -r -l -F -e hook-s3cr3t-path -e s3cr3t-sig '%s/.mlstage' || echo clean", ws);
    tu_sh(cmd, NULL, NULL, &grep);
    CU_ASSERT_STRING_EQUAL(grep.out, "clean\n");
    TU_ASSERT_NOT_CONTAINS(res.err, "s3cr3t");
    TU_ASSERT_NOT_CONTAINS(res.out, "s3cr3t");

    tu_cmd_free(&grep);
    free(cmd);
    free(text);
    free(statement);
    tu_cmd_free(&verify);
    free(head);
    json_object_put(v);
    tu_cmd_free(&show);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_worse_candidate_is_rejected_and_skips_register_and_deploy(void)
{
    if (!ex_have_sklearn())
        return;
    setup();
    accept_cards(4);
    struct tu_cmd res;
    pipeline(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    pipeline((const char *[]){"--set", "alpha=100", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = ex_json(res.out);
    CU_ASSERT_STRING_EQUAL(stage_output(doc, "evaluate", "promote"), "false");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "register"), "skipped");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "deploy"), "skipped");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "notify"), "skipped");
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "notify-rejected"), "succeeded");
    CU_ASSERT_EQUAL(versions_registered(), 1);
    CU_ASSERT_EQUAL(httpd_request_count(hook), 2);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_dry_run_prints_the_whole_plan_and_touches_nothing(void)
{
    if (!ex_have_sklearn())
        return;
    setup();
    struct tu_cmd res;
    /* No webhook secret at all, as in a pull request. */
    ex_mlstage(ws,
               (const char *[]){"pipeline", "run", "tasks/pipeline.yml", "--dry-run", "--output",
                                "json", NULL},
               (const char *[]){"TEAMS_WEBHOOK_URL", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: run: /bin/sh -c");
    TU_ASSERT_CONTAINS(res.err, "plan: register <stages.train.outputs.model_dir>");
    TU_ASSERT_CONTAINS(res.err, "plan: deploy model diabetes");
    TU_ASSERT_CONTAINS(res.err, "plan: POST this card");
    char *registry = tu_fmt("%s/.mlstage/registry", ws);
    char *endpoints = tu_fmt("%s/.mlstage/endpoints", ws);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(registry, &st), 0);
    CU_ASSERT_NOT_EQUAL(stat(endpoints, &st), 0);
    CU_ASSERT_EQUAL(httpd_request_count(hook), 0);
    /* Nothing trained: no model anywhere under the run folders. */
    struct tu_cmd find;
    char *cmd = tu_fmt("find '%s/.mlstage' -name model.pkl | wc -l", ws);
    tu_sh(cmd, NULL, NULL, &find);
    CU_ASSERT_STRING_EQUAL(find.out, "0\n");
    tu_cmd_free(&find);
    free(cmd);
    free(registry);
    free(endpoints);
    tu_cmd_free(&res);
}

static void from_evaluate_reuses_the_last_training_run(void)
{
    if (!ex_have_sklearn())
        return;
    setup();
    accept_cards(4);
    struct tu_cmd res;
    pipeline(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *first = ex_json(res.out);
    char *train_run = strdup(ex_str(stage_of(first, "train"), "run_id"));
    json_object_put(first);
    tu_cmd_free(&res);
    pipeline((const char *[]){"--from", "evaluate", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = ex_json(res.out);
    CU_ASSERT_STRING_EQUAL(stage_status(doc, "train"), "previous");
    TU_ASSERT_CONTAINS(ex_str(stage_of(doc, "train"), "reason"), train_run);
    /* The same files again: register finds them already registered. */
    CU_ASSERT_STRING_EQUAL(stage_output(doc, "evaluate", "promote"), "false");
    CU_ASSERT_EQUAL(versions_registered(), 1);
    json_object_put(doc);
    free(train_run);
    tu_cmd_free(&res);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"the main job registers version 1 with the commit and a verifiable statement",
         main_job_registers_version_1_with_the_commit_and_a_verifiable_statement},
        {"a worse candidate is rejected and skips register and deploy",
         a_worse_candidate_is_rejected_and_skips_register_and_deploy},
        {"a dry run prints the whole plan and touches nothing",
         a_dry_run_prints_the_whole_plan_and_touches_nothing},
        {"--from evaluate reuses the last training run",
         from_evaluate_reuses_the_last_training_run},
        {NULL, NULL},
    };
    ex_become_subreaper();
    int rc = tu_main(argc, argv, "pipeline demo", tests);
    if (hook)
        httpd_stop(hook);
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
