/* deploy_azureml.c — the azureml backend of deploy: a managed online endpoint with blue/green
 * deployments, smoke-tested through its scoring URI before any traffic moves. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aml.h"
#include "deploy.h"
#include "plugin_input.h"
#include "smoke.h"

/* Lines of the inference server's log shown when a deployment fails. */
#define LOG_TAIL_LINES 200

/* The slots, as static strings for deploy_result. */
static const char *slot_static(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "blue") == 0)
        return "blue";
    if (strcmp(name, "green") == 0)
        return "green";
    return NULL;
}

/* Blue/green: the slot that is not `active` (blue when nothing serves yet). */
static const char *idle_slot(const char *active)
{
    return active && strcmp(active, "blue") == 0 ? "green" : "blue";
}

/* ---- the endpoint as found ------------------------------------------------------ */

struct aml_deploy {
    struct aml_workspace ws;
    const char *endpoint_name;
    char *ep_path;
    json_object *endpoint; /* the endpoint as it is, or NULL before it exists */
    json_object *traffic;  /* its traffic before this stage: {deployment: percent} (owned) */
    char *location;        /* the workspace's region, once a new endpoint needed it */
    char *active;          /* the deployment with the traffic, or NULL */
};

static void aml_deploy_free(struct aml_deploy *d)
{
    aml_workspace_free(&d->ws);
    free(d->ep_path);
    json_object_put(d->endpoint);
    json_object_put(d->traffic);
    free(d->location);
    free(d->active);
}

/* Managed online endpoint names: 3-32 of letters, digits and '-', a letter first, no '-' last. */
static int check_endpoint_name(struct mlstage_ctx *ctx, const char *name)
{
    size_t n = strlen(name);
    int ok = n >= 3 && n <= 32 && isalpha((unsigned char)name[0]) && name[n - 1] != '-';
    for (const char *p = name; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '-';
    if (!ok)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.endpoint: \"%s\" cannot name an online endpoint: 3 to 32 "
                                 "letters, digits and '-', starting with a letter, not ending "
                                 "with '-'",
                                 name);
    return 0;
}

static int traffic_of(json_object *traffic, const char *name)
{
    json_object *v = NULL;
    return traffic && json_object_object_get_ex(traffic, name, &v) ? json_object_get_int(v) : 0;
}

/* The deployment with the largest share of the traffic, or NULL when none has any. */
static const char *most_traffic(json_object *traffic)
{
    const char *best = NULL;
    int most = 0;
    if (!traffic)
        return NULL;
    json_object_object_foreach(traffic, name, pct)
    {
        if (json_object_get_int(pct) > most) {
            most = json_object_get_int(pct);
            best = name;
        }
    }
    return best;
}

/*
 * Reads the endpoint (NULL when it does not exist yet), waiting first for
 * an operation someone else started on it, and notes its traffic.
 */
static int endpoint_read(struct mlstage_ctx *ctx, struct aml_deploy *d)
{
    json_object *doc = NULL;
    int rc = mlstage_arm_request(ctx, "GET", d->ep_path, AML_API_VERSION, NULL, NULL, &doc);
    if (rc == MLSTAGE_ENOTFOUND) {
        json_object_put(doc);
        d->traffic = json_object_new_object();
        return 0;
    }
    if (rc) {
        json_object_put(doc);
        return rc;
    }
    const char *state = aml_str(doc, "properties", "provisioningState", NULL);
    if (state && strcmp(state, "Succeeded") != 0 && strcmp(state, "Failed") != 0 &&
        strcmp(state, "Canceled") != 0) {
        mlstage_info(ctx, "endpoint %s is %s: waiting for that first", d->endpoint_name, state);
        json_object_put(doc);
        doc = NULL;
        if ((rc = mlstage_arm_wait(ctx, d->ep_path, AML_API_VERSION, aml_deadline(ctx), &doc)) !=
            0) {
            json_object_put(doc);
            return rc;
        }
    }
    d->endpoint = doc;
    json_object *traffic = aml_get(doc, "properties", "traffic", NULL);
    if (!traffic || json_object_deep_copy(traffic, &d->traffic, NULL) != 0 || !d->traffic)
        d->traffic = json_object_new_object();
    const char *active = most_traffic(d->traffic);
    d->active = active ? strdup(active) : NULL;
    return 0;
}

