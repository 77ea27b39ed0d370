/* blob.c — block blob uploads to Azure Storage: SharedKey, SAS or bearer auth, one read pass that
 * hashes while a few threads send the blocks, then Put Block List. */
#include "azure_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <mlstage/context.h>
#include <mlstage/error.h>
#include <mlstage/fs.h>

#include "http_internal.h"

/* The newest version Azurite 3.22+ accepts, and new enough for OAuth (2017-11-09+). */
#define BLOB_API_VERSION   "2021-12-02"
#define BLOB_BLOCK_DEFAULT ((size_t)4 << 20)
#define BLOB_THREADS       4u
#define BLOB_THREADS_MAX   16u
#define BLOB_MAX_BLOCKS    50000u
/* Per attempt of one block: 4 MiB at a slow 100 kB/s still fits. */
#define BLOB_ATTEMPT_S  120.0
#define BLOB_DEADLINE_S 600.0
/* What mlstage_blob_read takes by default: it is for small files, not models. */
#define BLOB_READ_MAX ((size_t)16 << 20)

/* ---- encodings and signing ---------------------------------------------------- */

static char *b64_encode(const unsigned char *in, size_t len)
{
    char *out = xcalloc(4 * ((len + 2) / 3) + 1, 1);
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
    return out;
}

/* Decodes standard base64 (no whitespace); -1 when it is not. */
static int b64_decode(const char *in, unsigned char **out, size_t *out_len)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 != 0)
        return -1;
    unsigned char *buf = xcalloc(n / 4 * 3 + 1, 1);
    int got = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (got < 0) {
        free(buf);
        return -1;
    }
    /* EVP_DecodeBlock counts the bytes that padding stands for as zeros: take them off. */
    size_t pad = (in[n - 1] == '=') + (in[n - 2] == '=');
    *out = buf;
    *out_len = (size_t)got - pad;
    return 0;
}

static char *hmac_sha256_b64(const unsigned char *key, size_t key_len, const char *msg)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, strlen(msg), md,
              &md_len))
        return NULL;
    return b64_encode(md, md_len);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes n bytes of a query value into a new string. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = xcalloc(n + 1, 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval((unsigned char)s[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    return out;
}

struct kv {
    char *name; /* lower-case */
    char *value;
};

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kv *)a)->name, ((const struct kv *)b)->name);
}

/* The value of header `name` among "Name: value" lines, trimmed, or "" when absent. */
static const char *header_value(const char *const *headers, const char *name, char *tmp, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *const *h = headers; h && *h; h++) {
        if (strncasecmp(*h, name, nl) == 0 && (*h)[nl] == ':') {
            const char *v = *h + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            snprintf(tmp, cap, "%s", v);
            return tmp;
        }
    }
    return "";
}

