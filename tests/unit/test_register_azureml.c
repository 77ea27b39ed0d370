/* test_register_azureml.c — the register plugin's azureml backend through `mlstage run
 * tasks/register.yml --backend azureml`, against the Azure fake and a real Azurite. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include <mlstage/fs.h>
#include <mlstage/http.h>

#include "azurefake.h"
#include "azuretest.h"
#include "example.h"
#include "httpd.h"
#include "testutil.h"
#include "util.h"

static struct azurite azurite;
static struct azf fake;
static char *ws; /* a git repository holding tasks/, model/ and metrics.json */

#define REQUIRE_SERVERS()                                                                          \
    do {                                                                                           \
        if (!azurite.endpoint) {                                                                   \
            fprintf(stderr, "\n%s\n", azurite.why ? azurite.why : "Azurite is not running");       \
            CU_FAIL_FATAL("Azurite is not running: npm ci --prefix tests/node");                   \
        }                                                                                          \
        if (!fake.url)                                                                             \
            CU_FAIL_FATAL("the Azure fake did not start (tests/servers/azure_fake/server.py)");    \
    } while (0)

/* ---- the workspace -------------------------------------------------------------------------- */

/* `size` pseudo-random bytes (xorshift from `seed`), so each seed is another model. */
static void write_random(const char *path, size_t size, uint64_t seed)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint64_t x = seed * 2654435761u + 1;
    unsigned char chunk[65536];
    for (size_t left = size; left > 0;) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk[i] = (unsigned char)(x >> 24);
        }
        CU_ASSERT_EQUAL_FATAL(fwrite(chunk, 1, n, f), n);
        left -= n;
    }
    fclose(f);
}

/*
 * A fresh workspace: a git repository with the project's tasks/, a model
 * (model/weights.bin, 5 MiB so it goes in blocks, and model/sub/meta.json),
 * its provenance statement model.intoto.json, and metrics.json. The fake
 * is reset, and the datastore's container exists on Azurite.
 */
