/* arm.c — the Resource Manager client: bearer tokens, request ids, errors a person can act on,
 * and long-running operations. */
#include "azure_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mlstage/context.h>
#include <mlstage/error.h>

#include "http_internal.h"

/* Between polls when the service does not say (azure-core's ARM polling waits about as long). */
#define ARM_POLL_DEFAULT_S 5.0
#define ARM_LRO_DEADLINE_S 3600.0
/* Each request (all its retries) is bounded by the core's default unless the LRO has less left. */
#define ARM_REQUEST_DEADLINE_S 300.0
/* An error body's details can nest and repeat: enough of them to act on, no more. */
#define ARM_MAX_DETAILS 12
#define ARM_INFO_MAX    300

/* ---- URLs ------------------------------------------------------------------ */

/* scheme://host[:port] of an absolute URL: its length, or 0 when `url` is not absolute. */
static size_t url_origin_len(const char *url)
{
    const char *sep = strstr(url, "://");
    if (!sep || sep == url)
        return 0;
    for (const char *p = url; p < sep; p++)
        if (!isalpha((unsigned char)*p))
            return 0;
    return (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
}

/*
 * The token for the Resource Manager goes only to the Resource Manager: an
 * absolute URL (a nextLink, a Location) must be on the endpoint's host or a
 * regional subdomain of it, with the same scheme and port.
 */
static int url_on_endpoint(const char *url, const char *endpoint)
{
    size_t ul = url_origin_len(url), el = url_origin_len(endpoint);
    if (!ul || !el)
        return 0;
    const char *es = strstr(endpoint, "://"), *us = strstr(url, "://");
    size_t esl = (size_t)(es - endpoint), usl = (size_t)(us - url);
    if (esl != usl || strncasecmp(url, endpoint, esl) != 0)
        return 0;
    const char *eh = es + 3, *uh = us + 3;
    size_t ehl = el - esl - 3, uhl = ul - usl - 3;
    if (uhl == ehl)
        return strncasecmp(uh, eh, ehl) == 0;
    return uhl > ehl + 1 && uh[uhl - ehl - 1] == '.' && strncasecmp(uh + uhl - ehl, eh, ehl) == 0;
}

/*
 * The audience of Resource Manager tokens, "<audience>/.default": the
 * endpoint's own URL (public and sovereign clouds name their Resource Manager
 * audience after it), except for a loopback endpoint — a test server or an
 * emulator standing in for Azure — whose tokens are the public cloud's, which
 * is what Entra issues and what azure-mgmt's default credential_scopes ask
 * for. Asking Entra for "http://127.0.0.1:PORT/.default" fails (AADSTS500011).
 */
static void arm_scope(struct buf *scope, const char *endpoint)
{
    size_t origin = url_origin_len(endpoint);
    const char *host = origin ? strstr(endpoint, "://") + 3 : NULL;
    char name[256] = "";
    if (host) {
        size_t len = (size_t)(endpoint + origin - host);
        /* Without the port: "[::1]:8080" -> "[::1]", "127.0.0.1:8080" -> "127.0.0.1". */
        const char *end = host[0] == '[' ? memchr(host, ']', len) : memchr(host, ':', len);
        if (host[0] == '[' && end)
            end++;
        size_t n = end ? (size_t)(end - host) : len;
        if (n < sizeof(name))
            snprintf(name, sizeof(name), "%.*s", (int)n, host);
    }
    buf_printf(scope, "%s/.default",
               name[0] && http_host_is_loopback(name) ? AZURE_DEFAULT_ARM : endpoint);
}

/* The full URL of `path` with api-version, or NULL with the error set. The caller frees. */
static char *arm_url(struct mlstage_ctx *ctx, const char *endpoint, const char *path,
                     const char *api_version)
{
    struct buf b;
    buf_init(&b);
    if (!path || !*path) {
        mlstage_error_set(ctx, MLSTAGE_EINPUT, "Resource Manager request without a path");
        return NULL;
    }
    if (url_origin_len(path)) {
        if (!url_on_endpoint(path, endpoint)) {
            char *safe = http_redact_url(path);
            mlstage_error_set(ctx, MLSTAGE_EINPUT,
                              "%s is not on the Resource Manager endpoint %s: its token is not "
                              "sent anywhere else (set MLSTAGE_ARM_ENDPOINT for another cloud)",
                              safe, endpoint);
            free(safe);
            return NULL;
        }
        buf_puts(&b, path);
    } else {
        buf_printf(&b, "%s%s%s", endpoint, path[0] == '/' ? "" : "/", path);
    }
    if (api_version && *api_version && !strstr(b.data, "api-version=")) {
        char *enc = mlstage_url_encode(api_version);
        buf_printf(&b, "%capi-version=%s", strchr(b.data, '?') ? '&' : '?', enc);
        free(enc);
    }
    return buf_steal(&b);
}

/*
 * POST actions that only read, by the last segment of the path: listKeys,
 * listSecrets, getLogs, whatIf, validate, checkNameAvailability, ...
 */
static int post_reads(const char *url)
{
    size_t end = strcspn(url, "?#");
    size_t start = end;
    while (start > 0 && url[start - 1] != '/')
        start--;
    const char *seg = url + start;
    size_t n = end - start;
    static const char *const exact[] = {"whatIf", "validate", "checkNameAvailability",
                                        "exportTemplate", NULL};
    for (const char *const *e = exact; *e; e++)
        if (strlen(*e) == n && strncasecmp(seg, *e, n) == 0)
            return 1;
    /* listKeys, listSecrets, listCredentials; getLogs: ARM's read-only POST actions. */
    return (n > 4 && strncmp(seg, "list", 4) == 0 && isupper((unsigned char)seg[4])) ||
           (n > 3 && strncmp(seg, "get", 3) == 0 && isupper((unsigned char)seg[3]));
}

static int method_mutates(const char *method, const char *url)
{
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return 0;
    if (strcmp(method, "POST") == 0 && post_reads(url))
        return 0;
    return 1;
}

/* ---- error bodies ------------------------------------------------------------ */

static void indent(struct buf *b, int depth)
{
    buf_putc(b, '\n');
    for (int i = 0; i < depth; i++)
        buf_puts(b, "  ");
}

static void append_flat(struct buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    size_t take = n < max ? n : max;
    for (size_t i = 0; i < take; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_putc(b, c == '\r' || c == '\n' || c == '\t' ? ' ' : (char)c);
    }
    if (n > take)
        buf_puts(b, "...");
}

static void detail_line(struct buf *b, json_object *err, int *budget, int depth)
{
    const char *code = azure_json_str(err, "code");
    const char *message = azure_json_str(err, "message");
    const char *target = azure_json_str(err, "target");
    if (code)
        buf_puts(b, code);
    if (message) {
        buf_puts(b, code ? ": " : "");
        append_flat(b, message, 1000);
    }
    if (!code && !message)
        buf_puts(b, "(no code or message)");
    if (target)
        buf_printf(b, " (target: %s)", target);
    json_object *infos = NULL;
    if (json_object_object_get_ex(err, "additionalInfo", &infos) &&
        json_object_is_type(infos, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(infos); i++) {
            json_object *ai = json_object_array_get_idx(infos, i);
            json_object *info = NULL;
            indent(b, depth + 1);
            buf_printf(b, "additionalInfo %s: ", azure_json_str(ai, "type") ?: "(no type)");
            if (json_object_object_get_ex(ai, "info", &info) && info)
                append_flat(b, json_object_to_json_string_ext(info, MLS_JSON_PLAIN), ARM_INFO_MAX);
        }
    }
    json_object *details = NULL;
    if (json_object_object_get_ex(err, "details", &details) &&
        json_object_is_type(details, json_type_array)) {
        size_t n = json_object_array_length(details);
        for (size_t i = 0; i < n; i++) {
            if (*budget <= 0) {
                indent(b, depth + 1);
                buf_printf(b, "- ... (%zu more details)", n - i);
                break;
            }
            (*budget)--;
            indent(b, depth + 1);
            buf_puts(b, "- ");
            detail_line(b, json_object_array_get_idx(details, i), budget, depth + 1);
        }
    }
}

void arm_error_detail_append(struct buf *b, json_object *err, int depth)
{
    int budget = ARM_MAX_DETAILS;
    detail_line(b, err, &budget, depth);
}

/* The ErrorDetail inside a body: {"error": {...}} (ErrorResponse, CloudError) or the body itself.
 */
static json_object *error_of(json_object *body)
{
    json_object *e = NULL;
    if (!body || !json_object_is_type(body, json_type_object))
        return NULL;
    if (json_object_object_get_ex(body, "error", &e) && json_object_is_type(e, json_type_object))
        return e;
    if (azure_json_str(body, "code") || azure_json_str(body, "message"))
        return body;
    return NULL;
}

static const char *status_hint(long status, const char *code)
{
    if (status == 401)
        return "the token was refused: check that AZURE_TENANT_ID is the subscription's tenant "
               "and that the credential is still valid";
    if (status == 403)
        return "the identity lacks a role for this action on this scope: assign one (for "
               "example Contributor on the resource group) or use another identity";
    if (code && strcmp(code, "SubscriptionNotFound") == 0)
        return "check the subscription id and that the identity can see it";
    return NULL;
}

char *arm_error_describe(const char *method, const char *safe_url, long status, const char *body,
                         size_t body_len, const char *correlation_id, const char *request_id)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s %s: HTTP %ld", method, safe_url, status);
    json_object *doc = azure_json_parse(body ? body : "", body ? body_len : 0);
    json_object *err = error_of(doc);
    if (err) {
        buf_puts(&b, ": ");
        arm_error_detail_append(&b, err, 0);
    } else if (body_len) {
        buf_puts(&b, ": ");
        size_t n = body_len < 300 ? body_len : 300;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)body[i];
            buf_putc(&b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
        }
        if (body_len > n)
            buf_puts(&b, "...");
    }
    const char *hint = status_hint(status, azure_json_str(err, "code"));
    if (hint)
        buf_printf(&b, "\n  hint: %s", hint);
    if (correlation_id || request_id) {
        buf_puts(&b, "\n  ");
        if (correlation_id)
            buf_printf(&b, "x-ms-correlation-request-id: %s", correlation_id);
        if (request_id)
            buf_printf(&b, "%sx-ms-request-id: %s", correlation_id ? ", " : "", request_id);
    }
    json_object_put(doc);
    return buf_steal(&b);
}