static int deploy_open(struct mlstage_ctx *ctx, const struct deploy_request *req,
                       struct aml_deploy *d)
{
    int rc;
    memset(d, 0, sizeof(*d));
    d->endpoint_name = req->endpoint;
    if ((rc = check_endpoint_name(ctx, req->endpoint)) != 0 ||
        (rc = aml_workspace_from_inputs(ctx, &d->ws)) != 0)
        return rc;
    if (req->smoke && smoke_count_scoring(req->smoke) == 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.sample_requests: %s has no request to %s, and an online "
                                 "endpoint answers only there: nothing would test the model",
                                 req->sample_requests, SMOKE_SCORING_PATH);
    if (!(d->ep_path = aml_path(&d->ws, "/onlineEndpoints/%s", req->endpoint)))
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    return endpoint_read(ctx, d);
}

/* A deployment's model (its ARM id's name and version), both new strings; 0 when it has one. */
static int deployment_model(struct mlstage_ctx *ctx, const struct aml_deploy *d, const char *slot,
                            json_object **deployment, char **model, char **version)
{
    char *path = aml_fmt("%s/deployments/%s", d->ep_path, slot);
    json_object *doc = NULL;
    *model = *version = NULL;
    int rc = path ? mlstage_arm_request(ctx, "GET", path, AML_API_VERSION, NULL, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    free(path);
    const char *id = rc == 0 ? aml_str(doc, "properties", "model", NULL) : NULL;
    const char *m = id ? strstr(id, "/models/") : NULL;
    const char *v = m ? strstr(m, "/versions/") : NULL;
    if (m && v) {
        *model = strndup(m + strlen("/models/"), (size_t)(v - m - strlen("/models/")));
        *version = strdup(v + strlen("/versions/"));
    }
    if (deployment)
        *deployment = doc;
    else
        json_object_put(doc);
    return rc;
}

/* A version's number for the outputs ("3" → 3); 0 for a version that is not a number. */
static int version_number(const char *v)
{
    if (!v || !*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 9)
        return 0;
    return atoi(v);
}

/* ---- requests ------------------------------------------------------------------------ */

/* The endpoint as a PUT body, from what it is, with `traffic` (borrowed) as its traffic. */
static json_object *endpoint_body(struct mlstage_ctx *ctx, json_object *ep, const char *location,
                                  json_object *traffic)
{
    json_object *body = json_object_new_object(), *props = json_object_new_object();
    json_object *tags = json_object_new_object(), *prov = mlstage_provenance_tags(ctx);
    json_object *have = aml_get(ep, "tags", NULL);
    if (have) {
        json_object_object_foreach(have, k, v) json_object_object_add(tags, k, json_object_get(v));
    }
    json_object_object_foreach(prov, pk, pv) json_object_object_add(tags, pk, json_object_get(pv));
    json_object_put(prov);
    const char *loc =
        ep && aml_str(ep, "location", NULL) ? aml_str(ep, "location", NULL) : location;
    json_object_object_add(body, "location", json_object_new_string(loc ? loc : ""));
    json_object_object_add(body, "tags", tags);
    const char *id_type = aml_str(ep, "identity", "type", NULL);
    json_object *identity = json_object_new_object();
    json_object_object_add(identity, "type",
                           json_object_new_string(id_type ? id_type : "SystemAssigned"));
    json_object *uai = aml_get(ep, "identity", "userAssignedIdentities", NULL);
    if (uai && json_object_object_length(uai) > 0) {
        json_object *ids = json_object_new_object();
        json_object_object_foreach(uai, uk, uv)
        {
            (void)uv;
            json_object_object_add(ids, uk, json_object_new_object());
        }
        json_object_object_add(identity, "userAssignedIdentities", ids);
    }
    json_object_object_add(body, "identity", identity);
    const char *kind = aml_str(ep, "kind", NULL);
    if (kind)
        json_object_object_add(body, "kind", json_object_new_string(kind));
    json_object *sku = aml_get(ep, "sku", NULL);
    if (sku)
        json_object_object_add(body, "sku", json_object_get(sku));
    json_object *old = aml_get(ep, "properties", NULL);
    const char *auth = aml_str(old, "authMode", NULL);
    json_object_object_add(props, "authMode", json_object_new_string(auth ? auth : "Key"));
    const char *desc = aml_str(old, "description", NULL);
    json_object_object_add(
        props, "description",
        json_object_new_string(desc ? desc : "served by mlstage: blue/green deployments"));
    static const char *const kept[] = {"compute", "publicNetworkAccess", NULL};
    for (const char *const *k = kept; *k; k++)
        if (aml_str(old, *k, NULL))
            json_object_object_add(props, *k, json_object_new_string(aml_str(old, *k, NULL)));
    /* Properties can be added but not removed; mirrored traffic is someone's choice: kept. */
    static const char *const maps[] = {"properties", "mirrorTraffic", NULL};
    for (const char *const *k = maps; *k; k++) {
        json_object *m = aml_get(old, *k, NULL);
        if (m && json_object_object_length(m) > 0)
            json_object_object_add(props, *k, json_object_get(m));
    }
    if (traffic)
        json_object_object_add(props, "traffic", json_object_get(traffic));
    json_object_object_add(body, "properties", props);
    return body;
}

/* A new endpoint with key authentication, in the workspace's region. */
static int endpoint_create(struct mlstage_ctx *ctx, struct aml_deploy *d)
{
    int rc = aml_workspace_location(ctx, &d->ws, &d->location);
    if (rc)
        return rc;
    const char *location = d->location;
    json_object *body = endpoint_body(ctx, NULL, location, NULL);
    json_object_object_add(json_object_object_get(body, "properties"), "authMode",
                           json_object_new_string("Key"));
    mlstage_info(ctx, "endpoint %s does not exist: creating it in %s", d->endpoint_name, location);
    json_object *result = NULL;
    rc = mlstage_arm_put_and_wait(ctx, d->ep_path, AML_API_VERSION, body, aml_deadline(ctx),
                                  &result);
    if (rc == 0 && result) {
        json_object_put(d->endpoint);
        d->endpoint = result;
    } else {
        json_object_put(result);
    }
    json_object_put(body);
    return rc;
}

/* PUTs the endpoint with `traffic` and waits; the endpoint as it then is replaces d->endpoint. */
static int traffic_put(struct mlstage_ctx *ctx, struct aml_deploy *d, json_object *traffic)
{
    json_object *body = endpoint_body(ctx, d->endpoint, d->location, traffic), *result = NULL;
    int rc = mlstage_arm_put_and_wait(ctx, d->ep_path, AML_API_VERSION, body, aml_deadline(ctx),
                                      &result);
    if (rc == 0 && result) {
        json_object_put(d->endpoint);
        d->endpoint = result;
    } else {
        json_object_put(result);
    }
    json_object_put(body);
    return rc;
}

static int same_traffic(json_object *a, json_object *b)
{
    json_object_object_foreach(a, ka, va)
    {
        if (json_object_get_int(va) != traffic_of(b, ka))
            return 0;
    }
    json_object_object_foreach(b, kb, vb)
    {
        if (json_object_get_int(vb) != traffic_of(a, kb))
            return 0;
    }
    return 1;
}

/*
 * After a failure once traffic may have moved: the endpoint's traffic back
 * to what it was, re-PUT only when it differs. The failure's message stays.
 */
static void traffic_restore(struct mlstage_ctx *ctx, struct aml_deploy *d)
{
    char msg[4096];
    int code = 0;
    json_object *now = NULL;
    snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
    if (mlstage_arm_request(ctx, "GET", d->ep_path, AML_API_VERSION, NULL, NULL, &now) == 0) {
        json_object *t = aml_get(now, "properties", "traffic", NULL);
        json_object *empty = json_object_new_object();
        if (same_traffic(t ? t : empty, d->traffic)) {
            mlstage_info(ctx, "endpoint %s: traffic is as it was", d->endpoint_name);
        } else {
            json_object_put(d->endpoint);
            d->endpoint = json_object_get(now);
            code = traffic_put(ctx, d, d->traffic);
            if (code == 0)
                mlstage_info(ctx, "endpoint %s: traffic put back as it was (%s)", d->endpoint_name,
                             json_object_to_json_string_ext(d->traffic, JSON_C_TO_STRING_PLAIN));
            else
                mlstage_error(ctx, "endpoint %s: could not put traffic back as it was: %s",
                              d->endpoint_name, mlstage_error_message(ctx));
        }
        json_object_put(empty);
    } else {
        mlstage_error(ctx, "endpoint %s: could not read its traffic back: %s", d->endpoint_name,
                      mlstage_error_message(ctx));
    }
    json_object_put(now);
    mlstage_error_set(ctx, MLSTAGE_EFAIL, "%s", msg);
}

/*
 * The failed deployment's own words: the inference server's container log
 * (getLogs, a read), shown masked in a group. Never replaces the error.
 */
static void show_logs(struct mlstage_ctx *ctx, const struct aml_deploy *d, const char *slot)
{
    char msg[4096];
    snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
    char *path = aml_fmt("%s/deployments/%s/getLogs", d->ep_path, slot);
    json_object *body = json_object_new_object(), *doc = NULL;
    json_object_object_add(body, "containerType", json_object_new_string("InferenceServer"));
    json_object_object_add(body, "tail", json_object_new_int(LOG_TAIL_LINES));
    int rc = path ? mlstage_arm_request(ctx, "POST", path, AML_API_VERSION, body, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    const char *content = rc == 0 ? aml_str(doc, "content", NULL) : NULL;
    char title[160];
    snprintf(title, sizeof(title),
             "container log of deployment %s (inference server, last %d lines)", slot,
             LOG_TAIL_LINES);
    if (content && *content) {
        mlstage_group_begin(ctx, title);
        const char *p = content;
        while (*p) {
            size_t n = strcspn(p, "\n");
            mlstage_log(ctx, MLSTAGE_LOG_INFO, "| %.*s", (int)n, p);
            p += n + (p[n] == '\n');
        }
        mlstage_group_end(ctx);
    } else if (rc == 0) {
        mlstage_info(ctx, "deployment %s: its container log is empty", slot);
    } else {
        mlstage_warn(ctx, "deployment %s: no container log: %s", slot, mlstage_error_message(ctx));
    }
    json_object_put(doc);
    json_object_put(body);
    free(path);
    mlstage_error_set(ctx, MLSTAGE_EFAIL, "%s", msg);
}

/* The endpoint's primary key, registered for masking the moment it arrives. */
static int endpoint_key(struct mlstage_ctx *ctx, const struct aml_deploy *d, char **key)
{
    char *path = aml_fmt("%s/listKeys", d->ep_path);
    json_object *doc = NULL;
    *key = NULL;
    int rc = path ? mlstage_arm_request(ctx, "POST", path, AML_API_VERSION, NULL, NULL, &doc)
                  : MLSTAGE_ENOMEM;
    free(path);
    const char *primary = rc == 0 ? aml_str(doc, "primaryKey", NULL) : NULL;
    const char *secondary = rc == 0 ? aml_str(doc, "secondaryKey", NULL) : NULL;
    if (primary && *primary)
        mlstage_secret_register(ctx, primary);
    if (secondary && *secondary)
        mlstage_secret_register(ctx, secondary);
    if (rc == 0 && !(primary && *primary))
        rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE, "endpoint %s: listKeys gave no primary key",
                               d->endpoint_name);
    else if (rc == 0)
        *key = strdup(primary);
    json_object_put(doc);
    return rc;
}

/*
 * The smoke file against deployment `slot` through the endpoint's scoring
 * URI: with the key, and azureml-model-deployment so that the slot answers
 * before it has any traffic.
 */
static int smoke_slot(struct mlstage_ctx *ctx, const struct deploy_request *req,
                      const struct aml_deploy *d, const char *slot, struct deploy_result *res)
{
    const char *uri = aml_str(d->endpoint, "properties", "scoringUri", NULL);
    char *key = NULL, *auth = NULL, *route = NULL;
    int rc, sent = 0;
    if (!req->smoke) {
        mlstage_warn(ctx, "no sample_requests: deployment %s gets traffic on provisioning alone",
                     slot);
        res->smoke = "skipped";
        return 0;
    }
    if (!uri)
        return mlstage_error_set(ctx, MLSTAGE_EREMOTE, "endpoint %s has no scoringUri",
                                 d->endpoint_name);
    if ((rc = endpoint_key(ctx, d, &key)) != 0)
        return rc;
    auth = aml_fmt("Authorization: Bearer %s", key);
    route = aml_fmt("azureml-model-deployment: %s", slot);
    if (!auth || !route) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    const char *headers[] = {auth, route, NULL};
    mlstage_info(ctx, "smoke-testing deployment %s at %s", slot, uri);
    rc = smoke_run_endpoint(ctx, req->smoke, uri, headers, &res->smoke_failed, &sent);
    res->smoke_total = sent;
    res->smoke = rc ? "false" : "true";
done:
    free(key);
    free(auth);
    free(route);
    return rc;
}

/* {to: 100} and every other deployment that had traffic at 0: a new object. */
static json_object *traffic_to(const struct aml_deploy *d, const char *to)
{
    json_object *t = json_object_new_object();
    json_object_object_foreach(d->traffic, name, pct)
    {
        (void)pct;
        if (strcmp(name, to) != 0)
            json_object_object_add(t, name, json_object_new_int(0));
    }
    json_object_object_add(t, to, json_object_new_int(100));
    return t;
}

/*
 * Moves all traffic to `slot` and points the alias at `version`; on any
 * failure the traffic goes back to what it was.
 */
static int switch_traffic(struct mlstage_ctx *ctx, const struct deploy_request *req,
                          struct aml_deploy *d, const char *slot, const char *version)
{
    json_object *t = traffic_to(d, slot);
    mlstage_info(ctx, "endpoint %s: all traffic to %s", d->endpoint_name, slot);
    int rc = traffic_put(ctx, d, t);
    json_object_put(t);
    if (rc == 0 && req->set_alias)
        rc = aml_alias_set(ctx, &d->ws, req->model, req->set_alias, version, NULL);
    if (rc && !mlstage_dry_run(ctx))
        traffic_restore(ctx, d);
    return rc;
}

static void set_url(const struct aml_deploy *d, struct deploy_result *res)
{
    const char *uri = aml_str(d->endpoint, "properties", "scoringUri", NULL);
    free(res->url);
    res->url = uri ? strdup(uri) : NULL;
}

/* ---- the table ---------------------------------------------------------------------- */

/* The deployment's PUT body (OnlineDeployment, Managed), for model `model_id`. */
static json_object *deployment_body(struct mlstage_ctx *ctx, const struct deploy_request *req,
                                    const char *location, const char *model_id, const char *version,
                                    const char *code_id)
{
    json_object *body = json_object_new_object(), *props = json_object_new_object();
    json_object *sku = json_object_new_object(), *tags = mlstage_provenance_tags(ctx);
    json_object_object_add(tags, "mlstage.model", json_object_new_string(req->model));
    json_object_object_add(tags, "mlstage.model_version", json_object_new_string(version));
    json_object_object_add(body, "location", json_object_new_string(location ? location : ""));
    json_object_object_add(body, "tags", tags);
    json_object_object_add(sku, "name", json_object_new_string("Default"));
    json_object_object_add(sku, "capacity",
                           json_object_new_int((int)mlstage_input_int(ctx, "instance_count", 1)));
    json_object_object_add(body, "sku", sku);
    json_object_object_add(props, "endpointComputeType", json_object_new_string("Managed"));
    json_object_object_add(props, "model", json_object_new_string(model_id));
    json_object_object_add(
        props, "instanceType",
        json_object_new_string(mlstage_input_string(ctx, "instance_type", "Standard_DS3_v2")));
    json_object *scale = json_object_new_object();
    json_object_object_add(scale, "scaleType", json_object_new_string("Default"));
    json_object_object_add(props, "scaleSettings", scale);
    char *desc = aml_fmt("model %s version %s, deployed by mlstage", req->model, version);
    json_object_object_add(props, "description", json_object_new_string(desc ? desc : ""));
    free(desc);
    const char *env = plugin_input_optional(ctx, "environment");
    if (env) {
        const char *colon =
            strncmp(env, "azureml:", 8) == 0 && env[8] != '/' ? strchr(env + 8, ':') : NULL;
        char *id = NULL;
        if (colon && colon > env + 8 && colon[1]) {
            /* The CLI's azureml:NAME:VERSION is an ARM id to the REST API. */
            const char *ws_end = strstr(model_id, "/models/");
            id = ws_end ? aml_fmt("%.*s/environments/%.*s/versions/%s", (int)(ws_end - model_id),
                                  model_id, (int)(colon - env - 8), env + 8, colon + 1)
                        : NULL;
        }
        json_object_object_add(props, "environmentId", json_object_new_string(id ? id : env));
        free(id);
    }
    if (code_id) {
        json_object *code = json_object_new_object();
        json_object_object_add(code, "codeId", json_object_new_string(code_id));
        json_object_object_add(
            code, "scoringScript",
            json_object_new_string(plugin_input_optional(ctx, "scoring_script")));
        json_object_object_add(props, "codeConfiguration", code);
    }
    json_object_object_add(body, "properties", props);
    return body;
}

/* Uploads inputs.code as a code asset when it is set; scoring_script goes with it. */
static int scoring_code(struct mlstage_ctx *ctx, const struct aml_deploy *d, char **code_id)
{
    const char *code = plugin_input_optional(ctx, "code"),
               *script = plugin_input_optional(ctx, "scoring_script");
    *code_id = NULL;
    if (!code && !script)
        return 0;
    if (!code || !script)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.code and inputs.scoring_script go together: the folder "
                                 "and the scoring script in it (%s is not set)",
                                 code ? "scoring_script" : "code");
    char *dir = code[0] == '/' ? strdup(code) : aml_fmt("%s/%s", mlstage_workspace_dir(ctx), code);
    char *script_path = dir ? aml_fmt("%s/%s", dir, script) : NULL;
    int rc = 0;
    FILE *f = script_path ? fopen(script_path, "r") : NULL;
    if (!f)
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "inputs.scoring_script: %s is not a file in the code folder %s",
                               script, code);
    else
        fclose(f);
    if (rc == 0)
        rc = aml_code_upload(ctx, &d->ws, dir,
                             mlstage_input_string(ctx, "datastore", "workspaceblobstore"), code_id);
    free(script_path);
    free(dir);
    return rc;
}

