/* bad_abi.c — a test-only plugin that claims another plugin ABI: the host must refuse it. */
#include <mlstage/mlstage.h>

static int bad_run(struct mlstage_ctx *ctx)
{
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "must never run");
}

static const struct mlstage_plugin bad_abi_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION + 998,
    .name = "bad-abi",
    .version = "0.0.1",
    .summary = "claims a future ABI",
    .input_schema = "{\"type\": \"object\"}",
    .run = bad_run,
};

MLSTAGE_PLUGIN_DEFINE(bad_abi_plugin)