/* ---- one request --------------------------------------------------------------- */

struct arm_req {
    const char *method;
    const char *url; /* full, with api-version */
    const char *body;
    size_t body_len;
    double deadline_s; /* 0: the core's default */
};

/* Whether a 401 says the token expired (ARM: ExpiredAuthenticationToken) and a new one may do. */
static int token_expired(const struct mlstage_http_response *resp)
{
    if (resp->status != 401)
        return 0;
    const char *www = mlstage_http_response_header(resp, "WWW-Authenticate");
    if (www && strstr(www, "expired"))
        return 1;
    json_object *doc = azure_json_parse(resp->body, resp->body_len);
    const char *code = azure_json_str(error_of(doc), "code");
    int expired = code && strcmp(code, "ExpiredAuthenticationToken") == 0;
    json_object_put(doc);
    return expired;
}

/*
 * Sends one request with a bearer token, a fresh x-ms-client-request-id
 * and JSON headers; retried once with a new token after an expired-token
 * 401. The core client's result: 0 or its code, with *resp.
 */
static int arm_send(struct mlstage_ctx *ctx, const char *endpoint, const struct arm_req *r,
                    struct mlstage_http_response **resp)
{
    int rc = 0;
    char *token = NULL;
    struct buf scope, auth, reqid;
    buf_init(&scope);
    buf_init(&auth);
    buf_init(&reqid);
    *resp = NULL;
    int mutating = method_mutates(r->method, r->url);
    /* A dry run only prints a mutating request: it needs no token, so plans work offline. */
    int planned = mlstage_dry_run(ctx) && mutating;
    arm_scope(&scope, endpoint);
    for (int round = 0; round < 2; round++) {
        if (!planned) {
            free(token);
            token = NULL;
            if ((rc = mlstage_azure_token(ctx, scope.data, &token, NULL)) != 0)
                goto done;
            buf_free(&auth);
            buf_printf(&auth, "Authorization: Bearer %s", token);
        }
        char id[37];
        azure_uuid(id);
        buf_free(&reqid);
        buf_printf(&reqid, "x-ms-client-request-id: %s", id);
        const char *headers[6];
        size_t h = 0;
        if (!planned)
            headers[h++] = auth.data;
        headers[h++] = reqid.data;
        headers[h++] = "Accept: application/json";
        if (r->body)
            headers[h++] = "Content-Type: application/json";
        headers[h] = NULL;
        struct mlstage_http_request req = {.method = r->method,
                                           .url = r->url,
                                           .headers = headers,
                                           .body = r->body,
                                           .body_len = r->body_len,
                                           .deadline_s = r->deadline_s,
                                           .mutating = mutating ? MLSTAGE_HTTP_MUTATING
                                                                : MLSTAGE_HTTP_READ_ONLY};
        mlstage_http_response_free(*resp);
        *resp = NULL;
        rc = mlstage_http_send(ctx, &req, resp);
        if (rc != 0 || !*resp || planned || round == 1 || !token_expired(*resp))
            break;
        mlstage_log(ctx, MLSTAGE_LOG_INFO,
                    "azure: the Resource Manager says the token expired; getting a new one");
        mlstage_azure_token_invalidate(ctx, scope.data);
    }
done:
    free(token);
    buf_free(&scope);
    buf_free(&auth);
    buf_free(&reqid);
    return rc;
}

