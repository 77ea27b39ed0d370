/* test_azure_credential.c — the credential chain: each source against local servers and files the
 * test makes, the cache, the order, and the one error when nothing works. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <mlstage/azure.h>
#include <mlstage/error.h>

#include "azure/azure_internal.h"
#include "azuretest.h"
#include "ctx.h"
#include "httpd.h"
#include "log.h"
#include "mask.h"
#include "testutil.h"
#include "util.h"

#define ARM_SCOPE "https://management.azure.com/.default"

/* ---- fixture ------------------------------------------------------------------ */

struct fixture {
    struct mlstage_ctx *ctx;
    char *dir;
    char *bin; /* the only PATH entry: no real az is ever found */
    char *saved_path;
    struct azt_entra entra;
    struct httpd *aux; /* GitHub, App Service or IMDS, as a test needs */
    FILE *logf;
};

static void fx_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    mask_reset();
    azure_clock_skew_s = 0;
    azt_env_clear();
    fx->ctx = ctx_new();
    fx->dir = tu_tmpdir();
    fx->ctx->run_dir = xstrdup(fx->dir);
    fx->bin = tu_fmt("%s/bin", fx->dir);
    mkdir(fx->bin, 0755);
    const char *path = getenv("PATH");
    fx->saved_path = strdup(path ? path : "/usr/bin:/bin");
    setenv("PATH", fx->bin, 1);
    azt_entra_start(&fx->entra, "tok-entra");
    char *log = tu_fmt("%s/stage.log", fx->dir);
    fx->logf = fopen(log, "w");
    free(log);
    /* The run's log file gets every level; the terminal only what a person sees by default. */
    log_configure(MLSTAGE_LOG_INFO, CI_NONE, 0);
    log_set_file(fx->logf);
}

static void fx_done(struct fixture *fx)
{
    log_set_file(NULL);
    log_configure(MLSTAGE_LOG_INFO, CI_NONE, 0);
    if (fx->logf)
        fclose(fx->logf);
    setenv("PATH", fx->saved_path, 1);
    free(fx->saved_path);
    azt_entra_stop(&fx->entra);
    if (fx->aux)
        httpd_stop(fx->aux);
    ctx_free(fx->ctx);
    tu_rm_rf(fx->dir);
    free(fx->dir);
    free(fx->bin);
    azure_clock_skew_s = 0;
    azt_env_clear();
}

/* Everything the run wrote where a person or a CI log could see it. */
static char *fx_everything(struct fixture *fx)
{
    fflush(fx->logf);
    char *p1 = tu_fmt("%s/http.log", fx->dir), *p2 = tu_fmt("%s/stage.log", fx->dir);
    char *a = tu_read(p1, NULL), *b = tu_read(p2, NULL);
    char *all = tu_fmt("%s\n%s\n%s", a ? a : "", b ? b : "", mlstage_error_message(fx->ctx));
    free(a);
    free(b);
    free(p1);
    free(p2);
    return all;
}

static const struct httpd_request *last_request(struct httpd *h)
{
    size_t n = httpd_request_count(h);
    return n ? httpd_request(h, n - 1) : NULL;
}

/* Writes an executable `az` into the test's PATH that runs `body` (a sh script). */
static void fake_az(struct fixture *fx, const char *body)
{
    char *path = tu_fmt("%s/az", fx->bin);
    char *script = tu_fmt("#!/bin/sh\nprintf '%%s\\n' \"$@\" > '%s/az.args'\n%s\n", fx->dir, body);
    CU_ASSERT_EQUAL_FATAL(tu_write(path, script), 0);
    chmod(path, 0755);
    free(script);
    free(path);
}

static char *az_args(struct fixture *fx)
{
    char *path = tu_fmt("%s/az.args", fx->dir);
    char *args = tu_read(path, NULL);
    free(path);
    return args;
}

/* ---- 1. client secret ----------------------------------------------------------- */

