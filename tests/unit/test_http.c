/* test_http.c — the HTTP client: retries, Retry-After, deadline, loopback, dry run, redaction. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/http.h>
#include <mlstage/version.h>

#include "ctx.h"
#include "http_internal.h"
#include "httpd.h"
#include "log.h"
#include "mask.h"
#include "testutil.h"
#include "util.h"

/* ---- fixtures ----------------------------------------------------------- */

struct fixture {
    struct mlstage_ctx *ctx;
    char *dir;
    struct httpd *server;
};

static void fx_init(struct fixture *fx)
{
    fx->ctx = ctx_new();
    fx->dir = tu_tmpdir();
    fx->ctx->run_dir = xstrdup(fx->dir);
    fx->server = httpd_start();
}

static void fx_done(struct fixture *fx)
{
    httpd_stop(fx->server);
    ctx_free(fx->ctx);
    tu_rm_rf(fx->dir);
    free(fx->dir);
}

static char *fx_log(struct fixture *fx)
{
    char *path = tu_fmt("%s/http.log", fx->dir);
    char *text = tu_read(path, NULL);
    free(path);
    return text;
}

static int send_req(struct fixture *fx, const char *method, const char *path,
                    struct mlstage_http_response **resp)
{
    char *url = httpd_url(fx->server, path);
    struct mlstage_http_request req = {.method = method, .url = url};
    int rc = mlstage_http_send(fx->ctx, &req, resp);
    free(url);
    return rc;
}

static double gap(struct httpd *h, size_t i)
{
    return httpd_request(h, i)->t_mono - httpd_request(h, i - 1)->t_mono;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- retries ------------------------------------------------------------ */

static void test_503_then_200_takes_two_attempts(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *json[] = {"Content-Type: application/json", NULL};
    httpd_push_response(fx.server, 503, NULL, "busy");
    httpd_push_response(fx.server, 200, json, "{\"ok\":true}");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "GET", "/thing?api-version=2024-04-01", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    CU_ASSERT_EQUAL(resp->attempts, 2);
    CU_ASSERT_STRING_EQUAL(resp->body, "{\"ok\":true}");
    CU_ASSERT_EQUAL(resp->body_len, strlen("{\"ok\":true}"));
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 2);
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.server, 1)->target, "/thing?api-version=2024-04-01");
    char *log = fx_log(&fx);
    TU_ASSERT_CONTAINS(log, "attempt 1/5 -> 503");
    TU_ASSERT_CONTAINS(log, "(backoff)");
    TU_ASSERT_CONTAINS(log, "attempt 2/5 -> 200");
    free(log);
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_429_with_retry_after_seconds_waits_that_long(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *ra[] = {"Retry-After: 1", NULL};
    httpd_push_response(fx.server, 429, ra, "{\"error\":{\"code\":\"TooManyRequests\"}}");
    httpd_push_response(fx.server, 200, NULL, "done");
    struct mlstage_http_response *resp = NULL;
    double t0 = now_mono();
    int rc = send_req(&fx, "GET", "/throttled", &resp);
    double took = now_mono() - t0;
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    CU_ASSERT_EQUAL(resp->attempts, 2);
    CU_ASSERT_TRUE(took >= 1.0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 2);
    CU_ASSERT_TRUE(gap(fx.server, 1) >= 1.0);
    char *log = fx_log(&fx);
    TU_ASSERT_CONTAINS(log, "retry in 1.000 s (Retry-After)");
    free(log);
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_retry_after_as_http_date_is_honoured(void)
{
    struct fixture fx;
    fx_init(&fx);
    time_t when = time(NULL) + 2;
    struct tm tm;
    gmtime_r(&when, &tm);
    char date[64], header[96];
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(header, sizeof(header), "Retry-After: %s", date);
    const char *ra[] = {header, NULL};
    httpd_push_response(fx.server, 503, ra, NULL);
    httpd_push_response(fx.server, 200, NULL, "ok");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "GET", "/dated", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 2);
    /* The date has one-second resolution: the wait is between 1 and 2 s. */
    CU_ASSERT_TRUE(gap(fx.server, 1) >= 0.95);
    CU_ASSERT_TRUE(gap(fx.server, 1) < 15);
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_retry_after_ms_headers_take_precedence(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* Were Retry-After: 30 used, the 10 s deadline would make the call give up. */
    const char *ra[] = {"Retry-After: 30", "retry-after-ms: 300", NULL};
    httpd_push_response(fx.server, 503, ra, NULL);
    httpd_push_response(fx.server, 200, NULL, "ok");
    char *url = httpd_url(fx.server, "/ms");
    struct mlstage_http_request req = {.method = "GET", .url = url, .deadline_s = 10};
    struct mlstage_http_response *resp = NULL;
    int rc = mlstage_http_send(fx.ctx, &req, &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(resp ? resp->status : -1, 200);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 2);
    CU_ASSERT_TRUE(gap(fx.server, 1) >= 0.3);
    mlstage_http_response_free(resp);
    free(url);
    fx_done(&fx);
}

static void test_retry_after_beyond_the_deadline_fails_promptly(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *ra[] = {"Retry-After: 120", NULL};
    httpd_push_response(fx.server, 429, ra, NULL);
    httpd_push_response(fx.server, 200, NULL, "too late");
    char *url = httpd_url(fx.server, "/slow-down");
    struct mlstage_http_request req = {.method = "GET", .url = url, .deadline_s = 5};
    struct mlstage_http_response *resp = NULL;
    double t0 = now_mono();
    int rc = mlstage_http_send(fx.ctx, &req, &resp);
    double took = now_mono() - t0;
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_TRUE(took < 3.0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 429);
    CU_ASSERT_EQUAL(resp->attempts, 1);
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 1);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "Retry-After");
    TU_ASSERT_CONTAINS(msg, "deadline");
    TU_ASSERT_CONTAINS(msg, "GET http://127.0.0.1:");
    mlstage_http_response_free(resp);
    free(url);
    fx_done(&fx);
}