/*
 * Turns the core's answer into the ARM result: 0 for 2xx, else the code
 * for the status with the ARM error in the error slot. *json (may be NULL)
 * gets the parsed body when there is one.
 */
static int arm_check(struct mlstage_ctx *ctx, const char *method, const char *url, int rc,
                     const struct mlstage_http_response *resp, json_object **json)
{
    if (json)
        *json = NULL;
    if (!resp)
        return rc ? rc : MLSTAGE_EINTERNAL;
    if (resp->planned)
        return 0;
    if (rc != 0 && resp->status == 0)
        return rc; /* no answer: the core's message says what happened */
    char *safe = http_redact_url(url);
    json_object *doc = azure_json_parse(resp->body, resp->body_len);
    if (resp->status >= 200 && resp->status < 300 && rc == 0) {
        if (!doc && resp->body_len > 0 && strspn(resp->body, " \t\r\n") < resp->body_len) {
            rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE,
                                   "%s %s: HTTP %ld with a body that is not JSON: %.200s", method,
                                   safe, resp->status, resp->body);
        } else if (json) {
            *json = doc;
            doc = NULL;
        }
        goto done;
    }
    char *msg =
        arm_error_describe(method, safe, resp->status, resp->body, resp->body_len,
                           mlstage_http_response_header(resp, "x-ms-correlation-request-id"),
                           mlstage_http_response_header(resp, "x-ms-request-id"));
    int code = rc == MLSTAGE_EREMOTE                        ? MLSTAGE_EREMOTE
               : resp->status == 401 || resp->status == 403 ? MLSTAGE_EAUTH
               : resp->status == 404                        ? MLSTAGE_ENOTFOUND
                                                            : MLSTAGE_EFAIL;
    if (code == MLSTAGE_EREMOTE)
        rc = mlstage_error_set(ctx, code, "%s\n  (gave up after %d attempts in %.1f s)", msg,
                               resp->attempts, resp->elapsed_s);
    else
        rc = mlstage_error_set(ctx, code, "%s", msg);
    free(msg);
    if (json) {
        *json = doc;
        doc = NULL;
    }
