/* credential.c — the Azure credential chain of DefaultAzureCredential: its sources, the token
 * cache, and one error that says what was tried. */
#include "azure_internal.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mlstage/context.h>
#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/proc.h>

#include "http_internal.h"

/* Quoted from a service's answer in a message: enough for an AADSTS code and its sentence. */
#define REASON_MAX 400

struct token_entry {
    char *scope;
    char *token;
    int64_t expires_on;
};

struct azure_state {
    /* Held while a token is fetched, so concurrent callers wait for one fetch, not start many. */
    pthread_mutex_t lock;
    struct token_entry *tokens;
    size_t ntokens;
    int source; /* the source that worked, tried alone from then on (as azure-identity does); -1 */
    char *assertion; /* AZURE_FEDERATED_TOKEN_FILE's content */
    char *assertion_path;
    double assertion_read_at;
    int imds_answered; /* IMDS answered once: no more probing */
};

struct azure_state *azure_state_new(void)
{
    struct azure_state *st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->lock, NULL);
    st->source = -1;
    return st;
}

void azure_state_free(struct azure_state *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->ntokens; i++) {
        free(st->tokens[i].scope);
        free(st->tokens[i].token);
    }
    free(st->tokens);
    free(st->assertion);
    free(st->assertion_path);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static struct token_entry *cache_find(struct azure_state *st, const char *scope)
{
    for (size_t i = 0; i < st->ntokens; i++)
        if (strcmp(st->tokens[i].scope, scope) == 0)
            return &st->tokens[i];
    return NULL;
}

static void cache_put(struct azure_state *st, const char *scope, const char *token,
                      int64_t expires_on)
{
    struct token_entry *e = cache_find(st, scope);
    if (!e) {
        st->tokens = xrealloc(st->tokens, (st->ntokens + 1) * sizeof(*st->tokens));
        e = &st->tokens[st->ntokens++];
        e->scope = xstrdup(scope);
        e->token = NULL;
    }
    free(e->token);
    e->token = xstrdup(token);
    e->expires_on = expires_on;
}

void mlstage_azure_token_invalidate(struct mlstage_ctx *ctx, const char *scope)
{
    if (!ctx || !scope)
        return;
    struct azure_state *st = azure_state_of(ctx);
    pthread_mutex_lock(&st->lock);
    struct token_entry *e = cache_find(st, scope);
    if (e)
        e->expires_on = 0;
    pthread_mutex_unlock(&st->lock);
}

/* ---- one attempt of one source ------------------------------------------ */

enum outcome {
    SRC_OK,          /* a token */
    SRC_UNAVAILABLE, /* not set up here: the chain goes on */
    SRC_FAILED       /* set up, but it failed: the chain stops */
};

struct attempt {
    struct mlstage_ctx *ctx;
    struct azure_state *st;
    const char *scope;
    char *token;
    int64_t expires_on;
    struct buf why; /* for UNAVAILABLE and FAILED */
    int code;       /* for FAILED: MLSTAGE_EAUTH or MLSTAGE_EREMOTE */
};

static enum outcome unavailable(struct attempt *a, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
static enum outcome unavailable(struct attempt *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&a->why, fmt, ap);
    va_end(ap);
    return SRC_UNAVAILABLE;
}

static enum outcome failed(struct attempt *a, int code, const char *fmt, ...) MLSTAGE_PRINTF(3, 4);
static enum outcome failed(struct attempt *a, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&a->why, fmt, ap);
    va_end(ap);
    a->code = code;
    return SRC_FAILED;
}

/* Masks a credential from now on (values under 4 bytes are ignored by the masker). */
static void secret(struct attempt *a, const char *value)
{
    if (value)
        mlstage_secret_register(a->ctx, value);
}

/* Up to REASON_MAX bytes of text, one line, for quoting a service's answer. */
static void append_snippet(struct buf *b, const char *text, size_t len)
{
    size_t n = len < REASON_MAX ? len : REASON_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        buf_putc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
    }
    if (len > n)
        buf_puts(b, "...");
}