static void test_five_500s_exhaust_max_attempts_with_eremote(void)
{
    struct fixture fx;
    fx_init(&fx);
    for (int i = 0; i < 6; i++)
        httpd_push_response(fx.server, 500, NULL,
                            "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"boom\"}}");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "PUT", "/flaky", &resp);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->attempts, 5);
    CU_ASSERT_EQUAL(resp->status, 500);
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 5);
    CU_ASSERT_EQUAL(httpd_queued(fx.server), 1);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "PUT http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, "gave up after 5 attempts");
    TU_ASSERT_CONTAINS(msg, "HTTP 500");
    TU_ASSERT_CONTAINS(msg, "InternalServerError");
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_dropped_connection_is_retried(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_drop(fx.server);
    httpd_push_response(fx.server, 200, NULL, "second time lucky");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "GET", "/dropped", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    CU_ASSERT_EQUAL(resp->attempts, 2);
    CU_ASSERT_STRING_EQUAL(resp->body, "second time lucky");
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 2);
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_refused_connection_is_retried_then_reported(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* A port that was just free: nothing listens there. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CU_ASSERT_EQUAL_FATAL(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    CU_ASSERT_EQUAL_FATAL(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    close(s);
    char *url = tu_fmt("http://127.0.0.1:%d/nobody", ntohs(a.sin_port));
    struct mlstage_http_request req = {.method = "GET", .url = url, .max_attempts = 2};
    struct mlstage_http_response *resp = NULL;
    int rc = mlstage_http_send(fx.ctx, &req, &resp);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 0);
    CU_ASSERT_EQUAL(resp->attempts, 2);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "gave up after 2 attempts");
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "curl error 7");
    mlstage_http_response_free(resp);
    free(url);
    fx_done(&fx);
}

static void test_slow_server_times_out_each_attempt(void)
{
    struct fixture fx;
    fx_init(&fx);
    for (int i = 0; i < 2; i++) {
        struct httpd_reply *r = httpd_reply_new(200);
        httpd_reply_delay(r, 30);
        httpd_push_reply(fx.server, r);
    }
    char *url = httpd_url(fx.server, "/sleepy");
    struct mlstage_http_request req = {
        .method = "GET", .url = url, .timeout_s = 0.3, .max_attempts = 2};
    struct mlstage_http_response *resp = NULL;
    double t0 = now_mono();
    int rc = mlstage_http_send(fx.ctx, &req, &resp);
    double took = now_mono() - t0;
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_TRUE(took >= 0.6);
    CU_ASSERT_TRUE(took < 10);
    CU_ASSERT_EQUAL(resp ? resp->attempts : 0, 2);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "curl error 28");
    mlstage_http_response_free(resp);
    free(url);
    fx_done(&fx);
}

static void test_404_is_final_and_not_retried(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_response(fx.server, 404, NULL, "{\"error\":{\"code\":\"ResourceNotFound\"}}");
    httpd_push_response(fx.server, 200, NULL, "must not be fetched");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "GET", "/models/none", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 404);
    CU_ASSERT_EQUAL(resp->attempts, 1);
    TU_ASSERT_CONTAINS(resp->body, "ResourceNotFound");
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 1);
    CU_ASSERT_STRING_EQUAL(mlstage_error_message(fx.ctx), "");
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_501_and_505_are_not_retried_but_408_is(void)
{
    CU_ASSERT_TRUE(http_status_retryable(408));
    CU_ASSERT_TRUE(http_status_retryable(429));
    CU_ASSERT_TRUE(http_status_retryable(500));
    CU_ASSERT_TRUE(http_status_retryable(502));
    CU_ASSERT_TRUE(http_status_retryable(503));
    CU_ASSERT_TRUE(http_status_retryable(504));
    CU_ASSERT_TRUE(http_status_retryable(599));
    CU_ASSERT_FALSE(http_status_retryable(501));
    CU_ASSERT_FALSE(http_status_retryable(505));
    CU_ASSERT_FALSE(http_status_retryable(200));
    CU_ASSERT_FALSE(http_status_retryable(302));
    CU_ASSERT_FALSE(http_status_retryable(400));
    CU_ASSERT_FALSE(http_status_retryable(401));
    CU_ASSERT_FALSE(http_status_retryable(404));
    CU_ASSERT_FALSE(http_status_retryable(409));
}

static void test_redirects_are_returned_not_followed(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *loc = httpd_url(fx.server, "/elsewhere");
    char *hdr = tu_fmt("Location: %s", loc);
    const char *h[] = {hdr, NULL};
    httpd_push_response(fx.server, 302, h, NULL);
    httpd_push_response(fx.server, 200, NULL, "followed");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "PUT", "/deployments/d1", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 302);
    CU_ASSERT_STRING_EQUAL(mlstage_http_response_header(resp, "location"), loc);
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 1);
    mlstage_http_response_free(resp);
    free(hdr);
    free(loc);
    fx_done(&fx);
}

/* ---- backoff and Retry-After parsing ---------------------------------- */

