/* infra_bicep_local.c — the local backend: no cloud; shows what the template declares and the
 * exact request the azureml backend would send. */
#include "infra_bicep.h"

/* Nothing is sent, so no subscription or resource group is needed: the URL shows placeholders. */
static int local_check(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    (void)ctx;
    (void)job;
    return 0;
}

static int local_run(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    int rc = infra_report_template(ctx, job);
    if (rc)
        return rc;
    if ((rc = infra_request_print(ctx, job, MLSTAGE_LOG_INFO)) != 0)
        return rc;
    mlstage_info(ctx, "offline check passed: run with --backend azureml to %s %s",
                 job->mode == INFRA_DEPLOY    ? "deploy"
                 : job->mode == INFRA_WHAT_IF ? "preview the changes of"
                                              : "validate",
                 job->deployment_name);
    return 0;
}

const struct infra_backend infra_local_backend = {
    .name = "local",
    .check = local_check,
    .run = local_run,
};
