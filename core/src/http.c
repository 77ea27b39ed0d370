/* http.c — the HTTP client on libcurl: retries with jitter, Retry-After, redacted log, plans. */
#include "http_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "curl_lazy.h"
#include <json-c/json.h>

#include <mlstage/context.h>
#include <mlstage/error.h>
#include <mlstage/version.h>

#include "ctx.h"
#include "log.h"
#include "mask.h"
#include "util.h"

#define HTTP_USER_AGENT "mlstage/" MLSTAGE_VERSION
/* Bytes of an error body quoted in the error slot: enough for an ARM error code and message. */
#define HTTP_SNIPPET_MAX 300

/* ---- process-wide libcurl state and per-thread handles ---------------- */

/*
 * One easy handle per thread, reused across calls, so that a thread that
 * uploads many blob blocks or polls an operation keeps its connection and
 * TLS session instead of paying a handshake per request. Handles are never
 * shared between threads, which is what makes mlstage_http_send
 * thread-safe without locks.
 */
struct http_handle {
    CURL *curl;
    pid_t pid; /* the process that created it */
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static pthread_key_t http_key;
static int http_init_rc = -1;

static void handle_release(struct http_handle *hh)
{
    if (!hh)
        return;
    /*
     * After a fork the handle's sockets and TLS state are the parent's too:
     * shutting them down from the child (TLS close_notify) would break the
     * parent's session, so a child abandons inherited handles instead.
     */
    if (hh->pid == getpid())
        curl_easy_cleanup(hh->curl);
    free(hh);
}

static void handle_destructor(void *p)
{
    handle_release(p);
}

/* The thread that calls exit() never runs its key destructors; release its handle here. */
static void http_atexit(void)
{
    struct http_handle *hh = pthread_getspecific(http_key);
    pthread_setspecific(http_key, NULL);
    handle_release(hh);
}

static void http_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return;
    if (pthread_key_create(&http_key, handle_destructor) != 0)
        return;
    atexit(http_atexit);
    http_init_rc = 0;
}

static int http_global_init(void)
{
    pthread_once(&http_once, http_init_once);
    return http_init_rc;
}

/* This thread's handle, reset to defaults (live connections kept), or NULL on OOM. */
static CURL *http_handle_get(void)
{
    struct http_handle *hh = pthread_getspecific(http_key);
    if (hh && hh->pid != getpid()) {
        handle_release(hh);
        hh = NULL;
        pthread_setspecific(http_key, NULL);
    }
    if (hh) {
        curl_easy_reset(hh->curl);
        return hh->curl;
    }
    CURL *curl = curl_easy_init();
    if (!curl)
        return NULL;
    hh = xcalloc(1, sizeof(*hh));
    hh->curl = curl;
    hh->pid = getpid();
    if (pthread_setspecific(http_key, hh) != 0) {
        handle_release(hh);
        return NULL;
    }
    return curl;
}

/* ---- backoff and Retry-After ------------------------------------------ */

/*
 * xorshift64* per thread: rand() is neither thread-safe nor good, and
 * jitter only needs to differ between threads and processes, not to be
 * unpredictable. Reseeded after a fork so that children of one agent do
 * not retry in lockstep.
 */
static _Thread_local uint64_t rng_state;
static _Thread_local pid_t rng_pid;

double http_rand01(void)
{
    pid_t pid = getpid();
    if (rng_state == 0 || rng_pid != pid) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
            seed =
                (uint64_t)(now_wall() * 1e9) ^ ((uint64_t)(uintptr_t)&seed << 16) ^ (uint64_t)pid;
        rng_state = seed ? seed : 0x9E3779B97F4A7C15ULL;
        rng_pid = pid;
    }
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

double http_backoff_s(int retry, double u)
{
    double ceiling = HTTP_BACKOFF_BASE_S;
    for (int i = 0; i < retry && ceiling < HTTP_BACKOFF_CAP_S; i++)
        ceiling *= 2;
    if (ceiling > HTTP_BACKOFF_CAP_S)
        ceiling = HTTP_BACKOFF_CAP_S;
    if (!(u >= 0))
        u = 0;
    if (u > 1)
        u = 1;
    return u * ceiling;
}

