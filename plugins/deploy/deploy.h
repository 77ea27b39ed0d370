/* deploy.h — what the deploy stage asks of a backend, and the table each backend fills. */
#ifndef MLSTAGE_PLUGIN_DEPLOY_H
#define MLSTAGE_PLUGIN_DEPLOY_H

#include <mlstage/mlstage.h>

/* The validated inputs, in the shape every backend works from. All borrowed. */
struct deploy_request {
    const char *endpoint;
    const char *model;
    const char *version;         /* "3", "latest" or an alias */
    const char *command;         /* template: {model_dir} {port} {model} {version}; or NULL */
    const char *health_path;     /* "/health" */
    double startup_timeout_s;    /* bound on waiting for health */
    const char *sample_requests; /* the smoke file's path, or NULL */
    json_object *smoke;          /* that file, loaded and checked (smoke.h), or NULL */
    const char *set_alias;       /* set to the deployed version on success, or NULL */
    int keep_running;
    int rollback;
};

/* What a backend reports, on success and on failure alike (for outputs and the summary). */
struct deploy_result {
    const char *slot;     /* "blue" or "green" (static), or NULL before one was chosen */
    int version;          /* the version now (or, on failure, that would have been) serving */
    int previous_version; /* the version that served before, or 0 */
    char *url;            /* owned; NULL when no server was left running */
    const char *smoke;    /* "true", "false" or "skipped" */
    int smoke_total, smoke_failed;
};

/*
 * One backend: a small table the plugin's run() picks by the context's
 * backend name. Each function returns 0 or a negative MLSTAGE_E* code with
 * the detail in the context's error slot, honours the dry-run flag, and
 * on failure leaves the endpoint and the alias as they were.
 */
struct deploy_backend {
    const char *name;
    /* Deploys req->version into the idle slot, checks it, switches all traffic to it. */
    int (*deploy)(struct mlstage_ctx *ctx, const struct deploy_request *req,
                  struct deploy_result *res);
    /* Switches traffic back to the other slot and its version. */
    int (*rollback)(struct mlstage_ctx *ctx, const struct deploy_request *req,
                    struct deploy_result *res);
};

extern const struct deploy_backend deploy_local_backend;
extern const struct deploy_backend deploy_azureml_backend;

#endif