char *blob_string_to_sign(const char *method, const char *url, const char *const *headers,
                          size_t content_length, const char *account)
{
    struct buf b;
    buf_init(&b);
    char tmp[1024];
    buf_printf(&b, "%s\n", method);
    static const char *const standard[] = {"Content-Encoding", "Content-Language", NULL};
    for (const char *const *s = standard; *s; s++)
        buf_printf(&b, "%s\n", header_value(headers, *s, tmp, sizeof(tmp)));
    /* Version 2015-02-21 and later sign an empty Content-Length, not "0", for no body. */
    if (content_length)
        buf_printf(&b, "%zu\n", content_length);
    else
        buf_puts(&b, "\n");
    static const char *const rest[] = {"Content-MD5",         "Content-Type", "Date",
                                       "If-Modified-Since",   "If-Match",     "If-None-Match",
                                       "If-Unmodified-Since", "Range",        NULL};
    for (const char *const *s = rest; *s; s++)
        buf_printf(&b, "%s\n", header_value(headers, *s, tmp, sizeof(tmp)));

    /* Canonicalized headers: every x-ms-*, lower-case, sorted, "name:value\n". */
    struct kv *xs = NULL;
    size_t nx = 0;
    for (const char *const *h = headers; h && *h; h++) {
        if (strncasecmp(*h, "x-ms-", 5) != 0)
            continue;
        const char *colon = strchr(*h, ':');
        if (!colon)
            continue;
        xs = xrealloc(xs, (nx + 1) * sizeof(*xs));
        xs[nx].name = strndup(*h, (size_t)(colon - *h));
        for (char *p = xs[nx].name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        xs[nx].value = xstrdup(v);
        nx++;
    }
    qsort(xs, nx, sizeof(*xs), kv_cmp);
    for (size_t i = 0; i < nx; i++) {
        buf_printf(&b, "%s:%s\n", xs[i].name, xs[i].value);
        free(xs[i].name);
        free(xs[i].value);
    }
    free(xs);

    /* Canonicalized resource: "/" account, the URL's path as sent, then sorted query. */
    const char *path = strstr(url, "://");
    path = path ? path + 3 + strcspn(path + 3, "/?") : url;
    size_t plen = strcspn(path, "?#");
    buf_printf(&b, "/%s%.*s", account, (int)plen, plen ? path : "/");
    if (path[plen] == '?') {
        const char *q = path + plen + 1;
        struct kv *qs = NULL;
        size_t nq = 0;
        while (*q && *q != '#') {
            size_t n = strcspn(q, "&#");
            const char *eq = memchr(q, '=', n);
            size_t kl = eq ? (size_t)(eq - q) : n;
            qs = xrealloc(qs, (nq + 1) * sizeof(*qs));
            qs[nq].name = pct_decode(q, kl);
            for (char *p = qs[nq].name; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            qs[nq].value = eq ? pct_decode(eq + 1, n - kl - 1) : xstrdup("");
            nq++;
            q += n;
            if (*q == '&')
                q++;
        }
        qsort(qs, nq, sizeof(*qs), kv_cmp);
        for (size_t i = 0; i < nq; i++) {
            buf_printf(&b, "\n%s:%s", qs[i].name, qs[i].value);
            free(qs[i].name);
            free(qs[i].value);
        }
        free(qs);
    }
    return buf_steal(&b);
}

/* ---- the target ------------------------------------------------------------------ */

/* A target checked and resolved once per upload; shared read-only by the threads. */
struct blob_conn {
    struct mlstage_ctx *ctx;
    enum mlstage_blob_auth auth;
    char *blob_url; /* endpoint/container/blob, encoded; no SAS */
    char *safe_url;
    const char *account;
    unsigned char *key; /* decoded account key */
    size_t key_len;
    char *sas; /* without '?' */
};

static void conn_free(struct blob_conn *c)
{
    free(c->blob_url);
    free(c->safe_url);
    if (c->key)
        memset(c->key, 0, c->key_len);
    free(c->key);
    free(c->sas);
}

/* Percent-encodes each '/'-separated segment of a blob name, keeping the slashes. */
static void append_blob_path(struct buf *b, const char *name)
{
    const char *p = name;
    for (;;) {
        size_t n = strcspn(p, "/");
        char *seg = strndup(p, n);
        char *enc = mlstage_url_encode(seg);
        buf_puts(b, enc);
        free(enc);
        free(seg);
        if (!p[n])
            break;
        buf_putc(b, '/');
        p += n + 1;
    }
}

/* Masks the SAS and its signature, in the forms they take in URLs and text. */
static void register_sas(struct mlstage_ctx *ctx, const char *sas)
{
    mlstage_secret_register(ctx, sas);
    const char *sig = strstr(sas, "sig=");
    while (sig && sig != sas && sig[-1] != '&')
        sig = strstr(sig + 1, "sig=");
    if (!sig)
        return;
    sig += 4;
    size_t n = strcspn(sig, "&");
    char *raw = strndup(sig, n);
    char *dec = pct_decode(sig, n);
    mlstage_secret_register(ctx, raw);
    mlstage_secret_register(ctx, dec);
    free(raw);
    free(dec);
}

static int conn_open(struct mlstage_ctx *ctx, const struct mlstage_blob_target *t,
                     const char *blob_name, struct blob_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->ctx = ctx;
    if (!t)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "blob upload without a target");
    const char *endpoint = azure_env("MLSTAGE_BLOB_ENDPOINT");
    if (!endpoint)
        endpoint = t->endpoint;
    if (!endpoint || !*endpoint)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "blob upload: no endpoint (the datastore's account endpoint, or "
                                 "MLSTAGE_BLOB_ENDPOINT)");
    if (!t->container || !*t->container || strchr(t->container, '/'))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "blob upload: \"%s\" is not a container name",
                                 t->container ? t->container : "");
    if (!blob_name || !*blob_name || blob_name[0] == '/')
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "blob upload: \"%s\" is not a blob name",
                                 blob_name ? blob_name : "");
    c->auth = t->auth;
    switch (t->auth) {
    case MLSTAGE_BLOB_SHARED_KEY:
        if (!t->account_name || !*t->account_name || !t->account_key || !*t->account_key)
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "blob upload: SharedKey needs the account name and key");
        mlstage_secret_register(ctx, t->account_key);
        if (b64_decode(t->account_key, &c->key, &c->key_len) != 0)
            return mlstage_error_set(ctx, MLSTAGE_EAUTH,
                                     "blob upload: the key of storage account %s is not base64",
                                     t->account_name);
        c->account = t->account_name;
        break;
    case MLSTAGE_BLOB_SAS:
        if (!t->sas || !*t->sas || !strstr(t->sas, "sig="))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "blob upload: the SAS token is missing or has no sig=");
        c->sas = xstrdup(t->sas[0] == '?' ? t->sas + 1 : t->sas);
        register_sas(ctx, c->sas);
        break;
    case MLSTAGE_BLOB_BEARER: break;
    default:
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "blob upload: unknown auth kind %d",
                                 (int)t->auth);
    }
    c->blob_url = mlstage_blob_url(endpoint, t->container, blob_name);
    c->safe_url = http_redact_url(c->blob_url);
    return 0;
}