done:
    json_object_put(doc);
    free(safe);
    return rc;
}

static char *body_string(json_object *body, size_t *len)
{
    if (!body) {
        *len = 0;
        return NULL;
    }
    char *s = xstrdup(json_object_to_json_string_ext(body, MLS_JSON_PLAIN));
    *len = strlen(s);
    return s;
}

char *mlstage_arm_endpoint(const struct mlstage_ctx *ctx)
{
    (void)ctx;
    return arm_endpoint();
}

int mlstage_arm_request(struct mlstage_ctx *ctx, const char *method, const char *path,
                        const char *api_version, json_object *body, long *status,
                        json_object **response)
{
    if (status)
        *status = 0;
    if (response)
        *response = NULL;
    if (!ctx || !method)
        return MLSTAGE_EINPUT;
    char *endpoint = arm_endpoint();
    char *url = arm_url(ctx, endpoint, path, api_version);
    size_t len = 0;
    char *text = body_string(body, &len);
    struct mlstage_http_response *resp = NULL;
    int rc = MLSTAGE_EINPUT; /* arm_url said why */
    if (url) {
        struct arm_req r = {.method = method, .url = url, .body = text, .body_len = len};
        rc = arm_send(ctx, endpoint, &r, &resp);
        if (resp && status)
            *status = resp->status;
        if (resp || rc == 0)
            rc = arm_check(ctx, method, url, rc, resp, response);
    }
    mlstage_http_response_free(resp);
    free(text);
    free(url);
    free(endpoint);
    return rc;
}