static void setup(uint64_t seed)
{
    REQUIRE_SERVERS();
    tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
    char *cmd = tu_fmt("cp -R '%s/tasks' . && mkdir -p model/sub && "
                       "printf '{\"seed\": %llu}\\n' > model/sub/meta.json && "
                       "printf '{\"_type\": \"https://in-toto.io/Statement/v1\"}\\n' > "
                       "model.intoto.json && "
                       "printf '{\"rmse\": 54.01, \"r2\": 0.45}\\n' > metrics.json && "
                       "printf '.mlstage/\\n' > .gitignore",
                       MLSTAGE_SOURCE_DIR, (unsigned long long)seed);
    struct tu_cmd res;
    tu_sh(cmd, NULL, ws, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    free(cmd);
    char *weights = tu_fmt("%s/model/weights.bin", ws);
    write_random(weights, (size_t)5 << 20, seed);
    free(weights);
    tu_sh("git init -q . && git add -A && git -c user.name=mlstage-test "
          "-c user.email=test@mlstage.local commit -qm 'a model'",
          NULL, ws, &res);
    TU_ASSERT_EXIT(&res, 0);
    tu_cmd_free(&res);
    azf_reset(&fake);
    long status =
        azurite_request(&azurite, "PUT", "/" AZF_CONTAINER "?restype=container", NULL, NULL, NULL);
    CU_ASSERT_TRUE(status == 201 || status == 409);
}

#define WORKSPACE_ARGS                                                                             \
    "--set", "subscription_id=" AZF_SUB, "--set", "resource_group=" AZF_RG, "--set",               \
        "workspace=" AZF_WS

/*
 * `mlstage run tasks/register.yml --backend azureml` of model/ with the
 * workspace inputs and `extra` arguments, against the fake and Azurite (or
 * `blob_endpoint`), with `extra_env`. *doc (may be NULL) gets the --output
 * json document.
 */
static void run_register_from(const char *const *source, const char *const *extra,
                              const char *blob_endpoint, const char *const *extra_env,
                              struct tu_cmd *res, json_object **doc)
{
    const char *args[48] = {
        "run",   "tasks/register.yml",   "--backend",   "azureml", "--output", "json",
        "--set", "metrics=metrics.json", WORKSPACE_ARGS};
    size_t n = 14;
    for (const char *const *s = source; s && *s; s++) {
        args[n++] = "--set";
        args[n++] = *s;
    }
    for (const char *const *e = extra; e && *e; e++)
        args[n++] = *e;
    args[n] = NULL;
    const char *env[32];
    size_t e = 0;
    for (const char *const *v = azf_env(&fake, blob_endpoint ? blob_endpoint : azurite.endpoint);
         *v; v++)
        env[e++] = *v;
    for (const char *const *v = extra_env; v && *v; v++)
        env[e++] = *v;
    env[e] = NULL;
    ex_mlstage(ws, args, env, res);
    if (doc) {
        *doc = ex_json(res->out);
        if (!*doc)
            fprintf(stderr, "\nno JSON on stdout:\n%s\n--- stderr\n%s\n", res->out, res->err);
    }
}

static void run_register(const char *const *extra, const char *blob_endpoint,
                         const char *const *extra_env, struct tu_cmd *res, json_object **doc)
{
    run_register_from((const char *[]){"model_dir=model", NULL}, extra, blob_endpoint, extra_env,
                      res, doc);
}

/* The model_uri train publishes for a job's model folder (the manifest's model_dir cleared). */
#define TRAINED_URI(job)                                                                           \
    "azureml://datastores/workspaceblobstore/paths/mlstage/train/" job "/model/"

static void run_register_uri(const char *uri, const char *const *extra, struct tu_cmd *res,
                             json_object **doc)
{
    char *set = tu_fmt("model_uri=%s", uri);
    run_register_from((const char *[]){"model_dir=", set, NULL}, extra, NULL, NULL, res, doc);
    free(set);
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static json_object *jobj(json_object *o, const char *key)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* The version's properties as the fake keeps them, or NULL. Borrowed from `versions`. */
static json_object *props_of(json_object *versions, const char *version)
{
    return jobj(jobj(versions, version), "properties");
}

static char *sha_of(const char *rel)
{
    char *path = tu_fmt("%s/%s", ws, rel);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL(mlstage_sha256_file(path, hex, NULL), 0);
    free(path);
    return strdup(hex);
}

/* GETs blob <prefix>/<rel> back from Azurite and compares it byte for byte and by SHA-256. */
static void assert_blob_is(const char *prefix, const char *rel, char **etag)
{
    char *path = tu_fmt("/" AZF_CONTAINER "/%s/%s", prefix, rel);
    char *body = NULL;
    size_t len = 0;
    long status = azurite_request(&azurite, "GET", path, &body, &len, etag);
    CU_ASSERT_EQUAL(status, 200);
    char *local = tu_fmt("%s/model/%s", ws, rel);
    size_t want_len = 0;
    char *want = tu_read(local, &want_len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(want);
    CU_ASSERT_EQUAL(len, want_len);
    CU_ASSERT_TRUE(len == want_len && memcmp(body, want, len) == 0);
    char got_hex[MLSTAGE_SHA256_HEX_LEN + 1], want_hex[MLSTAGE_SHA256_HEX_LEN + 1];
    mlstage_sha256_buf(body, len, got_hex);
    mlstage_sha256_buf(want, want_len, want_hex);
    CU_ASSERT_STRING_EQUAL(got_hex, want_hex);
    free(want);
    free(local);
    free(body);
    free(path);
}

/* Everything a run left in the workspace's run folders, concatenated. */
static char *run_folders_text(void)
{
    struct tu_cmd res;
    tu_sh("find .mlstage -type f -exec cat {} +", NULL, ws, &res);
    char *text = strdup(res.out ? res.out : "");
    tu_cmd_free(&res);
    return text;
}

/* No credential in `text`: the client secret, the account key, a token, a SAS signature. */
static void assert_no_secrets(const char *what, const char *text)
{
    static const char *const needles[] = {
        AZF_SECRET,  "fake%2Bsecret",                            /* the secret as a form value */
        AZURITE_KEY, "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50u", /* any part of the key */
        "eyJ", /* a JWT: every token the fake issues */
        NULL};
    for (const char *const *n = needles; *n; n++) {
        if (tu_contains(text, *n))
            fprintf(stderr, "\n%s holds a secret (%s)\n", what, *n);
        CU_ASSERT_FALSE(tu_contains(text, *n));
    }
    /* A SAS may be named, never signed: each sig= is redacted. */
    for (const char *p = text ? strstr(text, "sig=") : NULL; p; p = strstr(p + 4, "sig=")) {
        int redacted = strncmp(p + 4, "REDACTED", 8) == 0 || strncmp(p + 4, "***", 3) == 0;
        if (!redacted)
            fprintf(stderr, "\n%s holds a SAS signature: %.40s\n", what, p);
        CU_ASSERT_TRUE(redacted);
    }
}

static size_t count_status(json_object *log, long status)
{
    size_t n = 0;
    for (size_t i = 0; i < json_object_array_length(log); i++) {
        json_object *s = jobj(json_object_array_get_idx(log, i), "status");
        if (s && json_object_is_type(s, json_type_int) && json_object_get_int(s) == status)
            n++;
    }
    return n;
}

/*
 * What every version register creates carries, whatever its files: at
 * `uri`, custom_model, the manifest's description, the commit's and the
 * run's tags, the alias, the tags input and the metrics.
 */
static void assert_version_is(json_object *versions, const char *n, const char *uri,
                              json_object *doc)
{
    json_object *p = props_of(versions, n), *tags = jobj(p, "tags"), *bag = jobj(p, "properties");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_STRING_EQUAL(jstr(p, "modelUri"), uri);
    CU_ASSERT_STRING_EQUAL(jstr(p, "modelType"), "custom_model");
    TU_ASSERT_CONTAINS(jstr(p, "description"), "diabetes");
    char *head = ex_git(ws, "HEAD"), *branch = ex_git(ws, "--abbrev-ref HEAD");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.commit"), head);
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.branch"), branch);
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.dirty"), "false");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.run_id"), jstr(doc, "run_id"));
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.ci_run_url"), "local");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.alias.candidate"), "true");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "project"), "diabetes-example");
    CU_ASSERT_STRING_EQUAL(jstr(bag, "mlstage.metric.rmse"), "54.01");
    CU_ASSERT_STRING_EQUAL(jstr(bag, "mlstage.metric.r2"), "0.45");
    free(branch);
    free(head);
}