char *mlstage_blob_url(const char *endpoint, const char *container, const char *blob_name)
{
    const char *override = azure_env("MLSTAGE_BLOB_ENDPOINT");
    if (override)
        endpoint = override;
    if (!endpoint || !*endpoint || !container || !*container)
        return NULL;
    struct buf u;
    buf_init(&u);
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/')
        el--;
    char *cont = mlstage_url_encode(container);
    buf_printf(&u, "%.*s/%s", (int)el, endpoint, cont);
    free(cont);
    if (blob_name && *blob_name) {
        buf_putc(&u, '/');
        append_blob_path(&u, blob_name);
    }
    return buf_steal(&u);
}

/* RFC 1123 date for x-ms-date. */
static void http_date(char out[64])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 64, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* The storage error in an answer: "403 AuthenticationFailed: Server failed to ..." */
static void describe_storage_error(struct buf *b, const struct mlstage_http_response *resp)
{
    buf_printf(b, "HTTP %ld", resp->status);
    const char *code = mlstage_http_response_header(resp, "x-ms-error-code");
    const char *body = resp->body ? resp->body : "";
    const char *c0 = strstr(body, "<Code>"), *c1 = c0 ? strstr(c0, "</Code>") : NULL;
    const char *m0 = strstr(body, "<Message>"), *m1 = m0 ? strstr(m0, "</Message>") : NULL;
    if (c0 && c1)
        buf_printf(b, " %.*s", (int)(c1 - c0 - 6), c0 + 6);
    else if (code)
        buf_printf(b, " %s", code);
    if (m0 && m1) {
        size_t n = (size_t)(m1 - m0 - 9);
        buf_puts(b, ": ");
        for (size_t i = 0; i < n && i < 300; i++) {
            unsigned char ch = (unsigned char)m0[9 + i];
            buf_putc(b, ch < 0x20 ? ' ' : (char)ch);
        }
    }
    const char *rid = mlstage_http_response_header(resp, "x-ms-request-id");
    if (rid)
        buf_printf(b, " (x-ms-request-id %s)", rid);
}

