/* smoke.c — the smoke-test file a deployment must pass: loading, checking its form, running it. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smoke.h"

/* Bytes of an answer quoted when a request fails: enough to read an error message. */
#define EXCERPT_MAX       300
#define REQUEST_TIMEOUT_S 30.0
#define WHY_MAX           1024
#define JSON_FLAGS        (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const top_keys[] = {"description", "requests", "$schema", "$comment", NULL};
static const char *const request_keys[] = {"name",    "description", "method", "path",
                                           "headers", "body",        "expect", NULL};
static const char *const expect_keys[] = {"status", "json", "checks", NULL};
static const char *const check_keys[] = {"path",      "length",   "min",    "max", "approx",
                                         "tolerance", "contains", "equals", NULL};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};

/* ---- small helpers ------------------------------------------------------ */

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int has(json_object *o, const char *key)
{
    return o && json_object_object_get_ex(o, key, NULL);
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static int in_list(const char *s, const char *const *list)
{
    for (const char *const *p = list; *p; p++)
        if (strcmp(*p, s) == 0)
            return 1;
    return 0;
}

void smoke_excerpt(const char *text, size_t len, char *out, size_t cap)
{
    size_t limit = cap - 4 < EXCERPT_MAX ? cap - 4 : EXCERPT_MAX;
    size_t n = len < limit ? len : limit;
    int cut = len > n;
    /* Not in the middle of a UTF-8 sequence. */
    while (cut && n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
        n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)text[i];
        out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    if (cut)
        strcat(out, "...");
}

static void value_text(json_object *v, char *out, size_t cap)
{
    const char *s = v ? json_object_to_json_string_ext(v, JSON_FLAGS) : "null";
    smoke_excerpt(s, strlen(s), out, cap);
}

/* Appends to a "; "-separated list of reasons. */
static void why_add(char *why, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
static void why_add(char *why, const char *fmt, ...)
{
    size_t used = strlen(why);
    va_list ap;
    if (used >= WHY_MAX - 8)
        return;
    if (used)
        used += (size_t)snprintf(why + used, WHY_MAX - used, "; ");
    va_start(ap, fmt);
    vsnprintf(why + used, WHY_MAX - used, fmt, ap);
    va_end(ap);
}

/* Numbers compare by value (1 == 1.0), everything else by type and content. */
static int json_same(json_object *a, json_object *b)
{
    if (!a || !b)
        return a == b;
    if (is_number(a) && is_number(b))
        return json_object_get_double(a) == json_object_get_double(b);
    if (json_object_get_type(a) != json_object_get_type(b))
        return 0;
    switch (json_object_get_type(a)) {
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b))
            return 0;
        json_object_object_foreach(a, key, va)
        {
            json_object *vb = NULL;
            if (!json_object_object_get_ex(b, key, &vb) || !json_same(va, vb))
                return 0;
        }
        return 1;
    }
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b))
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!json_same(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                return 0;
        return 1;
    }
    case json_type_string:
        return json_object_get_string_len(a) == json_object_get_string_len(b) &&
               memcmp(json_object_get_string(a), json_object_get_string(b),
                      (size_t)json_object_get_string_len(a)) == 0;
    case json_type_boolean: return json_object_get_boolean(a) == json_object_get_boolean(b);
    default: return 0;
    }
}

/* ---- check paths: a.b[0].c -------------------------------------------- */

struct step {
    char key[256];
    size_t index;
    int is_index;
};

static const char *path_start(const char *path)
{
    if (path[0] == '$')
        return path + (path[1] == '.' ? 2 : 1);
    return path;
}

