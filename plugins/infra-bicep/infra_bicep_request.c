/* infra_bicep_request.c — the deployment request (name, URL, body) both backends speak, and
 * what both report about the template. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infra_bicep.h"

/* The deployment name pattern of the reference, ^[-\w\._\(\)]+$, at most 64 characters. */
#define NAME_MAX_LEN 64

static int name_char(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '(' || c == ')';
}

char *infra_default_deployment_name(struct mlstage_ctx *ctx)
{
    json_object *git = mlstage_git(ctx), *v = NULL;
    const char *task = mlstage_task_name(ctx);
    char suffix[96], *out;
    int dirty = 0;
    if (git && json_object_object_get_ex(git, "short_commit", &v) && json_object_get_string(v)) {
        json_object *d = NULL;
        dirty = json_object_object_get_ex(git, "dirty", &d) && json_object_get_boolean(d);
        snprintf(suffix, sizeof(suffix), "%s%s", json_object_get_string(v), dirty ? "-dirty" : "");
    } else {
        /* Outside a repository the run id keeps names apart; it sorts by time. */
        snprintf(suffix, sizeof(suffix), "%s", mlstage_run_id(ctx));
    }
    size_t keep = strlen(task ? task : ""), slen = strlen(suffix);
    if (keep + 1 + slen > NAME_MAX_LEN)
        keep = slen + 1 < NAME_MAX_LEN ? NAME_MAX_LEN - 1 - slen : 0;
    if (asprintf(&out, "%.*s%s%s", (int)keep, task ? task : "", keep ? "-" : "", suffix) < 0)
        return NULL;
    out[NAME_MAX_LEN < strlen(out) ? NAME_MAX_LEN : strlen(out)] = '\0';
    for (char *p = out; *p; p++)
        if (!name_char((unsigned char)*p))
            *p = '-';
    return out;
}

char *infra_request_path(const struct infra_job *job, int op)
{
    char *sub = job->subscription_id ? mlstage_url_encode(job->subscription_id) : NULL;
    char *rg = job->resource_group ? mlstage_url_encode(job->resource_group) : NULL;
    char *name = mlstage_url_encode(job->deployment_name);
    char *out = NULL;
    const char *tail = !op                           ? ""
                       : job->mode == INFRA_VALIDATE ? "/validate"
                       : job->mode == INFRA_WHAT_IF  ? "/whatIf"
                                                     : "";
    if (asprintf(&out,
                 "/subscriptions/%s/resourcegroups/%s/providers/Microsoft.Resources/deployments/"
                 "%s%s",
                 sub ? sub : "{subscriptionId}", rg ? rg : "{resourceGroupName}",
                 name ? name : job->deployment_name, tail) < 0)
        out = NULL;
    free(sub);
    free(rg);
    free(name);
    return out;
}

const char *infra_request_method(const struct infra_job *job)
{
    return job->mode == INFRA_DEPLOY ? "PUT" : "POST";
}

/* The request's parameters with every secure value replaced, whatever its length. */
static json_object *redacted_parameters(const struct infra_job *job)
{
    json_object *out = json_object_new_object();
    json_object_object_foreach(job->parameters, name, entry)
    {
        json_object *decl = infra_template_param(&job->tmpl, name, NULL);
        json_object *type = infra_get_ci(decl, "type");
        if (infra_type_is_secure(json_object_get_string(type)) && infra_get_ci(entry, "value")) {
            json_object *masked = json_object_new_object();
            json_object_object_add(masked, "value", json_object_new_string("***"));
            json_object_object_add(out, name, masked);
        } else {
            json_object_object_add(out, name, json_object_get(entry));
        }
    }
    return out;
}

json_object *infra_request_body(const struct infra_job *job, int redact)
{
    json_object *body = json_object_new_object(), *props = json_object_new_object();
    json_object_object_add(props, "mode", json_object_new_string(job->deployment_mode));
    json_object_object_add(props, "template", json_object_get(job->tmpl.doc));
    json_object_object_add(props, "parameters",
                           redact ? redacted_parameters(job) : json_object_get(job->parameters));
    if (job->mode == INFRA_WHAT_IF) {
        /* DeploymentWhatIf has no tags; the full payloads give the property-level deltas. */
        json_object *settings = json_object_new_object();
        json_object_object_add(settings, "resultFormat",
                               json_object_new_string("FullResourcePayloads"));
        json_object_object_add(props, "whatIfSettings", settings);
        json_object_object_add(body, "properties", props);
    } else {
        json_object_object_add(body, "properties", props);
        json_object_object_add(body, "tags", json_object_get(job->tags));
    }
    return body;
}

