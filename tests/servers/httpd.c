/* httpd.c — a real HTTP/1.1 test server on threads: scripted replies, handler, request log. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Limits that keep a confused client from exhausting a test process. */
#define HEAD_MAX  (64 * 1024)
#define LINE_MAX_ (8 * 1024)
#define BODY_MAX  ((size_t)256 << 20)

struct httpd_reply {
    int status;
    char *headers; /* "Name: value\r\n" lines */
    size_t headers_len;
    int has_length; /* a header sets Content-Length itself */
    char *body;
    size_t body_len;
    double delay_s;
    int drop;
    int close;
    int chunked;
    struct httpd_reply *next;
};

struct conn {
    struct httpd *h;
    int fd;
    int id;
    pthread_t thread;
    char *buf; /* received, not yet consumed */
    size_t len;
    size_t cap;
    struct conn *next;
};

struct httpd {
    int listen_fd;
    int port;
    int wake[2]; /* written once at stop; readable forever after, so every poll wakes */
    pthread_t acceptor;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* CLOCK_MONOTONIC: new requests, stop */
    int stopping;
    struct httpd_reply *queue_head, *queue_tail;
    size_t queued;
    struct httpd_request **reqs;
    size_t req_count, req_cap;
    struct conn *conns;
    size_t conn_count;
    httpd_handler handler;
    void *user;
};

/* ---- small helpers ------------------------------------------------------ */

static void *hd_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fputs("httpd: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void *hd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("httpd: out of memory\n", stderr);
        abort();
    }
    return q;
}

static char *hd_strndup(const char *s, size_t n)
{
    char *p = hd_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *hd_vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) {
        fputs("httpd: out of memory\n", stderr);
        abort();
    }
    return s;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timespec mono_at(double t)
{
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    return ts;
}

static const char *reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 418: return "I'm a teapot";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static int has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && strncasecmp(p, token, n) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------ */

struct httpd_reply *httpd_reply_new(int status)
{
    struct httpd_reply *r = hd_alloc(sizeof(*r));
    r->status = status;
    return r;
}

void httpd_reply_free(struct httpd_reply *r)
{
    if (!r)
        return;
    free(r->headers);
    free(r->body);
    free(r);
}

void httpd_reply_status(struct httpd_reply *r, int status)
{
    r->status = status;
}

static void reply_add_header(struct httpd_reply *r, const char *name, size_t name_len,
                             const char *value)
{
    size_t vlen = strlen(value);
    size_t add = name_len + 2 + vlen + 2;
    r->headers = hd_realloc(r->headers, r->headers_len + add + 1);
    char *p = r->headers + r->headers_len;
    memcpy(p, name, name_len);
    memcpy(p + name_len, ": ", 2);
    memcpy(p + name_len + 2, value, vlen);
    memcpy(p + name_len + 2 + vlen, "\r\n", 3);
    r->headers_len += add;
    if (name_len == 14 && strncasecmp(name, "Content-Length", 14) == 0)
        r->has_length = 1;
}

void httpd_reply_header(struct httpd_reply *r, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *value = hd_vfmt(fmt, ap);
    va_end(ap);
    reply_add_header(r, name, strlen(name), value);
    free(value);
}

void httpd_reply_body(struct httpd_reply *r, const void *data, size_t len)
{
    free(r->body);
    r->body = hd_alloc(len + 1);
    if (len)
        memcpy(r->body, data, len);
    r->body_len = len;
}

void httpd_reply_bodyf(struct httpd_reply *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = hd_vfmt(fmt, ap);
    va_end(ap);
    free(r->body);
    r->body = s;
    r->body_len = strlen(s);
}

void httpd_reply_delay(struct httpd_reply *r, double seconds)
{
    r->delay_s = seconds;
}

void httpd_reply_drop(struct httpd_reply *r)
{
    r->drop = 1;
}

void httpd_reply_close(struct httpd_reply *r)
{
    r->close = 1;
}

void httpd_reply_chunked(struct httpd_reply *r)
{
    r->chunked = 1;
}

/* ---- requests ----------------------------------------------------------- */

static void request_free(struct httpd_request *q)
{
    if (!q)
        return;
    free(q->method);
    free(q->target);
    free(q->path);
    free(q->query);
    free(q->version);
    for (size_t i = 0; i < q->header_count; i++) {
        free(q->headers[i].name);
        free(q->headers[i].value);
    }
    free(q->headers);
    free(q->body);
    free(q);
}