/* The next step of a path: 1 with *s filled, 0 at the end, -1 on a syntax error. */
static int next_step(const char **p, struct step *s)
{
    const char *c = *p;
    if (*c == '\0')
        return 0;
    if (*c == '[') {
        char *end;
        if (!isdigit((unsigned char)c[1]))
            return -1;
        s->index = (size_t)strtoul(c + 1, &end, 10);
        if (*end != ']')
            return -1;
        s->is_index = 1;
        c = end + 1;
    } else {
        size_t n = strcspn(c, ".[]");
        if (n == 0 || n >= sizeof(s->key))
            return -1;
        memcpy(s->key, c, n);
        s->key[n] = '\0';
        s->is_index = 0;
        c += n;
        if (*c == ']')
            return -1;
    }
    if (*c == '.') {
        c++;
        if (*c == '\0' || *c == '.' || *c == '[')
            return -1;
    }
    *p = c;
    return 1;
}

static int path_valid(const char *path)
{
    const char *p = path_start(path);
    struct step s;
    int r;
    while ((r = next_step(&p, &s)) == 1)
        ;
    return r == 0;
}

/* The value at `path`; *found is 0 (and `why` says where it stopped) when it is not there. */
static json_object *resolve(json_object *root, const char *path, int *found, char *why, size_t cap)
{
    const char *p = path_start(path);
    json_object *cur = root;
    struct step s;
    char walked[512] = "";
    size_t wl = 0;
    *found = 0;
    while (next_step(&p, &s) == 1) {
        const char *here = wl ? walked : "the answer";
        if (s.is_index) {
            if (!json_object_is_type(cur, json_type_array)) {
                snprintf(why, cap, "%s: %s is not a list", path, here);
                return NULL;
            }
            size_t len = json_object_array_length(cur);
            if (s.index >= len) {
                snprintf(why, cap, "%s: %s has %zu element%s", path, here, len,
                         len == 1 ? "" : "s");
                return NULL;
            }
            cur = json_object_array_get_idx(cur, s.index);
            wl += (size_t)snprintf(walked + wl, sizeof(walked) - wl, "[%zu]", s.index);
        } else {
            json_object *next = NULL;
            if (!json_object_is_type(cur, json_type_object)) {
                snprintf(why, cap, "%s: %s is not an object", path, here);
                return NULL;
            }
            if (!json_object_object_get_ex(cur, s.key, &next)) {
                snprintf(why, cap, "%s: %s has no key \"%s\"", path, here, s.key);
                return NULL;
            }
            cur = next;
            wl += (size_t)snprintf(walked + wl, sizeof(walked) - wl, "%s%s", wl ? "." : "", s.key);
        }
        if (wl >= sizeof(walked))
            wl = sizeof(walked) - 1;
    }
    *found = 1;
    return cur;
}

/* ---- loading ------------------------------------------------------------ */

static int only_keys(struct mlstage_ctx *ctx, const char *file, const char *where, json_object *o,
                     const char *const *allowed)
{
    json_object_object_foreach(o, key, val)
    {
        (void)val;
        if (in_list(key, allowed))
            continue;
        char list[256] = "";
        size_t used = 0;
        for (const char *const *a = allowed; *a && used < sizeof(list); a++)
            if ((*a)[0] != '$')
                used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "",
                                         *a);
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s: %s: unknown key \"%s\" (expected %s)",
                                 file, where, key, list);
    }
    return 0;
}

static int bad(struct mlstage_ctx *ctx, const char *file, const char *where, const char *what)
{
    return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s: %s: %s", file, where, what);
}

static int valid_status(json_object *v)
{
    return json_object_is_type(v, json_type_int) && json_object_get_int64(v) >= 100 &&
           json_object_get_int64(v) <= 599;
}

