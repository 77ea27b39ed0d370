/* infra_bicep_azureml.c — the azureml backend: validate, what-if and deploy through Resource
 * Manager (the core's client does tokens, retries and long-running operations). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "infra_bicep.h"

/* Values in what-if deltas are shown this long at most. */
#define VALUE_SHOWN_MAX 120

static const char *str_at(json_object *o, const char *key)
{
    json_object *v = infra_get_ci(o, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int azureml_check(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    if (job->subscription_id && job->resource_group)
        return 0;
    return mlstage_error_set(
        ctx, MLSTAGE_EINPUT,
        "the azureml backend deploys into a resource group: set inputs.%s%s%s (the resource "
        "group must exist)",
        job->subscription_id ? "" : "subscription_id",
        !job->subscription_id && !job->resource_group ? " and inputs." : "",
        job->resource_group ? "" : "resource_group");
}

/* ---- validate ---------------------------------------------------------------------------- */

static int run_validate(struct mlstage_ctx *ctx, const struct infra_job *job, const char *path)
{
    json_object *body = infra_request_body(job, 0), *result = NULL, *list = NULL, *err;
    int rc = mlstage_arm_request_and_wait(ctx, "POST", path, INFRA_DEPLOYMENTS_API, body,
                                          job->wait_timeout_s, &result);
    json_object_put(body);
    if (rc)
        return rc;
    /* Older API versions answered a failed validation 200 with an error in the body. */
    if ((err = infra_get_ci(result, "error")) && json_object_is_type(err, json_type_object)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "validation of %s failed: %s: %s",
                               job->deployment_name, str_at(err, "code"), str_at(err, "message"));
        goto done;
    }
    json_object *props = infra_get_ci(result, "properties");
    list = infra_get_ci(props, "validatedResources");
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;
    mlstage_group_begin(ctx, "resources Resource Manager validated");
    for (size_t i = 0; i < n; i++)
        mlstage_info(ctx, "%s", str_at(json_object_array_get_idx(list, i), "id"));
    mlstage_group_end(ctx);
    mlstage_info(ctx, "validation of %s in %s passed: %zu resource%s", job->deployment_name,
                 job->resource_group, n, n == 1 ? "" : "s");
    const char *state = str_at(props, "provisioningState");
    if ((rc = mlstage_output_setf(ctx, "validated_resources", "%zu", n)) ||
        (rc = mlstage_output_set(ctx, "provisioning_state", state ? state : "Succeeded")))
        goto done;
    char md[512];
    snprintf(md, sizeof(md),
             "### Infrastructure: `%s` validated\n\nResource group `%s`: %zu resource%s "
             "validated, template `sha256:%.16s…`.\n",
             job->deployment_name, job->resource_group, n, n == 1 ? "" : "s", job->tmpl.hash);
    mlstage_summary_append(ctx, md);
done:
    json_object_put(result);
    return rc;
}

/* ---- what-if ------------------------------------------------------------------------------ */

/* The change types in the order people read them, with az's symbols. */
static const struct change_kind {
    const char *type;
    const char *symbol;
    const char *output;
    const char *verb;
} kinds[] = {
    {"Create", "+", "changes_create", "to create"},
    {"Modify", "~", "changes_modify", "to modify"},
    {"Delete", "-", "changes_delete", "to delete"},
    {"Deploy", "!", "changes_deploy", "to deploy"},
    {"NoChange", "=", "changes_nochange", "unchanged"},
    {"Ignore", "*", "changes_ignore", "ignored"},
    {"Unsupported", "x", "changes_unsupported", "unsupported"},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static void value_text(json_object *v, char *out, size_t size)
{
    const char *s = v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                              JSON_C_TO_STRING_NOSLASHESCAPE)
                      : "null";
    if (strlen(s) >= size && size > 4)
        snprintf(out, size, "%.*s...", (int)(size - 4), s);
    else
        snprintf(out, size, "%s", s);
}

/* One WhatIfPropertyChange and its children, indented under its resource. */
static void print_delta(struct mlstage_ctx *ctx, json_object *change, int depth)
{
    const char *path = str_at(change, "path"), *type = str_at(change, "propertyChangeType");
    json_object *children = infra_get_ci(change, "children");
    char before[VALUE_SHOWN_MAX + 1], after[VALUE_SHOWN_MAX + 1];
    int indent = 4 + 2 * depth;
    value_text(infra_get_ci(change, "before"), before, sizeof(before));
    value_text(infra_get_ci(change, "after"), after, sizeof(after));
    if (!type)
        type = "Modify";
    if (json_object_is_type(children, json_type_array) && json_object_array_length(children)) {
        mlstage_info(ctx, "%*s%s %s:", indent, "",
                     strcmp(type, "Array") == 0 || strcmp(type, "Modify") == 0 ? "~" : type,
                     path ? path : "");
        for (size_t i = 0; i < json_object_array_length(children); i++)
            print_delta(ctx, json_object_array_get_idx(children, i), depth + 1);
    } else if (strcmp(type, "Create") == 0) {
        mlstage_info(ctx, "%*s+ %s: %s", indent, "", path ? path : "", after);
    } else if (strcmp(type, "Delete") == 0) {
        mlstage_info(ctx, "%*s- %s: %s", indent, "", path ? path : "", before);
    } else if (strcmp(type, "NoEffect") == 0) {
        mlstage_info(ctx, "%*sx %s: %s (no effect)", indent, "", path ? path : "", after);
    } else {
        mlstage_info(ctx, "%*s~ %s: %s => %s", indent, "", path ? path : "", before, after);
    }
}

static int run_what_if(struct mlstage_ctx *ctx, const struct infra_job *job, const char *path)
{
    json_object *body = infra_request_body(job, 0), *result = NULL;
    size_t counts[N_KINDS] = {0}, total = 0;
    char *md = NULL;
    size_t md_len = 0;
    FILE *mdf = NULL;
    int rc = mlstage_arm_request_and_wait(ctx, "POST", path, INFRA_DEPLOYMENTS_API, body,
                                          job->wait_timeout_s, &result);
    json_object_put(body);
    if (rc)
        return rc;
    const char *status = str_at(result, "status");
    json_object *err = infra_get_ci(result, "error");
    if ((status && strcasecmp(status, "Succeeded") != 0) ||
        (err && json_object_is_type(err, json_type_object))) {
        json_object *detail = infra_get_ci(err, "error") ? infra_get_ci(err, "error") : err;
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "what-if of %s ended %s: %s: %s",
                               job->deployment_name, status ? status : "with an error",
                               str_at(detail, "code"), str_at(detail, "message"));
        goto done;
    }
    json_object *props = infra_get_ci(result, "properties");
    json_object *changes = infra_get_ci(props ? props : result, "changes");
    size_t n =
        json_object_is_type(changes, json_type_array) ? json_object_array_length(changes) : 0;
    if (!(mdf = open_memstream(&md, &md_len))) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    fprintf(mdf, "### Infrastructure what-if: `%s` in `%s`\n\n| change | resource |\n|---|---|\n",
            job->deployment_name, job->resource_group);
    mlstage_group_begin(ctx, "what-if: the changes the deployment would make");
    for (size_t k = 0; k < N_KINDS; k++) {
        for (size_t i = 0; i < n; i++) {
            json_object *c = json_object_array_get_idx(changes, i);
            const char *type = str_at(c, "changeType");
            /* A change type this version does not know still counts and shows as Unsupported. */
            size_t kk = 0;
            while (kk < N_KINDS && (!type || strcasecmp(type, kinds[kk].type) != 0))
                kk++;
            if ((kk == N_KINDS ? N_KINDS - 1 : kk) != k)
                continue;
            const char *id = str_at(c, "resourceId");
            const char *reason = str_at(c, "unsupportedReason");
            counts[k]++;
            total++;
            mlstage_info(ctx, "%s %-9s %s%s%s", kinds[k].symbol, kinds[k].type,
                         id ? id : "(no resource id)", reason ? ": " : "", reason ? reason : "");
            fprintf(mdf, "| %s | `%s` |\n", kinds[k].type, id ? id : "");
            json_object *delta = infra_get_ci(c, "delta");
            for (size_t d = 0;
                 json_object_is_type(delta, json_type_array) && d < json_object_array_length(delta);
                 d++)
                print_delta(ctx, json_object_array_get_idx(delta, d), 0);
        }
    }
    mlstage_group_end(ctx);
    mlstage_info(ctx,
                 "what-if of %s in %s: %zu to create, %zu to modify, %zu to delete, %zu "
                 "unchanged, %zu ignored%s",
                 job->deployment_name, job->resource_group, counts[0], counts[1], counts[2],
                 counts[4], counts[5], counts[3] + counts[6] ? " (and others: see above)" : "");
    fprintf(mdf, "\n%zu to create, %zu to modify, %zu to delete, %zu unchanged, %zu ignored.\n",
            counts[0], counts[1], counts[2], counts[4], counts[5]);
    fclose(mdf);
    mdf = NULL;
    if (total)
        mlstage_summary_append(ctx, md);
    for (size_t k = 0; k < N_KINDS && rc == 0; k++)
        rc = mlstage_output_setf(ctx, kinds[k].output, "%zu", counts[k]);
    if (rc == 0)
        rc = mlstage_output_set(ctx, "has_changes",
                                counts[0] + counts[1] + counts[2] + counts[3] ? "true" : "false");
done:
    if (mdf)
        fclose(mdf);
    free(md);
    json_object_put(result);
    return rc;
}