static void test_client_secret_posts_the_exact_form(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* At -v the request log shows headers too: still nothing secret in it. */
    log_configure(MLSTAGE_LOG_DEBUG, CI_NONE, 0);
    azt_entra_use(&fx.entra);
    char *token = NULL;
    int64_t exp = 0;
    int64_t before = (int64_t)time(NULL);
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &token, &exp), 0);
    CU_ASSERT_STRING_EQUAL(token ? token : "", "tok-entra-1");
    CU_ASSERT_TRUE(exp >= before + 3599 && exp <= before + 3601);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.entra.server), 1);
    const struct httpd_request *r = httpd_request(fx.entra.server, 0);
    CU_ASSERT_STRING_EQUAL(r->method, "POST");
    CU_ASSERT_STRING_EQUAL(r->path, "/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "Content-Type"),
                           "application/x-www-form-urlencoded");
    CU_ASSERT_STRING_EQUAL(r->body, "client_id=535fb089-9ff3-47b6-9bfb-4f1264799865"
                                    "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
                                    "&client_secret=sp-secret-value%2F%2B%26%3D"
                                    "&grant_type=client_credentials");
    /* The token and the secret are masked from now on, and were never written anywhere. */
    CU_ASSERT_TRUE(mask_contains(token, strlen(token)));
    char *all = fx_everything(&fx);
    TU_ASSERT_NOT_CONTAINS(all, "tok-entra-1");
    TU_ASSERT_NOT_CONTAINS(all, "sp-secret-value");
    TU_ASSERT_CONTAINS(all, "/oauth2/v2.0/token attempt 1/5 -> 200");
    free(all);
    free(token);
    fx_done(&fx);
}

static void test_a_token_is_cached_per_scope_until_five_minutes_before_expiry(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL, *t5 = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t1, NULL), 0);
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t2, NULL), 0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 1);
    CU_ASSERT_STRING_EQUAL(t2 ? t2 : "", "tok-entra-1");
    /* Another scope is another token. */
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, MLSTAGE_AZURE_SCOPE_STORAGE, &t3, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t3 ? t3 : "", "tok-entra-2");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 2);
    /* 3599 s tokens: after 3299 s they are within five minutes of expiry and fetched anew. */
    azure_clock_skew_s = 3200;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t4, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t4 ? t4 : "", "tok-entra-1");
    azure_clock_skew_s = 3310;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t5, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t5 ? t5 : "", "tok-entra-3");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 3);
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
    fx_done(&fx);
}

static void test_invalidate_makes_the_next_call_fetch_a_new_token(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    char *t1 = NULL, *t2 = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t1, NULL), 0);
    mlstage_azure_token_invalidate(fx.ctx, ARM_SCOPE);
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t2, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t2 ? t2 : "", "tok-entra-2");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 2);
    free(t1);
    free(t2);
    fx_done(&fx);
}

struct race {
    struct mlstage_ctx *ctx;
    char *token;
    int rc;
};

static void *race_one(void *arg)
{
    struct race *r = arg;
    r->rc = mlstage_azure_token(r->ctx, ARM_SCOPE, &r->token, NULL);
    return NULL;
}

static void test_concurrent_callers_share_one_fetch(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    pthread_t t[8];
    struct race r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){.ctx = fx.ctx};
        pthread_create(&t[i], NULL, race_one, &r[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(r[i].rc, 0);
        CU_ASSERT_STRING_EQUAL(r[i].token ? r[i].token : "", "tok-entra-1");
        free(r[i].token);
    }
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 1);
    fx_done(&fx);
}

static void test_a_rejected_secret_stops_the_chain_with_entras_reason(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    fx.entra.status = 401;
    /* An az that would succeed must not be reached: a wrong secret never falls through. */
    fake_az(&fx, "echo '{\"accessToken\":\"cli-token-xyz\",\"expires_on\":4102444800}'");
    char *token = NULL;
    int rc = mlstage_azure_token(fx.ctx, ARM_SCOPE, &token, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 4);
    CU_ASSERT_PTR_NULL(token);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "EnvironmentCredential");
    TU_ASSERT_CONTAINS(msg, "HTTP 401: invalid_client: AADSTS7000215");
    TU_ASSERT_CONTAINS(msg, "chain stopped");
    TU_ASSERT_NOT_CONTAINS(msg, "AzureCliCredential");
    TU_ASSERT_NOT_CONTAINS(msg, "sp-secret-value");
    char *args = az_args(&fx);
    CU_ASSERT_PTR_NULL(args);
    free(args);
    fx_done(&fx);
}