static int load_check(struct mlstage_ctx *ctx, const char *file, const char *where,
                      json_object *check)
{
    int rc, assertions = 0;
    if (!json_object_is_type(check, json_type_object))
        return bad(ctx, file, where, "expected an object with \"path\" and what to check");
    if ((rc = only_keys(ctx, file, where, check, check_keys)) != 0)
        return rc;
    json_object *path = get(check, "path"), *v;
    if (!json_object_is_type(path, json_type_string) || !path_valid(json_object_get_string(path)))
        return bad(ctx, file, where,
                   "\"path\" must be a string like predictions[0] or a.b[2].c (\"\" for the "
                   "whole answer)");
    if ((v = get(check, "length")) || has(check, "length")) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
            return bad(ctx, file, where, "\"length\" must be a non-negative integer");
        assertions++;
    }
    static const char *const numeric[] = {"min", "max", "approx", "tolerance"};
    for (size_t i = 0; i < 4; i++) {
        if (!has(check, numeric[i]))
            continue;
        if (!is_number(get(check, numeric[i]))) {
            char what[64];
            snprintf(what, sizeof(what), "\"%s\" must be a number", numeric[i]);
            return bad(ctx, file, where, what);
        }
        assertions += i < 3;
    }
    if (has(check, "tolerance") && !has(check, "approx"))
        return bad(ctx, file, where, "\"tolerance\" goes with \"approx\"");
    if (has(check, "tolerance") && json_object_get_double(get(check, "tolerance")) < 0)
        return bad(ctx, file, where, "\"tolerance\" must not be negative");
    assertions += has(check, "contains") + has(check, "equals");
    if (assertions == 0)
        return bad(ctx, file, where,
                   "nothing to check: give length, min, max, approx, contains or equals");
    return 0;
}

static int load_expect(struct mlstage_ctx *ctx, const char *file, const char *where,
                       json_object *expect)
{
    char sub[128];
    int rc;
    if (!json_object_is_type(expect, json_type_object))
        return bad(ctx, file, where, "expected an object (status, json, checks)");
    if ((rc = only_keys(ctx, file, where, expect, expect_keys)) != 0)
        return rc;
    json_object *status = get(expect, "status"), *checks = get(expect, "checks");
    if (has(expect, "status")) {
        int ok = valid_status(status);
        if (json_object_is_type(status, json_type_array)) {
            size_t n = json_object_array_length(status);
            ok = n > 0;
            for (size_t i = 0; i < n; i++)
                ok &= valid_status(json_object_array_get_idx(status, i));
        }
        if (!ok)
            return bad(ctx, file, where, "\"status\" must be an HTTP status or a list of them");
    }
    if (has(expect, "checks")) {
        if (!json_object_is_type(checks, json_type_array))
            return bad(ctx, file, where, "\"checks\" must be a list");
        for (size_t i = 0; i < json_object_array_length(checks); i++) {
            snprintf(sub, sizeof(sub), "%s.checks[%zu]", where, i);
            if ((rc = load_check(ctx, file, sub, json_object_array_get_idx(checks, i))) != 0)
                return rc;
        }
    }
    return 0;
}

static int load_request(struct mlstage_ctx *ctx, const char *file, size_t i, json_object *r)
{
    char where[64], sub[96];
    int rc;
    snprintf(where, sizeof(where), "requests[%zu]", i);
    if (!json_object_is_type(r, json_type_object))
        return bad(ctx, file, where, "expected an object with at least \"path\"");
    if ((rc = only_keys(ctx, file, where, r, request_keys)) != 0)
        return rc;
    json_object *name = get(r, "name"), *method = get(r, "method"), *path = get(r, "path");
    json_object *headers = get(r, "headers");
    if (has(r, "name") && !json_object_is_type(name, json_type_string))
        return bad(ctx, file, where, "\"name\" must be a string");
    if (has(r, "method") && (!json_object_is_type(method, json_type_string) ||
                             !in_list(json_object_get_string(method), methods)))
        return bad(ctx, file, where, "\"method\" must be GET, HEAD, POST, PUT, PATCH or DELETE");
    if (!json_object_is_type(path, json_type_string) || json_object_get_string(path)[0] != '/' ||
        strpbrk(json_object_get_string(path), " \r\n"))
        return bad(ctx, file, where, "\"path\" must be a URL path starting with \"/\"");
    if (has(r, "headers")) {
        if (!json_object_is_type(headers, json_type_object))
            return bad(ctx, file, where, "\"headers\" must map names to strings");
        json_object_object_foreach(headers, hname, hval)
        {
            if (!json_object_is_type(hval, json_type_string) || strpbrk(hname, ":\r\n ") ||
                strpbrk(json_object_get_string(hval), "\r\n"))
                return bad(ctx, file, where, "\"headers\" must map names to single-line strings");
        }
    }
    if (has(r, "expect")) {
        snprintf(sub, sizeof(sub), "%s.expect", where);
        return load_expect(ctx, file, sub, get(r, "expect"));
    }
    return 0;
}