/* ---- deploy -------------------------------------------------------------------------------- */

/* The operations that failed, each with the resource and the reason Resource Manager gives. */
static void show_failed_operations(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    char *sub = mlstage_url_encode(job->subscription_id);
    char *rg = mlstage_url_encode(job->resource_group);
    char *name = mlstage_url_encode(job->deployment_name), *path = NULL;
    json_object *ops = NULL;
    /* DeploymentOperations_List: this path has no /providers/Microsoft.Resources segment. */
    if (sub && rg && name &&
        asprintf(&path, "/subscriptions/%s/resourcegroups/%s/deployments/%s/operations", sub, rg,
                 name) >= 0 &&
        mlstage_arm_request(ctx, "GET", path, INFRA_DEPLOYMENTS_API, NULL, NULL, &ops) == 0) {
        json_object *list = infra_get_ci(ops, "value");
        for (size_t i = 0;
             json_object_is_type(list, json_type_array) && i < json_object_array_length(list);
             i++) {
            json_object *p = infra_get_ci(json_object_array_get_idx(list, i), "properties");
            const char *state = str_at(p, "provisioningState");
            if (!state || strcasecmp(state, "Failed") != 0)
                continue;
            json_object *target = infra_get_ci(p, "targetResource");
            json_object *err = infra_get_ci(infra_get_ci(p, "statusMessage"), "error");
            if (infra_get_ci(err, "error"))
                err = infra_get_ci(err, "error"); /* an ErrorResponse around the detail */
            const char *status = str_at(p, "statusCode"), *code = str_at(err, "code");
            int same = status && code && strcmp(status, code) == 0;
            mlstage_error(ctx, "%s %s failed%s%s%s: %s: %s", str_at(target, "resourceType"),
                          str_at(target, "resourceName"), status && !same ? " (" : "",
                          status && !same ? status : "", status && !same ? ")" : "",
                          code ? code : "error", str_at(err, "message"));
        }
    }
    json_object_put(ops);
    free(path);
    free(sub);
    free(rg);
    free(name);
}