/* ---- 2. workload identity ------------------------------------------------------- */

static void test_federated_token_file_is_the_assertion_and_reread_when_stale(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    unsetenv("AZURE_CLIENT_SECRET");
    char *file = tu_fmt("%s/federated-token", fx.dir);
    CU_ASSERT_EQUAL_FATAL(tu_write(file, "eyJhbGciOi.jwt-one.sig\n"), 0);
    setenv("AZURE_FEDERATED_TOKEN_FILE", file, 1);
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "tok-entra-1");
    free(t);
    const struct httpd_request *r = last_request(fx.entra.server);
    CU_ASSERT_STRING_EQUAL(
        r->body,
        "client_id=535fb089-9ff3-47b6-9bfb-4f1264799865"
        "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
        "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3A"
        "jwt-bearer&client_assertion=eyJhbGciOi.jwt-one.sig&grant_type=client_credentials");

    /* Rotated by its issuer: still the cached assertion within 600 s ... */
    CU_ASSERT_EQUAL_FATAL(tu_write(file, "eyJhbGciOi.jwt-two.sig\n"), 0);
    azure_clock_skew_s = 590;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, MLSTAGE_AZURE_SCOPE_STORAGE, &t, NULL), 0);
    free(t);
    TU_ASSERT_CONTAINS(last_request(fx.entra.server)->body, "client_assertion=eyJhbGciOi.jwt-one");
    /* ... and read again once it is older than that. */
    azure_clock_skew_s = 610;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, "https://vault.azure.net/.default", &t, NULL), 0);
    free(t);
    TU_ASSERT_CONTAINS(last_request(fx.entra.server)->body, "client_assertion=eyJhbGciOi.jwt-two");
    char *all = fx_everything(&fx);
    TU_ASSERT_NOT_CONTAINS(all, "jwt-one");
    TU_ASSERT_NOT_CONTAINS(all, "jwt-two");
    free(all);
    free(file);
    fx_done(&fx);
}

static void test_a_missing_federated_token_file_fails_naming_it(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    unsetenv("AZURE_CLIENT_SECRET");
    setenv("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/mlstage/token", 1);
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), MLSTAGE_EAUTH);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx),
                       "WorkloadIdentityCredential (AZURE_FEDERATED_TOKEN_FILE): failed: cannot "
                       "read AZURE_FEDERATED_TOKEN_FILE /nonexistent/mlstage/token");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 0);
    fx_done(&fx);
}

/* ---- 3. GitHub Actions OIDC -------------------------------------------------------- */

static void github_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    (void)user;
    const char *auth = httpd_request_header(req, "Authorization");
    httpd_reply_header(reply, "Content-Type", "application/json");
    if (!auth || strcmp(auth, "Bearer gh-request-token-123") != 0) {
        httpd_reply_status(reply, 401);
        return;
    }
    httpd_reply_bodyf(reply, "{\"count\":1,\"value\":\"eyJ0eXAi.github-oidc-jwt.sig\"}");
}