int smoke_load(struct mlstage_ctx *ctx, const char *path, json_object **suite)
{
    json_object *doc = NULL, *requests;
    int rc = mlstage_json_read(path, &doc);
    *suite = NULL;
    if (rc == MLSTAGE_ENOTFOUND)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "sample_requests: %s does not exist", path);
    if (rc == MLSTAGE_EINPUT)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "sample_requests: %s is not valid JSON",
                                 path);
    if (rc)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "sample_requests: cannot read %s", path);
    if (!json_object_is_type(doc, json_type_object)) {
        rc = bad(ctx, path, "the file", "expected an object with \"requests\"");
        goto done;
    }
    if ((rc = only_keys(ctx, path, "the file", doc, top_keys)) != 0)
        goto done;
    requests = get(doc, "requests");
    if (!json_object_is_type(requests, json_type_array) ||
        json_object_array_length(requests) == 0) {
        rc = bad(ctx, path, "\"requests\"", "expected a non-empty list of requests");
        goto done;
    }
    for (size_t i = 0; i < json_object_array_length(requests) && rc == 0; i++)
        rc = load_request(ctx, path, i, json_object_array_get_idx(requests, i));
done:
    if (rc == 0)
        *suite = doc;
    else
        json_object_put(doc);
    return rc;
}

size_t smoke_count(json_object *suite)
{
    json_object *requests = get(suite, "requests");
    return requests ? json_object_array_length(requests) : 0;
}

/* ---- running ------------------------------------------------------------ */

static void check_length(json_object *v, const char *name, json_object *want, char *why)
{
    size_t n;
    if (json_object_is_type(v, json_type_array))
        n = json_object_array_length(v);
    else if (json_object_is_type(v, json_type_string))
        n = (size_t)json_object_get_string_len(v);
    else if (json_object_is_type(v, json_type_object))
        n = (size_t)json_object_object_length(v);
    else {
        char vt[96];
        value_text(v, vt, sizeof(vt));
        why_add(why, "%s = %s has no length", name, vt);
        return;
    }
    if ((int64_t)n != json_object_get_int64(want))
        why_add(why, "%s has length %zu, expected %lld", name, n,
                (long long)json_object_get_int64(want));
}

/* The number at v, or a reason in `why` when it is not one. */
static int number_at(json_object *v, const char *name, double *d, char *why)
{
    if (!is_number(v)) {
        char vt[96];
        value_text(v, vt, sizeof(vt));
        why_add(why, "%s = %s is not a number", name, vt);
        return 0;
    }
    *d = json_object_get_double(v);
    return 1;
}