/* What a dry run may send: reads, and token requests. */
static void assert_only_reads(json_object *reqs)
{
    for (size_t i = 0; i < json_object_array_length(reqs); i++) {
        json_object *r = json_object_array_get_idx(reqs, i);
        const char *m = jstr(r, "method"), *p = jstr(r, "path");
        int ok = strcmp(m, "GET") == 0 || (strcmp(m, "POST") == 0 && strstr(p, "/oauth2/"));
        if (!ok)
            fprintf(stderr, "\na dry run sent %s %s\n", m, p);
        CU_ASSERT_TRUE(ok);
    }
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void uploads_the_files_then_creates_the_version_with_the_commits_tags(void)
{
    setup(1);
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register(NULL, NULL, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    const char *digest = ex_output(doc, "digest");
    CU_ASSERT_EQUAL_FATAL(strlen(digest), 64);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    char *prefix = tu_fmt("mlstage/diabetes/%.16s", digest);
    char *uri = tu_fmt("azureml://subscriptions/" AZF_SUB "/resourcegroups/" AZF_RG
                       "/workspaces/" AZF_WS "/datastores/workspaceblobstore/paths/%s",
                       prefix);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "uri"), uri);
    char *path = tu_fmt("%s/" AZF_CONTAINER "/%s", azurite.endpoint, prefix);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "path"), path);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "id"), AZF_WS_PATH "/models/diabetes/versions/1");

    /* Both files are in the datastore's container, identical to the local ones. */
    assert_blob_is(prefix, "weights.bin", NULL);
    assert_blob_is(prefix, "sub/meta.json", NULL);

    /* The version: files by modelUri, commit tags, digests, metrics as properties. */
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 1);
    assert_version_is(versions, "1", uri, doc);
    json_object *p = props_of(versions, "1"), *tags = jobj(p, "tags"), *bag = jobj(p, "properties");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.digest"), digest);
    char *statement_sha = sha_of("model.intoto.json");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.provenance_sha256"), statement_sha);
    CU_ASSERT_STRING_EQUAL(jstr(bag, "mlstage.digest"), digest);
    char *head = ex_git(ws, "HEAD");

    /* The digest is the local registry's: a local registration of the same files agrees. */
    struct tu_cmd local;
    const char *largs[] = {"run",   "tasks/register.yml", "--output", "json",
                           "--set", "model_dir=model",    "--set",    "metrics=metrics.json",
                           NULL};
    ex_mlstage(ws, largs, NULL, &local);
    TU_ASSERT_EXIT(&local, 0);
    json_object *ldoc = ex_json(local.out);
    CU_ASSERT_STRING_EQUAL(ex_output(ldoc, "digest"), digest);

    /* Every upload finished before the version was created (the run's request log, in order). */
    char *log = tu_fmt("%s/http.log", jstr(doc, "run_dir"));
    char *text = tu_read(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    const char *last_blob = NULL, *put = strstr(text, "/models/diabetes/versions/1?");
    for (const char *b = strstr(text, "comp=blocklist"); b; b = strstr(b + 1, "comp=blocklist"))
        last_blob = b;
    CU_ASSERT_PTR_NOT_NULL(last_blob);
    CU_ASSERT_PTR_NOT_NULL(put);
    CU_ASSERT_TRUE(last_blob && put && last_blob < put);

    /* The registration record is in the run and stamped. */
    char *reg = tu_fmt("%s/outputs/registration.json", jstr(doc, "run_dir"));
    char *rtext = tu_read(reg, NULL);
    TU_ASSERT_CONTAINS(rtext, head);
    TU_ASSERT_CONTAINS(rtext, "\"rmse\": 54.01");
    TU_ASSERT_CONTAINS(rtext, "\"path\": \"sub/meta.json\"");
    char *stmt = tu_fmt("%s.intoto.json", reg);
    CU_ASSERT_EQUAL(access(stmt, R_OK), 0);

    free(stmt);
    free(rtext);
    free(reg);
    free(text);
    free(log);
    json_object_put(ldoc);
    tu_cmd_free(&local);
    free(statement_sha);
    free(head);
    json_object_put(versions);
    free(path);
    free(uri);
    free(prefix);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void the_same_files_again_return_the_version_and_upload_nothing(void)
{
    setup(2);
    struct tu_cmd first, second;
    json_object *d1 = NULL, *d2 = NULL;
    run_register(NULL, NULL, NULL, &first, &d1);
    TU_ASSERT_EXIT(&first, 0);
    char *prefix = tu_fmt("mlstage/diabetes/%.16s", ex_output(d1, "digest"));
    char *etag1 = NULL, *etag2 = NULL;
    assert_blob_is(prefix, "weights.bin", &etag1);
    CU_ASSERT_EQUAL(azf_call(&fake, "DELETE", "/_fake/requests", NULL, NULL), 200);

    run_register(NULL, NULL, NULL, &second, &d2);
    TU_ASSERT_EXIT(&second, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "existed"), "true");
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "digest"), ex_output(d1, "digest"));
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "uri"), ex_output(d1, "uri"));
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "path"), ex_output(d1, "path"));
    TU_ASSERT_CONTAINS(second.err, "already registered as version 1");

    /* Nothing went to storage: no request to Azurite, and the blob is the one written first. */
    char *log = tu_fmt("%s/http.log", jstr(d2, "run_dir"));
    char *text = tu_read(log, NULL);
    char *azurite_host = tu_fmt("127.0.0.1:%d", azurite.port);
    TU_ASSERT_NOT_CONTAINS(text ? text : "", azurite_host);
    assert_blob_is(prefix, "weights.bin", &etag2);
    CU_ASSERT_STRING_EQUAL(etag1 ? etag1 : "", etag2 ? etag2 : "-");
    /* Nor to the workspace: no secret listed, no version written. */
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "POST", "/listSecrets"), 0);
    CU_ASSERT_EQUAL(azf_count(reqs, "PUT", "/versions/"), 0);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 1);

    json_object_put(versions);
    json_object_put(reqs);
    free(azurite_host);
    free(text);
    free(log);
    free(etag1);
    free(etag2);
    free(prefix);
    json_object_put(d1);
    json_object_put(d2);
    tu_cmd_free(&first);
    tu_cmd_free(&second);
}

