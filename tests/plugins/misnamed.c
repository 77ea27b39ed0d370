/* misnamed.c — a test-only plugin whose descriptor name does not match its file name. */
#include <mlstage/mlstage.h>

static int misnamed_run(struct mlstage_ctx *ctx)
{
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "must never run");
}

static const struct mlstage_plugin misnamed_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "something-else",
    .version = "0.0.1",
    .summary = "file misnamed.so, calls itself something-else",
    .input_schema = "{\"type\": \"object\"}",
    .run = misnamed_run,
};

MLSTAGE_PLUGIN_DEFINE(misnamed_plugin)