/* ---- long-running operations ------------------------------------------------------ */

enum poll_mode {
    POLL_ASYNC,    /* Azure-AsyncOperation: a status document */
    POLL_LOCATION, /* Location: 202 until done, then the result */
    POLL_RESOURCE  /* the resource itself, until its provisioningState is terminal */
};

struct lro {
    struct mlstage_ctx *ctx;
    const char *endpoint;
    const char *method; /* of the request that started it */
    const char *url;    /* the resource or action URL */
    char *safe_url;
    enum poll_mode mode;
    char *poll_url;
    char *location; /* the first answer's Location, where a POST's result is */
    char *correlation;
    double start, deadline_s, wait_s;
    char state[64];
    json_object *last; /* the last poll's body */
};

static const char *provisioning_state(json_object *doc)
{
    json_object *props = NULL;
    const char *s = NULL;
    if (doc && json_object_object_get_ex(doc, "properties", &props))
        s = azure_json_str(props, "provisioningState");
    return s ? s : azure_json_str(doc, "provisioningState");
}

static int state_is(const char *s, const char *want)
{
    return s && strcasecmp(s, want) == 0;
}

static int state_terminal(const char *s)
{
    return !s || state_is(s, "Succeeded") || state_is(s, "Failed") || state_is(s, "Canceled") ||
           state_is(s, "Cancelled");
}

/* The wait before the next poll: the answer's Retry-After, else the default. */
static double next_wait(const struct mlstage_http_response *resp)
{
    double after = resp ? http_retry_after_s(resp->headers, resp->header_count, now_wall()) : -1;
    return after >= 0 ? after : ARM_POLL_DEFAULT_S;
}