static void test_backoff_has_full_jitter_within_bounds(void)
{
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(0, 0.0), 0.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(0, 0.5), 0.25, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(3, 0.5), 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(5, 1.0), 16.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(6, 1.0), HTTP_BACKOFF_CAP_S, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(http_backoff_s(1000, 1.0), HTTP_BACKOFF_CAP_S, 1e-12);

    for (int retry = 0; retry <= 12; retry++) {
        double ceiling = HTTP_BACKOFF_BASE_S * (double)(1 << retry);
        if (ceiling > HTTP_BACKOFF_CAP_S)
            ceiling = HTTP_BACKOFF_CAP_S;
        double lo = ceiling, hi = 0;
        int distinct = 0;
        double prev = -1;
        for (int i = 0; i < 500; i++) {
            double w = http_backoff_s(retry, http_rand01());
            CU_ASSERT_TRUE(w >= 0 && w < ceiling);
            if (w < lo)
                lo = w;
            if (w > hi)
                hi = w;
            if (w != prev)
                distinct++;
            prev = w;
        }
        /* Full jitter spreads over the whole range, not around the ceiling. */
        CU_ASSERT_TRUE(distinct > 450);
        CU_ASSERT_TRUE(lo < 0.1 * ceiling);
        CU_ASSERT_TRUE(hi > 0.9 * ceiling);
    }
}

static void *rand_thread(void *arg)
{
    double *out = arg;
    for (int i = 0; i < 4; i++)
        out[i] = http_rand01();
    return NULL;
}