static const char *header_find(const struct mlstage_http_header *headers, size_t count,
                               const char *name)
{
    for (size_t i = 0; i < count; i++)
        if (strcasecmp(headers[i].name, name) == 0)
            return headers[i].value;
    return NULL;
}

/* A non-negative decimal number with optional surrounding blanks, or -1. */
static double parse_number(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s))
        return -1;
    const char *p = s;
    while (isdigit((unsigned char)*p) || *p == '.')
        p++;
    const char *e = p;
    while (*e == ' ' || *e == '\t')
        e++;
    if (*e)
        return -1;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end != p || !isfinite(v) || v < 0)
        return -1;
    return v;
}

double http_retry_after_s(const struct mlstage_http_header *headers, size_t count, double now_epoch)
{
    /* The millisecond forms are more precise; Azure SDKs prefer them in this order too. */
    static const char *const ms_names[] = {"retry-after-ms", "x-ms-retry-after-ms"};
    for (size_t i = 0; i < sizeof(ms_names) / sizeof(ms_names[0]); i++) {
        const char *v = header_find(headers, count, ms_names[i]);
        double ms = v ? parse_number(v) : -1;
        if (ms >= 0)
            return ms / 1000.0;
    }
    const char *v = header_find(headers, count, "retry-after");
    if (!v)
        return -1;
    double secs = parse_number(v);
    if (secs >= 0)
        return secs;
    /* An HTTP-date: IMF-fixdate, or the obsolete RFC 850 and asctime forms, all of which
     * curl_getdate reads. */
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return -1;
    double wait = (double)when - now_epoch;
    return wait > 0 ? wait : 0;
}

int http_status_retryable(long status)
{
    return status == 408 || status == 429 ||
           (status >= 500 && status <= 599 && status != 501 && status != 505);
}

/* Transport failures after which the same request may well succeed. */
static int curl_retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR: /* a reset during the handshake */
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return 1;
    default: return 0;
    }
}

/* ---- redaction ---------------------------------------------------------- */

static int query_param_secret(const char *name, size_t len)
{
    static const char *const names[] = {"sig", "code", "client_secret", "access_token", "token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(name, names[i], len) == 0)
            return 1;
    return 0;
}

/* Appends scheme://authority/path with any user-info password replaced. */
static void redact_head(struct buf *b, const char *url, size_t len)
{
    const char *sep = NULL;
    for (size_t i = 0; i + 2 < len; i++) {
        if (url[i] == ':' && url[i + 1] == '/' && url[i + 2] == '/') {
            sep = url + i + 3;
            break;
        }
    }
    if (!sep) {
        buf_append(b, url, len);
        return;
    }
    const char *end = url + len;
    const char *auth_end = sep;
    while (auth_end < end && *auth_end != '/')
        auth_end++;
    const char *at = NULL;
    for (const char *p = sep; p < auth_end; p++)
        if (*p == '@')
            at = p;
    const char *colon = at ? memchr(sep, ':', (size_t)(at - sep)) : NULL;
    if (!colon) {
        buf_append(b, url, len);
        return;
    }
    buf_append(b, url, (size_t)(colon + 1 - url));
    buf_puts(b, "REDACTED");
    buf_append(b, at, (size_t)(end - at));
}

char *http_redact_url(const char *url)
{
    struct buf b;
    buf_init(&b);
    if (!url)
        return xstrdup("");
    size_t len = strlen(url);
    const char *frag = strchr(url, '#');
    const char *end = frag ? frag : url + len;
    const char *q = memchr(url, '?', (size_t)(end - url));
    redact_head(&b, url, (size_t)((q ? q : end) - url));
    if (q) {
        buf_putc(&b, '?');
        const char *p = q + 1;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p));
            const char *pe = amp ? amp : end;
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            if (eq && query_param_secret(p, (size_t)(eq - p))) {
                buf_append(&b, p, (size_t)(eq + 1 - p));
                buf_puts(&b, "REDACTED");
            } else {
                buf_append(&b, p, (size_t)(pe - p));
            }
            if (amp)
                buf_putc(&b, '&');
            p = amp ? amp + 1 : end;
        }
    }
    if (frag)
        buf_puts(&b, frag);
    char *out = buf_steal(&b);
    return out ? out : xstrdup("");
}