static void lro_set_state(struct lro *l, const char *state)
{
    const char *s = state ? state : "(none)";
    if (strcmp(l->state, s) != 0) {
        if (l->state[0])
            mlstage_log(l->ctx, MLSTAGE_LOG_INFO, "%s %s: %s", l->method, l->safe_url, s);
        snprintf(l->state, sizeof(l->state), "%s", s);
    }
}

/* A Failed or Canceled operation: its error in the slot, MLSTAGE_EFAIL. */
static int lro_failed(struct lro *l, const char *state, json_object *err)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "%s %s: the operation ended %s after %.0f s", l->method, l->safe_url, state,
               now_mono() - l->start);
    if (err) {
        buf_puts(&b, ": ");
        arm_error_detail_append(&b, err, 0);
    }
    if (l->poll_url) {
        char *safe = http_redact_url(l->poll_url);
        buf_printf(&b, "\n  operation: %s", safe);
        free(safe);
    }
    if (l->correlation)
        buf_printf(&b, "\n  x-ms-correlation-request-id: %s", l->correlation);
    int rc = mlstage_error_set(l->ctx, MLSTAGE_EFAIL, "%s", b.data);
    buf_free(&b);
    return rc;
}

/* The error of a failed resource: properties.error, or error. Borrowed. */
static json_object *resource_error(json_object *doc)
{
    json_object *props = NULL, *e = NULL;
    if (doc && json_object_object_get_ex(doc, "properties", &props) &&
        json_object_object_get_ex(props, "error", &e) && json_object_is_type(e, json_type_object))
        return error_of(e) ? error_of(e) : e;
    return error_of(doc);
}

/* GETs `url` within what is left of the deadline: the core's result and the answer. */
static int lro_get(struct lro *l, const char *url, struct mlstage_http_response **resp)
{
    double left = l->deadline_s - (now_mono() - l->start);
    struct arm_req r = {.method = "GET",
                        .url = url,
                        .deadline_s = left < ARM_REQUEST_DEADLINE_S ? (left > 1 ? left : 1)
                                                                    : ARM_REQUEST_DEADLINE_S};
    return arm_send(l->ctx, l->endpoint, &r, resp);
}

/*
 * Polls until the operation is terminal: 0 when it succeeded (l->last is
 * then the final poll's body), otherwise the error.
 */
static int lro_poll(struct lro *l, int first_wait)
{
    int rc = 0;
    double wait = first_wait ? l->wait_s : 0;
    for (;;) {
        double elapsed = now_mono() - l->start;
        if (elapsed + wait > l->deadline_s) {
            char *safe = http_redact_url(l->poll_url);
            rc = mlstage_error_set(l->ctx, MLSTAGE_ETIMEOUT,
                                   "%s %s: still %s after %.0f s, and the %.0f s deadline would "
                                   "pass before the next poll; the operation goes on in Azure: %s",
                                   l->method, l->safe_url, l->state[0] ? l->state : "running",
                                   elapsed, l->deadline_s, safe);
            free(safe);
            return rc;
        }
        sleep_s(wait);
        struct mlstage_http_response *resp = NULL;
        int src = lro_get(l, l->poll_url, &resp);
        json_object *doc = NULL;
        json_object_put(l->last);
        l->last = NULL;
        if (l->mode == POLL_LOCATION && resp && resp->status >= 400 && src == 0) {
            /* Location answers the operation's failure with an error status and body. */
            doc = azure_json_parse(resp->body, resp->body_len);
            rc = lro_failed(l, "Failed", error_of(doc));
            json_object_put(doc);
            mlstage_http_response_free(resp);
            return rc;
        }
        if ((rc = arm_check(l->ctx, "GET", l->poll_url, src, resp, &doc)) != 0) {
            json_object_put(doc);
            mlstage_http_response_free(resp);
            return rc;
        }
        wait = next_wait(resp);
        long status = resp->status;
        mlstage_http_response_free(resp);
        l->last = doc;
        const char *state = NULL;
        switch (l->mode) {
        case POLL_ASYNC:
            state = azure_json_str(doc, "status");
            if (status == 202 || !state) {
                lro_set_state(l, state ? state : "InProgress");
                continue;
            }
            break;
        case POLL_LOCATION:
            if (status == 202) {
                lro_set_state(l, "InProgress");
                continue;
            }
            lro_set_state(l, "Succeeded");
            return 0;
        case POLL_RESOURCE: state = provisioning_state(doc); break;
        }
        mlstage_log(l->ctx, MLSTAGE_LOG_DEBUG, "%s %s: %s", l->method, l->safe_url,
                    state ? state : "no provisioningState");
        if (!state_terminal(state)) {
            lro_set_state(l, state);
            continue;
        }
        lro_set_state(l, state ? state : "Succeeded");
        if (!state || state_is(state, "Succeeded"))
            return 0;
        return lro_failed(l, state, l->mode == POLL_ASYNC ? error_of(doc) : resource_error(doc));
    }
}

