/* http.h — the HTTP client on libcurl: retries with backoff, Retry-After, redacted log, dry-run
 * plans. */
#ifndef MLSTAGE_HTTP_H
#define MLSTAGE_HTTP_H

#include <stddef.h>

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;

struct mlstage_http_request {
    const char *method;         /* "GET", "PUT", "POST", "DELETE", "PATCH", "HEAD" */
    const char *url;            /* https://, or http:// to a loopback host only */
    const char *const *headers; /* NULL-terminated "Name: value" list, or NULL */
    const void *body;           /* NULL for none */
    size_t body_len;
    int max_attempts;  /* 0: 5 */
    double timeout_s;  /* per attempt; 0: 60 s */
    double deadline_s; /* all attempts and waits together; 0: 300 s */
    /*
     * Whether the request changes anything, which decides if a dry run sends
     * it: 0 (the default) decides by method — everything but GET and HEAD
     * mutates; MLSTAGE_HTTP_MUTATING forces it; MLSTAGE_HTTP_READ_ONLY marks
     * a POST that only reads (listKeys, what-if, getLogs) so a dry run sends it.
     */
    int mutating;
};

#define MLSTAGE_HTTP_MUTATING  1
#define MLSTAGE_HTTP_READ_ONLY (-1)

struct mlstage_http_header {
    char *name;
    char *value;
};

struct mlstage_http_response {
    long status; /* 0 when planned (dry run) or no answer */
    char *body;  /* NUL-terminated; owned */
    size_t body_len;
    struct mlstage_http_header *headers; /* of the final attempt; owned */
    size_t header_count;
    int attempts;
    int planned; /* dry run: printed, not sent */
    double elapsed_s;
};

/*
 * Sends a request, retrying on connection errors, 408, 429 and 5xx with
 * exponential backoff and full jitter (or the server's Retry-After, in
 * seconds or as an HTTP date), within max_attempts and deadline_s. TLS is
 * always verified. Every attempt is logged to the run's http.log with
 * Authorization, SAS signatures and every secret redacted.
 *
 * Returns 0 with *out set when the server gave a final answer of any
 * status (the caller checks it); MLSTAGE_EREMOTE when attempts or the
 * deadline ran out (*out holds the last answer if there was one);
 * MLSTAGE_EINPUT for a URL that is malformed or plain http to a
 * non-loopback host. The detail is in the error slot. The caller frees
 * *out with mlstage_http_response_free. Thread-safe.
 */
MLSTAGE_API int mlstage_http_send(struct mlstage_ctx *ctx, const struct mlstage_http_request *req,
                                  struct mlstage_http_response **out);

/* A response header by case-insensitive name, or NULL. Borrowed. */
MLSTAGE_API const char *mlstage_http_response_header(const struct mlstage_http_response *resp,
                                                     const char *name);

MLSTAGE_API void mlstage_http_response_free(struct mlstage_http_response *resp);

/* Percent-encodes `in` for a URL query or form value; the caller frees. */
MLSTAGE_API char *mlstage_url_encode(const char *in);

#ifdef __cplusplus
}
#endif
#endif