static void a_429_with_retry_after_on_the_put_is_waited_out(void)
{
    setup(3);
    azf_fault(&fake, "{\"match\": \"PUT .*/models/diabetes/versions/[0-9]+$\", \"times\": 2, "
                     "\"status\": 429, \"retry_after\": \"1\"}");
    struct tu_cmd res;
    json_object *doc = NULL;
    double t0 = now_mono();
    run_register(NULL, NULL, NULL, &res, &doc);
    double took = now_mono() - t0;
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "PUT", "/models/diabetes/versions/1"), 3);
    CU_ASSERT_EQUAL(count_status(reqs, 429), 2);
    /* The fake answers a retry sent before Retry-After with another 429: none were early. */
    TU_ASSERT_NOT_CONTAINS(json_object_to_json_string(reqs), "early-retry");
    CU_ASSERT_TRUE(took >= 2.0);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 1);
    json_object_put(versions);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void service_unavailable_until_retries_run_out_is_exit_5_and_no_version(void)
{
    setup(4);
    azf_fault(&fake, "{\"match\": \"PUT .*/models/diabetes/versions/[0-9]+$\", \"times\": -1, "
                     "\"status\": 503, \"retry_after\": \"0\"}");
    struct tu_cmd res;
    run_register(NULL, NULL, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 5);
    TU_ASSERT_CONTAINS(res.err, "503");
    TU_ASSERT_CONTAINS(res.err, "/models/diabetes/versions/1");
    json_object *reqs = azf_requests(&fake);
    /* bounded: the core client's attempts, not forever */
    size_t puts = azf_count(reqs, "PUT", "/models/diabetes/versions/");
    CU_ASSERT_TRUE(puts >= 2 && puts <= 10);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 0);
    json_object_put(versions);
    json_object_put(reqs);
    tu_cmd_free(&res);
}

/* A blob endpoint whose Put Block always fails (500), while single-shot Put Blob works. */
static void failing_blocks(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    (void)user;
    if (req->query && strstr(req->query, "comp=block&")) {
        httpd_reply_status(reply, 500);
        httpd_reply_header(reply, "Retry-After", "0");
        httpd_reply_header(reply, "x-ms-error-code", "InternalError");
        httpd_reply_bodyf(reply, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"
                                 "InternalError</Code><Message>The server encountered an "
                                 "internal error.</Message></Error>");
        return;
    }
    httpd_reply_status(reply, 201);
}

static void a_block_upload_that_fails_leaves_no_version(void)
{
    setup(5);
    struct httpd *blob = httpd_start_handler(failing_blocks, NULL);
    char *endpoint = httpd_url(blob, "/" AZURITE_ACCOUNT);
    struct tu_cmd res;
    run_register(NULL, endpoint, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 5);
    TU_ASSERT_CONTAINS(res.err, "weights.bin");
    TU_ASSERT_CONTAINS(res.err, "nothing committed");
    /* sub/meta.json went first (one Put Blob), then weights.bin's blocks kept failing. */
    size_t blocks = 0, lists = 0;
    for (size_t i = 0; i < httpd_request_count(blob); i++) {
        const char *q = httpd_request(blob, i)->query;
        blocks += q && strstr(q, "comp=block&") != NULL;
        lists += q && strstr(q, "comp=blocklist") != NULL;
    }
    CU_ASSERT_TRUE(blocks >= 5);
    CU_ASSERT_EQUAL(lists, 0);
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "PUT", "/versions/"), 0);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 0);
    json_object_put(versions);
    json_object_put(reqs);
    tu_cmd_free(&res);
    free(endpoint);
    httpd_stop(blob);
}

struct expirer {
    int done;
    int expired;
};