static void lro_free(struct lro *l)
{
    free(l->safe_url);
    free(l->poll_url);
    free(l->location);
    free(l->correlation);
    json_object_put(l->last);
}

/* What a finished operation yields: see mlstage_arm_request_and_wait. */
static int lro_result(struct lro *l, json_object **result)
{
    int rc = 0;
    const char *final_url = NULL;
    if (strcmp(l->method, "DELETE") == 0)
        return 0;
    if (strcmp(l->method, "PUT") == 0 || strcmp(l->method, "PATCH") == 0) {
        if (l->mode != POLL_RESOURCE)
            final_url = l->url;
    } else if (l->mode == POLL_ASYNC && l->location) {
        final_url = l->location;
    }
    if (!final_url) {
        if (result) {
            *result = l->last;
            l->last = NULL;
        }
        return 0;
    }
    struct mlstage_http_response *resp = NULL;
    json_object *doc = NULL;
    rc = lro_get(l, final_url, &resp);
    rc = arm_check(l->ctx, "GET", final_url, rc, resp, &doc);
    mlstage_http_response_free(resp);
    if (rc == 0 && result)
        *result = doc;
    else
        json_object_put(doc);
    return rc;
}

int mlstage_arm_request_and_wait(struct mlstage_ctx *ctx, const char *method, const char *path,
                                 const char *api_version, json_object *body, double deadline_s,
                                 json_object **result)
{
    if (result)
        *result = NULL;
    if (!ctx || !method)
        return MLSTAGE_EINPUT;
    int rc = 0;
    struct lro l;
    memset(&l, 0, sizeof(l));
    char *endpoint = arm_endpoint();
    char *url = arm_url(ctx, endpoint, path, api_version);
    size_t len = 0;
    char *text = body_string(body, &len);
    struct mlstage_http_response *resp = NULL;
    json_object *first = NULL;
    if (!url) {
        rc = MLSTAGE_EINPUT;
        goto done;
    }
    l.ctx = ctx;
    l.endpoint = endpoint;
    l.method = method;
    l.url = url;
    l.safe_url = http_redact_url(url);
    l.start = now_mono();
    l.deadline_s = deadline_s > 0 ? deadline_s : ARM_LRO_DEADLINE_S;

    struct arm_req r = {.method = method, .url = url, .body = text, .body_len = len};
    rc = arm_send(ctx, endpoint, &r, &resp);
    if (resp && resp->planned)
        goto done; /* a dry run: nothing was started, so nothing to wait for */
    if ((rc = arm_check(ctx, method, url, rc, resp, &first)) != 0)
        goto done;

    const char *async = mlstage_http_response_header(resp, "Azure-AsyncOperation");
    const char *location = mlstage_http_response_header(resp, "Location");
    const char *corr = mlstage_http_response_header(resp, "x-ms-correlation-request-id");
    l.correlation = corr ? xstrdup(corr) : NULL;
    l.location = location ? xstrdup(location) : NULL;
    l.wait_s = next_wait(resp);
    const char *state = provisioning_state(first);
    int is_put = strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    if (async && resp->status != 204) {
        l.mode = POLL_ASYNC;
        l.poll_url = xstrdup(async);
    } else if (location && (resp->status == 201 || resp->status == 202)) {
        l.mode = POLL_LOCATION;
        l.poll_url = xstrdup(location);
    } else if (is_put && !state_terminal(state)) {
        l.mode = POLL_RESOURCE;
        l.poll_url = xstrdup(url);
    } else {
        /* Done at once (200, 201 or 204 with a terminal or no provisioningState). */
        if (state_is(state, "Failed") || state_is(state, "Canceled") ||
            state_is(state, "Cancelled")) {
            rc = lro_failed(&l, state, resource_error(first));
            goto done;
        }
        if (resp->status == 202)
            mlstage_log(ctx, MLSTAGE_LOG_WARN,
                        "%s %s: accepted (202) without Azure-AsyncOperation or Location: "
                        "nothing to follow, taking it as started",
                        method, l.safe_url);
        if (result && strcmp(method, "DELETE") != 0) {
            *result = first;
            first = NULL;
        }
        goto done;
    }
    /* The poll URL came from the service: it gets the token only if it is on the endpoint. */
    if (!url_on_endpoint(l.poll_url, endpoint)) {
        char *safe = http_redact_url(l.poll_url);
        rc = mlstage_error_set(ctx, MLSTAGE_EREMOTE,
                               "%s %s: the service gave an operation URL off the Resource "
                               "Manager endpoint (%s); not following it with the token",
                               method, l.safe_url, safe);
        free(safe);
        goto done;
    }
    snprintf(l.state, sizeof(l.state), "%s", state ? state : "Accepted");
    mlstage_log(ctx, MLSTAGE_LOG_INFO, "%s %s: %s; waiting (%s)", method, l.safe_url, l.state,
                l.mode == POLL_ASYNC      ? "Azure-AsyncOperation"
                : l.mode == POLL_LOCATION ? "Location"
                                          : "provisioningState");
    if ((rc = lro_poll(&l, 1)) != 0)
        goto done;
    rc = lro_result(&l, result);
done:
    lro_free(&l);
    json_object_put(first);
    mlstage_http_response_free(resp);
    free(text);
    free(url);
    free(endpoint);
    return rc;
}