/*
 * One authenticated request: `method` (PUT or GET) with `query` (e.g.
 * "comp=block&blockid=...", or NULL), `extra` header lines and the body. 0
 * when the service answered `want`, else the code with the detail in `why`
 * (thread-safe: not the context's slot, which concurrent blocks would
 * overwrite). *out (may be NULL) receives the answer on success; the
 * caller frees it.
 */
static int blob_request(const struct blob_conn *c, const char *method, const char *query,
                        const char *const *extra, const void *body, size_t len, long want,
                        struct mlstage_http_response **out, struct buf *why)
{
    int rc = 0;
    int put = strcmp(method, "PUT") == 0;
    struct buf url, date, reqid, auth;
    buf_init(&url);
    buf_init(&date);
    buf_init(&reqid);
    buf_init(&auth);
    char *token = NULL, *sts = NULL, *sig = NULL;
    struct mlstage_http_response *resp = NULL;
    if (out)
        *out = NULL;
    buf_puts(&url, c->blob_url);
    if (query)
        buf_printf(&url, "?%s", query);
    if (c->sas)
        buf_printf(&url, "%c%s", query ? '&' : '?', c->sas);
    char d[64], id[37];
    http_date(d);
    azure_uuid(id);
    buf_printf(&date, "x-ms-date: %s", d);
    buf_printf(&reqid, "x-ms-client-request-id: %s", id);
    const char *headers[16];
    size_t n = 0;
    headers[n++] = "x-ms-version: " BLOB_API_VERSION;
    headers[n++] = date.data;
    headers[n++] = reqid.data;
    for (const char *const *e = extra; e && *e && n < 12; e++)
        headers[n++] = *e;
    headers[n] = NULL;
    if (c->auth == MLSTAGE_BLOB_SHARED_KEY) {
        sts = blob_string_to_sign(method, url.data, headers, len, c->account);
        sig = hmac_sha256_b64(c->key, c->key_len, sts);
        if (!sig) {
            rc = MLSTAGE_EINTERNAL;
            buf_puts(why, "cannot compute the SharedKey signature (HMAC-SHA256)");
            goto done;
        }
        buf_printf(&auth, "Authorization: SharedKey %s:%s", c->account, sig);
        headers[n++] = auth.data;
    } else if (c->auth == MLSTAGE_BLOB_BEARER) {
        if ((rc = mlstage_azure_token(c->ctx, MLSTAGE_AZURE_SCOPE_STORAGE, &token, NULL)) != 0) {
            buf_printf(why, "%.3000s", mlstage_error_message(c->ctx));
            goto done;
        }
        buf_printf(&auth, "Authorization: Bearer %s", token);
        headers[n++] = auth.data;
    }
    /* No 100-continue round trip per block: the body goes out with the headers. */
    if (put)
        headers[n++] = "Expect:";
    headers[n] = NULL;
    struct mlstage_http_request req = {.method = method,
                                       .url = url.data,
                                       .headers = headers,
                                       .body = body,
                                       .body_len = len,
                                       .timeout_s = BLOB_ATTEMPT_S,
                                       .deadline_s = BLOB_DEADLINE_S};
    rc = mlstage_http_send(c->ctx, &req, &resp);
    if (resp && resp->planned)
        goto done;
    if (rc != 0 && !(resp && resp->status)) {
        buf_printf(why, "%.3000s", mlstage_error_message(c->ctx));
        goto done;
    }
    if (resp->status == want && rc == 0) {
        if (out) {
            *out = resp;
            resp = NULL;
        }
        goto done;
    }
    char *safe = http_redact_url(url.data);
    buf_printf(why, "%s %s: ", method, safe);
    free(safe);
    describe_storage_error(why, resp);
    if (rc == MLSTAGE_EREMOTE)
        buf_printf(why, "; gave up after %d attempts", resp->attempts);
    else if (resp->status == 401 || resp->status == 403)
        rc = MLSTAGE_EAUTH;
    else if (resp->status == 404)
        rc = MLSTAGE_ENOTFOUND;
    else
        rc = MLSTAGE_EFAIL;
    if (resp->status == 404 && put)
        buf_puts(why, " (the container must exist: the datastore's container)");
done:
    mlstage_http_response_free(resp);
    if (sts)
        free(sts);
    free(sig);
    free(token);
    buf_free(&url);
    buf_free(&date);
    buf_free(&reqid);
    buf_free(&auth);
    return rc;
}