/* Expires every token once the run has looked for its digest: mid-run, before the datastore. */
static void *expire_mid_run(void *arg)
{
    struct expirer *e = arg;
    for (int i = 0; i < 1000 && !e->expired; i++) {
        json_object *reqs = azf_requests(&fake);
        if (azf_count(reqs, "GET", "/models/diabetes/versions") > 0) {
            e->expired = azf_call(&fake, "POST", "/_fake/expire-tokens", NULL, NULL) == 200;
        }
        json_object_put(reqs);
        usleep(10 * 1000);
    }
    e->done = 1;
    return NULL;
}

static void a_token_that_expires_mid_run_is_renewed(void)
{
    setup(6);
    /* The datastore lookup waits a little, so the tokens surely expire while the run goes on. */
    azf_fault(&fake, "{\"match\": \"GET .*/datastores$\", \"delay\": 1.0}");
    struct expirer e = {0};
    pthread_t t;
    pthread_create(&t, NULL, expire_mid_run, &e);
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register(NULL, NULL, NULL, &res, &doc);
    pthread_join(t, NULL);
    CU_ASSERT_TRUE(e.expired);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_TRUE(count_status(reqs, 401) >= 1);
    CU_ASSERT_EQUAL(azf_count(reqs, "POST", "/oauth2/v2.0/token"), 2);
    /* The refused request went again with the new token, and every later one used it. */
    const char *first = NULL, *refused = NULL, *last = NULL;
    for (size_t i = 0; i < json_object_array_length(reqs); i++) {
        json_object *r = json_object_array_get_idx(reqs, i);
        const char *auth = jstr(jobj(r, "headers"), "authorization");
        if (!auth)
            continue;
        first = first ? first : auth;
        if (json_object_get_int(jobj(r, "status")) == 401)
            refused = auth;
        last = auth;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(refused);
    CU_ASSERT_STRING_EQUAL(refused, first);
    CU_ASSERT_STRING_NOT_EQUAL(last, first);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 1);
    json_object_put(versions);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void a_wrong_client_secret_is_exit_4_listing_the_sources(void)
{
    setup(7);
    const char *env[] = {"AZURE_CLIENT_SECRET=not-the-secret", NULL};
    struct tu_cmd res;
    run_register(NULL, NULL, env, &res, NULL);
    TU_ASSERT_EXIT(&res, 4);
    TU_ASSERT_CONTAINS(res.err, "EnvironmentCredential");
    TU_ASSERT_CONTAINS(res.err, "AADSTS7000215");
    TU_ASSERT_NOT_CONTAINS(res.err, "not-the-secret");
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "GET", "/subscriptions/"), 0);
    json_object_put(reqs);
    char *runs = run_folders_text();
    TU_ASSERT_NOT_CONTAINS(runs, "not-the-secret");
    free(runs);
    tu_cmd_free(&res);
}

static void a_dry_run_prints_the_requests_and_sends_none_that_mutate(void)
{
    setup(8);
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register((const char *[]){"--dry-run", NULL}, NULL, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    /* The plan: each upload, and the version's PUT with its body. */
    TU_ASSERT_CONTAINS(res.err, "plan: PUT ");
    TU_ASSERT_CONTAINS(res.err, "weights.bin (5242880 bytes as 2 blocks");
    TU_ASSERT_CONTAINS(res.err, "/models/diabetes/versions/1?api-version=2025-12-01");
    TU_ASSERT_CONTAINS(res.err, "\"modelUri\": \"azureml://subscriptions/");
    TU_ASSERT_CONTAINS(res.err, "\"mlstage.alias.candidate\": \"true\"");
    /* Reads only: tokens, lists, the datastore; no secrets listed, nothing written. */
    json_object *reqs = azf_requests(&fake);
    assert_only_reads(reqs);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 0);
    char *list = tu_fmt("/" AZF_CONTAINER "?restype=container&comp=list&prefix=mlstage/diabetes/"
                        "%.16s",
                        ex_output(doc, "digest"));
    char *body = NULL;
    CU_ASSERT_EQUAL(azurite_request(&azurite, "GET", list, &body, NULL, NULL), 200);
    TU_ASSERT_NOT_CONTAINS(body, "<Blob>");
    assert_no_secrets("stderr", res.err);
    free(body);
    free(list);
    json_object_put(versions);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void no_secret_token_key_or_sas_reaches_the_output_or_the_run_folder(void)
{
    setup(9);
    struct tu_cmd key_run, sas_run;
    run_register(NULL, NULL, NULL, &key_run, NULL);
    TU_ASSERT_EXIT(&key_run, 0);
    /* Then a datastore that keeps a SAS: the upload goes with the SAS, onto Azurite too. */
    CU_ASSERT_EQUAL(
        azf_call(&fake, "POST", "/_fake/config", "{\"datastore_credentials\": \"Sas\"}", NULL),
        200);
    char *weights = tu_fmt("%s/model/weights.bin", ws);
    write_random(weights, (size_t)5 << 20, 99);
    free(weights);
    json_object *doc = NULL;
    run_register((const char *[]){"-v", NULL}, NULL, NULL, &sas_run, &doc);
    TU_ASSERT_EXIT(&sas_run, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    char *prefix = tu_fmt("mlstage/diabetes/%.16s", ex_output(doc, "digest"));
    assert_blob_is(prefix, "weights.bin", NULL);
    free(prefix);
    /* It went with the SAS (no SharedKey header), which the log shows redacted. */
    char *sas_log_path = tu_fmt("%s/http.log", jstr(doc, "run_dir"));
    char *sas_log = tu_read(sas_log_path, NULL);
    TU_ASSERT_CONTAINS(sas_log, "/weights.bin?comp=blocklist&*** attempt 1/5 -> 201");
    free(sas_log);
    free(sas_log_path);
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "POST", "/listSecrets"), 2);
    json_object_put(reqs);

    assert_no_secrets("stdout (SharedKey run)", key_run.out);
    assert_no_secrets("stderr (SharedKey run)", key_run.err);
    assert_no_secrets("stdout (SAS run)", sas_run.out);
    assert_no_secrets("stderr (SAS run)", sas_run.err);
    char *runs = run_folders_text();
    CU_ASSERT_TRUE(strlen(runs) > 1000);
    assert_no_secrets("the run folders", runs);
    free(runs);
    json_object_put(doc);
    tu_cmd_free(&key_run);
    tu_cmd_free(&sas_run);
}

