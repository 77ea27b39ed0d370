/* crash_on_load.c — a test-only plugin that crashes while it is being loaded (in a constructor). */
#include <signal.h>

#include <mlstage/mlstage.h>

__attribute__((constructor)) static void explode(void)
{
    raise(SIGSEGV);
}

static int never_run(struct mlstage_ctx *ctx)
{
    return mlstage_error_set(ctx, MLSTAGE_EFAIL, "must never run");
}

static const struct mlstage_plugin crash_on_load_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "crash-on-load",
    .version = "0.0.1",
    .summary = "crashes in its constructor",
    .input_schema = "{\"type\": \"object\"}",
    .run = never_run,
};

MLSTAGE_PLUGIN_DEFINE(crash_on_load_plugin)
