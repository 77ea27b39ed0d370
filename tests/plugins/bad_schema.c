/* bad_schema.c — a test-only plugin whose input schema uses an unknown keyword: exit 3, not a
 * guess. */
#include <mlstage/mlstage.h>

static int bad_run(struct mlstage_ctx *ctx)
{
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "must never run");
}

static const struct mlstage_plugin bad_schema_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "bad-schema",
    .version = "0.0.1",
    .summary = "declares a schema with a typo",
    .input_schema = "{\"type\": \"object\", \"propertys\": {\"a\": {\"type\": \"string\"}}}",
    .run = bad_run,
};

MLSTAGE_PLUGIN_DEFINE(bad_schema_plugin)