/* "output_" + the output's name made a valid stage output key. */
static void output_key(const char *name, char *out, size_t size)
{
    size_t n = (size_t)snprintf(out, size, "output_%s", name);
    if (n >= size)
        n = size - 1;
    for (size_t i = 7; i < n; i++)
        if (!((out[i] >= 'A' && out[i] <= 'Z') || (out[i] >= 'a' && out[i] <= 'z') ||
              (out[i] >= '0' && out[i] <= '9') || out[i] == '_'))
            out[i] = '_';
}

static int publish_outputs(struct mlstage_ctx *ctx, const struct infra_job *job,
                           json_object *outputs, FILE *md)
{
    json_object *declared = infra_get_ci(job->tmpl.doc, "outputs");
    int rc = 0, published = 0;
    if (!json_object_is_type(outputs, json_type_object))
        return 0;
    json_object_object_foreach(outputs, name, entry)
    {
        const char *type = str_at(entry, "type");
        const char *decl_type = str_at(infra_get_ci(declared, name), "type");
        if (infra_type_is_secure(type) || infra_type_is_secure(decl_type)) {
            mlstage_info(ctx, "output %s is secure: not published", name);
            continue;
        }
        json_object *value = infra_get_ci(entry, "value");
        char key[65];
        output_key(name, key, sizeof(key));
        const char *text =
            json_object_is_type(value, json_type_string)
                ? json_object_get_string(value)
                : json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
        if ((rc = mlstage_output_set(ctx, key, text)) != 0)
            return rc;
        if (!published++)
            fprintf(md, "\n| output | value |\n|---|---|\n");
        fprintf(md, "| %s | `%s` |\n", name, text);
    }
    return rc;
}

