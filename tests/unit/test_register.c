/* test_register.c — the register plugin through `mlstage run tasks/register.yml`, on real models.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <mlstage/fs.h>

#include "example.h"
#include "testutil.h"

#define N_PARALLEL 16

static char *ws;     /* the workspace of the current test */
static char *models; /* trained once: models/<i>/{model,metrics.json,params.json} */
static const double alphas[N_PARALLEL] = {0.5, 100, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7,
                                          0.8, 0.9, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0};

/* A fresh example workspace; 0 when the example cannot run here (the test then passes empty). */
static int setup(void)
{
    if (!ex_have_sklearn())
        return 0;
    if (!models) {
        models = tu_tmpdir();
        CU_ASSERT_EQUAL_FATAL(ex_train(models, alphas, N_PARALLEL), 0);
    }
    tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
    return 1;
}

/* Registers trained model i with extra arguments; *doc gets the --output json document. */
static void reg(int i, const char *const *extra, struct tu_cmd *res, json_object **doc)
{
    char *dir = tu_fmt("model_dir=%s/%d/model", models, i);
    char *metrics = tu_fmt("metrics=%s/%d/metrics.json", models, i);
    char *params = tu_fmt("params=%s/%d/params.json", models, i);
    const char *args[32] = {
        "run", "tasks/register.yml", "--output", "json", "--set", dir, "--set", metrics, "--set",
        params};
    size_t n = 10;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, NULL, res);
    if (doc)
        *doc = ex_json(res->out);
    free(dir);
    free(metrics);
    free(params);
}

static json_object *model_json(int version)
{
    char *path = tu_fmt("%s/.mlstage/registry/diabetes/%d/model.json", ws, version);
    json_object *doc = NULL;
    mlstage_json_read(path, &doc);
    free(path);
    return doc;
}