/* A PUT the service must answer 201 Created: a block, a block list, a whole blob. */
static int blob_put(const struct blob_conn *c, const char *query, const char *const *extra,
                    const void *body, size_t len, struct buf *why)
{
    return blob_request(c, "PUT", query, extra, body, len, 201, NULL, why);
}

/* ---- the upload ------------------------------------------------------------------ */

/*
 * "Content-MD5: ..." for a body: the service checks each block against it
 * (a block damaged in transit is refused, not committed), and it spares the
 * service its own CRC64 of the block, which Azurite computes slowly in
 * JavaScript. Nothing is appended where MD5 is unavailable (FIPS).
 */
static void content_md5(struct buf *out, const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_md5(), NULL) != 1)
        return;
    char *b = b64_encode(md, n);
    buf_printf(out, "Content-MD5: %s", b);
    free(b);
}

/* "blk-00000042", base64: the same length for every block, as the service requires. */
static void block_id(size_t index, char out[17])
{
    char raw[32]; /* 12 bytes used: indexes stay below 50,000 */
    snprintf(raw, sizeof(raw), "blk-%08u", (unsigned)(index % 100000000u));
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, 12);
}

struct job {
    size_t index;
    unsigned char *data;
    size_t len;
};

/* Reader → workers: filled blocks one way, empty buffers back; one lock, one condition. */
struct pipeline {
    const struct blob_conn *conn;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned char **spare; /* empty buffers */
    size_t nspare;
    struct job *queue; /* ring of filled blocks */
    size_t qcap, qhead, qlen;
    int eof;
    int failed; /* first failure: code and message */
    int fail_code;
    struct buf fail_msg;
};

