/* plugin_backend.c — picking a plugin's backend table, and the one message when there is none. */
#include "plugin_backend.h"

#include <stdio.h>
#include <string.h>

/* "local, azureml": the names a plugin has, for a message (cut short if it would not fit). */
static void list_names(plugin_backend_name_fn name_at, size_t count, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < count && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", name_at(i));
}

int plugin_backend_pick(struct mlstage_ctx *ctx, const char *plugin, plugin_backend_name_fn name_at,
                        size_t count, size_t *index)
{
    const char *name = mlstage_backend(ctx);
    char supported[256];
    for (size_t i = 0; i < count; i++) {
        if (strcmp(name_at(i), name) == 0) {
            *index = i;
            return 0;
        }
    }
    list_names(name_at, count, supported, sizeof(supported));
    return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                             "the %s plugin has no %s backend; supported backends: %s", plugin,
                             name, supported);
}