static void test_jitter_differs_between_threads(void)
{
    double a[4], b[4];
    pthread_t ta, tb;
    pthread_create(&ta, NULL, rand_thread, a);
    pthread_create(&tb, NULL, rand_thread, b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT_FALSE(memcmp(a, b, sizeof(a)) == 0);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_TRUE(a[i] >= 0 && a[i] < 1 && b[i] >= 0 && b[i] < 1);
}

static double ra(const char *name, const char *value, double now)
{
    struct mlstage_http_header h = {(char *)name, (char *)value};
    return http_retry_after_s(&h, 1, now);
}

static void test_retry_after_parses_seconds_dates_and_milliseconds(void)
{
    const double date = 1445412480; /* Wed, 21 Oct 2015 07:28:00 GMT */
    CU_ASSERT_DOUBLE_EQUAL(ra("Retry-After", "120", 0), 120, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ra("retry-after", "0", 0), 0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ra("RETRY-AFTER", " 7 ", 0), 7, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ra("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT", date - 5), 5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(ra("Retry-After", "Wednesday, 21-Oct-15 07:28:00 GMT", date - 3), 3,
                           1e-6);
    CU_ASSERT_DOUBLE_EQUAL(ra("Retry-After", "Wed Oct 21 07:28:00 2015", date - 2.5), 2.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(ra("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT", date + 60), 0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ra("retry-after-ms", "250", 0), 0.25, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(ra("x-ms-retry-after-ms", "1500", 0), 1.5, 1e-9);
    CU_ASSERT_TRUE(ra("Retry-After", "soon", 0) < 0);
    CU_ASSERT_TRUE(ra("Retry-After", "-5", 0) < 0);
    CU_ASSERT_TRUE(ra("Retry-After", "", 0) < 0);
    CU_ASSERT_TRUE(ra("x-ms-retry-after-ms", "lots", 0) < 0);
    CU_ASSERT_TRUE(ra("X-Other", "5", 0) < 0);

    struct mlstage_http_header both[] = {
        {"Retry-After", "30"}, {"x-ms-retry-after-ms", "2000"}, {"retry-after-ms", "100"}};
    CU_ASSERT_DOUBLE_EQUAL(http_retry_after_s(both, 3, 0), 0.1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(http_retry_after_s(both, 2, 0), 2.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(http_retry_after_s(both, 1, 0), 30, 1e-9);
    CU_ASSERT_TRUE(http_retry_after_s(NULL, 0, 0) < 0);
}

/* ---- URL rules ---------------------------------------------------------- */

static void test_plain_http_to_a_non_loopback_host_is_refused_offline(void)
{
    struct mlstage_ctx *ctx = ctx_new();
    /* 10.255.255.1 would hang on connect and example.com needs DNS: a quick refusal
     * proves neither was tried. */
    const char *urls[] = {"http://example.com/api",    "http://10.255.255.1/",
                          "http://127.0.0.1.nip.io/x", "http://localhost.example.com/",
                          "http://[::2]:8080/",        "ftp://127.0.0.1/file",
                          "file:///etc/passwd",        "not a url",
                          "gopher://127.0.0.1:70/",    NULL};
    double t0 = now_mono();
    for (const char *const *u = urls; *u; u++) {
        struct mlstage_http_request req = {.method = "GET", .url = *u};
        struct mlstage_http_response *resp = (struct mlstage_http_response *)1;
        int rc = mlstage_http_send(ctx, &req, &resp);
        if (rc != MLSTAGE_EINPUT)
            fprintf(stderr, "\n%s: rc %d\n", *u, rc);
        CU_ASSERT_EQUAL(rc, MLSTAGE_EINPUT);
        CU_ASSERT_PTR_NULL(resp);
    }
    CU_ASSERT_TRUE(now_mono() - t0 < 2.0);
    struct mlstage_http_request req = {.method = "GET",
                                       .url = "http://example.com/api?sig=topsecret"};
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    const char *msg = mlstage_error_message(ctx);
    TU_ASSERT_CONTAINS(msg, "loopback");
    TU_ASSERT_CONTAINS(msg, "https://");
    TU_ASSERT_CONTAINS(msg, "sig=REDACTED");
    TU_ASSERT_NOT_CONTAINS(msg, "topsecret");
    ctx_free(ctx);
}

/* IMDS is plain http on a link-local address: allowed, but only that one address. Checked in
 * a dry run, so nothing is sent to it. */
static void test_plain_http_to_the_metadata_address_only_is_allowed(void)
{
    struct mlstage_ctx *ctx = ctx_new();
    ctx->dry_run = 1;
    CU_ASSERT_TRUE(http_host_is_metadata("169.254.169.254"));
    CU_ASSERT_FALSE(http_host_is_metadata("169.254.169.253"));
    CU_ASSERT_FALSE(http_host_is_metadata("169.254.169.254.nip.io"));
    CU_ASSERT_FALSE(http_host_is_metadata(NULL));
    struct mlstage_http_request ok = {
        .method = "POST", .url = "http://169.254.169.254/metadata/identity/oauth2/token"};
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(mlstage_http_send(ctx, &ok, &resp), 0);
    CU_ASSERT_EQUAL(resp ? resp->planned : 0, 1);
    mlstage_http_response_free(resp);
    const char *refused[] = {"http://169.254.169.253/metadata", "http://169.254.1.1/", NULL};
    for (const char *const *u = refused; *u; u++) {
        struct mlstage_http_request req = {.method = "POST", .url = *u};
        resp = NULL;
        CU_ASSERT_EQUAL(mlstage_http_send(ctx, &req, &resp), MLSTAGE_EINPUT);
        CU_ASSERT_PTR_NULL(resp);
    }
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "169.254.169.254");
    ctx_free(ctx);
}

/* A probe's short connect timeout still lets a live server answer normally. */
static void test_a_short_connect_timeout_reaches_a_live_server(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_response(fx.server, 200, NULL, "here");
    char *url = httpd_url(fx.server, "/probe");
    struct mlstage_http_request req = {.method = "GET", .url = url, .max_attempts = 1};
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(http_send_connect(fx.ctx, &req, 0.3, &resp), 0);
    CU_ASSERT_EQUAL(resp ? resp->status : 0, 200);
    mlstage_http_response_free(resp);
    free(url);
    fx_done(&fx);
}

static void test_loopback_hosts_are_recognised_exactly(void)
{
    CU_ASSERT_TRUE(http_host_is_loopback("127.0.0.1"));
    CU_ASSERT_TRUE(http_host_is_loopback("127.255.3.9"));
    CU_ASSERT_TRUE(http_host_is_loopback("localhost"));
    CU_ASSERT_TRUE(http_host_is_loopback("LocalHost"));
    CU_ASSERT_TRUE(http_host_is_loopback("[::1]"));
    CU_ASSERT_TRUE(http_host_is_loopback("::1"));
    CU_ASSERT_TRUE(http_host_is_loopback("[::ffff:127.0.0.1]"));
    CU_ASSERT_FALSE(http_host_is_loopback("128.0.0.1"));
    CU_ASSERT_FALSE(http_host_is_loopback("0.0.0.0"));
    CU_ASSERT_FALSE(http_host_is_loopback("10.0.0.1"));
    CU_ASSERT_FALSE(http_host_is_loopback("127.0.0.1.nip.io"));
    CU_ASSERT_FALSE(http_host_is_loopback("localhost.evil.example"));
    CU_ASSERT_FALSE(http_host_is_loopback("[::2]"));
    CU_ASSERT_FALSE(http_host_is_loopback("[fe80::1]"));
    CU_ASSERT_FALSE(http_host_is_loopback("[::ffff:10.0.0.1]"));
    CU_ASSERT_FALSE(http_host_is_loopback(""));
    CU_ASSERT_FALSE(http_host_is_loopback(NULL));
}

static void test_malformed_requests_are_input_errors_and_not_sent(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *url = httpd_url(fx.server, "/x");
    const char *injected[] = {"X-A: b\r\nX-Injected: 1", NULL};
    const char *no_colon[] = {"Authorization Bearer abc", NULL};
    struct mlstage_http_request reqs[] = {
        {.method = "get", .url = url},
        {.method = NULL, .url = url},
        {.method = "GET", .url = NULL},
        {.method = "GET", .url = url, .headers = injected},
        {.method = "GET", .url = url, .headers = no_colon},
        {.method = "PUT", .url = url, .body = NULL, .body_len = 5},
    };
    for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        struct mlstage_http_response *resp = NULL;
        CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &reqs[i], &resp), MLSTAGE_EINPUT);
        CU_ASSERT_PTR_NULL(resp);
    }
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 0);
    free(url);
    fx_done(&fx);
}

static void test_redact_url_hides_sas_and_oauth_values(void)
{
    struct {
        const char *in, *out;
    } cases[] = {
        {"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abc%2Bdef%3D&se=2030",
         "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=REDACTED&se=2030"},
        {"https://login.example/t?code=123&state=s&client_secret=zz&access_token=t&token=u&SIG=q",
         "https://login.example/t?code=REDACTED&state=s&client_secret=REDACTED&access_token="
         "REDACTED&token=REDACTED&SIG=REDACTED"},
        {"https://user:pa55@host.example/p?x=1", "https://user:REDACTED@host.example/p?x=1"},
        {"https://host.example/p?sigma=1&tokenize=2&sig",
         "https://host.example/p?sigma=1&tokenize=2&sig"},
        {"https://host.example/p#frag?sig=1", "https://host.example/p#frag?sig=1"},
        {"https://host.example/p?sig=1#top", "https://host.example/p?sig=REDACTED#top"},
        {"https://host.example/plain", "https://host.example/plain"},
        {"https://host.example/p?a=1&&sig=", "https://host.example/p?a=1&&sig=REDACTED"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *got = http_redact_url(cases[i].in);
        if (strcmp(got, cases[i].out) != 0)
            fprintf(stderr, "\n%s\n  -> %s\n  expected %s\n", cases[i].in, got, cases[i].out);
        CU_ASSERT_STRING_EQUAL(got, cases[i].out);
        free(got);
    }
    char *empty = http_redact_url(NULL);
    CU_ASSERT_STRING_EQUAL(empty, "");
    free(empty);
}

static void test_credential_headers_are_classified_sensitive(void)
{
    const char *yes[] = {"Authorization",
                         "authorization",
                         "Proxy-Authorization",
                         "Cookie",
                         "api-key",
                         "x-ms-encryption-key",
                         "x-ms-blob-key",
                         "Ocp-Apim-Subscription-Key",
                         "x-ms-copy-source-authorization",
                         NULL};
    const char *no[] = {"Content-Type", "x-ms-version", "Accept", "x-ms-client-request-id",
                        "If-Match",     "User-Agent",   NULL};
    for (const char *const *p = yes; *p; p++)
        CU_ASSERT_TRUE(http_header_sensitive(*p, strlen(*p)));
    for (const char *const *p = no; *p; p++)
        CU_ASSERT_FALSE(http_header_sensitive(*p, strlen(*p)));
}

static void test_url_encode_keeps_only_unreserved(void)
{
    char *e = mlstage_url_encode("a b&c=d/\xc3\xa9~._-Z9");
    CU_ASSERT_STRING_EQUAL(e, "a%20b%26c%3Dd%2F%C3%A9~._-Z9");
    free(e);
    e = mlstage_url_encode("");
    CU_ASSERT_STRING_EQUAL(e, "");
    free(e);
    CU_ASSERT_PTR_NULL(mlstage_url_encode(NULL));
}

/* ---- dry run ------------------------------------------------------------ */

static void test_dry_run_plans_a_put_without_sending_it(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.ctx->dry_run = 1;
    char *url =
        httpd_url(fx.server, "/subscriptions/s/deployments/d?api-version=2025-04-01&sig=SASVALUE");
    const char *body = "{\"properties\":{\"mode\":\"Incremental\"},\"tags\":{\"a\":\"b\"}}";
    struct mlstage_http_request req = {
        .method = "PUT", .url = url, .body = body, .body_len = strlen(body)};
    struct mlstage_http_response *resp = NULL;
    int rc = mlstage_http_send(fx.ctx, &req, &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->planned, 1);
    CU_ASSERT_EQUAL(resp->status, 0);
    CU_ASSERT_STRING_EQUAL(resp->body, "");
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 0);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(fx.ctx->plan), 1);
    const char *plan = json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 0));
    TU_ASSERT_CONTAINS(plan, "PUT http://127.0.0.1:");
    TU_ASSERT_CONTAINS(plan, "/deployments/d?api-version=2025-04-01&sig=REDACTED");
    TU_ASSERT_CONTAINS(plan, "\"mode\": \"Incremental\"");
    TU_ASSERT_CONTAINS(plan, "\n");
    TU_ASSERT_NOT_CONTAINS(plan, "SASVALUE");
    mlstage_http_response_free(resp);

    /* Not JSON: only the size is shown. A DELETE without a body is planned too. */
    struct mlstage_http_request blob = {
        .method = "PUT", .url = url, .body = "\x01\x02zip", .body_len = 5};
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &blob, &resp), 0);
    mlstage_http_response_free(resp);
    struct mlstage_http_request del = {.method = "DELETE", .url = url};
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &del, &resp), 0);
    CU_ASSERT_EQUAL(resp ? resp->planned : 0, 1);
    mlstage_http_response_free(resp);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(fx.ctx->plan), 3);
    TU_ASSERT_CONTAINS(json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 1)),
                       "<5 bytes>");
    TU_ASSERT_CONTAINS(json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 2)),
                       "DELETE http://127.0.0.1:");
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 0);
    char *log = fx_log(&fx);
    TU_ASSERT_CONTAINS(log, "planned (dry run): not sent");
    free(log);
    free(url);
    fx_done(&fx);
}