static void pipeline_fail(struct pipeline *p, int code, const char *msg)
{
    pthread_mutex_lock(&p->mu);
    if (!p->failed) {
        p->failed = 1;
        p->fail_code = code;
        buf_puts(&p->fail_msg, msg);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void *worker(void *arg)
{
    struct pipeline *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->qlen == 0 && !p->eof && !p->failed)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->qlen == 0 || p->failed) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        struct job j = p->queue[p->qhead];
        p->qhead = (p->qhead + 1) % p->qcap;
        p->qlen--;
        pthread_mutex_unlock(&p->mu);

        char id[17];
        block_id(j.index, id);
        char *enc = mlstage_url_encode(id);
        struct buf query, why;
        buf_init(&query);
        buf_init(&why);
        buf_printf(&query, "comp=block&blockid=%s", enc);
        struct buf md5;
        buf_init(&md5);
        content_md5(&md5, j.data, j.len);
        const char *extra[] = {md5.data, NULL};
        int rc = blob_put(p->conn, query.data, md5.data ? extra : NULL, j.data, j.len, &why);
        buf_free(&md5);
        if (rc != 0) {
            struct buf msg;
            buf_init(&msg);
            buf_printf(&msg, "block %zu: %s", j.index, why.data ? why.data : "failed");
            pipeline_fail(p, rc, msg.data);
            buf_free(&msg);
        }
        free(enc);
        buf_free(&query);
        buf_free(&why);

        pthread_mutex_lock(&p->mu);
        p->spare[p->nspare++] = j.data;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

/* The metadata and type headers both the single Put Blob and Put Block List carry. */
static void commit_headers(struct buf *meta, struct buf *type, const char *hex,
                           const char *content_type)
{
    buf_printf(meta, "x-ms-meta-sha256: %s", hex);
    buf_printf(type, "x-ms-blob-content-type: %s",
               content_type && *content_type ? content_type : "application/octet-stream");
}

/* Sends the blocks of `fd` through the pipeline; *nblocks gets how many were read. */
static int upload_blocks(struct pipeline *p, int fd, size_t block_size, unsigned threads,
                         EVP_MD_CTX *md, uint64_t *total, size_t *nblocks)
{
    int rc = 0;
    size_t started = 0;
    pthread_t tids[BLOB_THREADS_MAX];
    /* Buffers are allocated as the reader needs them: a 6 MiB file uses two, not `threads`. */
    size_t allocated = 0;
    unsigned char **all = xcalloc(threads, sizeof(*all));
    for (unsigned i = 0; i < threads; i++) {
        if (pthread_create(&tids[i], NULL, worker, p) != 0) {
            pipeline_fail(p, MLSTAGE_EINTERNAL, "cannot start an upload thread");
            break;
        }
        started++;
    }
    size_t index = 0;
    for (;;) {
        unsigned char *buf = NULL;
        pthread_mutex_lock(&p->mu);
        while (p->nspare == 0 && allocated == threads && !p->failed)
            pthread_cond_wait(&p->cv, &p->mu);
        int stop = p->failed;
        if (!stop) {
            if (p->nspare > 0) {
                buf = p->spare[--p->nspare];
            } else {
                buf = malloc(block_size);
                if (buf)
                    all[allocated++] = buf;
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (stop)
            break;
        if (!buf) {
            pipeline_fail(p, MLSTAGE_ENOMEM, "out of memory for a block buffer");
            break;
        }
        ssize_t got = read_full(fd, buf, block_size);
        if (got < 0) {
            struct buf msg;
            buf_init(&msg);
            buf_printf(&msg, "cannot read the file: %s", strerror(errno));
            pipeline_fail(p, MLSTAGE_EIO, msg.data);
            buf_free(&msg);
            break;
        }
        if (got > 0 && index >= BLOB_MAX_BLOCKS) {
            pipeline_fail(p, MLSTAGE_EINPUT,
                          "the file grew past 50,000 blocks while it was being read");
            break;
        }
        pthread_mutex_lock(&p->mu);
        if (got == 0) {
            p->spare[p->nspare++] = buf;
        } else {
            EVP_DigestUpdate(md, buf, (size_t)got);
            *total += (uint64_t)got;
            p->queue[(p->qhead + p->qlen) % p->qcap] =
                (struct job){.index = index++, .data = buf, .len = (size_t)got};
            p->qlen++;
            pthread_cond_broadcast(&p->cv);
        }
        pthread_mutex_unlock(&p->mu);
        if ((size_t)got < block_size)
            break;
    }
    pthread_mutex_lock(&p->mu);
    p->eof = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    for (size_t i = 0; i < allocated; i++)
        free(all[i]);
    free(all);
    if (p->failed)
        rc = p->fail_code;
    *nblocks = index;
    return rc;
}

static int commit_block_list(const struct blob_conn *c, size_t nblocks, const char *hex,
                             const char *content_type, struct buf *why)
{
    struct buf xml, meta, type;
    buf_init(&xml);
    buf_init(&meta);
    buf_init(&type);
    buf_puts(&xml, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for (size_t i = 0; i < nblocks; i++) {
        char id[17];
        block_id(i, id);
        buf_printf(&xml, "<Latest>%s</Latest>", id);
    }
    buf_puts(&xml, "</BlockList>");
    commit_headers(&meta, &type, hex, content_type);
    const char *extra[] = {meta.data, type.data, NULL};
    int rc = blob_put(c, "comp=blocklist", extra, xml.data, xml.len, why);
    buf_free(&xml);
    buf_free(&meta);
    buf_free(&type);
    return rc;
}

static int upload_single(const struct blob_conn *c, int fd, uint64_t size, const char *content_type,
                         char hex[MLSTAGE_SHA256_HEX_LEN + 1], struct buf *why)
{
    unsigned char *data = malloc(size ? (size_t)size : 1);
    if (!data) {
        buf_puts(why, "out of memory");
        return MLSTAGE_ENOMEM;
    }
    ssize_t got = read_full(fd, data, (size_t)size);
    if (got < 0 || (uint64_t)got != size) {
        buf_printf(why, "cannot read the file: %s", got < 0 ? strerror(errno) : "it shrank");
        free(data);
        return MLSTAGE_EIO;
    }
    mlstage_sha256_buf(data, (size_t)size, hex);
    struct buf meta, type;
    buf_init(&meta);
    buf_init(&type);
    commit_headers(&meta, &type, hex, content_type);
    struct buf md5;
    buf_init(&md5);
    content_md5(&md5, data, (size_t)size);
    const char *extra[] = {"x-ms-blob-type: BlockBlob", meta.data, type.data, md5.data, NULL};
    int rc = blob_put(c, NULL, extra, data, (size_t)size, why);
    buf_free(&md5);
    buf_free(&meta);
    buf_free(&type);
    free(data);
    return rc;
}

int mlstage_blob_upload_file(struct mlstage_ctx *ctx, const struct mlstage_blob_target *target,
                             const char *local_path, const char *blob_name,
                             const struct mlstage_blob_upload_opts *opts,
                             char sha256_hex[MLSTAGE_SHA256_HEX_LEN + 1], uint64_t *size)
{
    if (!ctx || !local_path)
        return MLSTAGE_EINPUT;
    int rc = 0, fd = -1;
    struct blob_conn conn;
    struct pipeline p;
    memset(&p, 0, sizeof(p));
    buf_init(&p.fail_msg);
    struct buf why;
    buf_init(&why);
    EVP_MD_CTX *md = NULL;
    char hex[MLSTAGE_SHA256_HEX_LEN + 1] = "";
    uint64_t total = 0;
    double t0 = now_mono();
    if ((rc = conn_open(ctx, target, blob_name, &conn)) != 0)
        goto done;

    size_t block = opts && opts->block_size ? opts->block_size : BLOB_BLOCK_DEFAULT;
    unsigned threads = opts && opts->concurrency ? opts->concurrency : BLOB_THREADS;
    if (threads > BLOB_THREADS_MAX)
        threads = BLOB_THREADS_MAX;
    const char *content_type = opts ? opts->content_type : NULL;

    fd = open(local_path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = fd < 0 ? errno : EISDIR;
        rc = mlstage_error_set(ctx, e == ENOENT ? MLSTAGE_ENOTFOUND : MLSTAGE_EIO,
                               "cannot upload %s: %s", local_path,
                               fd >= 0 ? "not a regular file" : strerror(e));
        goto done;
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    /* Past 50,000 blocks the service refuses the list: grow the blocks instead, in MiB. */
    if (fsize / block >= BLOB_MAX_BLOCKS) {
        uint64_t need = (fsize + BLOB_MAX_BLOCKS - 1) / BLOB_MAX_BLOCKS;
        block = (size_t)(((need + (1u << 20) - 1) >> 20) << 20);
    }

    if (mlstage_dry_run(ctx)) {
        if ((rc = mlstage_sha256_file(local_path, hex, &total)) != 0) {
            mlstage_error_set(ctx, rc, "cannot read %s: %s", local_path, strerror(errno));
            goto done;
        }
        if (total <= block)
            mlstage_plan(ctx, "PUT %s (Put Blob, %" PRIu64 " bytes, sha256 %s)", conn.safe_url,
                         total, hex);
        else
            mlstage_plan(ctx,
                         "PUT %s (%" PRIu64 " bytes as %" PRIu64
                         " blocks of %zu bytes, %u at a time, then Put Block List; sha256 %s)",
                         conn.safe_url, total, (total + block - 1) / block, block, threads, hex);
        goto done;
    }

    if (fsize <= block) {
        rc = upload_single(&conn, fd, fsize, content_type, hex, &why);
        total = fsize;
        if (rc != 0)
            rc = mlstage_error_set(ctx, rc, "upload of %s to %s failed: %s", local_path,
                                   conn.safe_url, why.data ? why.data : "");
        goto done;
    }

    md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINTERNAL, "cannot initialise SHA-256");
        goto done;
    }
    p.conn = &conn;
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    p.spare = xcalloc(threads, sizeof(*p.spare));
    p.qcap = threads;
    p.queue = xcalloc(p.qcap, sizeof(*p.queue));
    size_t nblocks = 0;
    rc = upload_blocks(&p, fd, block, threads, md, &total, &nblocks);
    pthread_cond_destroy(&p.cv);
    pthread_mutex_destroy(&p.mu);
    if (rc != 0) {
        rc = mlstage_error_set(ctx, rc, "upload of %s to %s failed (nothing committed): %s",
                               local_path, conn.safe_url, p.fail_msg.data ? p.fail_msg.data : "");
        goto done;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(md, digest, &dlen);
    hex_encode(digest, 32, hex);
    if ((rc = commit_block_list(&conn, nblocks, hex, content_type, &why)) != 0) {
        rc = mlstage_error_set(ctx, rc, "upload of %s to %s failed at Put Block List: %s",
                               local_path, conn.safe_url, why.data ? why.data : "");
        goto done;
    }
    mlstage_log(ctx, MLSTAGE_LOG_DEBUG, "uploaded %s: %" PRIu64 " bytes in %zu blocks in %.2f s",
                conn.safe_url, total, nblocks, now_mono() - t0);
done:
    if (rc == 0) {
        if (sha256_hex)
            memcpy(sha256_hex, hex, sizeof(hex));
        if (size)
            *size = total;
    }
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(md);
    free(p.spare);
    free(p.queue);
    buf_free(&p.fail_msg);
    buf_free(&why);
    conn_free(&conn);
    return rc;
}

int mlstage_blob_read(struct mlstage_ctx *ctx, const struct mlstage_blob_target *target,
                      const char *blob_name, size_t max, char **data, size_t *len)
{
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!ctx || !data)
        return MLSTAGE_EINPUT;
    struct blob_conn conn;
    struct buf why;
    buf_init(&why);
    struct mlstage_http_response *resp = NULL;
    int rc = conn_open(ctx, target, blob_name, &conn);
    if (rc != 0)
        goto done;
    if (max == 0)
        max = BLOB_READ_MAX;
    rc = blob_request(&conn, "GET", NULL, NULL, NULL, 0, 200, &resp, &why);
    if (rc == MLSTAGE_ENOTFOUND) {
        rc = mlstage_error_set(ctx, rc, "no blob %s: %s", conn.safe_url, why.data ? why.data : "");
        goto done;
    }
    if (rc != 0) {
        rc = mlstage_error_set(ctx, rc, "cannot read %s: %s", conn.safe_url,
                               why.data ? why.data : "");
        goto done;
    }
    if (resp->body_len > max) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the blob %s holds %zu bytes, more than the %zu expected here",
                               conn.safe_url, resp->body_len, max);
        goto done;
    }
    *data = resp->body;
    if (len)
        *len = resp->body_len;
    resp->body = NULL;
done:
    mlstage_http_response_free(resp);
    buf_free(&why);
    conn_free(&conn);
    return rc;
}