/* `mlstage models ARGS --output json`, parsed. */
static json_object *models_cmd(const char *a, const char *b)
{
    struct tu_cmd res;
    ex_mlstage(ws, (const char *[]){"models", a, b, "--output", "json", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = ex_json(res.out);
    tu_cmd_free(&res);
    return doc;
}

static void registers_version_1_with_the_commits_tags(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = NULL;
    reg(0, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(ex_str(doc, "status"), "succeeded");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "model"), "diabetes");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "uri"), "mlstage://registry/diabetes/1");
    CU_ASSERT_EQUAL(strlen(ex_output(doc, "digest")), 64);
    char *files = tu_fmt("%s/.mlstage/registry/diabetes/1/files", ws);
    char *real = realpath(files, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(real);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "path"), real);
    char *pkl = tu_fmt("%s/model.pkl", real);
    CU_ASSERT_EQUAL(access(pkl, R_OK), 0);

    json_object *mj = model_json(1), *tags = NULL, *metrics = NULL, *params = NULL;
    CU_ASSERT_PTR_NOT_NULL_FATAL(mj);
    json_object_object_get_ex(mj, "tags", &tags);
    json_object_object_get_ex(mj, "metrics", &metrics);
    json_object_object_get_ex(mj, "params", &params);
    char *head = ex_git(ws, "HEAD"), *branch = ex_git(ws, "--abbrev-ref HEAD");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.commit"), head);
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.branch"), branch);
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.dirty"), "false");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.task"), "register");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "mlstage.run_id"), ex_str(doc, "run_id"));
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "project"), "diabetes-example");
    CU_ASSERT_STRING_EQUAL(ex_str(mj, "digest"), ex_output(doc, "digest"));
    double rmse = json_object_get_double(json_object_object_get(metrics, "rmse"));
    CU_ASSERT_TRUE(rmse > 40 && rmse < 70);
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(json_object_object_get(params, "alpha")), 0.5,
                           1e-9);
    TU_ASSERT_CONTAINS(ex_str(mj, "description"), "diabetes");

    /* registration.json is in the run, stamped, and verifies. */
    char *registration = tu_fmt("%s/outputs/registration.json", ex_str(doc, "run_dir"));
    char *statement = tu_fmt("%s.intoto.json", registration);
    CU_ASSERT_EQUAL(access(statement, R_OK), 0);
    char *text = tu_read(registration, NULL);
    TU_ASSERT_CONTAINS(text, "\"uri\": \"mlstage://registry/diabetes/1\"");
    TU_ASSERT_CONTAINS(text, head);
    free(text);
    struct tu_cmd verify;
    ex_mlstage(ws, (const char *[]){"provenance", "verify", registration, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 0);
    tu_cmd_free(&verify);
    /* So does the registered version, in place; a changed file there does not. */
    char *version_files = tu_fmt("%s/.mlstage/registry/diabetes/1/files", ws);
    ex_mlstage(ws, (const char *[]){"provenance", "verify", version_files, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 0);
    tu_cmd_free(&verify);
    char *pkl_in_registry = tu_fmt("%s/model.pkl", version_files);
    FILE *f = fopen(pkl_in_registry, "ab");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("tampered", f);
    fclose(f);
    ex_mlstage(ws, (const char *[]){"provenance", "verify", version_files, NULL}, NULL, &verify);
    TU_ASSERT_EXIT(&verify, 1);
    tu_cmd_free(&verify);
    free(pkl_in_registry);
    free(version_files);

    /* the alias, and the summary */
    json_object *cand = models_cmd("show", "diabetes@candidate");
    CU_ASSERT_STRING_EQUAL(ex_str(cand, "version"), "1");
    json_object_put(cand);
    char *summary_path = tu_fmt("%s/summary.md", ex_str(doc, "run_dir"));
    char *summary = tu_read(summary_path, NULL);
    TU_ASSERT_CONTAINS(summary, "### Model `diabetes` version 1");
    TU_ASSERT_CONTAINS(summary, "| alias | candidate |");
    free(summary);
    free(summary_path);

    free(registration);
    free(statement);
    free(head);
    free(branch);
    json_object_put(mj);
    free(pkl);
    free(real);
    free(files);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void the_same_files_again_give_the_same_version_and_say_so(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *first = NULL, *second = NULL;
    reg(0, NULL, &res, &first);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    reg(0, NULL, &res, &second);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(second, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(second, "existed"), "true");
    CU_ASSERT_STRING_EQUAL(ex_output(second, "digest"), ex_output(first, "digest"));
    TU_ASSERT_CONTAINS(res.err, "already registered as version 1");
    /* The version keeps the statement of the run that made it. */
    char *statement = tu_fmt("%s/.mlstage/registry/diabetes/1/files.intoto.json", ws);
    char *text = tu_read(statement, NULL);
    CU_ASSERT_PTR_NOT_NULL(text);
    if (text)
        TU_ASSERT_CONTAINS(text, ex_str(first, "run_id"));
    free(text);
    free(statement);
    json_object *list = models_cmd("list", "diabetes");
    CU_ASSERT_EQUAL(json_object_array_length(list), 1);
    json_object_put(list);
    json_object_put(first);
    json_object_put(second);
    tu_cmd_free(&res);
}

static void a_different_model_becomes_version_2_and_takes_the_alias(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = NULL;
    reg(0, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    reg(1, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    TU_ASSERT_CONTAINS(res.err, "alias candidate: version 1 -> 2");

    json_object *list = models_cmd("list", "diabetes");
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(list), 2);
    json_object *v1 = json_object_array_get_idx(list, 0), *v2 = json_object_array_get_idx(list, 1);
    CU_ASSERT_STRING_EQUAL(ex_str(v1, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_str(v2, "version"), "2");
    CU_ASSERT_STRING_NOT_EQUAL(ex_str(v1, "digest"), ex_str(v2, "digest"));
    TU_ASSERT_NOT_CONTAINS(json_object_to_json_string(json_object_object_get(v1, "aliases")),
                           "candidate");
    TU_ASSERT_CONTAINS(json_object_to_json_string(json_object_object_get(v2, "aliases")),
                       "candidate");
    json_object *show = models_cmd("show", "diabetes@candidate");
    CU_ASSERT_STRING_EQUAL(ex_str(show, "version"), "2");
    json_object *params = json_object_object_get(show, "params");
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(json_object_object_get(params, "alpha")), 100,
                           1e-9);
    json_object_put(show);
    json_object_put(list);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void metrics_and_params_take_a_mapping_json_text_or_a_file(void)
{
    if (!setup())
        return;
    char *m = tu_fmt("%s/inline.yml", ws);
    char *body = tu_fmt("task: register\nplugin: register\ninputs:\n"
                        "  model: inline\n  model_dir: %s/0/model\n"
                        "  metrics: {rmse: 50.5, r2: 0.5}\n"
                        "  params: '{\"alpha\": 2, \"model\": \"ridge\"}'\n"
                        "  tags: {team: ml, priority: 1, reviewed: true}\n",
                        models);
    tu_write(m, body);
    struct tu_cmd res;
    ex_mlstage(ws, (const char *[]){"run", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    json_object *show = models_cmd("show", "inline:1");
    json_object *metrics = json_object_object_get(show, "metrics");
    json_object *params = json_object_object_get(show, "params");
    json_object *tags = json_object_object_get(show, "tags");
    CU_ASSERT_DOUBLE_EQUAL(json_object_get_double(json_object_object_get(metrics, "rmse")), 50.5,
                           1e-9);
    CU_ASSERT_EQUAL(json_object_get_int(json_object_object_get(params, "alpha")), 2);
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "team"), "ml");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "priority"), "1");
    CU_ASSERT_STRING_EQUAL(ex_str(tags, "reviewed"), "true");
    json_object_put(show);

    /* A missing or broken metrics file is an input error, and nothing is registered. */
    char *missing = tu_fmt("metrics=%s/nope.json", ws);
    ex_mlstage(ws, (const char *[]){"run", "tasks/register.yml", "--set", missing, NULL}, NULL,
               &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "nope.json does not exist");
    tu_cmd_free(&res);
    char *broken_path = tu_fmt("%s/broken.json", ws);
    tu_write(broken_path, "{\"rmse\": ");
    char *broken = tu_fmt("metrics=%s", broken_path);
    char *dir = tu_fmt("model_dir=%s/0/model", models);
    ex_mlstage(ws,
               (const char *[]){"run", "tasks/register.yml", "--set", broken, "--set", dir, NULL},
               NULL, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "broken.json is not valid JSON");
    tu_cmd_free(&res);
    char *reg_dir = tu_fmt("%s/.mlstage/registry/diabetes", ws);
    CU_ASSERT_NOT_EQUAL(access(reg_dir, F_OK), 0);
    free(reg_dir);
    free(dir);
    free(broken);
    free(broken_path);
    free(missing);
    free(body);
    free(m);
}

static void the_azureml_backend_without_a_workspace_names_the_missing_inputs(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    /* The project's manifest leaves the workspace empty unless CI passes it. */
    reg(0, (const char *[]){"--backend", "azureml", NULL}, &res, NULL);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs subscription_id, resource_group and workspace are not set");
    char *reg_dir = tu_fmt("%s/.mlstage/registry", ws);
    CU_ASSERT_NOT_EQUAL(access(reg_dir, F_OK), 0);
    free(reg_dir);
    tu_cmd_free(&res);
}

/* `mlstage run tasks/register.yml ARGS` in a fresh workspace; no trained model is needed. */
static void run_bare(const char *const *extra, struct tu_cmd *res)
{
    const char *args[16] = {"run", "tasks/register.yml"};
    size_t n = 2;
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    ex_mlstage(ws, args, NULL, res);
}

static void the_model_comes_from_exactly_one_of_model_dir_and_model_uri(void)
{
    tu_rm_rf(ws);
    free(ws);
    ws = ex_workspace();
    const char *uri =
        "model_uri=azureml://datastores/workspaceblobstore/paths/mlstage/train/j/model/";
    struct tu_cmd res;
    /* Neither: the manifest's model_dir cleared and no model_uri. */
    run_bare((const char *[]){"--set", "model_dir=", NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs model_dir and model_uri: neither is set");
    tu_cmd_free(&res);
    /* Both: model_uri next to the manifest's default model_dir; the error says how to clear it. */
    run_bare((const char *[]){"--backend", "azureml", "--set", uri, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs model_dir (outputs/model) and model_uri (azureml://");
    TU_ASSERT_CONTAINS(res.err, "are both set; give one");
    TU_ASSERT_CONTAINS(res.err, "--set model_dir=");
    tu_cmd_free(&res);
    /* Only model_uri, on the local backend: it copies files, so it needs model_dir. */
    run_bare((const char *[]){"--set", "model_dir=", "--set", uri, NULL}, &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs.model_uri: the local backend registers files from "
                                "inputs.model_dir, which is not set");
    TU_ASSERT_CONTAINS(res.err, "--backend azureml");
    tu_cmd_free(&res);
    /* `mlstage validate` takes a manifest without model_dir: the schema no longer requires it. */
    char *m = tu_fmt("%s/by-uri.yml", ws);
    tu_write(m, "task: register\nplugin: register\nbackend: azureml\ninputs:\n"
                "  model: diabetes\n"
                "  model_uri: azureml://datastores/workspaceblobstore/paths/m/\n");
    ex_mlstage(ws, (const char *[]){"validate", m, NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    char *reg_dir = tu_fmt("%s/.mlstage/registry", ws);
    CU_ASSERT_NOT_EQUAL(access(reg_dir, F_OK), 0);
    free(reg_dir);
    free(m);
}

static void a_dry_run_plans_the_version_and_writes_nothing(void)
{
    if (!setup())
        return;
    struct tu_cmd res;
    json_object *doc = NULL;
    reg(0, (const char *[]){"--dry-run", NULL}, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    const char *plan = json_object_to_json_string(json_object_object_get(doc, "plan"));
    TU_ASSERT_CONTAINS(plan, "register model diabetes version 1");
    TU_ASSERT_CONTAINS(plan, "set alias candidate of model diabetes to version 1");
    char *reg_dir = tu_fmt("%s/.mlstage/registry", ws);
    CU_ASSERT_NOT_EQUAL(access(reg_dir, F_OK), 0);
    free(reg_dir);
    json_object_put(doc);
    tu_cmd_free(&res);
}

/* Each file of each listed version is there and matches its digest. */
static void assert_versions_complete(json_object *list)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i), *files = NULL;
        json_object_object_get_ex(v, "files", &files);
        CU_ASSERT_EQUAL(json_object_array_length(files), 2); /* model.pkl, model.json */
        for (size_t k = 0; k < json_object_array_length(files); k++) {
            json_object *f = json_object_array_get_idx(files, k);
            char *p = tu_fmt("%s/%s", ex_str(v, "path"), ex_str(f, "path"));
            char hex[MLSTAGE_SHA256_HEX_LEN + 1] = "";
            CU_ASSERT_EQUAL(mlstage_sha256_file(p, hex, NULL), 0);
            CU_ASSERT_STRING_EQUAL(hex, ex_str(f, "sha256"));
            free(p);
        }
    }
}

static void sixteen_parallel_runs_give_sixteen_distinct_complete_versions(void)
{
    if (!setup())
        return;
    pid_t pids[N_PARALLEL];
    char *outs[N_PARALLEL];
    for (int i = 0; i < N_PARALLEL; i++) {
        outs[i] = tu_fmt("%s/parallel-%d.json", models, i);
        pids[i] = fork();
        if (pids[i] == 0) {
            struct tu_cmd res;
            reg(i, NULL, &res, NULL);
            tu_write(outs[i], res.out);
            if (res.exit_code != 0)
                fprintf(stderr, "run %d exited %d:\n%s\n", i, res.exit_code, res.err);
            _exit(res.exit_code == 0 ? 0 : 1);
        }
    }
    int seen[N_PARALLEL + 1] = {0};
    for (int i = 0; i < N_PARALLEL; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        char *text = tu_read(outs[i], NULL);
        json_object *doc = ex_json(text);
        const char *v = ex_output(doc, "version");
        int version = v ? atoi(v) : 0;
        CU_ASSERT_TRUE(version >= 1 && version <= N_PARALLEL);
        CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
        if (version >= 1 && version <= N_PARALLEL) {
            seen[version]++;
            /* The version holds the files of the run that was told this number. */
            json_object *mj = model_json(version);
            double alpha = json_object_get_double(
                json_object_object_get(json_object_object_get(mj, "params"), "alpha"));
            CU_ASSERT_DOUBLE_EQUAL(alpha, alphas[i], 1e-9);
            CU_ASSERT_STRING_EQUAL(ex_str(mj, "digest"), ex_output(doc, "digest"));
            json_object_put(mj);
        }
        json_object_put(doc);
        free(text);
        free(outs[i]);
    }
    for (int v = 1; v <= N_PARALLEL; v++)
        CU_ASSERT_EQUAL(seen[v], 1);
    json_object *list = models_cmd("list", "diabetes");
    CU_ASSERT_EQUAL(json_object_array_length(list), N_PARALLEL);
    assert_versions_complete(list);
    json_object_put(list);
}

static int count_staging(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, ".staging-", 9) == 0;
    if (d)
        closedir(d);
    return n;
}

/* The children of pid (the plugin process a `mlstage run` forked). */
static size_t children_of(pid_t pid, pid_t *out, size_t max)
{
    char path[64];
    long child;
    size_t n = 0;
    snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)pid, (long)pid);
    FILE *f = fopen(path, "r");
    while (f && n < max && fscanf(f, "%ld", &child) == 1)
        out[n++] = (pid_t)child;
    if (f)
        fclose(f);
    return n;
}

/* Starts `mlstage run tasks/register.yml` in the background; its pid. */
static pid_t start_register(const char *model_dir)
{
    char *set = tu_fmt("model_dir=%s", model_dir);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        int null_fd = open("/dev/null", O_RDWR);
        dup2(null_fd, 0);
        dup2(null_fd, 1);
        dup2(null_fd, 2);
        if (chdir(ws) != 0)
            _exit(126);
        unsetenv("TF_BUILD");
        unsetenv("GITHUB_ACTIONS");
        execl(MLSTAGE_BIN, MLSTAGE_BIN, "run", "tasks/register.yml", "--set", set, "--set",
              "metrics=", "--workspace", ws, (char *)NULL);
        _exit(127);
    }
    free(set);
    return pid;
}

static void kill_9_mid_registration_leaves_no_partial_version(void)
{
    if (!setup())
        return;
    ex_become_subreaper();
    /* A large file keeps the copy busy long enough to be killed inside it. */
    char *big = tu_fmt("%s/big", ws);
    char *mk = tu_fmt("mkdir -p '%s' && cp '%s/0/model/model.json' '%s/' && "
                      "head -c 300000000 /dev/urandom > '%s/model.pkl'",
                      big, models, big, big);
    struct tu_cmd res;
    tu_sh(mk, NULL, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    char *model_dir = tu_fmt("%s/.mlstage/registry/diabetes", ws);
    int killed_while_staging = 0;
    for (int attempt = 0; attempt < 5 && !killed_while_staging; attempt++) {
        pid_t pid = start_register(big);
        for (int i = 0; i < 20000 && count_staging(model_dir) == 0; i++)
            usleep(1000);
        usleep(30000);
        /* The whole run at once: the agent and the plugin process that copies. */
        pid_t plugin[8];
        size_t n = children_of(pid, plugin, 8);
        kill(pid, SIGKILL);
        for (size_t k = 0; k < n; k++)
            kill(plugin[k], SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        for (size_t k = 0; k < n; k++)
            while (ex_alive(plugin[k]))
                usleep(1000);
        ex_reap();
        CU_ASSERT_TRUE(WIFSIGNALED(status));
        if (n > 0 && count_staging(model_dir) > 0)
            killed_while_staging = 1;
        /* Whatever happened, no version folder may exist without being complete. */
        char *v1 = tu_fmt("%s/1", model_dir), *mj = tu_fmt("%s/1/model.json", model_dir);
        if (access(v1, F_OK) == 0)
            CU_ASSERT_EQUAL(access(mj, F_OK), 0);
        free(v1);
        free(mj);
    }
    CU_ASSERT_TRUE(killed_while_staging);
    ex_mlstage(ws, (const char *[]){"models", "show", "diabetes", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 1);
    TU_ASSERT_CONTAINS(res.err, "not in the registry");
    tu_cmd_free(&res);

    /* The next run publishes a complete version 1 and sweeps what the killed ones left. */
    char *set = tu_fmt("model_dir=%s", big);
    ex_mlstage(ws,
               (const char *[]){"run", "tasks/register.yml", "--set", set, "--set",
                                "metrics=", "--output", "json", NULL},
               NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    json_object *doc = ex_json(res.out);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    CU_ASSERT_EQUAL(count_staging(model_dir), 0);
    json_object *list = models_cmd("list", "diabetes");
    CU_ASSERT_EQUAL(json_object_array_length(list), 1);
    assert_versions_complete(list);
    json_object_put(list);
    json_object_put(doc);
    tu_cmd_free(&res);
    free(set);
    free(model_dir);
    free(mk);
    free(big);
}

static void a_secret_never_reaches_output_logs_or_files(void)
{
    if (!setup())
        return;
    const char *secret = "s3cr3t-register-token-7f2e";
    char *m = tu_fmt("%s/secret.yml", ws);
    char *body = tu_fmt("task: register\nplugin: register\n"
                        "secrets: [REGISTER_TEST_TOKEN]\ninputs:\n"
                        "  model: diabetes\n  model_dir: %s/0/model\n"
                        "  metrics: %s/0/metrics.json\n"
                        "  description: trained with token ${secret.REGISTER_TEST_TOKEN}\n"
                        "  tags: {token: \"${secret.REGISTER_TEST_TOKEN}\"}\n",
                        models, models);
    tu_write(m, body);
    char *env = tu_fmt("REGISTER_TEST_TOKEN=%s", secret);
    struct tu_cmd res;
    ex_mlstage(ws, (const char *[]){"run", m, "-v", "--output", "json", NULL},
               (const char *[]){env, NULL}, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_NOT_CONTAINS(res.err, secret);
    tu_cmd_free(&res);
    ex_mlstage(ws, (const char *[]){"models", "show", "diabetes", NULL}, NULL, &res);
    TU_ASSERT_EXIT(&res, 0);
    TU_ASSERT_NOT_CONTAINS(res.out, secret);
    TU_ASSERT_CONTAINS(res.out, "***");
    tu_cmd_free(&res);
    /* Not in any file mlstage wrote: registry, run records, logs, registration.json. */
    char *grep = tu_fmt("grep -r -l -F '%s' '%s/.mlstage'", secret, ws);
    tu_sh(grep, NULL, NULL, &res);
    CU_ASSERT_EQUAL(res.exit_code, 1);
    CU_ASSERT_STRING_EQUAL(res.out, "");
    tu_cmd_free(&res);
    free(grep);
    free(env);
    free(body);
    free(m);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"registers version 1 with the commit's tags", registers_version_1_with_the_commits_tags},
        {"the same files again give the same version and say so",
         the_same_files_again_give_the_same_version_and_say_so},
        {"a different model becomes version 2 and takes the alias",
         a_different_model_becomes_version_2_and_takes_the_alias},
        {"metrics and params take a mapping, JSON text or a file",
         metrics_and_params_take_a_mapping_json_text_or_a_file},
        {"the azureml backend without a workspace names the missing inputs",
         the_azureml_backend_without_a_workspace_names_the_missing_inputs},
        {"the model comes from exactly one of model_dir and model_uri",
         the_model_comes_from_exactly_one_of_model_dir_and_model_uri},
        {"a dry run plans the version and writes nothing",
         a_dry_run_plans_the_version_and_writes_nothing},
        {"16 parallel runs give 16 distinct complete versions",
         sixteen_parallel_runs_give_sixteen_distinct_complete_versions},
        {"kill -9 mid-registration leaves no partial version",
         kill_9_mid_registration_leaves_no_partial_version},
        {"a secret never reaches output, logs or files",
         a_secret_never_reaches_output_logs_or_files},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "register", tests);
    tu_rm_rf(ws);
    tu_rm_rf(models);
    free(ws);
    free(models);
    return rc;
}