int http_header_sensitive(const char *name, size_t name_len)
{
    static const char *const exact[] = {"authorization", "proxy-authorization", "cookie",
                                        "set-cookie", "api-key"};
    /* Beyond the named ones, any header that smells of a credential (x-ms-*key*,
     * Ocp-Apim-Subscription-Key, x-ms-copy-source-authorization, ...). */
    static const char *const parts[] = {"key",       "token",         "secret",
                                        "signature", "authorization", "password"};
    char lower[128];
    if (name_len >= sizeof(lower))
        return 1;
    for (size_t i = 0; i < name_len; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[name_len] = '\0';
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strcmp(lower, exact[i]) == 0)
            return 1;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (strstr(lower, parts[i]))
            return 1;
    return 0;
}

int http_host_is_loopback(const char *host)
{
    if (!host || !*host)
        return 0;
    if (strcasecmp(host, "localhost") == 0)
        return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    char tmp[64];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= sizeof(tmp))
        return 0;
    memcpy(tmp, host, n);
    tmp[n] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, tmp, &a6) != 1)
        return 0;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

int http_host_is_metadata(const char *host)
{
    return host && strcmp(host, HTTP_METADATA_HOST) == 0;
}

/* ---- response --------------------------------------------------------- */

const char *mlstage_http_response_header(const struct mlstage_http_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    return header_find(resp->headers, resp->header_count, name);
}

static void headers_free(struct mlstage_http_header *headers, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(headers[i].name);
        free(headers[i].value);
    }
    free(headers);
}

void mlstage_http_response_free(struct mlstage_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    headers_free(resp->headers, resp->header_count);
    free(resp);
}

char *mlstage_url_encode(const char *in)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!in)
        return NULL;
    size_t n = strlen(in);
    char *out = xcalloc(n * 3 + 1, 1);
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

/* ---- one transfer's results ------------------------------------------- */

struct xfer {
    struct buf body;
    struct mlstage_http_header *headers;
    size_t header_count;
    size_t header_cap;
    int too_big;
    int oom;
};

static void xfer_clear_headers(struct xfer *x)
{
    for (size_t i = 0; i < x->header_count; i++) {
        free(x->headers[i].name);
        free(x->headers[i].value);
    }
    x->header_count = 0;
}

static void xfer_reset(struct xfer *x)
{
    buf_free(&x->body);
    xfer_clear_headers(x);
    x->too_big = 0;
    x->oom = 0;
}

static void xfer_free(struct xfer *x)
{
    xfer_reset(x);
    free(x->headers);
    x->headers = NULL;
    x->header_cap = 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    if (x->body.len + n > HTTP_MAX_BODY) {
        x->too_big = 1;
        return 0;
    }
    if (buf_append(&x->body, data, n) != 0) {
        x->oom = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    size_t len = n;
    while (len && (data[len - 1] == '\r' || data[len - 1] == '\n'))
        len--;
    /* A status line starts a response (1xx ones included): only the last one's headers count. */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        xfer_clear_headers(x);
        return n;
    }
    if (len == 0)
        return n;
    if ((data[0] == ' ' || data[0] == '\t') && x->header_count) {
        /* Obsolete line folding: the line continues the previous value. */
        struct mlstage_http_header *h = &x->headers[x->header_count - 1];
        size_t skip = 0;
        while (skip < len && (data[skip] == ' ' || data[skip] == '\t'))
            skip++;
        size_t old = strlen(h->value);
        h->value = xrealloc(h->value, old + 1 + (len - skip) + 1);
        h->value[old] = ' ';
        memcpy(h->value + old + 1, data + skip, len - skip);
        h->value[old + 1 + len - skip] = '\0';
        return n;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon || colon == data)
        return n;
    const char *v = colon + 1;
    const char *end = data + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (x->header_count == x->header_cap) {
        x->header_cap = x->header_cap ? x->header_cap * 2 : 16;
        x->headers = xrealloc(x->headers, x->header_cap * sizeof(*x->headers));
    }
    struct mlstage_http_header *h = &x->headers[x->header_count++];
    h->name = strndup(data, (size_t)(colon - data));
    h->value = strndup(v, (size_t)(end - v));
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        x->header_count--;
        x->oom = 1;
        return 0;
    }
    return n;
}