static int azureml_deploy(struct mlstage_ctx *ctx, const struct deploy_request *req,
                          struct deploy_result *res)
{
    struct aml_deploy d;
    char *version = NULL, *model_id = NULL, *code_id = NULL, *location = NULL;
    char *prev_model = NULL, *prev_version = NULL;
    json_object *body = NULL, *result = NULL;
    int rc;
    if ((rc = deploy_open(ctx, req, &d)) != 0)
        goto done;
    rc = aml_model_resolve(ctx, &d.ws, req->model, req->version, &version);
    if (rc == MLSTAGE_ENOTFOUND && mlstage_dry_run(ctx)) {
        /* In a pipeline's dry run an earlier stage would register it. */
        mlstage_plan(ctx,
                     "deploy model %s version %s to endpoint %s (not in the workspace yet: an "
                     "earlier stage registers it), smoke-test it, then set alias %s",
                     req->model, req->version, req->endpoint,
                     req->set_alias ? req->set_alias : "(none)");
        res->smoke = "skipped";
        rc = 0;
        goto done;
    }
    if (rc)
        goto done;
    model_id = aml_path(&d.ws, "/models/%s/versions/%s", req->model, version);
    const char *slot = idle_slot(d.active);
    res->slot = slot;
    res->version = version_number(version);
    if (d.active &&
        (rc = deployment_model(ctx, &d, d.active, NULL, &prev_model, &prev_version)) != 0 &&
        rc != MLSTAGE_ENOTFOUND)
        goto done;
    rc = 0;
    res->previous_version = version_number(prev_version);
    if (d.active)
        mlstage_info(ctx,
                     "endpoint %s: deploying model %s version %s into slot %s; %s serves %s "
                     "version %s",
                     req->endpoint, req->model, version, slot, d.active,
                     prev_model ? prev_model : "a model", prev_version ? prev_version : "?");
    else
        mlstage_info(ctx, "endpoint %s: first deployment, model %s version %s into slot %s",
                     req->endpoint, req->model, version, slot);
    if ((rc = scoring_code(ctx, &d, &code_id)) != 0)
        goto done;
    if (!d.endpoint && (rc = endpoint_create(ctx, &d)) != 0)
        goto done;
    if (aml_str(d.endpoint, "location", NULL))
        location = strdup(aml_str(d.endpoint, "location", NULL));
    else if (d.location)
        location = strdup(d.location);
    else if ((rc = aml_workspace_location(ctx, &d.ws, &location)) != 0)
        goto done;