int mlstage_arm_put_and_wait(struct mlstage_ctx *ctx, const char *path, const char *api_version,
                             json_object *body, double deadline_s, json_object **result)
{
    return mlstage_arm_request_and_wait(ctx, "PUT", path, api_version, body, deadline_s, result);
}

int mlstage_arm_wait(struct mlstage_ctx *ctx, const char *path, const char *api_version,
                     double deadline_s, json_object **result)
{
    if (result)
        *result = NULL;
    if (!ctx)
        return MLSTAGE_EINPUT;
    int rc = 0;
    struct lro l;
    memset(&l, 0, sizeof(l));
    char *endpoint = arm_endpoint();
    char *url = arm_url(ctx, endpoint, path, api_version);
    if (!url) {
        rc = MLSTAGE_EINPUT;
        goto done;
    }
    l.ctx = ctx;
    l.endpoint = endpoint;
    l.method = "GET";
    l.url = url;
    l.safe_url = http_redact_url(url);
    l.start = now_mono();
    l.deadline_s = deadline_s > 0 ? deadline_s : ARM_LRO_DEADLINE_S;
    l.mode = POLL_RESOURCE;
    l.poll_url = xstrdup(url);
    if ((rc = lro_poll(&l, 0)) != 0)
        goto done;
    if (result) {
        *result = l.last;
        l.last = NULL;
    }
done:
    lro_free(&l);
    free(url);
    free(endpoint);
    return rc;
}