/* ---- request preparation ---------------------------------------------- */

/* One call of mlstage_http_send: what every attempt shares. */
struct call {
    struct mlstage_ctx *ctx;
    const struct mlstage_http_request *req;
    const char *method;
    char *safe_url; /* redacted: the only form of the URL that reaches text */
    CURLU *url;     /* checked once and handed to curl, so check and use agree */
    struct curl_slist *headers;
    int loopback;
    double connect_timeout_s;
    struct buf log_headers; /* "\n    > Name: value" lines, at -v only */
    int max_attempts;
    double timeout_s;
    double deadline_s;
};

static int method_valid(const char *m)
{
    if (!m || !*m || strlen(m) > 16)
        return 0;
    for (const char *p = m; *p; p++)
        if (*p < 'A' || *p > 'Z')
            return 0;
    return 1;
}

static int request_mutating(const struct mlstage_http_request *req)
{
    if (req->mutating != 0)
        return req->mutating > 0;
    return strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
}

/* GET and HEAD without a body use curl's own modes; everything else sends a body, maybe empty. */
static int sends_body(const struct mlstage_http_request *req)
{
    if (strcmp(req->method, "HEAD") == 0)
        return 0;
    return strcmp(req->method, "GET") != 0 || req->body_len > 0;
}

static int url_check(struct call *c, const char *url)
{
    int rc = 0;
    char *scheme = NULL, *host = NULL;
    c->url = curl_url();
    if (!c->url) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_ENOMEM, "%s %s: out of memory", c->method,
                               c->safe_url);
        goto done;
    }
    CURLUcode uc = curl_url_set(c->url, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_EINPUT, "%s %s: malformed URL: %s", c->method,
                               c->safe_url, curl_url_strerror(uc));
        goto done;
    }
    if (curl_url_get(c->url, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(c->url, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_EINPUT, "%s %s: malformed URL: no scheme or host",
                               c->method, c->safe_url);
        goto done;
    }
    int is_https = strcasecmp(scheme, "https") == 0;
    int is_http = strcasecmp(scheme, "http") == 0;
    /* The instance metadata service is plain http by design, on a link-local address that no
     * router forwards: it is as local as loopback, and no proxy may carry it either. */
    c->loopback = http_host_is_loopback(host) || http_host_is_metadata(host);
    if (!is_https && !is_http) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_EINPUT,
                               "%s %s: unsupported scheme \"%s\": only https:// (or http:// to a "
                               "loopback host) is allowed",
                               c->method, c->safe_url, scheme);
        goto done;
    }
    if (is_http && !c->loopback) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_EINPUT,
                               "%s %s: plain http:// is only allowed to a loopback host "
                               "(127.0.0.0/8, ::1, localhost) or the instance metadata "
                               "service (169.254.169.254), not \"%s\"; use https://",
                               c->method, c->safe_url, host);
        goto done;
    }
done:
    curl_free(scheme);
    curl_free(host);
    return rc;
}