static void test_dry_run_still_sends_reads(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.ctx->dry_run = 1;
    httpd_push_response(fx.server, 200, NULL, "{\"value\":[]}");
    httpd_push_response(fx.server, 200, NULL, "{\"keys\":[]}");
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(send_req(&fx, "GET", "/models", &resp), 0);
    CU_ASSERT_EQUAL(resp ? resp->status : 0, 200);
    CU_ASSERT_EQUAL(resp ? resp->planned : 1, 0);
    mlstage_http_response_free(resp);
    /* A POST that only reads (listKeys) says so. */
    char *url = httpd_url(fx.server, "/endpoints/e/listKeys");
    struct mlstage_http_request req = {
        .method = "POST", .url = url, .mutating = MLSTAGE_HTTP_READ_ONLY};
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), 0);
    CU_ASSERT_EQUAL(resp ? resp->status : 0, 200);
    mlstage_http_response_free(resp);
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 2);
    CU_ASSERT_EQUAL(json_object_array_length(fx.ctx->plan), 0);
    free(url);
    fx_done(&fx);
}

/* ---- the request log ---------------------------------------------------- */

static void test_request_log_redacts_credentials_and_secrets(void)
{
    struct fixture fx;
    fx_init(&fx);
    log_configure(MLSTAGE_LOG_DEBUG, CI_NONE, 0);
    mask_add("hunter2-secret-value");
    httpd_push_response(fx.server, 200, NULL, "ok");
    httpd_push_response(fx.server, 200, NULL, "ok");
    const char *headers[] = {"Authorization: Bearer eyJ0eXAiOiJKV1Qi.payload.signature",
                             "x-ms-blob-key: blobkeyvalue123", "X-Custom: hunter2-secret-value",
                             "Content-Type: application/json", NULL};
    char *url = httpd_url(fx.server,
                          "/c/b?sv=2022-11-02&sig=abcSASsig%2B%3D&se=2030&k=hunter2-secret-value");
    struct mlstage_http_request req = {
        .method = "PUT", .url = url, .headers = headers, .body = "{}", .body_len = 2};
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), 0);
    mlstage_http_response_free(resp);
    /* At the default level the headers are not logged at all. */
    log_configure(MLSTAGE_LOG_INFO, CI_NONE, 0);
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), 0);
    mlstage_http_response_free(resp);

    /* The server got the real values: redaction is for the log only. */
    CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(fx.server, 0), "authorization"),
                           "Bearer eyJ0eXAiOiJKV1Qi.payload.signature");
    char *log = fx_log(&fx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    TU_ASSERT_NOT_CONTAINS(log, "eyJ0eXAiOiJKV1Qi");
    TU_ASSERT_NOT_CONTAINS(log, "blobkeyvalue123");
    TU_ASSERT_NOT_CONTAINS(log, "hunter2-secret-value");
    TU_ASSERT_NOT_CONTAINS(log, "abcSASsig");
    TU_ASSERT_CONTAINS(log, "sig=REDACTED");
    TU_ASSERT_CONTAINS(log, "sv=2022-11-02");
    TU_ASSERT_CONTAINS(log, "> Authorization: REDACTED");
    TU_ASSERT_CONTAINS(log, "> x-ms-blob-key: REDACTED");
    TU_ASSERT_CONTAINS(log, "> Content-Type: application/json");
    TU_ASSERT_CONTAINS(log, "> User-Agent: mlstage/");
    TU_ASSERT_CONTAINS(log, "PUT http://127.0.0.1:");
    TU_ASSERT_CONTAINS(log, "attempt 1/5 -> 200");
    CU_ASSERT_EQUAL(count_of(log, "attempt 1/5 -> 200"), 2);
    CU_ASSERT_EQUAL(count_of(log, "> Authorization"), 1);
    free(log);
    free(url);
    mask_reset();
    fx_done(&fx);
}