static void test_github_oidc_token_is_fetched_with_the_audience_and_used_as_assertion(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    unsetenv("AZURE_CLIENT_SECRET");
    fx.aux = httpd_start_handler(github_handler, NULL);
    char *url = httpd_url(fx.aux, "/_apis/distributedtask/hubs/build/plans/p1/jobs/j1/idtoken"
                                  "?api-version=2.0");
    setenv("ACTIONS_ID_TOKEN_REQUEST_URL", url, 1);
    setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-request-token-123", 1);
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "tok-entra-1");
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.aux), 1);
    const struct httpd_request *g = httpd_request(fx.aux, 0);
    CU_ASSERT_STRING_EQUAL(g->method, "GET");
    CU_ASSERT_STRING_EQUAL(g->query, "api-version=2.0&audience=api%3A%2F%2FAzureADTokenExchange");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(g, "Authorization"), "Bearer gh-request-token-123");
    TU_ASSERT_CONTAINS(last_request(fx.entra.server)->body,
                       "&client_assertion=eyJ0eXAi.github-oidc-jwt.sig&grant_type=");
    char *all = fx_everything(&fx);
    TU_ASSERT_NOT_CONTAINS(all, "gh-request-token-123");
    TU_ASSERT_NOT_CONTAINS(all, "github-oidc-jwt");
    free(all);
    free(t);
    free(url);
    fx_done(&fx);
}

/* ---- 4. managed identity ------------------------------------------------------------ */

static void app_service_handler(const struct httpd_request *req, struct httpd_reply *reply,
                                void *user)
{
    (void)user;
    const char *h = httpd_request_header(req, "X-IDENTITY-HEADER");
    httpd_reply_header(reply, "Content-Type", "application/json");
    if (!h || strcmp(h, "identity-header-secret") != 0) {
        httpd_reply_status(reply, 401);
        return;
    }
    /* Windows App Service writes expires_on as a date. */
    httpd_reply_bodyf(reply, "{\"access_token\":\"tok-app-service\",\"expires_on\":\"1/16/2099 "
                             "5:24:12 PM +00:00\",\"resource\":\"https://vault.azure.net\","
                             "\"token_type\":\"Bearer\"}");
}

static void test_identity_endpoint_gets_the_header_and_the_resource(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.aux = httpd_start_handler(app_service_handler, NULL);
    char *url = httpd_url(fx.aux, "/msi/token");
    setenv("IDENTITY_ENDPOINT", url, 1);
    setenv("IDENTITY_HEADER", "identity-header-secret", 1);
    char *t = NULL;
    int64_t exp = 0;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, "https://vault.azure.net/.default", &t, &exp), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "tok-app-service");
    CU_ASSERT_EQUAL(exp, 4072267452); /* 2099-01-16T17:24:12Z */
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.aux), 1);
    const struct httpd_request *r = httpd_request(fx.aux, 0);
    CU_ASSERT_STRING_EQUAL(r->path, "/msi/token");
    CU_ASSERT_STRING_EQUAL(r->query,
                           "api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 0);
    char *all = fx_everything(&fx);
    TU_ASSERT_NOT_CONTAINS(all, "identity-header-secret");
    TU_ASSERT_NOT_CONTAINS(all, "tok-app-service");
    free(all);
    free(t);
    free(url);
    fx_done(&fx);
}

static void imds_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    int *assigned = user;
    httpd_reply_header(reply, "Content-Type", "application/json");
    const char *md = httpd_request_header(req, "Metadata");
    if (!md || strcmp(md, "true") != 0 ||
        strcmp(req->path, "/metadata/identity/oauth2/token") != 0) {
        httpd_reply_status(reply, 400);
        httpd_reply_bodyf(reply, "{\"error\":\"invalid_request\",\"error_description\":\"Required "
                                 "metadata header not specified\"}");
        return;
    }
    if (!*assigned) {
        httpd_reply_status(reply, 400);
        httpd_reply_bodyf(reply, "{\"error\":\"invalid_request\",\"error_description\":\"Identity "
                                 "not found\"}");
        return;
    }
    /* As IMDS sends them: every number a string. */
    httpd_reply_bodyf(reply, "{\"access_token\":\"tok-imds\",\"refresh_token\":\"\","
                             "\"expires_in\":\"3599\",\"expires_on\":\"4102444800\","
                             "\"not_before\":\"1506480273\",\"resource\":"
                             "\"https://management.azure.com\",\"token_type\":\"Bearer\"}");
}