static void a_409_on_the_put_takes_the_next_number(void)
{
    setup(10);
    azf_fault(&fake, "{\"match\": \"PUT .*/models/diabetes/versions/1$\", \"times\": 1, "
                     "\"status\": 409}");
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register(NULL, NULL, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "2");
    TU_ASSERT_CONTAINS(res.err, "version 1 of model diabetes was taken meanwhile");
    json_object *reqs = azf_requests(&fake);
    /* listed again after the conflict: the digest (twice) and the numbers (twice) */
    CU_ASSERT_EQUAL(azf_count(reqs, "GET", "/models/diabetes/versions"), 4 + 1);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 1);
    CU_ASSERT_PTR_NOT_NULL(props_of(versions, "2"));
    json_object_put(versions);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void an_alias_moves_from_the_old_holder_to_the_new_one(void)
{
    setup(11);
    struct tu_cmd a, b, c;
    run_register(NULL, NULL, NULL, &a, NULL);
    TU_ASSERT_EXIT(&a, 0);
    char *weights = tu_fmt("%s/model/weights.bin", ws);
    write_random(weights, 1000, 1111);
    run_register(NULL, NULL, NULL, &b, NULL);
    TU_ASSERT_EXIT(&b, 0);
    TU_ASSERT_CONTAINS(b.err, "alias candidate: version 1 -> 2");
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_PTR_NULL(jobj(jobj(props_of(versions, "1"), "tags"), "mlstage.alias.candidate"));
    CU_ASSERT_STRING_EQUAL(jstr(jobj(props_of(versions, "2"), "tags"), "mlstage.alias.candidate"),
                           "true");
    /* the files of version 1 again, made production: the existing version gets the tag */
    write_random(weights, (size_t)5 << 20, 11);
    run_register((const char *[]){"--set", "alias=production", NULL}, NULL, NULL, &c, NULL);
    TU_ASSERT_EXIT(&c, 0);
    TU_ASSERT_CONTAINS(c.err, "already registered as version 1");
    TU_ASSERT_CONTAINS(c.err, "alias production -> version 1");
    json_object_put(versions);
    versions = azf_model_versions(&fake, "diabetes");
    json_object *t1 = jobj(props_of(versions, "1"), "tags");
    CU_ASSERT_STRING_EQUAL(jstr(t1, "mlstage.alias.production"), "true");
    /* retagging kept everything else of the version */
    CU_ASSERT_STRING_EQUAL(jstr(jobj(props_of(versions, "1"), "properties"), "mlstage.metric.rmse"),
                           "54.01");
    CU_ASSERT_PTR_NOT_NULL(jstr(t1, "mlstage.commit"));
    json_object_put(versions);
    free(weights);
    tu_cmd_free(&a);
    tu_cmd_free(&b);
    tu_cmd_free(&c);
}