    char *dpath = aml_fmt("%s/deployments/%s", d.ep_path, slot);
    body = deployment_body(ctx, req, location, model_id, version, code_id);
    mlstage_info(ctx, "deployment %s: provisioning model %s version %s on %s x%lld", slot,
                 req->model, version, mlstage_input_string(ctx, "instance_type", "?"),
                 (long long)mlstage_input_int(ctx, "instance_count", 1));
    rc = dpath ? mlstage_arm_put_and_wait(ctx, dpath, AML_API_VERSION, body, aml_deadline(ctx),
                                          &result)
               : MLSTAGE_ENOMEM;
    free(dpath);
    if (rc) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        mlstage_error_set(
            ctx, rc, "deployment %s of endpoint %s failed; the traffic never moved (%s): %s", slot,
            req->endpoint, d.active ? "the other slot serves as before" : "there was none", msg);
        if (rc == MLSTAGE_EFAIL)
            show_logs(ctx, &d, slot);
        goto done;
    }
    if (mlstage_dry_run(ctx)) {
        mlstage_plan(ctx,
                     "then smoke-test deployment %s through the scoring URI with the endpoint "
                     "key (listKeys) and header azureml-model-deployment: %s (%zu requests)",
                     slot, slot, req->smoke ? smoke_count_scoring(req->smoke) : (size_t)0);
        res->smoke = "skipped";
        rc = switch_traffic(ctx, req, &d, slot, version);
        goto done;
    }
    if ((rc = smoke_slot(ctx, req, &d, slot, res)) != 0) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        mlstage_error_set(ctx, MLSTAGE_EFAIL,
                          "%s\n  endpoint %s: traffic never moved to %s (%s); the failed "
                          "deployment stays at 0%% for a look",
                          msg, req->endpoint, slot,
                          d.active ? "the other slot serves as before" : "it had none");
        show_logs(ctx, &d, slot);
        rc = MLSTAGE_EFAIL;
        goto done;
    }
    if ((rc = switch_traffic(ctx, req, &d, slot, version)) != 0)
        goto done;
    set_url(&d, res);
    if (d.active)
        mlstage_info(ctx,
                     "endpoint %s: slot %s serves version %s; slot %s keeps version %s at 0%% "
                     "for a rollback",
                     req->endpoint, slot, version, d.active, prev_version ? prev_version : "?");
    else
        mlstage_info(ctx, "endpoint %s: slot %s serves version %s", req->endpoint, slot, version);