static void test_imds_gets_metadata_true_and_string_numbers(void)
{
    struct fixture fx;
    fx_init(&fx);
    int assigned = 1;
    fx.aux = httpd_start_handler(imds_handler, &assigned);
    char *url = httpd_url(fx.aux, "");
    setenv("IMDS_ENDPOINT", url, 1);
    /* A user-assigned identity, chosen by AZURE_CLIENT_ID as DefaultAzureCredential does. */
    setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555", 1);
    char *t = NULL;
    int64_t exp = 0;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, &exp), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "tok-imds");
    CU_ASSERT_EQUAL(exp, 4102444800);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.aux), 1);
    const struct httpd_request *r = httpd_request(fx.aux, 0);
    CU_ASSERT_STRING_EQUAL(r->query, "api-version=2018-02-01"
                                     "&resource=https%3A%2F%2Fmanagement.azure.com"
                                     "&client_id=11111111-2222-3333-4444-555555555555");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(r, "Metadata"), "true");
    free(t);
    /* Later calls skip the probe and keep using the source that worked. */
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, MLSTAGE_AZURE_SCOPE_STORAGE, &t, NULL), 0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.aux), 2);
    TU_ASSERT_CONTAINS(httpd_request(fx.aux, 1)->query, "resource=https%3A%2F%2Fstorage.azure.com");
    free(t);
    free(url);
    fx_done(&fx);
}

static void test_imds_without_an_identity_lets_the_chain_go_on_to_az(void)
{
    struct fixture fx;
    fx_init(&fx);
    int assigned = 0;
    fx.aux = httpd_start_handler(imds_handler, &assigned);
    char *url = httpd_url(fx.aux, "");
    setenv("IMDS_ENDPOINT", url, 1);
    fake_az(&fx, "echo '{\"accessToken\":\"cli-token-after-imds\",\"expires_on\":4102444800,"
                 "\"tokenType\":\"Bearer\"}'");
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "cli-token-after-imds");
    CU_ASSERT_EQUAL(httpd_request_count(fx.aux), 1);
    free(t);
    free(url);
    fx_done(&fx);
}

/* A proxy in front of the IMDS address answers with a page of its own. */
static void proxy_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    (void)req;
    (void)user;
    httpd_reply_status(reply, 403);
    httpd_reply_header(reply, "Content-Type", "text/html");
    httpd_reply_bodyf(reply, "<html><body>Access denied: resolve_deny</body></html>");
}

static void test_a_non_json_answer_to_the_imds_probe_is_no_imds(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.aux = httpd_start_handler(proxy_handler, NULL);
    char *url = httpd_url(fx.aux, "");
    setenv("IMDS_ENDPOINT", url, 1);
    fake_az(&fx, "echo '{\"accessToken\":\"cli-token-after-proxy\",\"expires_on\":4102444800,"
                 "\"tokenType\":\"Bearer\"}'");
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "cli-token-after-proxy");
    CU_ASSERT_EQUAL(httpd_request_count(fx.aux), 1);
    free(t);
    free(url);
    fx_done(&fx);
}

/* ---- 5. Azure CLI ------------------------------------------------------------------- */

static void test_az_cli_is_run_with_the_scope_and_its_output_is_not_logged(void)
{
    struct fixture fx;
    fx_init(&fx);
    fake_az(&fx, "echo 'WARNING: a warning az prints on stderr' >&2\n"
                 "cat <<'JSON'\n"
                 "{\n"
                 "  \"accessToken\": \"cli-token-0123456789\",\n"
                 "  \"expiresOn\": \"2099-12-31 23:59:59.000000\",\n"
                 "  \"expires_on\": 4102444799,\n"
                 "  \"subscription\": \"00000000-1111-2222-3333-444444444444\",\n"
                 "  \"tenant\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\",\n"
                 "  \"tokenType\": \"Bearer\"\n"
                 "}\n"
                 "JSON");
    /* cat is not a shell builtin: give the fake a PATH entry for it. */
    char *path = tu_fmt("%s:/usr/bin:/bin", fx.bin);
    setenv("PATH", path, 1);
    /* ... but the fake must still be the az that is found first. */
    char *t = NULL;
    int64_t exp = 0;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, &exp), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "cli-token-0123456789");
    CU_ASSERT_EQUAL(exp, 4102444799);
    char *args = az_args(&fx);
    CU_ASSERT_STRING_EQUAL(args ? args : "", "account\nget-access-token\n--output\njson\n--scope\n"
                                             "https://management.azure.com/.default\n");
    char *all = fx_everything(&fx);
    TU_ASSERT_NOT_CONTAINS(all, "cli-token-0123456789");
    TU_ASSERT_NOT_CONTAINS(all, "accessToken");
    free(all);
    free(args);
    free(path);
    free(t);
    fx_done(&fx);
}

