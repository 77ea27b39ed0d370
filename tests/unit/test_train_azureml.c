/* test_train_azureml.c — train's azureml backend through `mlstage run tasks/train.yml --backend
 * azureml`, against azure_fake with Azurite behind its datastore: the job submitted, polled,
 * failed, detached and re-attached, faults survived, dry runs, and no secret anywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>

#include "amltest.h"
#include "example.h"
#include "testutil.h"

#define ENVIRONMENT "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"

static char *ws; /* the current test's workspace: a git clone of examples/ and tasks/ */

static void setup(void)
{
    amlt_require();
    amlt_reset();
    tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
}

/*
 * `mlstage run MANIFEST --backend azureml --output json` with the workspace
 * inputs, the environment's python and a quick poll, then `extra`.
 */
static json_object *run_manifest(const char *manifest, const char *const *extra, struct tu_cmd *res)
{
    const char *args[48] = {"run",       manifest,
                            "--backend", "azureml",
                            "--output",  "json",
                            "--set",     "subscription_id=" AMLT_SUB,
                            "--set",     "resource_group=" AMLT_RG,
                            "--set",     "workspace=" AMLT_WS,
                            "--set",     "python=python",
                            "--set",     "poll_interval=0.05"};
    size_t n = 16;
    for (const char *const *e = extra; e && *e && n < 46; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, amlt_env(), res);
    return ex_json(res->out);
}

static json_object *train(const char *const *extra, struct tu_cmd *res)
{
    return run_manifest("tasks/train.yml", extra, res);
}

/* The requests since `since` whose method is `method` and whose path contains `part`. */
static json_object *requests_to(long since, const char *method, const char *part)
{
    json_object *all = amlt_requests(since), *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *r = json_object_array_get_idx(all, i);
        if (strcmp(amlt_str(r, "method", NULL), method) == 0 &&
            strstr(amlt_str(r, "path", NULL), part))
            json_object_array_add(out, json_object_get(r));
    }
    json_object_put(all);
    return out;
}

/* Neither the client secret, nor the storage key, nor any token (a JWT) left a trace. */
static void assert_no_secrets(const struct tu_cmd *res)
{
    static const char *const secrets[] = {AMLT_CLIENT_SECRET, AMLT_AZURITE_KEY, "eyJ", NULL};
    char *runs = tu_fmt("%s/.mlstage", ws);
    for (const char *const *s = secrets; *s; s++) {
        TU_ASSERT_NOT_CONTAINS(res->out, *s);
        TU_ASSERT_NOT_CONTAINS(res->err, *s);
        if (amlt_dir_contains(runs, *s))
            fprintf(stderr, "\n\"%s\" found in %s\n", *s, runs);
        CU_ASSERT_FALSE(amlt_dir_contains(runs, *s));
    }
    free(runs);
}