static void the_workspace_inputs_and_an_azure_model_name_are_checked_first(void)
{
    setup(12);
    const char *args[] = {"run",   "tasks/register.yml",     "--backend", "azureml",
                          "--set", "model_dir=model",        "--set",     "metrics=metrics.json",
                          "--set", "resource_group=" AZF_RG, NULL};
    struct tu_cmd res;
    ex_mlstage(ws, args, azf_env(&fake, azurite.endpoint), &res);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs subscription_id and workspace are not set");
    tu_cmd_free(&res);
    run_register((const char *[]){"--set", "model_name=diabetes.v2", NULL}, NULL, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "cannot name an Azure ML model");
    tu_cmd_free(&res);
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(json_object_array_length(reqs), 0);
    json_object_put(reqs);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The outputs' names, sorted and comma-separated, to compare two runs' sets. A new string. */
static char *output_keys(json_object *doc)
{
    const char *names[32];
    size_t n = 0;
    json_object *outputs = jobj(doc, "outputs");
    if (outputs) {
        json_object_object_foreach(outputs, k, v)
        {
            (void)v;
            if (n < 32)
                names[n++] = k;
        }
    }
    qsort(names, n, sizeof(names[0]), by_name);
    char *keys = strdup("");
    for (size_t i = 0; i < n; i++) {
        char *more = tu_fmt("%s%s%s", keys, i ? "," : "", names[i]);
        free(keys);
        keys = more;
    }
    return keys;
}

static void a_model_uri_is_registered_in_place_and_nothing_is_uploaded(void)
{
    setup(13);
    const char *uri = TRAINED_URI("job-13");
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register_uri(uri, NULL, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "uri"), uri);
    char *path = tu_fmt("%s/" AZF_CONTAINER "/mlstage/train/job-13/model/", azurite.endpoint);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "path"), path);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "id"), AZF_WS_PATH "/models/diabetes/versions/1");
    /* Its files were not read here, so there is no digest; the key is there all the same. */
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "digest"), "");

    /* The version points at the URI, with the provenance tags and metrics, but no digest. */
    json_object *versions = azf_model_versions(&fake, "diabetes");
    assert_version_is(versions, "1", uri, doc);
    json_object *p = props_of(versions, "1");
    CU_ASSERT_PTR_NULL(jobj(jobj(p, "tags"), "mlstage.digest"));
    CU_ASSERT_PTR_NULL(jobj(jobj(p, "tags"), "mlstage.provenance_sha256"));
    CU_ASSERT_PTR_NULL(jobj(jobj(p, "properties"), "mlstage.digest"));

    /* Nothing went to storage: no request to Azurite, no datastore secret listed. */
    char *log = tu_fmt("%s/http.log", jstr(doc, "run_dir"));
    char *text = tu_read(log, NULL);
    CU_ASSERT_PTR_NOT_NULL(text);
    char *azurite_host = tu_fmt("127.0.0.1:%d", azurite.port);
    TU_ASSERT_NOT_CONTAINS(text ? text : "", azurite_host);
    TU_ASSERT_NOT_CONTAINS(text ? text : "", "listSecrets");
    TU_ASSERT_NOT_CONTAINS(text ? text : "", "isDefault");

    /* The registration record names the URI and is stamped. */
    char *reg = tu_fmt("%s/outputs/registration.json", jstr(doc, "run_dir"));
    char *rtext = tu_read(reg, NULL);
    TU_ASSERT_CONTAINS(rtext, uri);
    char *stmt = tu_fmt("%s.intoto.json", reg);
    CU_ASSERT_EQUAL(access(stmt, R_OK), 0);

    /* The same outputs as an upload publishes (a later run), so deploy and the pipelines read them
     * alike. */
    struct tu_cmd up;
    json_object *updoc = NULL;
    run_register(NULL, NULL, NULL, &up, &updoc);
    TU_ASSERT_EXIT(&up, 0);
    char *uri_keys = output_keys(doc), *upload_keys = output_keys(updoc);
    CU_ASSERT_STRING_EQUAL(uri_keys, upload_keys);
    TU_ASSERT_CONTAINS(uri_keys, "version");

    free(stmt);
    free(rtext);
    free(reg);
    free(azurite_host);
    free(text);
    free(log);
    json_object_put(versions);
    free(uri_keys);
    free(upload_keys);
    json_object_put(updoc);
    tu_cmd_free(&up);
    free(path);
    json_object_put(doc);
    tu_cmd_free(&res);
}

static void the_same_model_uri_again_returns_its_version(void)
{
    setup(14);
    struct tu_cmd first, second, other;
    json_object *d1 = NULL, *d2 = NULL, *d3 = NULL;
    run_register_uri(TRAINED_URI("job-14"), NULL, &first, &d1);
    TU_ASSERT_EXIT(&first, 0);
    CU_ASSERT_EQUAL(azf_call(&fake, "DELETE", "/_fake/requests", NULL, NULL), 200);

    run_register_uri(TRAINED_URI("job-14"), NULL, &second, &d2);
    TU_ASSERT_EXIT(&second, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "existed"), "true");
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "uri"), ex_output(d1, "uri"));
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "path"), ex_output(d1, "path"));
    CU_ASSERT_STRING_EQUAL(ex_output(d2, "id"), ex_output(d1, "id"));
    TU_ASSERT_CONTAINS(second.err, "this model_uri is already registered as version 1");
    /* No version written (the alias was already on it). */
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(azf_count(reqs, "PUT", "/versions/"), 0);
    json_object_put(reqs);

    /* Another job's model is another version. */
    run_register_uri(TRAINED_URI("job-14b"), NULL, &other, &d3);
    TU_ASSERT_EXIT(&other, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(d3, "version"), "2");
    CU_ASSERT_STRING_EQUAL(ex_output(d3, "existed"), "false");
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 2);
    CU_ASSERT_STRING_EQUAL(jstr(props_of(versions, "2"), "modelUri"), TRAINED_URI("job-14b"));

    json_object_put(versions);
    json_object_put(d1);
    json_object_put(d2);
    json_object_put(d3);
    tu_cmd_free(&first);
    tu_cmd_free(&second);
    tu_cmd_free(&other);
}

