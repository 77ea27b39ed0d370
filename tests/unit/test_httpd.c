/* test_httpd.c — the test HTTP server itself, driven over raw sockets. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "httpd.h"
#include "testutil.h"

static int dial(struct httpd *h)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((unsigned short)httpd_port(h)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* A hang guard: no read in these tests should wait this long. */
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        abort();
    }
    return fd;
}

static void put(int fd, const char *s)
{
    size_t n = strlen(s);
    CU_ASSERT_EQUAL((size_t)send(fd, s, n, MSG_NOSIGNAL), n);
}

/* Reads until `until` shows up (NULL: until the server closes); the caller frees. */
static char *collect(int fd, const char *until)
{
    size_t cap = 4096, len = 0;
    char *buf = calloc(1, cap);
    for (;;) {
        if (until && strstr(buf, until))
            break;
        if (len + 1024 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return buf;
}

static void test_a_chunked_request_body_is_dechunked_and_recorded(void)
{
    struct httpd *h = httpd_start();
    httpd_push_response(h, 201, NULL, "made");
    int fd = dial(h);
    put(fd,
        "POST /up?x=1&y=2 HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 201 Created\r\n");
    TU_ASSERT_CONTAINS(out, "Content-Length: 4\r\n");
    TU_ASSERT_CONTAINS(out, "Connection: close\r\n");
    TU_ASSERT_CONTAINS(out, "\r\n\r\nmade");
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(h), 1);
    const struct httpd_request *r = httpd_request(h, 0);
    CU_ASSERT_STRING_EQUAL(r->method, "POST");
    CU_ASSERT_STRING_EQUAL(r->target, "/up?x=1&y=2");
    CU_ASSERT_STRING_EQUAL(r->path, "/up");
    CU_ASSERT_STRING_EQUAL(r->query, "x=1&y=2");
    CU_ASSERT_STRING_EQUAL(r->version, "HTTP/1.1");
    CU_ASSERT_STRING_EQUAL(r->body, "hello world");
    CU_ASSERT_EQUAL(r->body_len, 11);
    CU_ASSERT_TRUE(r->chunked);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "HOST"), "test");
    CU_ASSERT_PTR_NULL(httpd_request(h, 1));
    free(out);
    httpd_stop(h);
}

static void test_pipelined_requests_on_one_connection_are_answered_in_order(void)
{
    struct httpd *h = httpd_start();
    httpd_push_response(h, 200, NULL, "one");
    httpd_push_response(h, 200, NULL, "two");
    int fd = dial(h);
    put(fd, "PUT /a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            "GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    char *one = strstr(out, "one"), *two = strstr(out, "two");
    CU_ASSERT_TRUE(one && two && one < two);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(h), 2);
    CU_ASSERT_STRING_EQUAL(httpd_request(h, 0)->body, "abc");
    CU_ASSERT_FALSE(httpd_request(h, 0)->chunked);
    CU_ASSERT_STRING_EQUAL(httpd_request(h, 1)->path, "/b");
    CU_ASSERT_PTR_NULL(httpd_request(h, 1)->query);
    CU_ASSERT_EQUAL(httpd_request(h, 0)->conn_id, httpd_request(h, 1)->conn_id);
    CU_ASSERT_EQUAL(httpd_connection_count(h), 1);
    CU_ASSERT_EQUAL(httpd_queued(h), 0);
    free(out);
    httpd_stop(h);
}

static void teapot_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    int *calls = user;
    __atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
    httpd_reply_status(reply, 202);
    httpd_reply_header(reply, "X-Seen", "%s %s", req->method, req->path);
}

static void test_the_queue_answers_first_then_the_handler(void)
{
    int calls = 0;
    struct httpd *h = httpd_start_handler(teapot_handler, &calls);
    httpd_push_response(h, 503, (const char *[]){"Retry-After: 1", NULL}, NULL);
    int fd = dial(h);
    put(fd, "GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
            "DELETE /second HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n");
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 202 Accepted\r\nX-Seen: DELETE /second\r\n");
    CU_ASSERT_EQUAL(calls, 1);
    free(out);
    httpd_stop(h);
}