/*
 * A webhook URL is a credential as a whole (Teams Workflows, Slack): its path
 * alone lets anyone post. Registered as a secret, no part of it may reach the
 * request log, a plan or an error, although the query redaction changes it.
 */
static void test_a_url_registered_as_a_secret_is_masked_whole(void)
{
    struct fixture fx;
    fx_init(&fx);
    log_configure(MLSTAGE_LOG_DEBUG, CI_NONE, 0);
    char *url = httpd_url(fx.server, "/workflows/wf5ecretPath77/triggers/manual/paths/invoke"
                                     "?api-version=2016-06-01&sig=S1gValue99");
    mask_add(url);
    httpd_push_response(fx.server, 500, NULL, "broken");
    httpd_push_response(fx.server, 500, NULL, "broken");
    const char *body = "{\"type\":\"message\"}";
    struct mlstage_http_request req = {
        .method = "POST", .url = url, .body = body, .body_len = strlen(body), .max_attempts = 2};
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), MLSTAGE_EREMOTE);
    mlstage_http_response_free(resp);
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 2);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "gave up after 2 attempts");
    TU_ASSERT_NOT_CONTAINS(msg, "wf5ecretPath77");
    TU_ASSERT_NOT_CONTAINS(msg, "127.0.0.1");

    fx.ctx->dry_run = 1;
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), 0);
    mlstage_http_response_free(resp);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(fx.ctx->plan), 1);
    const char *plan = json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 0));
    TU_ASSERT_CONTAINS(plan, "POST ***");
    TU_ASSERT_NOT_CONTAINS(plan, "wf5ecretPath77");

    char *log = fx_log(&fx);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    TU_ASSERT_CONTAINS(log, "attempt 2/2 -> 500");
    TU_ASSERT_NOT_CONTAINS(log, "wf5ecretPath77");
    TU_ASSERT_NOT_CONTAINS(log, "S1gValue99");
    free(log);
    free(url);
    log_configure(MLSTAGE_LOG_INFO, CI_NONE, 0);
    mask_reset();
    fx_done(&fx);
}

/* ---- requests and responses on the wire -------------------------------- */

