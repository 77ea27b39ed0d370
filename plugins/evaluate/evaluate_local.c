/* evaluate_local.c — the local backend of evaluate: the champion from the workspace registry. */
#include "evaluate.h"

static int local_champion(struct mlstage_ctx *ctx, const char *model, const char *alias,
                          json_object **out)
{
    struct mlstage_registry *reg = NULL;
    *out = NULL;
    int rc = mlstage_registry_open(ctx, &reg);
    if (rc)
        return rc;
    rc = mlstage_registry_get(reg, model, alias, out);
    if (rc == MLSTAGE_ENOTFOUND) {
        /* No model yet, or nothing promoted yet: the candidate would be the first champion. */
        mlstage_info(ctx, "%s", mlstage_error_message(ctx));
        rc = 0;
    }
    mlstage_registry_close(reg);
    return rc;
}

const struct evaluate_backend evaluate_local_backend = {
    .name = "local",
    .champion = local_champion,
};