/* A JSON member that is a number or a string of digits, as an integer; 0 when neither. */
static int json_int_like(json_object *o, const char *key, int64_t *out)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        *out = json_object_get_int64(v);
        return 1;
    }
    if (!json_object_is_type(v, json_type_string))
        return 0;
    const char *s = json_object_get_string(v);
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return 0;
    *out = n;
    return 1;
}

/* App Service on Windows: "1/16/2020 5:24:12 AM +00:00". */
static int parse_app_service_date(const char *s, int64_t *out)
{
    int mon, day, year, hour, min, sec;
    char ampm[3] = "";
    if (sscanf(s, "%d/%d/%d %d:%d:%d %2s", &mon, &day, &year, &hour, &min, &sec, ampm) != 7)
        return 0;
    if (strcasecmp(ampm, "PM") == 0 && hour < 12)
        hour += 12;
    else if (strcasecmp(ampm, "AM") == 0 && hour == 12)
        hour = 0;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    *out = (int64_t)t;
    return 1;
}

/*
 * When a token answer expires: expires_on (seconds since the epoch, as a
 * number, a string, or App Service's date), else now + expires_in (number
 * or string: IMDS sends strings). 0 when it says neither.
 */
static int64_t token_expiry(json_object *o)
{
    int64_t v = 0;
    if (json_int_like(o, "expires_on", &v) && v > 0)
        return v;
    const char *date = azure_json_str(o, "expires_on");
    if (date && parse_app_service_date(date, &v))
        return v;
    if (json_int_like(o, "expires_in", &v) && v > 0)
        return (int64_t)azure_now() + v;
    return 0;
}

/* Takes access_token and its expiry from a token answer; 0, or -1 with a reason. */
static int token_take(struct attempt *a, json_object *o, const char *token_key, const char *where)
{
    const char *tok = azure_json_str(o, token_key);
    if (!tok || !*tok) {
        buf_printf(&a->why, "%s answered without %s", where, token_key);
        return -1;
    }
    secret(a, tok);
    int64_t exp = token_expiry(o);
    if (exp == 0) {
        buf_printf(&a->why, "%s answered without expires_in or expires_on", where);
        return -1;
    }
    a->token = xstrdup(tok);
    a->expires_on = exp;
    return 0;
}

/* The status and what the service said, for a message: "HTTP 400: invalid_client: AADSTS..." */
static void describe_answer(struct buf *b, const struct mlstage_http_response *resp)
{
    buf_printf(b, "HTTP %ld", resp->status);
    json_object *o = azure_json_parse(resp->body, resp->body_len);
    const char *err = azure_json_str(o, "error");
    const char *desc = azure_json_str(o, "error_description");
    if (!err && o) {
        /* IMDS and App Service put {"error": {...}} or {"message": ...} here. */
        json_object *e = NULL;
        if (json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object)) {
            err = azure_json_str(e, "code");
            desc = azure_json_str(e, "message");
        } else {
            desc = azure_json_str(o, "message");
        }
    }
    if (err) {
        buf_printf(b, ": %s", err);
        if (desc) {
            buf_puts(b, ": ");
            append_snippet(b, desc, strlen(desc));
        }
    } else if (desc) {
        buf_puts(b, ": ");
        append_snippet(b, desc, strlen(desc));
    } else if (resp->body_len) {
        buf_puts(b, ": ");
        append_snippet(b, resp->body, resp->body_len);
    }
    json_object_put(o);
}

/* ---- Entra ID token endpoint ---------------------------------------------- */

static char *authority_host(void)
{
    const char *h = azure_env("AZURE_AUTHORITY_HOST");
    struct buf b;
    buf_init(&b);
    if (!h)
        h = AZURE_DEFAULT_AUTHORITY;
    /* azure-identity accepts a bare host name and assumes https. */
    if (!strstr(h, "://"))
        buf_puts(&b, "https://");
    buf_puts(&b, h);
    while (b.len > 0 && b.data[b.len - 1] == '/')
        b.data[--b.len] = '\0';
    return buf_steal(&b);
}