static void run_check(json_object *doc, json_object *check, char *why)
{
    const char *path = json_object_get_string(get(check, "path"));
    const char *name = *path_start(path) ? path : "the answer";
    char where[512], vt[96], wt[96];
    int found;
    double d;
    json_object *v = resolve(doc, path, &found, where, sizeof(where)), *c;
    if (!found) {
        why_add(why, "%s", where);
        return;
    }
    if (has(check, "length"))
        check_length(v, name, get(check, "length"), why);
    if ((c = get(check, "min")) && number_at(v, name, &d, why) && d < json_object_get_double(c))
        why_add(why, "%s = %g, expected at least %g", name, d, json_object_get_double(c));
    if ((c = get(check, "max")) && number_at(v, name, &d, why) && d > json_object_get_double(c))
        why_add(why, "%s = %g, expected at most %g", name, d, json_object_get_double(c));
    if ((c = get(check, "approx")) && number_at(v, name, &d, why)) {
        double want = json_object_get_double(c);
        double tol = has(check, "tolerance") ? json_object_get_double(get(check, "tolerance"))
                                             : 1e-9 * fmax(1.0, fabs(want));
        if (!(fabs(d - want) <= tol))
            why_add(why, "%s = %g, expected %g ± %g", name, d, want, tol);
    }
    if (has(check, "contains")) {
        c = get(check, "contains");
        int ok = 0;
        if (json_object_is_type(v, json_type_string) && json_object_is_type(c, json_type_string))
            ok = strstr(json_object_get_string(v), json_object_get_string(c)) != NULL;
        else if (json_object_is_type(v, json_type_array))
            for (size_t i = 0; i < json_object_array_length(v) && !ok; i++)
                ok = json_same(json_object_array_get_idx(v, i), c);
        if (!ok) {
            value_text(v, vt, sizeof(vt));
            value_text(c, wt, sizeof(wt));
            why_add(why, "%s = %s does not contain %s", name, vt, wt);
        }
    }
    if (has(check, "equals") && !json_same(v, get(check, "equals"))) {
        value_text(v, vt, sizeof(vt));
        value_text(get(check, "equals"), wt, sizeof(wt));
        why_add(why, "%s = %s, expected %s", name, vt, wt);
    }
}

/* Whether `got` holds everything `want` does; the first difference goes into `why`. */
static int json_subset(json_object *want, json_object *got, const char *where, char *why)
{
    char sub[512], wt[96], gt[96];
    if (json_object_is_type(want, json_type_object)) {
        if (!json_object_is_type(got, json_type_object)) {
            value_text(got, gt, sizeof(gt));
            why_add(why, "%s: expected an object, got %s", where, gt);
            return 0;
        }
        json_object_object_foreach(want, key, wv)
        {
            json_object *gv = NULL;
            snprintf(sub, sizeof(sub), "%s.%s", where, key);
            if (!json_object_object_get_ex(got, key, &gv)) {
                why_add(why, "%s: missing", sub);
                return 0;
            }
            if (!json_subset(wv, gv, sub, why))
                return 0;
        }
        return 1;
    }
    if (json_object_is_type(want, json_type_array)) {
        size_t n = json_object_array_length(want);
        if (!json_object_is_type(got, json_type_array) || json_object_array_length(got) != n) {
            value_text(got, gt, sizeof(gt));
            why_add(why, "%s: expected a list of %zu, got %s", where, n, gt);
            return 0;
        }
        for (size_t i = 0; i < n; i++) {
            snprintf(sub, sizeof(sub), "%s[%zu]", where, i);
            if (!json_subset(json_object_array_get_idx(want, i), json_object_array_get_idx(got, i),
                             sub, why))
                return 0;
        }
        return 1;
    }
    if (json_same(want, got))
        return 1;
    value_text(want, wt, sizeof(wt));
    value_text(got, gt, sizeof(gt));
    why_add(why, "%s: expected %s, got %s", where, wt, gt);
    return 0;
}

static int status_expected(json_object *expect, long status)
{
    json_object *want = get(expect, "status");
    if (!has(expect, "status"))
        return status >= 200 && status < 300;
    if (json_object_is_type(want, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(want); i++)
            if (json_object_get_int64(json_object_array_get_idx(want, i)) == status)
                return 1;
        return 0;
    }
    return json_object_get_int64(want) == status;
}

/*
 * Checks one answer, whose status counts as `status`, against `expect`;
 * the reasons it fails go into `why`.
 */
