/* http_internal.h — the pure parts of http.c (backoff, Retry-After, redaction) for tests. */
#ifndef MLSTAGE_HTTP_INTERNAL_H
#define MLSTAGE_HTTP_INTERNAL_H

#include <stddef.h>

#include <mlstage/http.h>

#define HTTP_BACKOFF_BASE_S    0.5
#define HTTP_BACKOFF_CAP_S     30.0
#define HTTP_DEFAULT_ATTEMPTS  5
#define HTTP_DEFAULT_TIMEOUT_S 60.0
#define HTTP_DEFAULT_DEADLINE  300.0
#define HTTP_CONNECT_TIMEOUT_S 10.0
/* Azure's instance metadata service (IMDS): link-local, plain http by design. */
#define HTTP_METADATA_HOST "169.254.169.254"
#define HTTP_MAX_BODY      ((size_t)64 << 20)
/* Dry-run plans show JSON bodies up to this size in full, larger ones as "<N bytes>". */
#define HTTP_PLAN_BODY_MAX 8192

/*
 * The wait before retry number `retry` (0 for the wait after the first
 * attempt) with full jitter: u · min(cap, base · 2^retry), for u in [0, 1).
 */
double http_backoff_s(int retry, double u);

/* A uniform random number in [0, 1) from a per-thread generator; thread-safe. */
double http_rand01(void);

/*
 * The wait a response asks for, in seconds, or -1 when it asks for none:
 * retry-after-ms, then x-ms-retry-after-ms (milliseconds), then
 * Retry-After as delta-seconds or an HTTP-date (compared with `now_epoch`;
 * a date in the past gives 0). Unparseable values are ignored.
 */
double http_retry_after_s(const struct mlstage_http_header *headers, size_t count,
                          double now_epoch);

/* Non-zero for the statuses worth another attempt: 408, 429, 5xx except 501 and 505. */
int http_status_retryable(long status);

/*
 * A copy of `url` fit for logs: the values of the query parameters sig,
 * code, client_secret, access_token and token, and any password in the
 * user-info, replaced by REDACTED. The caller frees. Never NULL.
 */
char *http_redact_url(const char *url);

/* Non-zero for a header whose value must never be logged (Authorization, keys, cookies). */
int http_header_sensitive(const char *name, size_t name_len);

/*
 * Non-zero when `host` (as curl_url_get returns it: IPv6 in brackets) is
 * loopback: 127.0.0.0/8, ::1, ::ffff:127.x.y.z or "localhost".
 */
int http_host_is_loopback(const char *host);

/*
 * Non-zero for the instance metadata address 169.254.169.254: plain http
 * is allowed there too (it is link-local, never routed), without a proxy.
 */
int http_host_is_metadata(const char *host);

/*
 * mlstage_http_send with its own connect timeout (0: the default 10 s),
 * for probing an endpoint that may not exist at all (IMDS off Azure,
 * where the connection attempt would otherwise hang for the full 10 s).
 */
int http_send_connect(struct mlstage_ctx *ctx, const struct mlstage_http_request *req,
                      double connect_timeout_s, struct mlstage_http_response **out);

#endif