/* Tenant ids are GUIDs or domain names: anything else would change the token URL's path. */
static int tenant_valid(const char *t)
{
    for (const char *p = t; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return 0;
    return *t != '\0';
}

static void form_add(struct buf *b, const char *key, const char *value)
{
    char *enc = mlstage_url_encode(value);
    buf_printf(b, "%s%s=%s", b->len ? "&" : "", key, enc);
    free(enc);
}

/*
 * POSTs a client-credentials grant to {authority}/{tenant}/oauth2/v2.0/token.
 * `secret_value` or `assertion` authenticates the application.
 */
static enum outcome entra_client_credentials(struct attempt *a, const char *tenant,
                                             const char *client_id, const char *secret_value,
                                             const char *assertion)
{
    enum outcome out = SRC_FAILED;
    struct buf form, url;
    buf_init(&form);
    buf_init(&url);
    char *host = authority_host();
    struct mlstage_http_response *resp = NULL;
    if (!tenant_valid(tenant)) {
        out = failed(a, MLSTAGE_EAUTH,
                     "AZURE_TENANT_ID \"%.80s\" is not a tenant id or domain name", tenant);
        goto done;
    }
    buf_printf(&url, "%s/%s/oauth2/v2.0/token", host, tenant);
    form_add(&form, "client_id", client_id);
    form_add(&form, "scope", a->scope);
    if (secret_value) {
        form_add(&form, "client_secret", secret_value);
    } else {
        form_add(&form, "client_assertion_type",
                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
        form_add(&form, "client_assertion", assertion);
    }
    form_add(&form, "grant_type", "client_credentials");
    const char *headers[] = {"Content-Type: application/x-www-form-urlencoded",
                             "Accept: application/json", NULL};
    struct mlstage_http_request req = {.method = "POST",
                                       .url = url.data,
                                       .headers = headers,
                                       .body = form.data,
                                       .body_len = form.len,
                                       /* Asking for a token changes nothing: a dry run needs it. */
                                       .mutating = MLSTAGE_HTTP_READ_ONLY};
    int rc = mlstage_http_send(a->ctx, &req, &resp);
    if (rc != 0 && !(rc == MLSTAGE_EREMOTE && resp && resp->status)) {
        out = failed(a, rc == MLSTAGE_EINPUT ? MLSTAGE_EAUTH : MLSTAGE_EREMOTE, "%.500s",
                     mlstage_error_message(a->ctx));
        goto done;
    }
    if (resp->status != 200) {
        buf_printf(&a->why, "%s/%s/oauth2/v2.0/token: ", host, tenant);
        describe_answer(&a->why, resp);
        a->code = rc == MLSTAGE_EREMOTE ? MLSTAGE_EREMOTE : MLSTAGE_EAUTH;
        goto done;
    }
    json_object *o = azure_json_parse(resp->body, resp->body_len);
    out = token_take(a, o, "access_token", "the Entra token endpoint") == 0 ? SRC_OK : SRC_FAILED;
    if (out == SRC_FAILED)
        a->code = MLSTAGE_EAUTH;
    json_object_put(o);
done:
    mlstage_http_response_free(resp);
    buf_free(&form);
    buf_free(&url);
    free(host);
    return out;
}

/* Names the variables of `names` that are not set, ", "-separated, into b; their count. */
static int missing_vars(struct buf *b, const char *const *names)
{
    int n = 0;
    for (const char *const *p = names; *p; p++) {
        if (azure_env(*p))
            continue;
        buf_printf(b, "%s%s", n ? ", " : "", *p);
        n++;
    }
    return n;
}

/* ---- 1. EnvironmentCredential --------------------------------------------- */

static enum outcome src_environment(struct attempt *a)
{
    static const char *const vars[] = {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET",
                                       NULL};
    struct buf miss;
    buf_init(&miss);
    int n = missing_vars(&miss, vars);
    if (n) {
        enum outcome out = unavailable(a, "%s not set", miss.data);
        buf_free(&miss);
        return out;
    }
    buf_free(&miss);
    const char *secret_value = azure_env("AZURE_CLIENT_SECRET");
    secret(a, secret_value);
    return entra_client_credentials(a, azure_env("AZURE_TENANT_ID"), azure_env("AZURE_CLIENT_ID"),
                                    secret_value, NULL);
}

/* ---- 2. WorkloadIdentityCredential ---------------------------------------- */

static enum outcome src_workload_identity(struct attempt *a)
{
    static const char *const vars[] = {"AZURE_FEDERATED_TOKEN_FILE", "AZURE_TENANT_ID",
                                       "AZURE_CLIENT_ID", NULL};
    struct buf miss;
    buf_init(&miss);
    int n = missing_vars(&miss, vars);
    if (n) {
        enum outcome out = unavailable(a, "%s not set", miss.data);
        buf_free(&miss);
        return out;
    }
    buf_free(&miss);
    struct azure_state *st = a->st;
    const char *path = azure_env("AZURE_FEDERATED_TOKEN_FILE");
    double now = azure_now();
    /* The file is rotated by its issuer (Kubernetes projects a new token hourly): re-read it. */
    if (!st->assertion || !st->assertion_path || strcmp(st->assertion_path, path) != 0 ||
        now - st->assertion_read_at > AZURE_ASSERTION_REREAD_S) {
        char *data = NULL;
        size_t len = 0;
        int rc = mlstage_file_read(path, 1 << 20, &data, &len);
        if (rc != 0)
            return failed(a, MLSTAGE_EAUTH, "cannot read AZURE_FEDERATED_TOKEN_FILE %s: %s", path,
                          rc == MLSTAGE_ENOTFOUND ? "no such file" : strerror(errno));
        while (len > 0 && isspace((unsigned char)data[len - 1]))
            data[--len] = '\0';
        if (len == 0) {
            free(data);
            return failed(a, MLSTAGE_EAUTH, "AZURE_FEDERATED_TOKEN_FILE %s is empty", path);
        }
        secret(a, data);
        free(st->assertion);
        free(st->assertion_path);
        st->assertion = data;
        st->assertion_path = xstrdup(path);
        st->assertion_read_at = now;
    }
    return entra_client_credentials(a, azure_env("AZURE_TENANT_ID"), azure_env("AZURE_CLIENT_ID"),
                                    NULL, st->assertion);
}

/* ---- 3. GitHub Actions OIDC as a federated assertion --------------------- */

static enum outcome src_github(struct attempt *a)
{
    static const char *const vars[] = {"ACTIONS_ID_TOKEN_REQUEST_URL",
                                       "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AZURE_TENANT_ID",
                                       "AZURE_CLIENT_ID", NULL};
    struct buf miss;
    buf_init(&miss);
    int n = missing_vars(&miss, vars);
    if (n) {
        enum outcome out =
            !azure_env("ACTIONS_ID_TOKEN_REQUEST_URL") && azure_env("GITHUB_ACTIONS")
                ? unavailable(a, "%s not set (the job needs `permissions: id-token: write`)",
                              miss.data)
                : unavailable(a, "%s not set", miss.data);
        buf_free(&miss);
        return out;
    }
    buf_free(&miss);
    enum outcome out = SRC_FAILED;
    const char *request_url = azure_env("ACTIONS_ID_TOKEN_REQUEST_URL");
    const char *request_token = azure_env("ACTIONS_ID_TOKEN_REQUEST_TOKEN");
    secret(a, request_token);
    struct buf url, auth;
    buf_init(&url);
    buf_init(&auth);
    char *aud = mlstage_url_encode(AZURE_GITHUB_AUDIENCE);
    /* The runner's URL already has a query (api-version), hence '&' as in actions/toolkit. */
    buf_printf(&url, "%s%caudience=%s", request_url, strchr(request_url, '?') ? '&' : '?', aud);
    buf_printf(&auth, "Authorization: Bearer %s", request_token);
    const char *headers[] = {auth.data, "Accept: application/json", NULL};
    struct mlstage_http_request req = {.method = "GET", .url = url.data, .headers = headers};
    struct mlstage_http_response *resp = NULL;
    json_object *o = NULL;
    int rc = mlstage_http_send(a->ctx, &req, &resp);
    if (rc != 0 && !(rc == MLSTAGE_EREMOTE && resp && resp->status)) {
        out = failed(a, rc == MLSTAGE_EINPUT ? MLSTAGE_EAUTH : MLSTAGE_EREMOTE,
                     "GitHub OIDC token request: %.500s", mlstage_error_message(a->ctx));
        goto done;
    }
    if (resp->status != 200) {
        buf_puts(&a->why, "GitHub OIDC token request: ");
        describe_answer(&a->why, resp);
        a->code = rc == MLSTAGE_EREMOTE ? MLSTAGE_EREMOTE : MLSTAGE_EAUTH;
        goto done;
    }
    o = azure_json_parse(resp->body, resp->body_len);
    const char *jwt = azure_json_str(o, "value");
    if (!jwt || !*jwt) {
        out = failed(a, MLSTAGE_EAUTH, "the GitHub OIDC answer has no \"value\" (ID token)");
        goto done;
    }
    secret(a, jwt);
    out = entra_client_credentials(a, azure_env("AZURE_TENANT_ID"), azure_env("AZURE_CLIENT_ID"),
                                   NULL, jwt);
done:
    json_object_put(o);
    mlstage_http_response_free(resp);
    free(aud);
    buf_free(&url);
    buf_free(&auth);
    return out;
}

/* ---- 4. ManagedIdentityCredential ----------------------------------------- */

/* "https://management.azure.com/.default" -> "https://management.azure.com": MSI wants resources.
 */
static char *scope_to_resource(const char *scope)
{
    static const char suffix[] = "/.default";
    size_t n = strlen(scope), s = sizeof(suffix) - 1;
    if (n > s && strcmp(scope + n - s, suffix) == 0)
        return strndup(scope, n - s);
    return xstrdup(scope);
}

/* GETs a managed identity endpoint's token; SRC_OK or a reason in a->why. */
static enum outcome msi_get(struct attempt *a, const char *url, const char *const *headers,
                            double connect_s, int probe, const char *where)
{
    enum outcome out = SRC_FAILED;
    json_object *o = NULL;
    struct mlstage_http_request req = {.method = "GET",
                                       .url = url,
                                       .headers = headers,
                                       .max_attempts = probe ? 1 : 0,
                                       .timeout_s = probe ? 10 : 0};
    struct mlstage_http_response *resp = NULL;
    int rc = http_send_connect(a->ctx, &req, connect_s, &resp);
    if (rc != 0 && !(rc == MLSTAGE_EREMOTE && resp && resp->status)) {
        if (probe)
            out = unavailable(a, "%s did not answer: %.500s", where, mlstage_error_message(a->ctx));
        else
            out = failed(a, MLSTAGE_EREMOTE, "%s: %.500s", where, mlstage_error_message(a->ctx));
        goto done;
    }
    /* The answer's JSON, parsed once: a probe needs to know there is some, a 200 holds the token.
     */
    o = azure_json_parse(resp->body, resp->body_len);
    if (probe) {
        /*
         * Whatever IMDS says, it says in JSON. Anything else (a proxy's 403
         * page, another service on that address) means there is no IMDS
         * here: unavailable, and the chain goes on, as DefaultAzureCredential
         * does.
         */
        if (!o) {
            out = unavailable(a, "%s answered HTTP %ld, but not in JSON as IMDS does: not IMDS",
                              where, resp->status);
            goto done;
        }
        a->st->imds_answered = 1;
        /* IMDS is there but busy or updating (404, 410, 429, 5xx): now ask with full retries. */
        if (resp->status == 404 || resp->status == 410 || http_status_retryable(resp->status)) {
            json_object_put(o);
            mlstage_http_response_free(resp);
            return msi_get(a, url, headers, 0, 0, where);
        }
    }
    if (resp->status == 200) {
        out = token_take(a, o, "access_token", where) == 0 ? SRC_OK : SRC_FAILED;
        if (out == SRC_FAILED)
            a->code = MLSTAGE_EAUTH;
        goto done;
    }
    buf_printf(&a->why, "%s: ", where);
    describe_answer(&a->why, resp);
    if (resp->status == 400) {
        /* IMDS: no identity is assigned to this machine, or not the one asked for. */
        buf_puts(&a->why, " (no managed identity assigned, or not the one AZURE_CLIENT_ID names)");
        out = SRC_UNAVAILABLE;
    } else {
        a->code = rc == MLSTAGE_EREMOTE ? MLSTAGE_EREMOTE : MLSTAGE_EAUTH;
    }
done:
    json_object_put(o);
    mlstage_http_response_free(resp);
    return out;
}

static enum outcome src_managed_identity(struct attempt *a)
{
    enum outcome out;
    char *resource = scope_to_resource(a->scope);
    char *res_enc = mlstage_url_encode(resource);
    const char *client_id = azure_env("AZURE_CLIENT_ID");
    char *cid_enc = client_id ? mlstage_url_encode(client_id) : NULL;
    struct buf url, hdr;
    buf_init(&url);
    buf_init(&hdr);
    const char *endpoint = azure_env("IDENTITY_ENDPOINT");
    const char *identity_header = azure_env("IDENTITY_HEADER");
    if (endpoint && identity_header) {
        /* App Service, Functions, Container Apps, Azure ML compute: a local token service. */
        secret(a, identity_header);
        buf_printf(&url, "%s%capi-version=2019-08-01&resource=%s", endpoint,
                   strchr(endpoint, '?') ? '&' : '?', res_enc);
        if (cid_enc)
            buf_printf(&url, "&client_id=%s", cid_enc);
        buf_printf(&hdr, "X-IDENTITY-HEADER: %s", identity_header);
        const char *headers[] = {hdr.data, NULL};
        out = msi_get(a, url.data, headers, 0, 0, "IDENTITY_ENDPOINT");
        goto done;
    }
    if (endpoint)
        buf_puts(&a->why, "IDENTITY_ENDPOINT is set without IDENTITY_HEADER; ");
    else
        buf_puts(&a->why, "IDENTITY_ENDPOINT not set; ");
    const char *imds = azure_env("IMDS_ENDPOINT");
    if (!imds)
        imds = AZURE_DEFAULT_IMDS;
    size_t base = strlen(imds);
    while (base > 0 && imds[base - 1] == '/')
        base--;
    buf_printf(&url, "%.*s%s?api-version=2018-02-01&resource=%s", (int)base, imds,
               strstr(imds, AZURE_IMDS_PATH) ? "" : AZURE_IMDS_PATH, res_enc);
    if (cid_enc)
        buf_printf(&url, "&client_id=%s", cid_enc);
    const char *headers[] = {"Metadata: true", NULL};
    char where[300];
    snprintf(where, sizeof(where), "IMDS at %.*s", (int)(base < 200 ? base : 200), imds);
    int probe = !a->st->imds_answered;
    out = msi_get(a, url.data, headers, probe ? AZURE_IMDS_PROBE_CONNECT_S : 0, probe, where);
done:
    buf_free(&url);
    buf_free(&hdr);
    free(resource);
    free(res_enc);
    free(cid_enc);
    return out;
}

/* ---- 5. AzureCliCredential ------------------------------------------------ */

/* The first executable `name` in PATH, or NULL; the caller frees. */
static char *path_search(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        struct buf cand;
        buf_init(&cand);
        buf_printf(&cand, "%.*s/%s", (int)n, n ? p : ".", name);
        struct stat sb;
        if (stat(cand.data, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand.data, X_OK) == 0)
            return buf_steal(&cand);
        buf_free(&cand);
        if (!colon)
            return NULL;
        p = colon + 1;
    }
}

static void collect_line(void *userdata, const char *line)
{
    struct buf *b = userdata;
    buf_puts(b, line);
    buf_putc(b, '\n');
}

/* az's "expiresOn": "2026-01-31 09:21:56.000000", local time (older az without expires_on). */
static int parse_cli_local_time(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    time_t t = mktime(&tm);
    if (t == (time_t)-1)
        return 0;
    *out = (int64_t)t;
    return 1;
}

/* The first line of az's complaint, which is what a person needs ("ERROR: ..."). */
static void append_cli_error(struct buf *b, const char *out)
{
    const char *p = out;
    while (*p) {
        size_t n = strcspn(p, "\n");
        if (n > 0 && (strncmp(p, "ERROR", 5) == 0 || !strstr(out, "ERROR"))) {
            append_snippet(b, p, n);
            return;
        }
        p += n + (p[n] == '\n');
    }
    buf_puts(b, "(no output)");
}

static enum outcome src_azure_cli(struct attempt *a)
{
    enum outcome out = SRC_FAILED;
    char *az = path_search("az");
    if (!az)
        return unavailable(a, "az is not on PATH");
    struct buf output;
    buf_init(&output);
    /* argv, not a shell: the scope cannot become a second command or an option (checked). */
    const char *argv[] = {az,     "account", "get-access-token", "--output",
                          "json", "--scope", a->scope,           NULL};
    struct mlstage_proc_opts opts = {.argv = argv,
                                     .timeout_s = AZURE_CLI_TIMEOUT_S,
                                     .quiet = 1, /* the token is in it */
                                     .tail_lines = 1,
                                     .on_line = collect_line,
                                     .userdata = &output};
    struct mlstage_proc_result res;
    int rc = mlstage_proc_run(a->ctx, &opts, &res);
    const char *text = output.data ? output.data : "";
    json_object *o = NULL;
    if (rc != 0) {
        out = failed(a, MLSTAGE_EAUTH, "cannot run %s: %.500s", az, mlstage_error_message(a->ctx));
        goto done;
    }
    if (res.timed_out) {
        out = failed(a, MLSTAGE_EAUTH, "az did not answer within %.0f s", AZURE_CLI_TIMEOUT_S);
        goto done;
    }
    if (res.exit_code != 0) {
        int login = strstr(text, "az login") != NULL;
        buf_printf(&a->why, "az account get-access-token exited %d: ", res.exit_code);
        append_cli_error(&a->why, text);
        if (login) {
            buf_puts(&a->why, " (run `az login`)");
            out = SRC_UNAVAILABLE;
        } else {
            a->code = MLSTAGE_EAUTH;
        }
        goto done;
    }
    /* Warnings share the stream (stdout and stderr are merged): the JSON is the braces' span. */
    const char *open = strchr(text, '{');
    const char *close = strrchr(text, '}');
    if (open && close && close > open)
        o = azure_json_parse(open, (size_t)(close - open + 1));
    const char *tok = azure_json_str(o, "accessToken");
    if (!tok || !*tok) {
        out = failed(a, MLSTAGE_EAUTH, "az account get-access-token printed no accessToken");
        goto done;
    }
    secret(a, tok);
    int64_t exp = 0;
    const char *local = azure_json_str(o, "expiresOn");
    if (!(json_int_like(o, "expires_on", &exp) && exp > 0) &&
        !(local && parse_cli_local_time(local, &exp))) {
        out = failed(a, MLSTAGE_EAUTH, "az account get-access-token printed no expiry");
        goto done;
    }
    a->token = xstrdup(tok);
    a->expires_on = exp;
    out = SRC_OK;
done:
    json_object_put(o);
    mlstage_proc_result_free(&res);
    buf_free(&output);
    free(az);
    return out;
}

/* ---- the chain ------------------------------------------------------------ */

struct source {
    const char *name;
    const char *what; /* the variables or tool it reads, for the all-failed message */
    int prod;         /* part of AZURE_TOKEN_CREDENTIALS=prod; the others are "dev" */
    enum outcome (*fn)(struct attempt *a);
};

static const struct source sources[] = {
    {"EnvironmentCredential", "AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET", 1,
     src_environment},
    {"WorkloadIdentityCredential", "AZURE_FEDERATED_TOKEN_FILE", 1, src_workload_identity},
    {"GitHubActionsCredential", "ACTIONS_ID_TOKEN_REQUEST_URL, ACTIONS_ID_TOKEN_REQUEST_TOKEN", 1,
     src_github},
    {"ManagedIdentityCredential", "IDENTITY_ENDPOINT, IDENTITY_HEADER, IMDS", 1,
     src_managed_identity},
    {"AzureCliCredential", "az account get-access-token", 0, src_azure_cli},
};
#define NSOURCES ((int)(sizeof(sources) / sizeof(sources[0])))

/* Whether AZURE_TOKEN_CREDENTIALS lets source i take part; -1 for a value it does not know. */
static int source_selected(int i, const char *filter)
{
    if (!filter)
        return 1;
    if (strcasecmp(filter, "prod") == 0)
        return sources[i].prod;
    if (strcasecmp(filter, "dev") == 0)
        return !sources[i].prod;
    for (int j = 0; j < NSOURCES; j++)
        if (strcasecmp(filter, sources[j].name) == 0)
            return i == j;
    return -1;
}

/* Scopes reach az's argv and URLs: letters, digits and "-._:/" only, as azure-identity checks. */
static int scope_valid(const char *scope)
{
    if (!scope || !*scope || scope[0] == '-')
        return 0;
    for (const char *p = scope; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-._:/", *p))
            return 0;
    return 1;
}

int mlstage_azure_token(struct mlstage_ctx *ctx, const char *scope, char **token,
                        int64_t *expires_on)
{
    if (!ctx || !token)
        return MLSTAGE_EINPUT;
    *token = NULL;
    if (!scope_valid(scope))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "\"%.100s\" is not a token scope (expected e.g. "
                                 "https://management.azure.com/.default)",
                                 scope ? scope : "(null)");
    int rc = 0;
    struct azure_state *st = azure_state_of(ctx);
    struct buf tried;
    buf_init(&tried);
    pthread_mutex_lock(&st->lock);

    struct token_entry *cached = cache_find(st, scope);
    if (cached && cached->expires_on - (int64_t)azure_now() > AZURE_TOKEN_MARGIN_S) {
        *token = xstrdup(cached->token);
        if (expires_on)
            *expires_on = cached->expires_on;
        goto done;
    }

    const char *filter = azure_env("AZURE_TOKEN_CREDENTIALS");
    if (filter && source_selected(0, filter) < 0) {
        rc =
            mlstage_error_set(ctx, MLSTAGE_EAUTH,
                              "AZURE_TOKEN_CREDENTIALS=%.60s is not \"dev\", \"prod\" or a "
                              "credential name (EnvironmentCredential, WorkloadIdentityCredential, "
                              "GitHubActionsCredential, ManagedIdentityCredential, "
                              "AzureCliCredential)",
                              filter);
        goto done;
    }
    int code = MLSTAGE_EAUTH, stopped = 0, tried_any = 0;
    for (int i = 0; i < NSOURCES; i++) {
        if (st->source >= 0 && i != st->source)
            continue;
        if (!source_selected(i, filter))
            continue;
        struct attempt a = {.ctx = ctx, .st = st, .scope = scope, .code = MLSTAGE_EAUTH};
        buf_init(&a.why);
        tried_any = 1;
        enum outcome out = sources[i].fn(&a);
        if (out == SRC_OK) {
            mlstage_secret_register(ctx, a.token);
            cache_put(st, scope, a.token, a.expires_on);
            st->source = i;
            mlstage_log(ctx, MLSTAGE_LOG_DEBUG,
                        "azure: token for %s from %s, valid for %" PRId64 " s", scope,
                        sources[i].name, a.expires_on - (int64_t)azure_now());
            *token = a.token;
            if (expires_on)
                *expires_on = a.expires_on;
            buf_free(&a.why);
            goto done;
        }
        buf_printf(&tried, "\n  - %s (%s): %s%s", sources[i].name, sources[i].what,
                   out == SRC_FAILED ? "failed: " : "unavailable: ",
                   a.why.data ? a.why.data : "no reason given");
        buf_free(&a.why);
        if (out == SRC_FAILED) {
            code = a.code;
            stopped = 1;
            break;
        }
    }
    if (!tried_any)
        buf_puts(&tried, "\n  (none: AZURE_TOKEN_CREDENTIALS excludes every source)");
    if (stopped)
        rc = mlstage_error_set(ctx, code,
                               "no Azure token for %s: a configured credential failed, so the "
                               "chain stopped there (as azure-identity's does):%s",
                               scope, tried.data);
    else
        rc = mlstage_error_set(
            ctx, code,
            "no Azure token for %s; tried, in order:%s\nSet up one of them: a service principal "
            "(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET), workload identity federation "
            "(AZURE_FEDERATED_TOKEN_FILE, or GitHub OIDC with `permissions: id-token: write`), a "
            "managed identity, or `az login`.",
            scope, tried.data ? tried.data : "");
done:
    pthread_mutex_unlock(&st->lock);
    buf_free(&tried);
    return rc;
}