static void test_unscripted_requests_get_a_418_that_says_so(void)
{
    struct httpd *h = httpd_start();
    int fd = dial(h);
    put(fd, "GET /nothing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 418 ");
    TU_ASSERT_CONTAINS(out, "no reply scripted for GET /nothing");
    free(out);
    httpd_stop(h);
}

static void test_a_malformed_request_gets_400_and_a_close(void)
{
    struct httpd *h = httpd_start();
    int fd = dial(h);
    put(fd, "NONSENSE\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 400 Bad Request\r\n");
    CU_ASSERT_EQUAL(httpd_request_count(h), 0);
    free(out);
    httpd_stop(h);
}

static void test_a_dropped_reply_closes_without_an_answer(void)
{
    struct httpd *h = httpd_start();
    httpd_push_drop(h);
    int fd = dial(h);
    put(fd, "GET /drop HTTP/1.1\r\nHost: t\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(httpd_request_count(h), 1);
    free(out);
    httpd_stop(h);
}

static void test_a_chunked_reply_is_framed_in_chunks(void)
{
    struct httpd *h = httpd_start();
    struct httpd_reply *r = httpd_reply_new(200);
    httpd_reply_body(r, "hello", 5);
    httpd_reply_chunked(r);
    httpd_push_reply(h, r);
    int fd = dial(h);
    put(fd, "GET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "Transfer-Encoding: chunked\r\n");
    TU_ASSERT_NOT_CONTAINS(out, "Content-Length");
    TU_ASSERT_CONTAINS(out, "\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    free(out);
    httpd_stop(h);
}

static void test_expect_100_continue_gets_an_interim_answer(void)
{
    struct httpd *h = httpd_start();
    httpd_push_response(h, 201, NULL, NULL);
    int fd = dial(h);
    put(fd, "PUT /blob HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            "Connection: close\r\n\r\n");
    char *interim = collect(fd, "\r\n\r\n");
    CU_ASSERT_STRING_EQUAL(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    put(fd, "12345");
    char *out = collect(fd, NULL);
    close(fd);
    TU_ASSERT_CONTAINS(out, "HTTP/1.1 201 Created\r\n");
    CU_ASSERT_STRING_EQUAL(httpd_request(h, 0)->body, "12345");
    free(interim);
    free(out);
    httpd_stop(h);
}

static void test_stop_interrupts_a_delayed_reply_and_idle_connections(void)
{
    struct httpd *h = httpd_start();
    struct httpd_reply *r = httpd_reply_new(200);
    httpd_reply_delay(r, 60);
    httpd_push_reply(h, r);
    int slow = dial(h);
    int idle = dial(h);
    put(slow, "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n");
    CU_ASSERT_EQUAL(httpd_wait_requests(h, 1, 10), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    httpd_stop(h);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CU_ASSERT_TRUE(took < 5);
    close(slow);
    close(idle);
}

static void test_wait_requests_times_out_when_none_come(void)
{
    struct httpd *h = httpd_start();
    CU_ASSERT_EQUAL(httpd_wait_requests(h, 1, 0.2), -1);
    char *url = httpd_url(h, "/p?q=1");
    char *want = tu_fmt("http://127.0.0.1:%d/p?q=1", httpd_port(h));
    CU_ASSERT_STRING_EQUAL(url, want);
    free(url);
    free(want);
    httpd_stop(h);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"a chunked request body is de-chunked and recorded",
         test_a_chunked_request_body_is_dechunked_and_recorded},
        {"pipelined requests on one connection are answered in order",
         test_pipelined_requests_on_one_connection_are_answered_in_order},
        {"the queue answers first, then the handler",
         test_the_queue_answers_first_then_the_handler},
        {"unscripted requests get a 418 that says so",
         test_unscripted_requests_get_a_418_that_says_so},
        {"a malformed request gets 400 and a close", test_a_malformed_request_gets_400_and_a_close},
        {"a dropped reply closes without an answer", test_a_dropped_reply_closes_without_an_answer},
        {"a chunked reply is framed in chunks", test_a_chunked_reply_is_framed_in_chunks},
        {"Expect: 100-continue gets an interim answer",
         test_expect_100_continue_gets_an_interim_answer},
        {"stop interrupts a delayed reply and idle connections",
         test_stop_interrupts_a_delayed_reply_and_idle_connections},
        {"wait_requests times out when none come", test_wait_requests_times_out_when_none_come},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "httpd", tests);
}
