/* test_plugin.c — a test-only plugin whose `mode` input makes it behave well or badly on purpose.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mlstage/mlstage.h>

static const char schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"mode\"],"
    "\"properties\": {"
    "  \"mode\": {\"type\": \"string\", \"enum\": [\"ok\", \"outputs\", \"artifacts\", \"crash\","
    "            \"abort\", \"hang\", \"hang-ignore-term\", \"fail\", \"secret\", \"exit\","
    "            \"plan\", \"subprocess\", \"subprocess-hang\", \"subprocess-crash\","
    "            \"print\", \"noop\", \"artifact-path\", \"time-left\", \"git\"]},"
    "  \"count\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 100, \"default\": 1},"
    "  \"label\": {\"type\": \"string\", \"default\": \"x\"},"
    "  \"secret_name\": {\"type\": \"string\"},"
    "  \"value\": {\"type\": \"string\"}"
    "}}";

static int write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    fputs(content, f);
    return fclose(f);
}

static int run_artifacts(struct mlstage_ctx *ctx)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/metrics.json", mlstage_outputs_dir(ctx));
    if (write_file(path, "{\"rmse\": 53.1}\n") != 0)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot write %s", path);
    int rc = mlstage_artifact_add(ctx, path, NULL);
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "%s/model", mlstage_outputs_dir(ctx));
    if (mlstage_mkdirs(path, 0755) != 0)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot create %s", path);
    char file[4200];
    snprintf(file, sizeof(file), "%s/weights.bin", path);
    write_file(file, "0123456789");
    snprintf(file, sizeof(file), "%s/config.json", path);
    write_file(file, "{\"alpha\": 0.5}\n");
    json_object *subjects = NULL;
    rc = mlstage_artifact_add(ctx, path, &subjects);
    if (rc)
        return rc;
    mlstage_output_setf(ctx, "model_files", "%zu", json_object_array_length(subjects));
    json_object_put(subjects);
    mlstage_summary_append(ctx,
                           "## test plugin\n\n| metric | value |\n|---|---|\n| rmse | 53.1 |\n");
    return 0;
}

static int run_secret(struct mlstage_ctx *ctx)
{
    const char *name = mlstage_input_string(ctx, "secret_name", "TEST_SECRET");
    const char *secret = mlstage_secret_get(ctx, name);
    if (!secret)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "secret %s is not set", name);
    mlstage_info(ctx, "the secret is %s", secret);
    mlstage_debug(ctx, "debug: the secret is %s", secret);
    mlstage_warn(ctx, "warning mentioning %s", secret);
    printf("stdout mentions %s\n", secret);
    fprintf(stderr, "stderr mentions %s\n", secret);
    fflush(NULL);
    mlstage_output_set(ctx, "leak", secret);
    mlstage_plan(ctx, "would send %s", secret);
    mlstage_summary_append(ctx, secret);
    /* A token obtained at run time, registered before use. */
    char token[64];
    snprintf(token, sizeof(token), "runtime-token-%d-xyz", 4242);
    mlstage_secret_register(ctx, token);
    mlstage_info(ctx, "token %s", token);
    mlstage_output_set(ctx, "token", token);
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "failing with %s in the message", secret);
}

static int run_subprocess(struct mlstage_ctx *ctx)
{
    const char *value = mlstage_input_string(ctx, "value", "from-subprocess");
    char *env[] = {NULL, NULL};
    char var[512];
    snprintf(var, sizeof(var), "TP_VALUE=%s", value);
    env[0] = var;
    struct mlstage_proc_opts opts = {
        .shell = "echo \"line one\"; echo \"value=$TP_VALUE\"; echo \"run=$MLSTAGE_RUN_ID\"; "
                 "exit 3",
        .env = (const char *const *)env,
    };
    struct mlstage_proc_result res = {0};
    int rc = mlstage_proc_run(ctx, &opts, &res);
    if (rc)
        return rc;
    mlstage_output_setf(ctx, "exit_code", "%d", res.exit_code);
    mlstage_proc_result_free(&res);
    return 0;
}