static void test_az_cli_local_expires_on_is_read_when_expires_on_is_absent(void)
{
    struct fixture fx;
    fx_init(&fx);
    fake_az(&fx, "echo '{\"accessToken\": \"cli-old-format\", \"expiresOn\": \"2099-06-30 "
                 "12:00:00.000000\", \"tokenType\": \"Bearer\"}'");
    char *t = NULL;
    int64_t exp = 0;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, &exp), 0);
    struct tm tm = {.tm_year = 199, .tm_mon = 5, .tm_mday = 30, .tm_hour = 12, .tm_isdst = -1};
    CU_ASSERT_EQUAL(exp, (int64_t)mktime(&tm));
    free(t);
    fx_done(&fx);
}

static void test_az_not_logged_in_says_to_run_az_login(void)
{
    struct fixture fx;
    fx_init(&fx);
    fake_az(&fx, "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1");
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), MLSTAGE_EAUTH);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx),
                       "AzureCliCredential (az account get-access-token): unavailable: az account "
                       "get-access-token exited 1: ERROR: Please run 'az login' to setup account.");
    fx_done(&fx);
}

/* ---- the chain as a whole ------------------------------------------------------------- */

static void test_when_every_source_fails_one_error_lists_them_all(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *t = NULL;
    double t0 = now_mono();
    int rc = mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL);
    CU_ASSERT_TRUE(now_mono() - t0 < 3.0);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 4);
    CU_ASSERT_PTR_NULL(t);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "no Azure token for https://management.azure.com/.default; tried, in "
                            "order:");
    TU_ASSERT_CONTAINS(msg, "- EnvironmentCredential (AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                            "AZURE_CLIENT_SECRET): unavailable: AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                            "AZURE_CLIENT_SECRET not set");
    TU_ASSERT_CONTAINS(msg, "- WorkloadIdentityCredential (AZURE_FEDERATED_TOKEN_FILE): "
                            "unavailable: AZURE_FEDERATED_TOKEN_FILE, ");
    TU_ASSERT_CONTAINS(msg, "- GitHubActionsCredential (ACTIONS_ID_TOKEN_REQUEST_URL, "
                            "ACTIONS_ID_TOKEN_REQUEST_TOKEN): unavailable: ");
    TU_ASSERT_CONTAINS(msg, "- ManagedIdentityCredential (IDENTITY_ENDPOINT, IDENTITY_HEADER, "
                            "IMDS): unavailable: IDENTITY_ENDPOINT not set; IMDS at "
                            "http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, "did not answer");
    TU_ASSERT_CONTAINS(msg, "- AzureCliCredential (az account get-access-token): unavailable: az "
                            "is not on PATH");
    TU_ASSERT_CONTAINS(msg, "`az login`");
    fx_done(&fx);
}

static void test_on_github_without_id_token_permission_the_message_says_so(void)
{
    struct fixture fx;
    fx_init(&fx);
    setenv("GITHUB_ACTIONS", "true", 1);
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), MLSTAGE_EAUTH);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "permissions: id-token: write");
    fx_done(&fx);
}