void infra_log_lines(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        int len = nl ? (int)(nl - text) : (int)strlen(text);
        mlstage_log(ctx, level, "%.*s", len, text);
        text = nl ? nl + 1 : NULL;
    }
}

int infra_request_print(struct mlstage_ctx *ctx, const struct infra_job *job,
                        enum mlstage_log_level level)
{
    char *path = infra_request_path(job, 1), *url = NULL, *file = NULL, *title = NULL;
    char *endpoint = mlstage_arm_endpoint(ctx);
    json_object *body = infra_request_body(job, 1), *doc = json_object_new_object();
    json_object *headers = json_object_new_object();
    int rc = 0;
    if (!path || !endpoint ||
        asprintf(&url, "%s%s?api-version=%s", endpoint, path, INFRA_DEPLOYMENTS_API) < 0 ||
        asprintf(&file, "%s/deployment-request.json", mlstage_outputs_dir(ctx)) < 0 ||
        asprintf(&title, "the %s request (secure values shown as ***)", job->mode_name) < 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    if (level <= MLSTAGE_LOG_INFO)
        mlstage_group_begin(ctx, title);
    mlstage_log(ctx, level, "%s %s", infra_request_method(job), url);
    mlstage_log(ctx, level, "Authorization: Bearer <token for %s/.default>", endpoint);
    mlstage_log(ctx, level, "Content-Type: application/json");
    mlstage_log(ctx, level, "%s", "");
    infra_log_lines(ctx, level,
                    json_object_to_json_string_ext(body, JSON_C_TO_STRING_PRETTY |
                                                             JSON_C_TO_STRING_SPACED |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE));
    if (level <= MLSTAGE_LOG_INFO)
        mlstage_group_end(ctx);

    json_object_object_add(headers, "Content-Type", json_object_new_string("application/json"));
    json_object_object_add(doc, "method", json_object_new_string(infra_request_method(job)));
    json_object_object_add(doc, "url", json_object_new_string(url));
    json_object_object_add(doc, "headers", headers);
    headers = NULL;
    json_object_object_add(doc, "body", body);
    body = NULL;
    if ((rc = mlstage_json_write(ctx, file, doc)) != 0 ||
        (rc = mlstage_artifact_add(ctx, file, NULL)) != 0)
        goto done;
    rc = mlstage_output_set(ctx, "request_file", file);
done:
    json_object_put(headers);
    json_object_put(body);
    json_object_put(doc);
    free(path);
    free(url);
    free(file);
    free(title);
    free(endpoint);
    return rc;
}

int infra_report_template(struct mlstage_ctx *ctx, const struct infra_job *job)
{
    json_object *list = infra_template_resources(&job->tmpl);
    size_t n = json_object_array_length(list), declared = 0;
    const char *shown = mlstage_input_string(ctx, "template", job->tmpl.path);
    char *title = NULL;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (!json_object_object_get_ex(json_object_array_get_idx(list, i), "existing", NULL))
            declared++;
    if (asprintf(&title, "resources declared by %s (%zu)", shown, declared) < 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    mlstage_group_begin(ctx, title);
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(list, i), *v;
        const char *cond =
            json_object_object_get_ex(r, "condition", &v) ? json_object_get_string(v) : NULL;
        mlstage_info(
            ctx, "%s@%s  name %s%s%s%s%s",
            json_object_get_string(json_object_object_get(r, "type")),
            json_object_get_string(json_object_object_get(r, "apiVersion")),
            json_object_get_string(json_object_object_get(r, "name")), cond ? "  if " : "",
            cond ? cond : "", json_object_object_get_ex(r, "copy", NULL) ? "  (copy loop)" : "",
            json_object_object_get_ex(r, "existing", NULL) ? "  (existing: read only)" : "");
    }
    mlstage_group_end(ctx);
    if (job->tmpl.compiled_path && (rc = mlstage_artifact_add(ctx, job->tmpl.compiled_path, NULL)))
        goto done;
    if ((rc = mlstage_output_set(ctx, "deployment_name", job->deployment_name)) ||
        (rc = mlstage_output_set(ctx, "mode", job->mode_name)) ||
        (rc = mlstage_output_set(ctx, "template_hash", job->tmpl.hash)) ||
        (rc = mlstage_output_setf(ctx, "resources", "%zu", declared)) ||
        (rc = mlstage_output_setf(ctx, "parameters", "%zu",
                                  (size_t)json_object_object_length(job->parameters))))
        goto done;
    if (job->tmpl.compiled_path)
        rc = mlstage_output_set(ctx, "template_file", job->tmpl.compiled_path);
done:
    free(title);
    json_object_put(list);
    return rc;
}