static void model_dir_and_model_uri_are_one_or_the_other_and_the_uri_is_azureml(void)
{
    setup(15);
    struct tu_cmd res;
    /* Both. */
    run_register_from((const char *[]){"model_dir=model", "model_uri=" TRAINED_URI("j"), NULL},
                      NULL, NULL, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs model_dir (model) and model_uri (azureml://");
    TU_ASSERT_CONTAINS(res.err, "are both set; give one");
    tu_cmd_free(&res);
    /* Neither. */
    run_register_from((const char *[]){"model_dir=", NULL}, NULL, NULL, NULL, &res, NULL);
    TU_ASSERT_EXIT(&res, 2);
    TU_ASSERT_CONTAINS(res.err, "inputs model_dir and model_uri: neither is set");
    tu_cmd_free(&res);
    /* Not an Azure ML URI of files: a local path, another scheme, a datastore without a path. */
    static const char *const bad[] = {
        "outputs/model",
        "https://acct.blob.core.windows.net/c/model/",
        "azureml://",
        "azureml://datastores/workspaceblobstore/paths/",
        "azureml://datastores/workspaceblobstore",
        "azureml://datastores/workspaceblobstore/paths/a b/",
        NULL,
    };
    for (const char *const *b = bad; *b; b++) {
        run_register_uri(*b, NULL, &res, NULL);
        if (res.exit_code != 2)
            fprintf(stderr, "\nmodel_uri %s: exit %d\n", *b, res.exit_code);
        TU_ASSERT_EXIT(&res, 2);
        TU_ASSERT_CONTAINS(res.err, "inputs.model_uri: \"");
        TU_ASSERT_CONTAINS(res.err, "is not an Azure ML URI");
        tu_cmd_free(&res);
    }
    /* Checked before anything is sent. */
    json_object *reqs = azf_requests(&fake);
    CU_ASSERT_EQUAL(json_object_array_length(reqs), 0);
    json_object_put(reqs);
}

static void a_dry_run_of_a_model_uri_plans_the_put_and_sends_none_that_mutate(void)
{
    setup(16);
    struct tu_cmd res;
    json_object *doc = NULL;
    run_register_uri(TRAINED_URI("job-16"), (const char *[]){"--dry-run", NULL}, &res, &doc);
    TU_ASSERT_EXIT(&res, 0);
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "version"), "1");
    CU_ASSERT_STRING_EQUAL(ex_output(doc, "existed"), "false");
    TU_ASSERT_CONTAINS(res.err, "plan: PUT ");
    TU_ASSERT_CONTAINS(res.err, "/models/diabetes/versions/1?api-version=2025-12-01");
    TU_ASSERT_CONTAINS(res.err, "\"modelUri\": \"" TRAINED_URI("job-16") "\"");
    TU_ASSERT_NOT_CONTAINS(res.err, "would upload");
    json_object *reqs = azf_requests(&fake);
    assert_only_reads(reqs);
    json_object *versions = azf_model_versions(&fake, "diabetes");
    CU_ASSERT_EQUAL(json_object_object_length(versions), 0);
    json_object_put(versions);
    json_object_put(reqs);
    json_object_put(doc);
    tu_cmd_free(&res);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"uploads the files, then creates the version with the commit's tags",
         uploads_the_files_then_creates_the_version_with_the_commits_tags},
        {"the same files again return the version and upload nothing",
         the_same_files_again_return_the_version_and_upload_nothing},
        {"a 429 with Retry-After on the PUT is waited out",
         a_429_with_retry_after_on_the_put_is_waited_out},
        {"503 until retries run out is exit 5 and no version",
         service_unavailable_until_retries_run_out_is_exit_5_and_no_version},
        {"a block upload that fails leaves no version",
         a_block_upload_that_fails_leaves_no_version},
        {"a token that expires mid-run is renewed", a_token_that_expires_mid_run_is_renewed},
        {"a wrong client secret is exit 4 listing the sources",
         a_wrong_client_secret_is_exit_4_listing_the_sources},
        {"a dry run prints the requests and sends none that mutate",
         a_dry_run_prints_the_requests_and_sends_none_that_mutate},
        {"no secret, token, key or SAS reaches the output or the run folder",
         no_secret_token_key_or_sas_reaches_the_output_or_the_run_folder},
        {"a 409 on the PUT takes the next number", a_409_on_the_put_takes_the_next_number},
        {"an alias moves from the old holder to the new one",
         an_alias_moves_from_the_old_holder_to_the_new_one},
        {"the workspace inputs and an Azure model name are checked first",
         the_workspace_inputs_and_an_azure_model_name_are_checked_first},
        {"a model_uri is registered in place and nothing is uploaded",
         a_model_uri_is_registered_in_place_and_nothing_is_uploaded},
        {"the same model_uri again returns its version",
         the_same_model_uri_again_returns_its_version},
        {"model_dir and model_uri are one or the other, and the URI is azureml://",
         model_dir_and_model_uri_are_one_or_the_other_and_the_uri_is_azureml},
        {"a dry run of a model_uri plans the PUT and sends none that mutate",
         a_dry_run_of_a_model_uri_plans_the_put_and_sends_none_that_mutate},
        {NULL, NULL}};
    azt_env_clear();
    azurite_start(&azurite);
    azf_start(&fake, azurite.endpoint);
    int rc = tu_main(argc, argv, "register (azureml)", tests);
    if (fake.pid && azf_stop(&fake) != 0) {
        fprintf(stderr, "the Azure fake did not stop cleanly\n");
        rc = rc ? rc : 1;
    }
    azurite_stop(&azurite);
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