const char *httpd_request_header(const struct httpd_request *req, const char *name)
{
    if (!req)
        return NULL;
    for (size_t i = 0; i < req->header_count; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

/* ---- connection I/O ----------------------------------------------------- */

/* Waits for `events` on the connection; 0 when ready, -1 when the server stops or it fails. */
static int conn_wait(struct conn *c, short events)
{
    struct pollfd p[2] = {{c->fd, events, 0}, {c->h->wake[0], POLLIN, 0}};
    for (;;) {
        int rc = poll(p, 2, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || p[1].revents)
            return -1;
        if (p[0].revents)
            return 0;
    }
}

/* Reads what is available: 1 on data, 0 at end of stream, -1 on error or stop. */
static int conn_fill(struct conn *c)
{
    if (conn_wait(c, POLLIN) != 0)
        return -1;
    if (c->cap - c->len < 65536) {
        c->cap = c->cap ? c->cap * 2 : 131072;
        while (c->cap - c->len < 65536)
            c->cap *= 2;
        c->buf = hd_realloc(c->buf, c->cap);
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        c->len += (size_t)n;
        return 1;
    }
}

static void conn_consume(struct conn *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Ensures n bytes are buffered; 0, or -1 when the stream ends first. */
static int conn_need(struct conn *c, size_t n)
{
    while (c->len < n)
        if (conn_fill(c) <= 0)
            return -1;
    return 0;
}

/* The length of the next line (without CRLF) once it is buffered; -1 on EOF or overlong. */
static long conn_line(struct conn *c)
{
    size_t scanned = 0;
    for (;;) {
        for (size_t i = scanned; i + 1 < c->len; i++)
            if (c->buf[i] == '\r' && c->buf[i + 1] == '\n')
                return (long)i;
        scanned = c->len ? c->len - 1 : 0;
        if (c->len > LINE_MAX_ || conn_fill(c) <= 0)
            return -1;
    }
}

static int send_all(struct conn *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        if (conn_wait(c, POLLOUT) != 0)
            return -1;
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_str(struct conn *c, const char *s)
{
    return send_all(c, s, strlen(s));
}

/* ---- parsing ------------------------------------------------------------ */

enum read_result { READ_OK = 0, READ_EOF = -1, READ_BAD = -2, READ_TOO_BIG = -3 };

static int parse_head(struct httpd_request *q, char *head)
{
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    if (!line)
        return READ_BAD;
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return READ_BAD;
    q->method = hd_strndup(line, (size_t)(sp1 - line));
    q->target = hd_strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
    q->version = hd_strndup(sp2 + 1, strlen(sp2 + 1));
    char *qm = strchr(q->target, '?');
    q->path = hd_strndup(q->target, qm ? (size_t)(qm - q->target) : strlen(q->target));
    q->query = qm ? hd_strndup(qm + 1, strlen(qm + 1)) : NULL;
    size_t cap = 0;
    while ((line = strtok_r(NULL, "\r\n", &save)) != NULL) {
        char *colon = strchr(line, ':');
        if (!colon || colon == line)
            return READ_BAD;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (q->header_count == cap) {
            cap = cap ? cap * 2 : 16;
            q->headers = hd_realloc(q->headers, cap * sizeof(*q->headers));
        }
        q->headers[q->header_count].name = hd_strndup(line, (size_t)(colon - line));
        q->headers[q->header_count].value = hd_strndup(v, vlen);
        q->header_count++;
    }
    return READ_OK;
}

static void body_append(struct httpd_request *q, size_t *cap, const char *data, size_t n)
{
    if (q->body_len + n + 1 > *cap) {
        *cap = (q->body_len + n + 1) * 2;
        q->body = hd_realloc(q->body, *cap);
    }
    memcpy(q->body + q->body_len, data, n);
    q->body_len += n;
    q->body[q->body_len] = '\0';
}

static int read_chunked(struct conn *c, struct httpd_request *q, size_t *cap)
{
    for (;;) {
        long n = conn_line(c);
        if (n < 0)
            return READ_EOF;
        char tmp[32];
        size_t tl = (size_t)n < sizeof(tmp) - 1 ? (size_t)n : sizeof(tmp) - 1;
        memcpy(tmp, c->buf, tl);
        tmp[tl] = '\0';
        char *end = NULL;
        errno = 0;
        unsigned long long size = strtoull(tmp, &end, 16);
        if (end == tmp || errno || (*end && *end != ';' && *end != ' '))
            return READ_BAD;
        conn_consume(c, (size_t)n + 2);
        if (size == 0)
            break;
        if (q->body_len + size > BODY_MAX)
            return READ_TOO_BIG;
        if (conn_need(c, (size_t)size + 2) != 0)
            return READ_EOF;
        if (c->buf[size] != '\r' || c->buf[size + 1] != '\n')
            return READ_BAD;
        body_append(q, cap, c->buf, (size_t)size);
        conn_consume(c, (size_t)size + 2);
    }
    /* Trailers, ignored, up to the empty line. */
    for (;;) {
        long n = conn_line(c);
        if (n < 0)
            return READ_EOF;
        conn_consume(c, (size_t)n + 2);
        if (n == 0)
            return READ_OK;
    }
}

static int read_request(struct conn *c, struct httpd_request **out)
{
    int rc = READ_OK;
    char *head = NULL;
    size_t cap = 0;
    struct httpd_request *q = hd_alloc(sizeof(*q));
    q->body = hd_alloc(1);
    cap = 1;

    /* Clients may send stray CRLFs between requests (RFC 9112 2.2). */
    size_t head_len = 0;
    for (;;) {
        while (c->len >= 2 && c->buf[0] == '\r' && c->buf[1] == '\n')
            conn_consume(c, 2);
        char *end = c->len >= 4 ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL;
        if (end) {
            head_len = (size_t)(end - c->buf) + 4;
            break;
        }
        if (c->len > HEAD_MAX) {
            rc = READ_TOO_BIG;
            goto done;
        }
        if (conn_fill(c) <= 0) {
            rc = READ_EOF;
            goto done;
        }
    }
    head = hd_strndup(c->buf, head_len);
    conn_consume(c, head_len);
    if ((rc = parse_head(q, head)) != READ_OK)
        goto done;

    const char *te = httpd_request_header(q, "Transfer-Encoding");
    const char *cl = httpd_request_header(q, "Content-Length");
    const char *expect = httpd_request_header(q, "Expect");
    size_t length = 0;
    q->chunked = te && has_token(te, "chunked");
    if (!q->chunked && cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        if (end == cl || *end || errno) {
            rc = READ_BAD;
            goto done;
        }
        if (v > BODY_MAX) {
            rc = READ_TOO_BIG;
            goto done;
        }
        length = (size_t)v;
    }
    /* Answer 100 only while the client is still holding the body back. */
    if (expect && strcasecmp(expect, "100-continue") == 0 && (q->chunked || length) &&
        c->len == 0 && send_str(c, "HTTP/1.1 100 Continue\r\n\r\n") != 0) {
        rc = READ_EOF;
        goto done;
    }
    if (q->chunked) {
        rc = read_chunked(c, q, &cap);
    } else if (length) {
        if (conn_need(c, length) != 0) {
            rc = READ_EOF;
            goto done;
        }
        body_append(q, &cap, c->buf, length);
        conn_consume(c, length);
    }
done:
    free(head);
    if (rc != READ_OK) {
        request_free(q);
        q = NULL;
    } else {
        q->conn_id = c->id;
        q->t_mono = mono_now();
    }
    *out = q;
    return rc;
}

/* ---- serving ------------------------------------------------------------ */

static void record(struct httpd *h, struct httpd_request *q)
{
    pthread_mutex_lock(&h->lock);
    if (h->req_count == h->req_cap) {
        h->req_cap = h->req_cap ? h->req_cap * 2 : 32;
        h->reqs = hd_realloc(h->reqs, h->req_cap * sizeof(*h->reqs));
    }
    h->reqs[h->req_count++] = q;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static struct httpd_reply *choose_reply(struct httpd *h, const struct httpd_request *q)
{
    struct httpd_reply *r = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->queue_head) {
        r = h->queue_head;
        h->queue_head = r->next;
        if (!h->queue_head)
            h->queue_tail = NULL;
        h->queued--;
        r->next = NULL;
    }
    pthread_mutex_unlock(&h->lock);
    if (r)
        return r;
    r = httpd_reply_new(200);
    if (h->handler) {
        h->handler(q, r, h->user);
    } else {
        httpd_reply_status(r, 418);
        httpd_reply_header(r, "Content-Type", "text/plain");
        httpd_reply_bodyf(r, "httpd: no reply scripted for %s %s\n", q->method, q->target);
    }
    return r;
}

/* Sleeps for the reply's delay unless the server stops first; -1 when it stops. */
static int delay(struct httpd *h, double seconds)
{
    if (seconds <= 0)
        return 0;
    struct timespec until = mono_at(mono_now() + seconds);
    int rc = 0;
    pthread_mutex_lock(&h->lock);
    while (!h->stopping)
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) == ETIMEDOUT)
            break;
    if (h->stopping)
        rc = -1;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

static int send_reply(struct conn *c, const struct httpd_request *q, const struct httpd_reply *r,
                      int close_after)
{
    int rc = 0;
    char *head = NULL;
    int bodyless = (r->status >= 100 && r->status < 200) || r->status == 204 || r->status == 304;
    int is_head = q && strcmp(q->method, "HEAD") == 0;
    char length[64] = "";
    if (!bodyless && !r->chunked && !r->has_length)
        snprintf(length, sizeof(length), "Content-Length: %zu\r\n", r->body_len);
    if (asprintf(&head, "HTTP/1.1 %d %s\r\n%s%s%s%s\r\n", r->status, reason(r->status),
                 r->headers ? r->headers : "", length,
                 r->chunked && !bodyless ? "Transfer-Encoding: chunked\r\n" : "",
                 close_after ? "Connection: close\r\n" : "") < 0) {
        head = NULL;
        rc = -1;
        goto done;
    }
    if ((rc = send_str(c, head)) != 0 || bodyless || is_head)
        goto done;
    if (r->chunked) {
        char size[32];
        if (r->body_len) {
            snprintf(size, sizeof(size), "%zx\r\n", r->body_len);
            if ((rc = send_str(c, size)) != 0 || (rc = send_all(c, r->body, r->body_len)) != 0 ||
                (rc = send_str(c, "\r\n")) != 0)
                goto done;
        }
        rc = send_str(c, "0\r\n\r\n");
    } else if (r->body_len) {
        rc = send_all(c, r->body, r->body_len);
    }
done:
    free(head);
    return rc;
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct httpd *h = c->h;
    for (;;) {
        struct httpd_request *q = NULL;
        int rc = read_request(c, &q);
        if (rc == READ_BAD || rc == READ_TOO_BIG) {
            struct httpd_reply *err = httpd_reply_new(rc == READ_BAD ? 400 : 413);
            send_reply(c, NULL, err, 1);
            httpd_reply_free(err);
            break;
        }
        if (rc != READ_OK)
            break;
        record(h, q);
        struct httpd_reply *r = choose_reply(h, q);
        const char *conn_hdr = httpd_request_header(q, "Connection");
        int close_after = r->close || strcmp(q->version, "HTTP/1.0") == 0 ||
                          (conn_hdr && has_token(conn_hdr, "close"));
        int stop = delay(h, r->delay_s) != 0 || r->drop || send_reply(c, q, r, close_after) != 0 ||
                   close_after;
        httpd_reply_free(r);
        if (stop)
            break;
    }
    close(c->fd);
    c->fd = -1;
    return NULL;
}

static void *accept_main(void *arg)
{
    struct httpd *h = arg;
    struct pollfd p[2] = {{h->listen_fd, POLLIN, 0}, {h->wake[0], POLLIN, 0}};
    for (;;) {
        int rc = poll(p, 2, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || p[1].revents)
            break;
        int fd = accept4(h->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct conn *c = hd_alloc(sizeof(*c));
        c->h = h;
        c->fd = fd;
        pthread_mutex_lock(&h->lock);
        c->id = (int)h->conn_count++;
        c->next = h->conns;
        h->conns = c;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            h->conns = c->next;
            close(fd);
            free(c);
        }
        pthread_mutex_unlock(&h->lock);
    }
    return NULL;
}

static struct httpd *start(httpd_handler fn, void *user)
{
    struct httpd *h = hd_alloc(sizeof(*h));
    h->handler = fn;
    h->user = user;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_condattr_destroy(&ca);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof(addr);
    int one = 1;
    h->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->listen_fd < 0 ||
        setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(h->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        listen(h->listen_fd, 128) != 0 ||
        getsockname(h->listen_fd, (struct sockaddr *)&addr, &alen) != 0 ||
        pipe2(h->wake, O_CLOEXEC) != 0) {
        perror("httpd: cannot listen on 127.0.0.1");
        abort();
    }
    h->port = ntohs(addr.sin_port);
    if (pthread_create(&h->acceptor, NULL, accept_main, h) != 0) {
        fputs("httpd: cannot start the accept thread\n", stderr);
        abort();
    }
    return h;
}

struct httpd *httpd_start(void)
{
    return start(NULL, NULL);
}

struct httpd *httpd_start_handler(httpd_handler fn, void *user)
{
    return start(fn, user);
}

void httpd_stop(struct httpd *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stopping = 1;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (write(h->wake[1], "x", 1) != 1)
        perror("httpd: wake");
    pthread_join(h->acceptor, NULL);
    /* The acceptor is gone, so the list no longer changes. */
    for (struct conn *c = h->conns, *next; c; c = next) {
        next = c->next;
        pthread_join(c->thread, NULL);
        free(c->buf);
        free(c);
    }
    close(h->listen_fd);
    close(h->wake[0]);
    close(h->wake[1]);
    for (struct httpd_reply *r = h->queue_head, *next; r; r = next) {
        next = r->next;
        httpd_reply_free(r);
    }
    for (size_t i = 0; i < h->req_count; i++)
        request_free(h->reqs[i]);
    free(h->reqs);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

char *httpd_url(const struct httpd *h, const char *path)
{
    char *s = NULL;
    if (asprintf(&s, "http://127.0.0.1:%d%s", h->port, path ? path : "") < 0) {
        fputs("httpd: out of memory\n", stderr);
        abort();
    }
    return s;
}

void httpd_push_reply(struct httpd *h, struct httpd_reply *r)
{
    r->next = NULL;
    pthread_mutex_lock(&h->lock);
    if (h->queue_tail)
        h->queue_tail->next = r;
    else
        h->queue_head = r;
    h->queue_tail = r;
    h->queued++;
    pthread_mutex_unlock(&h->lock);
}

void httpd_push_response(struct httpd *h, int status, const char *const *headers, const char *body)
{
    struct httpd_reply *r = httpd_reply_new(status);
    for (const char *const *p = headers; p && *p; p++) {
        const char *colon = strchr(*p, ':');
        if (!colon) {
            fprintf(stderr, "httpd: header \"%s\" is not \"Name: value\"\n", *p);
            abort();
        }
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        reply_add_header(r, *p, (size_t)(colon - *p), v);
    }
    if (body)
        httpd_reply_body(r, body, strlen(body));
    httpd_push_reply(h, r);
}

void httpd_push_drop(struct httpd *h)
{
    struct httpd_reply *r = httpd_reply_new(0);
    httpd_reply_drop(r);
    httpd_push_reply(h, r);
}

size_t httpd_queued(struct httpd *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->queued;
    pthread_mutex_unlock(&h->lock);
    return n;
}

size_t httpd_request_count(struct httpd *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->req_count;
    pthread_mutex_unlock(&h->lock);
    return n;
}

const struct httpd_request *httpd_request(struct httpd *h, size_t i)
{
    pthread_mutex_lock(&h->lock);
    const struct httpd_request *q = i < h->req_count ? h->reqs[i] : NULL;
    pthread_mutex_unlock(&h->lock);
    return q;
}

int httpd_wait_requests(struct httpd *h, size_t n, double timeout_s)
{
    struct timespec until = mono_at(mono_now() + timeout_s);
    pthread_mutex_lock(&h->lock);
    while (h->req_count < n && !h->stopping)
        if (pthread_cond_timedwait(&h->cond, &h->lock, &until) == ETIMEDOUT)
            break;
    int rc = h->req_count >= n ? 0 : -1;
    pthread_mutex_unlock(&h->lock);
    return rc;
}

size_t httpd_connection_count(struct httpd *h)
{
    pthread_mutex_lock(&h->lock);
    size_t n = h->conn_count;
    pthread_mutex_unlock(&h->lock);
    return n;
}
