/* artifact.c — declaring artefacts: hashed where the plugin runs, stamped by the agent when the
 * stage ends. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mlstage/context.h>
#include <mlstage/error.h>

#include "ctx.h"
#include "prov.h"

int mlstage_artifact_add(struct mlstage_ctx *ctx, const char *path, json_object **subjects)
{
    if (subjects)
        *subjects = NULL;
    char real[PATH_MAX];
    if (!path || !realpath(path, real))
        return mlstage_error_set(ctx, MLSTAGE_EIO, "artefact %s: %s", path ? path : "(null)",
                                 strerror(errno));
    struct mls_err err = {0};
    json_object *subj = NULL;
    int rc = prov_hash_artifact(real, &subj, &err);
    if (rc)
        return mlstage_error_set(ctx, rc, "artefact %s: %s", path, err.msg);

    json_object *rec = json_object_new_object();
    json_object_object_add(rec, "path", json_object_new_string(real));
    json_object_object_add(rec, "subjects", json_object_get(subj));
    pthread_mutex_lock(&ctx->lock);
    json_object_array_add(ctx->artifacts, json_object_get(rec));
    pthread_mutex_unlock(&ctx->lock);

    json_object_object_add(rec, "t", json_object_new_string("artifact"));
    rc = ctx_send(ctx, rec);
    if (subjects)
        *subjects = subj;
    else
        json_object_put(subj);
    return rc;
}