static void a_job_is_submitted_polled_to_completed_and_its_outputs_published(void)
{
    setup();
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    const char *run_id = ex_str(doc, "run_id"), *job = ex_output(doc, "job_name");
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    CU_ASSERT_PTR_NOT_NULL_FATAL(run_id);
    CU_ASSERT_EQUAL(strncmp(job, "train-", 6), 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Completed");
    char *studio = tu_fmt("https://ml.azure.com/runs/%s?wsid=", job);
    CU_ASSERT_EQUAL(strncmp(ex_output(doc, "studio_url"), studio, strlen(studio)), 0);
    char *model_uri =
        tu_fmt("azureml://datastores/workspaceblobstore/paths/mlstage/train/%s/model/", job);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "model_uri"), model_uri);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "run_id"), run_id);
    TU_ASSERT_CONTAINS(ex_output(doc, "params"), "\"alpha\":0.5");

    /* The studio URL is printed as soon as the job exists, before it has finished. */
    const char *at_studio = strstr(res.err, "in Azure ML studio: https://ml.azure.com/runs/");
    char *completed = tu_fmt("job %s: Completed", job);
    const char *at_done = strstr(res.err, completed);
    CU_ASSERT_TRUE(at_studio && at_done && at_studio < at_done);

    /* The job as submitted: a command job whose output is the run's outputs folder. */
    json_object *puts = requests_to(since, "PUT", "/jobs/");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(puts), 1);
    json_object *put = json_object_array_get_idx(puts, 0),
                *p = amlt_at(put, "json", "properties", NULL);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(put, "status", NULL)), 201);
    TU_ASSERT_CONTAINS(amlt_str(put, "path", NULL), job);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "jobType", NULL), "Command");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "command", NULL),
                           "python train.py --model ridge --alpha 0.5 --seed 42 --out "
                           "${{outputs.outputs_dir}}");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "computeId", NULL), AMLT_WS_PATH "/computes/cpu-cluster");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "environmentId", NULL), ENVIRONMENT);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "experimentName", NULL), "diabetes");
    const char *code_id = amlt_str(p, "codeId", NULL);
    CU_ASSERT_EQUAL_FATAL(strncmp(code_id, AMLT_WS_PATH "/codes/mlstage-diabetes/versions/",
                                  strlen(AMLT_WS_PATH "/codes/mlstage-diabetes/versions/")),
                          0);
    char *out_uri = tu_fmt("azureml://datastores/workspaceblobstore/paths/mlstage/train/%s/", job);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "outputs", "outputs_dir", "uri", NULL), out_uri);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "outputs", "outputs_dir", "jobOutputType", NULL),
                           "uri_folder");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "inputs", "alpha", "jobInputType", NULL), "literal");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "inputs", "alpha", "value", NULL), "0.5");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "environmentVariables", "MLSTAGE_PARAM_ALPHA", NULL), "0.5");
    /* Provenance tags: the commit the code came from, this run. */
    char *head = ex_git(ws, "HEAD");
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "tags", "mlstage.commit", NULL), head);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "tags", "mlstage.run_id", NULL), run_id);
    CU_ASSERT_STRING_EQUAL(amlt_str(p, "tags", "mlstage.task", NULL), "train");
    /* Polled to its end: Starting, Running, Finalizing, Completed. */
    json_object *gets = requests_to(since, "GET", job);
    CU_ASSERT_TRUE(json_object_array_length(gets) >= 4);

    /* The code snapshot is a code asset whose files are in the datastore, as they are here. */
    json_object *code = NULL;
    CU_ASSERT_EQUAL(amlt_arm("GET", code_id, NULL, &code), 200);
    const char *code_uri = amlt_str(code, "properties", "codeUri", NULL);
    const char *prefix = "https://devstoreaccount1.blob.core.windows.net/" AMLT_CONTAINER "/";
    CU_ASSERT_EQUAL_FATAL(strncmp(code_uri, prefix, strlen(prefix)), 0);
    char *blob = tu_fmt("%s/train.py", code_uri + strlen(prefix));
    char *local = tu_fmt("%s/examples/diabetes/train.py", ws);
    char *uploaded = amlt_blob_get(blob), *want = tu_read(local, NULL);
    CU_ASSERT_PTR_NOT_NULL(uploaded);
    CU_ASSERT_STRING_EQUAL(uploaded ? uploaded : "", want ? want : "-");

    /* The job's record is an artefact of the run, stamped. */
    char *record = tu_fmt("%s/outputs/azureml-job.json.intoto.json", ex_str(doc, "run_dir"));
    struct stat st;
    CU_ASSERT_EQUAL(stat(record, &st), 0);
    assert_no_secrets(&res);

    free(record);
    free(uploaded);
    free(want);
    free(local);
    free(blob);
    json_object_put(code);
    json_object_put(gets);
    free(head);
    free(out_uri);
    json_object_put(puts);
    free(completed);
    free(model_uri);
    free(studio);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void the_same_code_is_uploaded_once(void)
{
    setup();
    struct tu_cmd res;
    json_object *doc = train(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object_put(doc);
    tu_cmd_free(&res);
    long since = amlt_requests_next();
    doc = train(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "already code mlstage-diabetes version");
    json_object *codes = requests_to(since, "PUT", "/codes/");
    CU_ASSERT_EQUAL(json_object_array_length(codes), 0);
    json_object *jobs = requests_to(since, "PUT", "/jobs/");
    CU_ASSERT_EQUAL(json_object_array_length(jobs), 1);
    json_object_put(codes);
    json_object_put(jobs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_job_that_fails_exits_1_with_its_error(void)
{
    setup();
    struct tu_cmd res;
    json_object *doc = train((const char *[]){"--set", "python=FAKE_JOB_FAIL", NULL}, &res);
    TU_ASSERT_EXIT(&res, 1);
    CU_ASSERT_STRING_EQUAL(ex_str(doc, "status"), "failed");
    const char *job = ex_output(doc, "job_name");
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Failed");
    TU_ASSERT_CONTAINS(ex_output(doc, "studio_url"), "https://ml.azure.com/runs/");
    char *ended = tu_fmt("job %s ended Failed: UserError: Execution failed.", job);
    TU_ASSERT_CONTAINS(res.err, ended);
    TU_ASSERT_CONTAINS(res.err, "user_logs/std_log.txt");
    CU_ASSERT_PTR_NULL(ex_output(doc, "model_uri"));
    assert_no_secrets(&res);
    free(ended);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void wait_false_submits_then_attach_fetches_the_outputs(void)
{
    setup();
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train((const char *[]){"--set", "wait=false", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    char *job = strdup(ex_output(doc, "job_name") ? ex_output(doc, "job_name") : "");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "NotStarted");
    CU_ASSERT_PTR_NOT_NULL(ex_output(doc, "studio_url"));
    char *hint = tu_fmt("--set attach=%s", job);
    TU_ASSERT_CONTAINS(res.err, hint);
    /* Submitted, not watched. */
    json_object *gets = requests_to(since, "GET", "/jobs/");
    CU_ASSERT_EQUAL(json_object_array_length(gets), 0);
    json_object_put(gets);
    json_object_put(doc);
    tu_cmd_free(&res);

    /* Meanwhile the job writes its metrics into its output folder. */
    char *blob = tu_fmt("mlstage/train/%s/metrics.json", job);
    CU_ASSERT_EQUAL_FATAL(amlt_blob_put(blob, "{\"rmse\": 53.8, \"r2\": 0.45}\n"), 0);

    /* Another invocation — another CI job, another agent — picks it up. */
    since = amlt_requests_next();
    char *attach = tu_fmt("attach=%s", job);
    doc = train((const char *[]){"--set", attach, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_name"), job);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Completed");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "metric_rmse"), "53.8");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "metric_r2"), "0.45");
    TU_ASSERT_CONTAINS(ex_output(doc, "metrics"), "\"rmse\":53.8");
    const char *metrics_file = ex_output(doc, "metrics_file");
    CU_ASSERT_PTR_NOT_NULL_FATAL(metrics_file);
    char *copy = tu_read(metrics_file, NULL);
    CU_ASSERT_STRING_EQUAL(copy ? copy : "", "{\"rmse\": 53.8, \"r2\": 0.45}\n");
    char *stamp = tu_fmt("%s.intoto.json", metrics_file);
    struct stat st;
    CU_ASSERT_EQUAL(stat(stamp, &st), 0);
    TU_ASSERT_CONTAINS(ex_output(doc, "model_uri"), job);
    /* Nothing new was submitted or uploaded. */
    json_object *all = amlt_requests(since);
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        const char *m = amlt_str(json_object_array_get_idx(all, i), "method", NULL);
        CU_ASSERT_TRUE(strcmp(m, "GET") == 0 || strcmp(m, "POST") == 0);
    }
    assert_no_secrets(&res);
    json_object_put(all);
    free(stamp);
    free(copy);
    free(attach);
    free(blob);
    free(hint);
    free(job);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_429_with_retry_after_on_the_put_is_waited_out(void)
{
    setup();
    CU_ASSERT_EQUAL_FATAL(
        amlt_fault("{\"match\": \"PUT .*/jobs/[^/]+$\", \"status\": 429, \"retry_after\": \"1\"}"),
        0);
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Completed");
    json_object *puts = requests_to(since, "PUT", "/jobs/");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(puts), 2);
    json_object *first = json_object_array_get_idx(puts, 0),
                *second = json_object_array_get_idx(puts, 1);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(first, "status", NULL)), 429);
    CU_ASSERT_EQUAL(json_object_get_int(amlt_at(second, "status", NULL)), 201);
    /* Retry-After was honoured: no early retry, and the second came a second later. */
    CU_ASSERT_PTR_NULL(amlt_str(second, "fault", NULL));
    CU_ASSERT_TRUE(json_object_get_double(amlt_at(second, "time", NULL)) -
                       json_object_get_double(amlt_at(first, "time", NULL)) >=
                   0.95);
    json_object_put(puts);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_connection_dropped_while_polling_is_recovered(void)
{
    setup();
    CU_ASSERT_EQUAL_FATAL(
        amlt_fault("{\"match\": \"GET .*/jobs/[^/]+$\", \"skip\": 1, \"drop\": true}"), 0);
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train(NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Completed");
    json_object *gets = requests_to(since, "GET", "/jobs/");
    int dropped = 0;
    for (size_t i = 0; i < json_object_array_length(gets); i++)
        dropped += strcmp(amlt_str(json_object_array_get_idx(gets, i), "status", NULL) ?: "",
                          "dropped") == 0;
    CU_ASSERT_EQUAL(dropped, 1);
    json_object_put(gets);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_dry_run_prints_the_requests_and_sends_none_that_mutate(void)
{
    setup();
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train((const char *[]){"--dry-run", NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_CONTAINS(res.err, "plan: PUT ");
    TU_ASSERT_CONTAINS(res.err, "/codes/mlstage-diabetes/versions/");
    TU_ASSERT_CONTAINS(res.err, "\"jobType\": \"Command\"");
    TU_ASSERT_CONTAINS(res.err, "${{outputs.outputs_dir}}");
    TU_ASSERT_CONTAINS(res.err, "then wait for job train-");
    json_object *all = amlt_requests(since);
    CU_ASSERT_TRUE(json_object_array_length(all) > 0);
    for (size_t i = 0; i < json_object_array_length(all); i++) {
        json_object *r = json_object_array_get_idx(all, i);
        const char *m = amlt_str(r, "method", NULL), *path = amlt_str(r, "path", NULL);
        int reads = strcmp(m, "GET") == 0 ||
                    (strcmp(m, "POST") == 0 &&
                     (strstr(path, "/oauth2/v2.0/token") || strstr(path, "/listSecrets")));
        if (!reads)
            fprintf(stderr, "\na dry run sent %s %s\n", m, path);
        CU_ASSERT_TRUE(reads);
    }
    assert_no_secrets(&res);
    json_object_put(all);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_job_outliving_the_stage_timeout_says_how_to_re_attach(void)
{
    setup();
    char *src = tu_fmt("%s/tasks/train.yml", ws), *text = tu_read(src, NULL);
    char *at = text ? strstr(text, "timeout: 30m\n") : NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    memcpy(at, "timeout: 8s \n", 13);
    char *m = tu_fmt("%s/tasks/short.yml", ws);
    tu_write(m, text);
    struct tu_cmd res;
    json_object *doc = run_manifest(
        m, (const char *[]){"--set", "python=FAKE_JOB_HANG", "--set", "poll_interval=0.2", NULL},
        &res);
    TU_ASSERT_EXIT(&res, 124);
    CU_ASSERT_TRUE(res.wall_s < 8); /* it stopped itself, before the host had to */
    const char *job = ex_output(doc, "job_name");
    CU_ASSERT_PTR_NOT_NULL_FATAL(job);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "job_status"), "Running");
    char *hint =
        tu_fmt("Pick it up with: mlstage run %s --backend azureml --set attach=%s", m, job);
    TU_ASSERT_CONTAINS(res.err, hint);
    free(hint);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(m);
    free(text);
    free(src);
}

static void missing_or_wrong_inputs_are_input_errors_before_anything_is_sent(void)
{
    setup();
    long since = amlt_requests_next();
    struct tu_cmd res;
    json_object *doc = train((const char *[]){"--set", "compute=", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "only with inputs code, compute and environment; not set: compute");
    json_object_put(doc);
    tu_cmd_free(&res);
    doc = train((const char *[]){"--set", "workspace=../other", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs.workspace: \"../other\" is not an Azure ML workspace name");
    json_object_put(doc);
    tu_cmd_free(&res);
    doc = train((const char *[]){"--set", "attach=a/b", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs.attach: \"a/b\" is not a job name");
    json_object_put(doc);
    tu_cmd_free(&res);
    json_object *all = amlt_requests(since);
    CU_ASSERT_EQUAL(json_object_array_length(all), 0);
    json_object_put(all);
    /* A job that does not exist: nothing to attach to, also the user's to fix. */
    doc = train((const char *[]){"--set", "attach=no-such-job", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "workspace " AMLT_WS " has no job no-such-job");
    json_object_put(doc);
    tu_cmd_free(&res);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"a job is submitted, polled to Completed and its outputs published",
         a_job_is_submitted_polled_to_completed_and_its_outputs_published},
        {"the same code is uploaded once", the_same_code_is_uploaded_once},
        {"a job that fails exits 1 with its error", a_job_that_fails_exits_1_with_its_error},
        {"wait: false submits, then attach fetches the outputs",
         wait_false_submits_then_attach_fetches_the_outputs},
        {"a 429 with Retry-After on the PUT is waited out",
         a_429_with_retry_after_on_the_put_is_waited_out},
        {"a connection dropped while polling is recovered",
         a_connection_dropped_while_polling_is_recovered},
        {"a dry run prints the requests and sends none that mutate",
         a_dry_run_prints_the_requests_and_sends_none_that_mutate},
        {"a job outliving the stage timeout says how to re-attach",
         a_job_outliving_the_stage_timeout_says_how_to_re_attach},
        {"missing or wrong inputs are input errors before anything is sent",
         missing_or_wrong_inputs_are_input_errors_before_anything_is_sent},
        {NULL, NULL},
    };
    if (amlt_start() != 0)
        fprintf(stderr, "\n%s\n", amlt_why());
    int rc = tu_main(argc, argv, "train (azureml)", tests);
    amlt_stop();
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