/* Runs a command that records its pid in `value` and then outlives any timeout. */
static int run_subprocess_hang(struct mlstage_ctx *ctx, int crash)
{
    char *env[] = {NULL, NULL};
    char var[4200];
    snprintf(var, sizeof(var), "TP_PIDFILE=%s", mlstage_input_string(ctx, "value", "pid"));
    env[0] = var;
    struct mlstage_proc_opts opts = {
        .shell = crash ? "echo $$ > \"$TP_PIDFILE\"; echo started; kill -SEGV $PPID; exec sleep 300"
                       : "echo $$ > \"$TP_PIDFILE\"; echo started; exec sleep 300",
        .env = (const char *const *)env,
    };
    struct mlstage_proc_result res = {0};
    int rc = mlstage_proc_run(ctx, &opts, &res);
    mlstage_proc_result_free(&res);
    return rc;
}

static int test_run(struct mlstage_ctx *ctx)
{
    const char *mode = mlstage_input_string(ctx, "mode", "ok");
    if (strcmp(mode, "ok") == 0) {
        mlstage_info(ctx, "hello from the test plugin, label %s",
                     mlstage_input_string(ctx, "label", "?"));
        mlstage_output_set(ctx, "greeting", "hello");
        mlstage_output_setf(ctx, "count", "%lld", (long long)mlstage_input_int(ctx, "count", -1));
        mlstage_output_set(ctx, "label", mlstage_input_string(ctx, "label", ""));
        mlstage_output_set(ctx, "dry_run", mlstage_dry_run(ctx) ? "true" : "false");
        return 0;
    }
    if (strcmp(mode, "outputs") == 0) {
        mlstage_output_set(ctx, "special", "50% done; [a] b]c:d,e");
        mlstage_output_set(ctx, "multiline", "line one\nline two\r\nline three");
        return 0;
    }
    if (strcmp(mode, "artifacts") == 0)
        return run_artifacts(ctx);
    if (strcmp(mode, "crash") == 0) {
        mlstage_info(ctx, "about to crash");
        raise(SIGSEGV);
        return 0;
    }
    if (strcmp(mode, "abort") == 0)
        abort();
    if (strcmp(mode, "hang") == 0 || strcmp(mode, "hang-ignore-term") == 0) {
        if (strcmp(mode, "hang-ignore-term") == 0)
            signal(SIGTERM, SIG_IGN);
        mlstage_info(ctx, "hanging");
        for (;;)
            pause();
    }
    if (strcmp(mode, "fail") == 0) {
        mlstage_output_set(ctx, "partial", "yes");
        return mlstage_error_set(ctx, MLSTAGE_EFAIL, "the work failed on purpose");
    }
    if (strcmp(mode, "secret") == 0)
        return run_secret(ctx);
    if (strcmp(mode, "exit") == 0)
        exit(7);
    if (strcmp(mode, "plan") == 0) {
        if (mlstage_dry_run(ctx))
            mlstage_plan(ctx, "would create %s", mlstage_input_string(ctx, "label", "x"));
        return 0;
    }
    if (strcmp(mode, "subprocess") == 0)
        return run_subprocess(ctx);
    if (strcmp(mode, "git") == 0) {
        json_object *git = mlstage_git(ctx), *commit = NULL;
        mlstage_output_set(ctx, "commit",
                           git && json_object_object_get_ex(git, "commit", &commit)
                               ? json_object_get_string(commit)
                               : "none");
        return 0;
    }
    if (strcmp(mode, "noop") == 0)
        return 0;
    if (strcmp(mode, "artifact-path") == 0)
        return mlstage_artifact_add(ctx, mlstage_input_string(ctx, "value", ""), NULL);
    if (strcmp(mode, "subprocess-hang") == 0 || strcmp(mode, "subprocess-crash") == 0)
        return run_subprocess_hang(ctx, strcmp(mode, "subprocess-crash") == 0);
    if (strcmp(mode, "time-left") == 0) {
        mlstage_output_setf(ctx, "time_left", "%.3f", mlstage_time_left(ctx));
        return 0;
    }
    if (strcmp(mode, "print") == 0) {
        for (int64_t i = 0; i < mlstage_input_int(ctx, "count", 1); i++)
            printf("printed line %lld\n", (long long)i);
        return 0;
    }
    return mlstage_error_set(ctx, MLSTAGE_EINPUT, "unknown mode %s", mode);
}

static const struct mlstage_plugin test_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "test-plugin",
    .version = "1.2.3",
    .summary = "test-only plugin that behaves as its mode input says",
    .input_schema = schema,
    .run = test_run,
};

MLSTAGE_PLUGIN_DEFINE(test_plugin)