static int headers_build(struct call *c)
{
    int rc = 0;
    int has_type = 0, has_agent = 0;
    int debug = log_level() >= MLSTAGE_LOG_DEBUG;
    for (const char *const *h = c->req->headers; h && *h; h++) {
        const char *line = *h;
        const char *colon = strchr(line, ':');
        size_t name_len = colon ? (size_t)(colon - line) : strcspn(line, "\r\n");
        if (!colon || name_len == 0 || strpbrk(line, "\r\n")) {
            /* Only the name is quoted: the value may be a credential. */
            rc = mlstage_error_set(
                c->ctx, MLSTAGE_EINPUT, "%s %s: header \"%.*s\" is not one \"Name: value\" line",
                c->method, c->safe_url, (int)(name_len > 64 ? 64 : name_len), line);
            goto done;
        }
        if (name_len == 12 && strncasecmp(line, "Content-Type", 12) == 0)
            has_type = 1;
        if (name_len == 10 && strncasecmp(line, "User-Agent", 10) == 0)
            has_agent = 1;
        struct curl_slist *l = curl_slist_append(c->headers, line);
        if (!l) {
            rc = mlstage_error_set(c->ctx, MLSTAGE_ENOMEM, "%s %s: out of memory", c->method,
                                   c->safe_url);
            goto done;
        }
        c->headers = l;
        if (debug) {
            const char *v = colon + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            buf_printf(&c->log_headers, "\n    > %.*s: %s", (int)name_len, line,
                       http_header_sensitive(line, name_len) ? "REDACTED" : v);
        }
    }
    if (debug && !has_agent)
        buf_puts(&c->log_headers, "\n    > User-Agent: " HTTP_USER_AGENT);
    if (sends_body(c->req) && !has_type) {
        /* POSTFIELDS would otherwise label every body application/x-www-form-urlencoded. */
        struct curl_slist *l = curl_slist_append(c->headers, "Content-Type:");
        if (!l) {
            rc = mlstage_error_set(c->ctx, MLSTAGE_ENOMEM, "%s %s: out of memory", c->method,
                                   c->safe_url);
            goto done;
        }
        c->headers = l;
    }
done:
    return rc;
}

/* The body as pretty JSON when it is one whole JSON document, else NULL. */
static char *json_pretty(const void *data, size_t len)
{
    char *out = NULL;
    json_object *obj = NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok || len > INT32_MAX)
        goto done;
    obj = json_tokener_parse_ex(tok, data, (int)len);
    if (!obj || json_tokener_get_error(tok) != json_tokener_success)
        goto done;
    for (size_t i = json_tokener_get_parse_end(tok); i < len; i++)
        if (!isspace(((const unsigned char *)data)[i]))
            goto done;
    out = xstrdup(json_object_to_json_string_ext(obj, MLS_JSON_PRETTY));
done:
    json_object_put(obj);
    if (tok)
        json_tokener_free(tok);
    return out;
}

static struct mlstage_http_response *plan(struct call *c)
{
    const struct mlstage_http_request *req = c->req;
    char *pretty = NULL;
    if (req->body_len == 0)
        mlstage_plan(c->ctx, "%s %s", c->method, c->safe_url);
    else if (req->body_len <= HTTP_PLAN_BODY_MAX &&
             (pretty = json_pretty(req->body, req->body_len)))
        mlstage_plan(c->ctx, "%s %s\n%s", c->method, c->safe_url, pretty);
    else
        mlstage_plan(c->ctx, "%s %s <%zu bytes>", c->method, c->safe_url, req->body_len);
    free(pretty);

    struct buf line;
    buf_init(&line);
    buf_printf(&line, "%s %s planned (dry run): not sent%s", c->method, c->safe_url,
               c->log_headers.data ? c->log_headers.data : "");
    ctx_http_log(c->ctx, line.data);
    buf_free(&line);

    struct mlstage_http_response *resp = xcalloc(1, sizeof(*resp));
    resp->body = xstrdup("");
    resp->planned = 1;
    return resp;
}

/* ---- sending ------------------------------------------------------------ */

