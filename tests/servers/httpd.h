/* httpd.h — a real HTTP/1.1 test server on threads: scripted replies, handler, request log. */
#ifndef MLSTAGE_TEST_HTTPD_H
#define MLSTAGE_TEST_HTTPD_H

#include <stddef.h>

/*
 * Listens on 127.0.0.1 on an ephemeral port. Each connection is served on
 * its own thread, with keep-alive, Content-Length and chunked request
 * bodies, and "Expect: 100-continue". Every request is recorded before it
 * is answered. The answer is, in order of preference: the next reply in
 * the queue (httpd_push_*), the handler's (httpd_start_handler), or a 418
 * whose body says that nothing was scripted — a status no client retries,
 * so an unexpected request shows up as a wrong count, not as a slow test.
 */
struct httpd;

struct httpd_header {
    char *name;
    char *value;
};

/* One received request; all strings NUL-terminated and owned by the server. */
struct httpd_request {
    char *method;
    char *target;  /* path and query as sent: "/a/b?x=1" */
    char *path;    /* "/a/b" */
    char *query;   /* "x=1", or NULL when the target has no '?' */
    char *version; /* "HTTP/1.1" */
    struct httpd_header *headers;
    size_t header_count;
    char *body; /* de-chunked; never NULL */
    size_t body_len;
    int chunked;   /* the body came with Transfer-Encoding: chunked */
    int conn_id;   /* 0-based number of the TCP connection it arrived on */
    double t_mono; /* when it was complete, CLOCK_MONOTONIC seconds */
};

/* ---- replies ----------------------------------------------------------- */

/* A reply under construction: status, headers, body, and how to deliver it. */
struct httpd_reply;

struct httpd_reply *httpd_reply_new(int status);
void httpd_reply_free(struct httpd_reply *r);
void httpd_reply_status(struct httpd_reply *r, int status);
/* Adds a header; several with the same name are sent in order. */
void httpd_reply_header(struct httpd_reply *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sets the body (copied). Content-Length is added unless a header sets it. */
void httpd_reply_body(struct httpd_reply *r, const void *data, size_t len);
void httpd_reply_bodyf(struct httpd_reply *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Waits this long after reading the request before answering (or dropping). */
void httpd_reply_delay(struct httpd_reply *r, double seconds);
/* Closes the connection without answering: the client sees an empty reply. */
void httpd_reply_drop(struct httpd_reply *r);
/* Answers with Connection: close and closes the connection afterwards. */
void httpd_reply_close(struct httpd_reply *r);
/* Sends the body with Transfer-Encoding: chunked instead of Content-Length. */
void httpd_reply_chunked(struct httpd_reply *r);

/*
 * A handler decides the reply to each request that the queue does not
 * answer; `reply` starts as 200 with no body. Called on connection
 * threads, possibly several at once: it must be thread-safe.
 */
typedef void (*httpd_handler)(const struct httpd_request *req, struct httpd_reply *reply,
                              void *user);

/* ---- the server ------------------------------------------------------- */

/* Starts a server; aborts the test program when it cannot listen. */
struct httpd *httpd_start(void);
struct httpd *httpd_start_handler(httpd_handler fn, void *user);
/* Stops accepting, wakes and closes every connection, joins all threads, frees everything. */
void httpd_stop(struct httpd *h);

int httpd_port(const struct httpd *h);
/* "http://127.0.0.1:PORT" + path, newly allocated; the caller frees. */
char *httpd_url(const struct httpd *h, const char *path);

/* Queues a reply; takes ownership of r. Replies are used in the order pushed. */
void httpd_push_reply(struct httpd *h, struct httpd_reply *r);
/* Queues a reply: status, "Name: value" headers (NULL-terminated, or NULL), body (NULL: none). */
void httpd_push_response(struct httpd *h, int status, const char *const *headers, const char *body);
/* Queues a dropped connection. */
void httpd_push_drop(struct httpd *h);
/* Replies still queued. */
size_t httpd_queued(struct httpd *h);

size_t httpd_request_count(struct httpd *h);
/* The i-th request received (0-based), or NULL. Borrowed: valid until httpd_stop. */
const struct httpd_request *httpd_request(struct httpd *h, size_t i);
/* A request header by case-insensitive name (the first), or NULL. */
const char *httpd_request_header(const struct httpd_request *req, const char *name);
/* Waits until at least n requests arrived; 0 when they did, -1 after timeout_s. */
int httpd_wait_requests(struct httpd *h, size_t n, double timeout_s);
/* TCP connections accepted so far. */
size_t httpd_connection_count(struct httpd *h);

#endif