static void judge(json_object *expect, const struct mlstage_http_response *resp, long status,
                  char *why)
{
    json_object *checks = get(expect, "checks"), *doc = NULL;
    if (!status_expected(expect, status)) {
        char want[64];
        if (has(expect, "status"))
            value_text(get(expect, "status"), want, sizeof(want));
        else
            snprintf(want, sizeof(want), "2xx");
        why_add(why, "expected status %s, got %ld", want, status);
        return; /* the shape of a wrong answer says nothing more */
    }
    if (!has(expect, "json") && !checks)
        return;
    json_tokener *tok = json_tokener_new();
    if (tok) {
        doc = json_tokener_parse_ex(tok, resp->body, (int)resp->body_len);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(doc);
            doc = NULL;
        }
        json_tokener_free(tok);
    }
    if (!doc && !(resp->body_len == 4 && memcmp(resp->body, "null", 4) == 0)) {
        why_add(why, "the answer is not JSON");
        return;
    }
    if (has(expect, "json"))
        json_subset(get(expect, "json"), doc, "json", why);
    for (size_t i = 0; checks && i < json_object_array_length(checks); i++)
        run_check(doc, json_object_array_get_idx(checks, i), why);
    json_object_put(doc);
}

/*
 * The status an answer counts as: the model's own when a gateway wrapped
 * it and said so in `status_header`, else the answer's.
 */
static long answer_status(const struct mlstage_http_response *resp, const char *status_header)
{
    const char *v = status_header ? mlstage_http_response_header(resp, status_header) : NULL;
    char *end = NULL;
    long model = v ? strtol(v, &end, 10) : 0;
    return v && end != v && *end == '\0' && model >= 100 && model <= 599 ? model : resp->status;
}

/*
 * Sends request `r` to `url`; 1 when it passed. Logs the outcome; a failure
 * also goes into `first`.
 */
static int run_one(struct mlstage_ctx *ctx, json_object *r, size_t i, size_t n, const char *url,
                   const char *status_header, const char *const *extra, char *first,
                   size_t first_cap)
{
    json_object *body = get(r, "body"), *headers = get(r, "headers"), *expect = get(r, "expect");
    const char *path = json_object_get_string(get(r, "path"));
    const char *method = has(r, "method") ? json_object_get_string(get(r, "method"))
                         : has(r, "body") ? "POST"
                                          : "GET";
    char name[128], why[WHY_MAX] = "", answer[EXCERPT_MAX + 8] = "";
    const char *hdrs[64];
    char *owned[64];
    size_t nh = 0, no = 0;
    int user_ctype = 0, passed;
    struct mlstage_http_response *resp = NULL;

    if (has(r, "name"))
        snprintf(name, sizeof(name), "%s", json_object_get_string(get(r, "name")));
    else
        snprintf(name, sizeof(name), "request %zu", i + 1);
    if (headers) {
        json_object_object_foreach(headers, hname, hval)
        {
            if (nh >= 48)
                break;
            char *line = NULL;
            if (asprintf(&line, "%s: %s", hname, json_object_get_string(hval)) < 0)
                continue;
            owned[no++] = line;
            hdrs[nh++] = line;
            user_ctype |= strcasecmp(hname, "Content-Type") == 0;
        }
    }
    const char *payload = NULL;
    size_t payload_len = 0;
    if (has(r, "body")) {
        if (json_object_is_type(body, json_type_string)) {
            payload = json_object_get_string(body);
            payload_len = (size_t)json_object_get_string_len(body);
        } else {
            payload = body ? json_object_to_json_string_ext(body, JSON_FLAGS) : "null";
            payload_len = strlen(payload);
            if (!user_ctype)
                hdrs[nh++] = "Content-Type: application/json";
        }
    }
    for (const char *const *h = extra; h && *h && nh < 63; h++)
        hdrs[nh++] = *h;
    hdrs[nh] = NULL;

    struct mlstage_http_request req = {
        .method = method,
        .url = url,
        .headers = hdrs,
        .body = payload,
        .body_len = payload_len,
        /* One attempt: a smoke test reports what a client would have seen first. */
        .max_attempts = 1,
        .timeout_s = REQUEST_TIMEOUT_S,
        .deadline_s = REQUEST_TIMEOUT_S,
        .mutating = MLSTAGE_HTTP_READ_ONLY,
    };
    mlstage_http_send(ctx, &req, &resp);
    long status = resp ? answer_status(resp, status_header) : 0;
    char model[48] = "";
    if (resp && status != resp->status)
        snprintf(model, sizeof(model), " (the model's %ld)", status);
    if (!resp || resp->status == 0) {
        why_add(why, "no answer: %s", mlstage_error_message(ctx));
    } else {
        judge(expect, resp, status, why);
        smoke_excerpt(resp->body, resp->body_len, answer, sizeof(answer));
    }
    passed = why[0] == '\0';
    if (passed) {
        mlstage_info(ctx, "smoke %zu/%zu %s: %s %s -> %ld%s in %.0f ms: ok", i + 1, n, name, method,
                     path, resp->status, model, resp->elapsed_s * 1000);
    } else {
        char got[80];
        if (resp && resp->status)
            snprintf(got, sizeof(got), "HTTP %ld%s", resp->status, model);
        else
            snprintf(got, sizeof(got), "no answer");
        mlstage_error(ctx, "smoke %zu/%zu %s: %s %s -> %s: %s%s%s", i + 1, n, name, method, path,
                      got, why, resp && resp->status ? "; the endpoint answered: " : "",
                      resp && resp->status ? (answer[0] ? answer : "(empty body)") : "");
        if (!first[0])
            snprintf(first, first_cap, "\"%s\" (%s %s -> %s): %s%s%s", name, method, path, got, why,
                     resp && resp->status ? "; the endpoint answered: " : "",
                     resp && resp->status ? (answer[0] ? answer : "(empty body)") : "");
    }
    mlstage_http_response_free(resp);
    for (size_t k = 0; k < no; k++)
        free(owned[k]);
    return passed;
}