static long ms_of(double s)
{
    double ms = s * 1000.0;
    if (ms < 1)
        return 1;
    if (ms > (double)LONG_MAX / 2)
        return LONG_MAX / 2;
    return (long)ms;
}

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int handle_setup(struct call *c, CURL *curl, struct xfer *x, char *errbuf)
{
    const struct mlstage_http_request *req = c->req;
    CURLcode cc = CURLE_OK;
#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if ((cc = curl_easy_setopt(curl, opt, val)) != CURLE_OK)                                   \
            goto done;                                                                             \
    } while (0)
    SETOPT(CURLOPT_CURLU, c->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    SETOPT(CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    /* ARM answers long-running operations with Location headers that callers poll themselves. */
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    /* libcurl does not read these itself (the curl tool does); users expect them to work. */
    const char *ca = env_nonempty("SSL_CERT_FILE");
    if (!ca)
        ca = env_nonempty("CURL_CA_BUNDLE");
    if (ca)
        SETOPT(CURLOPT_CAINFO, ca);
    const char *ca_dir = env_nonempty("SSL_CERT_DIR");
    if (ca_dir)
        SETOPT(CURLOPT_CAPATH, ca_dir);
    /* Plain http is allowed only because it never leaves the machine: no proxy may carry it. */
    if (c->loopback)
        SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_USERAGENT, HTTP_USER_AGENT);
    SETOPT(CURLOPT_HTTPHEADER, c->headers);
    /* No CURLOPT_ACCEPT_ENCODING: bodies come back byte for byte as the server sent them, so a
     * blob stored with Content-Encoding: gzip still matches the digest it was uploaded with. */
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, x);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    if (strcmp(req->method, "HEAD") != 0)
        /* Refuses an oversized body from its Content-Length, before reading any of it; not for
         * HEAD, whose Content-Length describes a body that never comes. */
        SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTP_MAX_BODY);
    if (strcmp(req->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (!sends_body(req)) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else {
        /* An empty body still goes out as Content-Length: 0, which ARM requires on POST. */
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SETOPT(CURLOPT_POSTFIELDS, req->body_len ? req->body : "");
        if (strcmp(req->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, req->method);
    }
#undef SETOPT
done:
    if (cc != CURLE_OK)
        return mlstage_error_set(c->ctx, MLSTAGE_EINTERNAL, "%s %s: cannot configure libcurl: %s",
                                 c->method, c->safe_url, curl_easy_strerror(cc));
    return 0;
}

/* "HTTP 503: <start of the body>" for messages, with control characters flattened. */
static void describe_status(char *out, size_t cap, long status, const struct buf *body)
{
    char snippet[HTTP_SNIPPET_MAX + 4];
    size_t n = body->len < HTTP_SNIPPET_MAX ? body->len : HTTP_SNIPPET_MAX;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body->data[i];
        snippet[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    snippet[n] = '\0';
    if (body->len > n)
        strcat(snippet, "...");
    if (n)
        snprintf(out, cap, "HTTP %ld: %s", status, snippet);
    else
        snprintf(out, cap, "HTTP %ld", status);
}

static void describe_curl(char *out, size_t cap, CURLcode cc, const char *errbuf)
{
    snprintf(out, cap, "%s (curl error %d)", *errbuf ? errbuf : curl_easy_strerror(cc), (int)cc);
}

enum decision { DECIDE_DONE, DECIDE_RETRY, DECIDE_FAIL };

static int call_send(struct call *c, struct mlstage_http_response **out)
{
    int rc = 0;
    struct xfer x;
    memset(&x, 0, sizeof(x));
    buf_init(&x.body);
    struct buf line, msg;
    buf_init(&line);
    buf_init(&msg);
    char errbuf[CURL_ERROR_SIZE];
    char last[HTTP_SNIPPET_MAX + 256];
    long status = 0;
    CURLcode cc = CURLE_OK;
    int attempt = 0;
    double start = now_mono();
    struct mlstage_http_response *resp = xcalloc(1, sizeof(*resp));

    CURL *curl = http_handle_get();
    if (!curl) {
        rc = mlstage_error_set(c->ctx, MLSTAGE_ENOMEM, "%s %s: cannot create a libcurl handle",
                               c->method, c->safe_url);
        goto done;
    }
    errbuf[0] = '\0';
    if ((rc = handle_setup(c, curl, &x, errbuf)) != 0)
        goto done;

    for (attempt = 1;; attempt++) {
        double remaining = c->deadline_s - (now_mono() - start);
        double budget = c->timeout_s < remaining ? c->timeout_s : remaining;
        double connect = budget < c->connect_timeout_s ? budget : c->connect_timeout_s;
        xfer_reset(&x);
        errbuf[0] = '\0';
        status = 0;
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, ms_of(budget));
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, ms_of(connect));
        double t0 = now_mono();
        cc = curl_easy_perform(curl);
        double took = now_mono() - t0;
        if (cc == CURLE_OK || x.too_big || cc == CURLE_FILESIZE_EXCEEDED)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

        buf_free(&line);
        buf_free(&msg);
        buf_printf(&line, "%s %s attempt %d/%d -> ", c->method, c->safe_url, attempt,
                   c->max_attempts);
        if (cc == CURLE_OK)
            buf_printf(&line, "%ld", status);
        else
            buf_printf(&line, "error: %s (curl %d)", *errbuf ? errbuf : curl_easy_strerror(cc),
                       (int)cc);
        buf_printf(&line, " in %.3f s", took);
        const char *request_id = header_find(x.headers, x.header_count, "x-ms-request-id");
        if (cc == CURLE_OK && request_id)
            buf_printf(&line, " (x-ms-request-id %s)", request_id);

        enum decision decision;
        double wait = 0;
        const char *wait_source = "backoff";
        if (x.oom) {
            decision = DECIDE_FAIL;
            rc = MLSTAGE_ENOMEM;
            buf_printf(&msg, "%s %s: out of memory reading the response", c->method, c->safe_url);
        } else if (x.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
            decision = DECIDE_FAIL;
            rc = MLSTAGE_EREMOTE;
            buf_printf(&msg, "%s %s: HTTP %ld response body exceeds the %zu MiB limit", c->method,
                       c->safe_url, status, HTTP_MAX_BODY >> 20);
        } else if (cc == CURLE_OK && !http_status_retryable(status)) {
            decision = DECIDE_DONE;
        } else if (cc != CURLE_OK && !curl_retryable(cc)) {
            decision = DECIDE_FAIL;
            rc = MLSTAGE_EREMOTE;
            describe_curl(last, sizeof(last), cc, errbuf);
            buf_printf(&msg, "%s %s: %s; not retried", c->method, c->safe_url, last);
        } else {
            if (cc == CURLE_OK)
                describe_status(last, sizeof(last), status, &x.body);
            else
                describe_curl(last, sizeof(last), cc, errbuf);
            double elapsed = now_mono() - start;
            double after =
                cc == CURLE_OK ? http_retry_after_s(x.headers, x.header_count, now_wall()) : -1;
            if (after >= 0) {
                wait = after;
                wait_source = "Retry-After";
            } else {
                wait = http_backoff_s(attempt - 1, http_rand01());
            }
            remaining = c->deadline_s - elapsed;
            decision = DECIDE_FAIL;
            rc = MLSTAGE_EREMOTE;
            if (attempt >= c->max_attempts) {
                buf_printf(&msg, "%s %s: gave up after %d attempt%s in %.1f s; last: %s", c->method,
                           c->safe_url, attempt, attempt == 1 ? "" : "s", elapsed, last);
            } else if (wait >= remaining && after >= 0) {
                buf_printf(&msg,
                           "%s %s: the server asked to wait %.1f s (Retry-After) but only %.1f s "
                           "of the %.0f s deadline remain; gave up after %d attempt%s in %.1f "
                           "s; last: %s",
                           c->method, c->safe_url, wait, remaining > 0 ? remaining : 0,
                           c->deadline_s, attempt, attempt == 1 ? "" : "s", elapsed, last);
            } else if (wait >= remaining) {
                buf_printf(&msg,
                           "%s %s: the %.0f s deadline would pass during the next %.1f s "
                           "backoff; gave up after %d attempt%s in %.1f s; last: %s",
                           c->method, c->safe_url, c->deadline_s, wait, attempt,
                           attempt == 1 ? "" : "s", elapsed, last);
            } else {
                decision = DECIDE_RETRY;
                rc = 0;
            }
        }

        if (decision == DECIDE_DONE)
            buf_puts(&line, "; done");
        else if (decision == DECIDE_RETRY)
            buf_printf(&line, "; retry in %.3f s (%s)", wait, wait_source);
        else
            buf_puts(&line, "; giving up");
        if (c->log_headers.data)
            buf_puts(&line, c->log_headers.data);
        ctx_http_log(c->ctx, line.data ? line.data : "");

        if (decision == DECIDE_DONE)
            break;
        if (decision == DECIDE_FAIL) {
            mlstage_error_set(c->ctx, rc, "%s", msg.data ? msg.data : "HTTP request failed");
            break;
        }
        sleep_s(wait);
    }

    /* A transport failure leaves no answer: status 0, no headers, no partial body. */
    if (cc == CURLE_OK || x.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        resp->status = status;
        resp->headers = x.headers;
        resp->header_count = x.header_count;
        x.headers = NULL;
        x.header_count = x.header_cap = 0;
    }
    if (cc == CURLE_OK && !x.too_big) {
        resp->body_len = x.body.len;
        resp->body = buf_steal(&x.body);
    }
done:
    if (resp && !resp->body)
        resp->body = xstrdup("");
    if (resp) {
        resp->attempts = attempt;
        resp->elapsed_s = now_mono() - start;
    }
    /* Leave no pointer into this call's memory in the thread's handle. */
    if (curl)
        curl_easy_reset(curl);
    if (rc != 0 && rc != MLSTAGE_EREMOTE) {
        mlstage_http_response_free(resp);
        resp = NULL;
    }
    *out = resp;
    xfer_free(&x);
    buf_free(&line);
    buf_free(&msg);
    return rc;
}

/*
 * The URL as text may show it: registered secrets masked first, then the
 * query's credentials redacted. The other order would let a secret that is
 * the whole URL (a webhook) through, since redaction changes it before the
 * masker could recognise it.
 */
static char *safe_url_of(const char *url)
{
    if (!url)
        return http_redact_url(NULL);
    char *masked = mask_apply(url, strlen(url), NULL);
    char *safe = http_redact_url(masked);
    free(masked);
    return safe;
}

int mlstage_http_send(struct mlstage_ctx *ctx, const struct mlstage_http_request *req,
                      struct mlstage_http_response **out)
{
    return http_send_connect(ctx, req, 0, out);
}

int http_send_connect(struct mlstage_ctx *ctx, const struct mlstage_http_request *req,
                      double connect_timeout_s, struct mlstage_http_response **out)
{
    int rc = 0;
    struct call c;
    memset(&c, 0, sizeof(c));
    buf_init(&c.log_headers);
    struct mlstage_http_response *resp = NULL;

    if (!ctx || !req || !out)
        return MLSTAGE_EINPUT;
    *out = NULL;
    c.ctx = ctx;
    c.req = req;
    c.method = req->method ? req->method : "(null)";
    c.safe_url = safe_url_of(req->url);
    c.max_attempts = req->max_attempts > 0 ? req->max_attempts : HTTP_DEFAULT_ATTEMPTS;
    c.timeout_s = req->timeout_s > 0 ? req->timeout_s : HTTP_DEFAULT_TIMEOUT_S;
    c.deadline_s = req->deadline_s > 0 ? req->deadline_s : HTTP_DEFAULT_DEADLINE;
    c.connect_timeout_s = connect_timeout_s > 0 ? connect_timeout_s : HTTP_CONNECT_TIMEOUT_S;

    if (!method_valid(req->method)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "HTTP request to %s: \"%s\" is not an upper-case HTTP method",
                               c.safe_url, c.method);
        goto done;
    }
    if (!req->url || !*req->url) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s request without a URL", c.method);
        goto done;
    }
    if (req->body_len && !req->body) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s %s: body_len %zu with a NULL body",
                               c.method, c.safe_url, req->body_len);
        goto done;
    }
    if (http_global_init() != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINTERNAL, "%s %s: cannot initialise libcurl", c.method,
                               c.safe_url);
        goto done;
    }
    if ((rc = url_check(&c, req->url)) != 0)
        goto done;
    if ((rc = headers_build(&c)) != 0)
        goto done;
    if (mlstage_dry_run(ctx) && request_mutating(req)) {
        resp = plan(&c);
        goto done;
    }
    rc = call_send(&c, &resp);
done:
    curl_url_cleanup(c.url);
    curl_slist_free_all(c.headers);
    buf_free(&c.log_headers);
    free(c.safe_url);
    *out = resp;
    return rc;
}