done:
    aml_deploy_free(&d);
    json_object_put(body);
    json_object_put(result);
    free(version);
    free(model_id);
    free(code_id);
    free(location);
    free(prev_model);
    free(prev_version);
    return rc;
}

static int azureml_rollback(struct mlstage_ctx *ctx, const struct deploy_request *req,
                            struct deploy_result *res)
{
    struct aml_deploy d;
    json_object *target = NULL;
    char *model = NULL, *version = NULL, *prev_model = NULL, *prev_version = NULL;
    int rc;
    if ((rc = deploy_open(ctx, req, &d)) != 0)
        goto done;
    if (!d.endpoint || !d.active) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL, "endpoint %s %s: nothing to roll back",
                               req->endpoint,
                               d.endpoint ? "sends no traffic anywhere" : "does not exist");
        goto done;
    }
    if (!slot_static(d.active)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "endpoint %s serves from deployment %s, not a blue/green slot: "
                               "roll it back by hand",
                               req->endpoint, d.active);
        goto done;
    }
    const char *slot = idle_slot(d.active);
    rc = deployment_model(ctx, &d, slot, &target, &model, &version);
    if (rc == MLSTAGE_ENOTFOUND) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "endpoint %s has no previous deployment to roll back to (slot %s "
                               "does not exist)",
                               req->endpoint, slot);
        goto done;
    }
    if (rc)
        goto done;
    const char *state = aml_str(target, "properties", "provisioningState", NULL);
    if (!state || strcmp(state, "Succeeded") != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "endpoint %s: slot %s is %s, not a deployment to roll back to",
                               req->endpoint, slot, state ? state : "in no known state");
        goto done;
    }
    if (!model || strcmp(model, req->model) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "endpoint %s: slot %s holds model %s, not %s",
                               req->endpoint, slot, model ? model : "(none)", req->model);
        goto done;
    }
    deployment_model(ctx, &d, d.active, NULL, &prev_model, &prev_version);
    res->slot = slot_static(slot);
    res->version = version_number(version);
    res->previous_version = version_number(prev_version);
    mlstage_info(ctx, "endpoint %s: rolling back from slot %s (version %s) to slot %s (version %s)",
                 req->endpoint, d.active, prev_version ? prev_version : "?", slot, version);
    if (mlstage_dry_run(ctx)) {
        mlstage_plan(ctx, "then smoke-test deployment %s before it gets the traffic", slot);
        res->smoke = "skipped";
        rc = switch_traffic(ctx, req, &d, slot, version);
        goto done;
    }
    if ((rc = smoke_slot(ctx, req, &d, slot, res)) != 0) {
        char msg[4096];
        snprintf(msg, sizeof(msg), "%s", mlstage_error_message(ctx));
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "%s\n  endpoint %s: not rolled back; slot %s serves as before", msg,
                               req->endpoint, d.active);
        show_logs(ctx, &d, slot);
        goto done;
    }
    if ((rc = switch_traffic(ctx, req, &d, slot, version)) != 0)
        goto done;
    set_url(&d, res);
done:
    aml_deploy_free(&d);
    json_object_put(target);
    free(model);
    free(version);
    free(prev_model);
    free(prev_version);
    return rc;
}

const struct deploy_backend deploy_azureml_backend = {
    .name = "azureml",
    .deploy = azureml_deploy,
    .rollback = azureml_rollback,
};