int smoke_run(struct mlstage_ctx *ctx, json_object *suite, const char *base_url,
              const char *const *headers, int *failed)
{
    json_object *requests = get(suite, "requests");
    size_t n = json_object_array_length(requests);
    char first[2048] = "", url[4096];
    *failed = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(requests, i);
        snprintf(url, sizeof(url), "%s%s", base_url, json_object_get_string(get(r, "path")));
        if (!run_one(ctx, r, i, n, url, NULL, headers, first, sizeof(first)))
            (*failed)++;
    }
    if (*failed == 0)
        return 0;
    return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                             "smoke test failed: %d of %zu request%s; first: %s", *failed, n,
                             n == 1 ? "" : "s", first);
}

size_t smoke_count_scoring(json_object *suite)
{
    json_object *requests = get(suite, "requests");
    size_t n = 0;
    for (size_t i = 0; i < json_object_array_length(requests); i++)
        n += strcmp(json_object_get_string(get(json_object_array_get_idx(requests, i), "path")),
                    SMOKE_SCORING_PATH) == 0;
    return n;
}

int smoke_run_endpoint(struct mlstage_ctx *ctx, json_object *suite, const char *scoring_uri,
                       const char *const *headers, int *failed, int *sent)
{
    json_object *requests = get(suite, "requests");
    size_t n = json_object_array_length(requests);
    char first[2048] = "";
    *failed = *sent = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *r = json_object_array_get_idx(requests, i);
        const char *path = json_object_get_string(get(r, "path"));
        if (strcmp(path, SMOKE_SCORING_PATH) != 0) {
            mlstage_info(ctx,
                         "smoke %zu/%zu: %s skipped: an online endpoint serves its scoring URI "
                         "only",
                         i + 1, n, path);
            continue;
        }
        (*sent)++;
        if (!run_one(ctx, r, i, n, scoring_uri, SMOKE_MODEL_STATUS_HEADER, headers, first,
                     sizeof(first)))
            (*failed)++;
    }
    if (*failed == 0)
        return 0;
    return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                             "smoke test failed: %d of %d request%s to the endpoint; first: %s",
                             *failed, *sent, *sent == 1 ? "" : "s", first);
}