static void test_response_headers_are_found_case_insensitively(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *h[] = {"X-Ms-Request-Id: abc-123", "Azure-AsyncOperation: https://op.example/1",
                       "Retry-After: 10", NULL};
    httpd_push_response(fx.server, 202, h, NULL);
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(send_req(&fx, "PUT", "/lro", &resp), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 202);
    CU_ASSERT_STRING_EQUAL(mlstage_http_response_header(resp, "x-ms-request-id"), "abc-123");
    CU_ASSERT_STRING_EQUAL(mlstage_http_response_header(resp, "AZURE-ASYNCOPERATION"),
                           "https://op.example/1");
    CU_ASSERT_STRING_EQUAL(mlstage_http_response_header(resp, "retry-after"), "10");
    CU_ASSERT_PTR_NULL(mlstage_http_response_header(resp, "Location"));
    int kept_case = 0;
    for (size_t i = 0; i < resp->header_count; i++)
        if (strcmp(resp->headers[i].name, "X-Ms-Request-Id") == 0)
            kept_case = 1;
    CU_ASSERT_TRUE(kept_case);
    CU_ASSERT_STRING_EQUAL(resp->body, "");
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_bodies_and_methods_go_out_as_given(void)
{
    struct fixture fx;
    fx_init(&fx);
    for (int i = 0; i < 5; i++)
        httpd_push_response(fx.server, 200, NULL, "ok");
    char *url = httpd_url(fx.server, "/r");
    const char *json_ct[] = {"Content-Type: application/json", NULL};
    const char *body = "{\"name\":\"diabetes\",\"version\":\"3\"}";
    struct mlstage_http_request put = {
        .method = "PUT", .url = url, .headers = json_ct, .body = body, .body_len = strlen(body)};
    /* 2 MiB: large enough that curl asks "Expect: 100-continue" first. */
    size_t big_len = (size_t)2 << 20;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)('a' + i % 26);
    const char *octet[] = {"Content-Type: application/octet-stream", "x-ms-blob-type: BlockBlob",
                           NULL};
    struct mlstage_http_request block = {
        .method = "PUT", .url = url, .headers = octet, .body = big, .body_len = big_len};
    struct mlstage_http_request del = {.method = "DELETE", .url = url};
    struct mlstage_http_request post = {.method = "POST", .url = url};
    struct mlstage_http_request head = {.method = "HEAD", .url = url};
    struct mlstage_http_request *all[] = {&put, &block, &del, &post, &head};
    for (size_t i = 0; i < 5; i++) {
        struct mlstage_http_response *resp = NULL;
        CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, all[i], &resp), 0);
        CU_ASSERT_EQUAL(resp ? resp->status : 0, 200);
        mlstage_http_response_free(resp);
    }
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 5);
    const struct httpd_request *r = httpd_request(fx.server, 0);
    CU_ASSERT_STRING_EQUAL(r->method, "PUT");
    CU_ASSERT_STRING_EQUAL(r->body, body);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "Content-Type"), "application/json");
    r = httpd_request(fx.server, 1);
    CU_ASSERT_EQUAL(r->body_len, big_len);
    CU_ASSERT_TRUE(r->body_len == big_len && memcmp(r->body, big, big_len) == 0);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "x-ms-blob-type"), "BlockBlob");
    r = httpd_request(fx.server, 2);
    CU_ASSERT_STRING_EQUAL(r->method, "DELETE");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "Content-Length"), "0");
    CU_ASSERT_PTR_NULL(httpd_request_header(r, "Content-Type"));
    r = httpd_request(fx.server, 3);
    CU_ASSERT_STRING_EQUAL(r->method, "POST");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "Content-Length"), "0");
    CU_ASSERT_PTR_NULL(httpd_request_header(r, "Content-Type"));
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.server, 4)->method, "HEAD");
    free(big);
    free(url);
    fx_done(&fx);
}

static void test_user_agent_is_mlstage_unless_the_caller_sets_one(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_response(fx.server, 200, NULL, NULL);
    httpd_push_response(fx.server, 200, NULL, NULL);
    struct mlstage_http_response *resp = NULL;
    CU_ASSERT_EQUAL(send_req(&fx, "GET", "/ua", &resp), 0);
    mlstage_http_response_free(resp);
    char *url = httpd_url(fx.server, "/ua");
    const char *ua[] = {"User-Agent: my-tool/2.0", NULL};
    struct mlstage_http_request req = {.method = "GET", .url = url, .headers = ua};
    CU_ASSERT_EQUAL(mlstage_http_send(fx.ctx, &req, &resp), 0);
    mlstage_http_response_free(resp);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 2);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(fx.server, 0), "user-agent"),
                           "mlstage/" MLSTAGE_VERSION);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(fx.server, 1), "user-agent"),
                           "my-tool/2.0");
    free(url);
    fx_done(&fx);
}

static void test_a_thread_reuses_its_connection(void)
{
    struct fixture fx;
    fx_init(&fx);
    for (int i = 0; i < 3; i++)
        httpd_push_response(fx.server, 200, NULL, "ok");
    for (int i = 0; i < 3; i++) {
        struct mlstage_http_response *resp = NULL;
        CU_ASSERT_EQUAL(send_req(&fx, "GET", "/again", &resp), 0);
        mlstage_http_response_free(resp);
    }
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 3);
    CU_ASSERT_EQUAL(httpd_connection_count(fx.server), 1);
    fx_done(&fx);
}

static void test_response_bodies_over_64_mib_are_refused(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* Chunked, so only the running count can catch it, not Content-Length. */
    size_t len = HTTP_MAX_BODY + 1;
    char *big = malloc(len);
    memset(big, 'x', len);
    struct httpd_reply *r = httpd_reply_new(200);
    httpd_reply_body(r, big, len);
    httpd_reply_chunked(r);
    httpd_push_reply(fx.server, r);
    free(big);
    /* Declared too large up front. */
    const char *lie[] = {"Content-Length: 999999999999", NULL};
    httpd_push_response(fx.server, 200, lie, NULL);
    for (int i = 0; i < 2; i++) {
        struct mlstage_http_response *resp = NULL;
        int rc = send_req(&fx, "GET", "/huge", &resp);
        CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
        CU_ASSERT_EQUAL(resp ? resp->attempts : 0, 1);
        CU_ASSERT_EQUAL(resp ? resp->body_len : 1, 0);
        TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "exceeds the 64 MiB limit");
        mlstage_http_response_free(resp);
    }
    CU_ASSERT_EQUAL(httpd_request_count(fx.server), 2);
    fx_done(&fx);
}

static void test_head_of_a_large_blob_reports_its_size(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* HEAD answers carry the size of a body that never comes: the 64 MiB cap must not apply. */
    const char *props[] = {"Content-Length: 1073741824", "x-ms-blob-type: BlockBlob", NULL};
    httpd_push_response(fx.server, 200, props, NULL);
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "HEAD", "/models/big.onnx", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    CU_ASSERT_STRING_EQUAL(mlstage_http_response_header(resp, "content-length"), "1073741824");
    CU_ASSERT_EQUAL(resp->body_len, 0);
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

static void test_compressed_bodies_come_back_as_sent(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* Not valid gzip on purpose: a client that tried to decode it would fail or alter it. */
    const char *gz[] = {"Content-Encoding: gzip", "Content-Type: application/octet-stream", NULL};
    httpd_push_response(fx.server, 200, gz, "raw-bytes-not-gzip");
    struct mlstage_http_response *resp = NULL;
    int rc = send_req(&fx, "GET", "/blob.gz", &resp);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_STRING_EQUAL(resp->body, "raw-bytes-not-gzip");
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.server), 1);
    CU_ASSERT_PTR_NULL(httpd_request_header(httpd_request(fx.server, 0), "Accept-Encoding"));
    mlstage_http_response_free(resp);
    fx_done(&fx);
}