static void test_azure_token_credentials_narrows_the_chain(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    fake_az(&fx, "echo '{\"accessToken\":\"cli-only\",\"expires_on\":4102444800}'");
    setenv("AZURE_TOKEN_CREDENTIALS", "dev", 1);
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "cli-only");
    CU_ASSERT_EQUAL(httpd_request_count(fx.entra.server), 0);
    free(t);
    setenv("AZURE_TOKEN_CREDENTIALS", "SomethingElse", 1);
    mlstage_azure_token_invalidate(fx.ctx, ARM_SCOPE);
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), MLSTAGE_EAUTH);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "AZURE_TOKEN_CREDENTIALS=SomethingElse");
    fx_done(&fx);
}

static void test_scopes_that_could_become_options_or_paths_are_refused(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *t = NULL;
    const char *bad[] = {"--debug", "https://x/.default; rm -rf /", "", "a b", NULL};
    for (const char *const *s = bad; *s; s++)
        CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, *s, &t, NULL), MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, NULL, &t, NULL), MLSTAGE_EINPUT);
    fx_done(&fx);
}

static void test_a_dry_run_still_fetches_tokens(void)
{
    struct fixture fx;
    fx_init(&fx);
    azt_entra_use(&fx.entra);
    fx.ctx->dry_run = 1;
    char *t = NULL;
    CU_ASSERT_EQUAL(mlstage_azure_token(fx.ctx, ARM_SCOPE, &t, NULL), 0);
    CU_ASSERT_STRING_EQUAL(t ? t : "", "tok-entra-1");
    CU_ASSERT_EQUAL(json_object_array_length(fx.ctx->plan), 0);
    free(t);
    fx_done(&fx);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"client secret posts the exact form", test_client_secret_posts_the_exact_form},
        {"a token is cached per scope until five minutes before expiry",
         test_a_token_is_cached_per_scope_until_five_minutes_before_expiry},
        {"invalidate makes the next call fetch a new token",
         test_invalidate_makes_the_next_call_fetch_a_new_token},
        {"concurrent callers share one fetch", test_concurrent_callers_share_one_fetch},
        {"a rejected secret stops the chain with Entra's reason",
         test_a_rejected_secret_stops_the_chain_with_entras_reason},
        {"federated token file is the assertion and re-read when stale",
         test_federated_token_file_is_the_assertion_and_reread_when_stale},
        {"a missing federated token file fails naming it",
         test_a_missing_federated_token_file_fails_naming_it},
        {"GitHub OIDC token is fetched with the audience and used as assertion",
         test_github_oidc_token_is_fetched_with_the_audience_and_used_as_assertion},
        {"IDENTITY_ENDPOINT gets the header and the resource",
         test_identity_endpoint_gets_the_header_and_the_resource},
        {"IMDS gets Metadata: true and string numbers",
         test_imds_gets_metadata_true_and_string_numbers},
        {"IMDS without an identity lets the chain go on to az",
         test_imds_without_an_identity_lets_the_chain_go_on_to_az},
        {"a non-JSON answer to the IMDS probe is no IMDS",
         test_a_non_json_answer_to_the_imds_probe_is_no_imds},
        {"az CLI is run with the scope and its output is not logged",
         test_az_cli_is_run_with_the_scope_and_its_output_is_not_logged},
        {"az CLI local expiresOn is read when expires_on is absent",
         test_az_cli_local_expires_on_is_read_when_expires_on_is_absent},
        {"az not logged in says to run az login", test_az_not_logged_in_says_to_run_az_login},
        {"when every source fails one error lists them all",
         test_when_every_source_fails_one_error_lists_them_all},
        {"on GitHub without id-token permission the message says so",
         test_on_github_without_id_token_permission_the_message_says_so},
        {"AZURE_TOKEN_CREDENTIALS narrows the chain",
         test_azure_token_credentials_narrows_the_chain},
        {"scopes that could become options or paths are refused",
         test_scopes_that_could_become_options_or_paths_are_refused},
        {"a dry run still fetches tokens", test_a_dry_run_still_fetches_tokens},
        {NULL, NULL}};
    return tu_main(argc, argv, "azure credential chain", tests);
}
