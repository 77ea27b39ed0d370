/* hello.c — a complete out-of-tree mlstage plugin: greets, publishes an output, stamps a file. */
#include <stdio.h>

#include <mlstage/mlstage.h>

/* Inputs are data: the core validates them (and applies defaults) before run() is called. */
static const char hello_schema[] = "{"
                                   "\"type\": \"object\","
                                   "\"additionalProperties\": false,"
                                   "\"required\": [\"name\"],"
                                   "\"properties\": {"
                                   "  \"name\": {\"type\": \"string\", \"minLength\": 1},"
                                   "  \"times\": {\"type\": \"integer\", \"minimum\": 1,"
                                   "            \"maximum\": 10, \"default\": 1}"
                                   "}}";

static int hello_run(struct mlstage_ctx *ctx)
{
    const char *name = mlstage_input_string(ctx, "name", "world");
    int64_t times = mlstage_input_int(ctx, "times", 1);

    char path[4096];
    snprintf(path, sizeof(path), "%s/greeting.txt", mlstage_outputs_dir(ctx));
    FILE *f = fopen(path, "w");
    if (!f)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot write %s", path);
    for (int64_t i = 0; i < times; i++) {
        fprintf(f, "hello, %s\n", name);
        mlstage_info(ctx, "hello, %s", name);
    }
    fclose(f);

    /* The core hashes the file and writes greeting.txt.intoto.json beside it. */
    int rc = mlstage_artifact_add(ctx, path, NULL);
    if (rc)
        return rc;
    return mlstage_output_set(ctx, "greeted", name);
}

static const struct mlstage_plugin hello_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "hello",
    .version = "1.0.0",
    .summary = "says hello (an out-of-tree example plugin)",
    .input_schema = hello_schema,
    .run = hello_run,
};

MLSTAGE_PLUGIN_DEFINE(hello_plugin)
