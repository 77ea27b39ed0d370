/* plugin_input.c — a stage plugin's optional string inputs. */
#include "plugin_input.h"

const char *plugin_input_optional(struct mlstage_ctx *ctx, const char *key)
{
    const char *s = mlstage_input_string(ctx, key, NULL);
    return s && *s ? s : NULL;
}