static int run_deploy(struct mlstage_ctx *ctx, const struct infra_job *job, const char *path)
{
    json_object *body = infra_request_body(job, 0), *result = NULL;
    char *md = NULL;
    size_t md_len = 0;
    FILE *mdf = NULL;
    int rc = mlstage_arm_put_and_wait(ctx, path, INFRA_DEPLOYMENTS_API, body, job->wait_timeout_s,
                                      &result);
    json_object_put(body);
    if (mlstage_dry_run(ctx)) {
        /* The PUT was printed, not sent: there is nothing to wait for or publish. */
        if (rc == 0)
            rc = mlstage_output_set(ctx, "provisioning_state", "planned");
        goto done;
    }
    if (rc == MLSTAGE_EFAIL) {
        /* The error slot holds the deployment's error; the operations say which resource. */
        char *why = strdup(mlstage_error_message(ctx));
        mlstage_output_set(ctx, "provisioning_state", "Failed");
        show_failed_operations(ctx, job);
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "deployment %s into %s failed: %s",
                               job->deployment_name, job->resource_group, why ? why : "");
        free(why);
        goto done;
    }
    if (rc)
        goto done;
    json_object *props = infra_get_ci(result, "properties");
    const char *state = str_at(props, "provisioningState");
    json_object *resources = infra_get_ci(props, "outputResources");
    size_t n =
        json_object_is_type(resources, json_type_array) ? json_object_array_length(resources) : 0;
    mlstage_group_begin(ctx, "resources the deployment created or updated");
    for (size_t i = 0; i < n; i++)
        mlstage_info(ctx, "%s", str_at(json_object_array_get_idx(resources, i), "id"));
    mlstage_group_end(ctx);
    mlstage_info(ctx, "deployed %s into %s: %s in %s, %zu resource%s", job->deployment_name,
                 job->resource_group, state ? state : "Succeeded",
                 str_at(props, "duration") ? str_at(props, "duration") : "?", n, n == 1 ? "" : "s");
    if (!(mdf = open_memstream(&md, &md_len))) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    fprintf(mdf,
            "### Infrastructure: `%s` deployed\n\nResource group `%s`, %zu resource%s, "
            "template `sha256:%.16s…`.\n",
            job->deployment_name, job->resource_group, n, n == 1 ? "" : "s", job->tmpl.hash);
    if ((rc = publish_outputs(ctx, job, infra_get_ci(props, "outputs"), mdf)) != 0)
        goto done;
    fclose(mdf);
    mdf = NULL;
    mlstage_summary_append(ctx, md);
    if ((rc = mlstage_output_set(ctx, "provisioning_state", state ? state : "Succeeded")) ||
        (rc = mlstage_output_set(ctx, "deployment_id", str_at(result, "id"))))
        goto done;
    if (str_at(props, "correlationId"))
        rc = mlstage_output_set(ctx, "correlation_id", str_at(props, "correlationId"));
done:
    if (mdf)
        fclose(mdf);
    free(md);
    json_object_put(result);
    return rc;
}

static int azureml_run(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    char *path = infra_request_path(job, 0), *op_path = infra_request_path(job, 1);
    int rc;
    if (!path || !op_path) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = infra_report_template(ctx, job)) != 0)
        goto done;
    /* The request is kept with the run either way; a dry run also shows it whole. */
    if ((rc = infra_request_print(
             ctx, job, mlstage_dry_run(ctx) ? MLSTAGE_LOG_INFO : MLSTAGE_LOG_DEBUG)) != 0)
        goto done;
    switch (job->mode) {
    case INFRA_VALIDATE: rc = run_validate(ctx, job, op_path); break;
    case INFRA_WHAT_IF: rc = run_what_if(ctx, job, op_path); break;
    case INFRA_DEPLOY: rc = run_deploy(ctx, job, path); break;
    }
done:
    free(path);
    free(op_path);
    return rc;
}

const struct infra_backend infra_azureml_backend = {
    .name = "azureml",
    .check = azureml_check,
    .run = azureml_run,
};