/* ---- threads ------------------------------------------------------------ */

static void echo_path(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    (void)user;
    httpd_reply_header(reply, "Content-Type", "text/plain");
    httpd_reply_bodyf(reply, "%s", req->path);
}

#define THREADS    8
#define PER_THREAD 10

struct worker {
    struct mlstage_ctx *ctx;
    struct httpd *server;
    int index;
    int ok;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/block/%d/%d", w->index, i);
        char *url = httpd_url(w->server, path);
        struct mlstage_http_request req = {
            .method = "PUT", .url = url, .body = path, .body_len = strlen(path)};
        struct mlstage_http_response *resp = NULL;
        int rc = mlstage_http_send(w->ctx, &req, &resp);
        if (rc == 0 && resp && resp->status == 200 && strcmp(resp->body, path) == 0)
            w->ok++;
        mlstage_http_response_free(resp);
        free(url);
    }
    return NULL;
}

static void test_eight_threads_send_concurrently(void)
{
    struct mlstage_ctx *ctx = ctx_new();
    char *dir = tu_tmpdir();
    ctx->run_dir = xstrdup(dir);
    struct httpd *server = httpd_start_handler(echo_path, NULL);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.ctx = ctx, .server = server, .index = i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].ok, PER_THREAD);
    }
    CU_ASSERT_EQUAL(httpd_request_count(server), THREADS * PER_THREAD);
    char *path = tu_fmt("%s/http.log", dir);
    char *log = tu_read(path, NULL);
    CU_ASSERT_EQUAL(count_of(log, "attempt 1/5 -> 200"), THREADS * PER_THREAD);
    free(log);
    free(path);
    httpd_stop(server);
    ctx_free(ctx);
    tu_rm_rf(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"503 then 200 takes two attempts", test_503_then_200_takes_two_attempts},
        {"429 with Retry-After seconds waits that long",
         test_429_with_retry_after_seconds_waits_that_long},
        {"Retry-After as an HTTP date is honoured", test_retry_after_as_http_date_is_honoured},
        {"retry-after-ms headers take precedence", test_retry_after_ms_headers_take_precedence},
        {"Retry-After beyond the deadline fails promptly",
         test_retry_after_beyond_the_deadline_fails_promptly},
        {"five 500s exhaust max_attempts with EREMOTE",
         test_five_500s_exhaust_max_attempts_with_eremote},
        {"a dropped connection is retried", test_dropped_connection_is_retried},
        {"a refused connection is retried, then reported",
         test_refused_connection_is_retried_then_reported},
        {"a slow server times out each attempt", test_slow_server_times_out_each_attempt},
        {"404 is final and not retried", test_404_is_final_and_not_retried},
        {"501 and 505 are not retried but 408 is", test_501_and_505_are_not_retried_but_408_is},
        {"redirects are returned, not followed", test_redirects_are_returned_not_followed},
        {"backoff has full jitter within bounds", test_backoff_has_full_jitter_within_bounds},
        {"jitter differs between threads", test_jitter_differs_between_threads},
        {"Retry-After parses seconds, dates and milliseconds",
         test_retry_after_parses_seconds_dates_and_milliseconds},
        {"plain http to a non-loopback host is refused offline",
         test_plain_http_to_a_non_loopback_host_is_refused_offline},
        {"loopback hosts are recognised exactly", test_loopback_hosts_are_recognised_exactly},
        {"plain http to the metadata address only is allowed",
         test_plain_http_to_the_metadata_address_only_is_allowed},
        {"a short connect timeout reaches a live server",
         test_a_short_connect_timeout_reaches_a_live_server},
        {"malformed requests are input errors and not sent",
         test_malformed_requests_are_input_errors_and_not_sent},
        {"redact_url hides SAS and OAuth values", test_redact_url_hides_sas_and_oauth_values},
        {"credential headers are classified sensitive",
         test_credential_headers_are_classified_sensitive},
        {"url_encode keeps only unreserved characters", test_url_encode_keeps_only_unreserved},
        {"dry run plans a PUT without sending it", test_dry_run_plans_a_put_without_sending_it},
        {"dry run still sends reads", test_dry_run_still_sends_reads},
        {"the request log redacts credentials and secrets",
         test_request_log_redacts_credentials_and_secrets},
        {"a URL registered as a secret is masked whole",
         test_a_url_registered_as_a_secret_is_masked_whole},
        {"response headers are found case-insensitively",
         test_response_headers_are_found_case_insensitively},
        {"bodies and methods go out as given", test_bodies_and_methods_go_out_as_given},
        {"User-Agent is mlstage unless the caller sets one",
         test_user_agent_is_mlstage_unless_the_caller_sets_one},
        {"a thread reuses its connection", test_a_thread_reuses_its_connection},
        {"response bodies over 64 MiB are refused", test_response_bodies_over_64_mib_are_refused},
        {"HEAD of a large blob reports its size", test_head_of_a_large_blob_reports_its_size},
        {"compressed bodies come back as sent", test_compressed_bodies_come_back_as_sent},
        {"eight threads send concurrently", test_eight_threads_send_concurrently},
        {NULL, NULL},
    };
    return tu_main(argc, argv, "http", tests);
}
