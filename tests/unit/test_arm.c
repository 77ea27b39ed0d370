/* test_arm.c — the Resource Manager client: headers, errors, retries, expired tokens, long-running
 * operations and dry runs, against a scripted local server. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/azure.h>
#include <mlstage/error.h>
#include <mlstage/version.h>

#include "azure/azure_internal.h"
#include "azuretest.h"
#include "ctx.h"
#include "httpd.h"
#include "log.h"
#include "mask.h"
#include "testutil.h"
#include "util.h"

#define RG   "/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-ml"
#define DEPL RG "/providers/Microsoft.Resources/deployments/infra-1"
#define APIV "2025-04-01"

struct fixture {
    struct mlstage_ctx *ctx;
    char *dir;
    struct azt_entra entra;
    struct httpd *arm;
    char *base; /* http://127.0.0.1:PORT */
};

static void fx_init(struct fixture *fx)
{
    memset(fx, 0, sizeof(*fx));
    mask_reset();
    azt_env_clear();
    fx->ctx = ctx_new();
    fx->dir = tu_tmpdir();
    fx->ctx->run_dir = xstrdup(fx->dir);
    azt_entra_start(&fx->entra, "arm-token");
    azt_entra_use(&fx->entra);
    fx->arm = httpd_start();
    fx->base = httpd_url(fx->arm, "");
    setenv("MLSTAGE_ARM_ENDPOINT", fx->base, 1);
}

static void fx_done(struct fixture *fx)
{
    httpd_stop(fx->arm);
    azt_entra_stop(&fx->entra);
    ctx_free(fx->ctx);
    tu_rm_rf(fx->dir);
    free(fx->dir);
    free(fx->base);
    azt_env_clear();
}

static char *fx_url(struct fixture *fx, const char *path)
{
    return tu_fmt("%s%s", fx->base, path);
}

static char *fx_http_log(struct fixture *fx)
{
    char *p = tu_fmt("%s/http.log", fx->dir);
    char *text = tu_read(p, NULL);
    free(p);
    return text;
}

static int is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return s[14] == '4';
}

static json_object *body_of(const char *json)
{
    return json_tokener_parse(json);
}

static const char *jpath(json_object *o, const char *a, const char *b)
{
    json_object *x = NULL, *y = NULL;
    if (!o || !json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return json_object_get_string(x);
    if (!json_object_object_get_ex(x, b, &y))
        return NULL;
    return json_object_get_string(y);
}

/* ---- long-running operations ----------------------------------------------------------- */

static void test_put_follows_azure_async_operation_then_gets_the_resource(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *op = fx_url(&fx, "/subscriptions/00000000-1111-2222-3333-444444444444/providers/"
                           "Microsoft.Resources/operationStatuses/op-1?api-version=" APIV);
    char *h_async = tu_fmt("Azure-AsyncOperation: %s", op);
    /* A Location too: Azure-AsyncOperation is preferred when both come. */
    char *h_loc = tu_fmt("Location: %s", op);
    const char *first[] = {h_async, h_loc, "Retry-After: 0", "x-ms-correlation-request-id: corr-1",
                           NULL};
    const char *again[] = {"Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 201, first,
                        "{\"id\":\"" DEPL
                        "\",\"properties\":{\"provisioningState\":\"Accepted\"}}");
    httpd_push_response(fx.arm, 200, again, "{\"status\":\"Running\"}");
    httpd_push_response(fx.arm, 200, again, "{\"status\":\"Succeeded\"}");
    httpd_push_response(
        fx.arm, 200, NULL,
        "{\"id\":\"" DEPL "\",\"properties\":{\"provisioningState\":\"Succeeded\","
        "\"outputs\":{\"workspaceName\":{\"type\":\"String\",\"value\":\"mlw-dev\"}}}"
        "}");
    json_object *body = body_of("{\"properties\":{\"mode\":\"Incremental\",\"template\":{}}}");
    json_object *result = NULL;
    int rc = mlstage_arm_put_and_wait(fx.ctx, DEPL, APIV, body, 60, &result);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.arm), 4);
    const struct httpd_request *put = httpd_request(fx.arm, 0);
    CU_ASSERT_STRING_EQUAL(put->method, "PUT");
    CU_ASSERT_STRING_EQUAL(put->target, DEPL "?api-version=" APIV);
    CU_ASSERT_STRING_EQUAL(put->body,
                           "{\"properties\":{\"mode\":\"Incremental\",\"template\":{}}}");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(put, "Content-Type"), "application/json");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(put, "Authorization"), "Bearer arm-token-1");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(put, "User-Agent"), "mlstage/" MLSTAGE_VERSION);
    CU_ASSERT_TRUE(is_uuid(httpd_request_header(put, "x-ms-client-request-id")));
    for (size_t i = 1; i < 3; i++) {
        const struct httpd_request *poll = httpd_request(fx.arm, i);
        CU_ASSERT_STRING_EQUAL(poll->method, "GET");
        TU_ASSERT_CONTAINS(poll->target, "/operationStatuses/op-1?api-version=" APIV);
        CU_ASSERT_TRUE(is_uuid(httpd_request_header(poll, "x-ms-client-request-id")));
        CU_ASSERT_STRING_NOT_EQUAL(httpd_request_header(poll, "x-ms-client-request-id"),
                                   httpd_request_header(put, "x-ms-client-request-id"));
    }
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.arm, 3)->target, DEPL "?api-version=" APIV);
    CU_ASSERT_STRING_EQUAL(jpath(result, "properties", "provisioningState"), "Succeeded");
    /*
     * One token, fetched once, for the public cloud's Resource Manager: a loopback endpoint is
     * a stand-in for it, and Entra knows no "http://127.0.0.1:PORT" resource.
     */
    CU_ASSERT_EQUAL(fx.entra.issued, 1);
    TU_ASSERT_CONTAINS(httpd_request(fx.entra.server, 0)->body,
                       "scope=https%3A%2F%2Fmanagement.azure.com%2F.default");
    TU_ASSERT_NOT_CONTAINS(httpd_request(fx.entra.server, 0)->body, "127.0.0.1");
    char *log = fx_http_log(&fx);
    TU_ASSERT_NOT_CONTAINS(log, "arm-token-1");
    free(log);
    json_object_put(result);
    json_object_put(body);
    free(op);
    free(h_async);
    free(h_loc);
    fx_done(&fx);
}

static void test_put_follows_location_when_there_is_no_azure_async_operation(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *loc = fx_url(&fx, RG "/providers/Microsoft.Resources/deployments/infra-1/"
                               "operationResults/op-2?api-version=" APIV);
    char *h_loc = tu_fmt("Location: %s", loc);
    const char *first[] = {h_loc, "Retry-After: 0", NULL};
    const char *again[] = {"Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 202, first, NULL);
    httpd_push_response(fx.arm, 202, again, NULL);
    httpd_push_response(fx.arm, 200, NULL,
                        "{\"properties\":{\"provisioningState\":\"Succeeded\"}}");
    httpd_push_response(
        fx.arm, 200, NULL,
        "{\"name\":\"infra-1\",\"properties\":{\"provisioningState\":\"Succeeded\"}}");
    json_object *body = body_of("{\"properties\":{}}");
    json_object *result = NULL;
    CU_ASSERT_EQUAL(mlstage_arm_put_and_wait(fx.ctx, DEPL, APIV, body, 60, &result), 0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.arm), 4);
    TU_ASSERT_CONTAINS(httpd_request(fx.arm, 1)->target, "/operationResults/op-2");
    TU_ASSERT_CONTAINS(httpd_request(fx.arm, 2)->target, "/operationResults/op-2");
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.arm, 3)->target, DEPL "?api-version=" APIV);
    CU_ASSERT_STRING_EQUAL(jpath(result, "name", NULL), "infra-1");
    json_object_put(result);
    json_object_put(body);
    free(loc);
    free(h_loc);
    fx_done(&fx);
}

static void test_a_read_only_post_is_sent_and_polled_in_a_dry_run(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.ctx->dry_run = 1;
    char *loc = fx_url(&fx, "/subscriptions/00000000-1111-2222-3333-444444444444/providers/"
                            "Microsoft.Resources/locations/westeurope/operationResults/w1?api-"
                            "version=" APIV);
    char *h_loc = tu_fmt("Location: %s", loc);
    const char *first[] = {h_loc, "Retry-After: 0", NULL};
    const char *again[] = {"Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 202, first, NULL);
    httpd_push_response(fx.arm, 202, again, NULL);
    httpd_push_response(fx.arm, 200, NULL,
                        "{\"status\":\"Succeeded\",\"changes\":[{\"changeType\":\"Create\"}]}");
    json_object *body = body_of("{\"properties\":{\"mode\":\"Incremental\"}}");
    json_object *result = NULL;
    int rc = mlstage_arm_request_and_wait(fx.ctx, "POST", DEPL "/whatIf", APIV, body, 60, &result);
    CU_ASSERT_EQUAL(rc, 0);
    /* The what-if's answer is the Location's final body: no further request. */
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 3);
    CU_ASSERT_STRING_EQUAL(jpath(result, "status", NULL), "Succeeded");
    CU_ASSERT_EQUAL(json_object_array_length(fx.ctx->plan), 0);
    json_object_put(result);

    /* listKeys and getLogs read too; an ordinary action does not. */
    httpd_push_response(fx.arm, 200, NULL, "{\"primaryKey\":\"k1\",\"secondaryKey\":\"k2\"}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "POST", RG "/x/onlineEndpoints/e/listKeys",
                                        "2025-12-01", NULL, NULL, &result),
                    0);
    CU_ASSERT_STRING_EQUAL(jpath(result, "primaryKey", NULL), "k1");
    json_object_put(result);
    httpd_push_response(fx.arm, 200, NULL, "{\"content\":\"log line\"}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "POST", RG "/x/deployments/blue/getLogs",
                                        "2025-12-01", body, NULL, NULL),
                    0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 5);
    long status = -1;
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "POST", RG "/x/deployments/blue/regenerateKeys",
                                        "2025-12-01", NULL, &status, NULL),
                    0);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 5);
    CU_ASSERT_EQUAL(json_object_array_length(fx.ctx->plan), 1);
    json_object_put(body);
    free(loc);
    free(h_loc);
    fx_done(&fx);
}

static void test_a_failed_operation_reports_its_error_and_details(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *op = fx_url(&fx, "/subscriptions/s/providers/Microsoft.Resources/operationStatuses/op-3"
                           "?api-version=" APIV);
    char *h_async = tu_fmt("Azure-AsyncOperation: %s", op);
    const char *first[] = {h_async, "Retry-After: 0", "x-ms-correlation-request-id: corr-failed-7",
                           NULL};
    httpd_push_response(fx.arm, 201, first,
                        "{\"properties\":{\"provisioningState\":\"Accepted\"}}");
    httpd_push_response(
        fx.arm, 200, NULL,
        "{\"status\":\"Failed\",\"error\":{\"code\":\"DeploymentFailed\",\"message\":\"At least "
        "one resource deployment operation failed. Please list deployment operations for "
        "details.\",\"details\":[{\"code\":\"StorageAccountAlreadyTaken\",\"message\":\"The "
        "storage account named stmldev is already taken.\",\"target\":\"" RG
        "/providers/Microsoft.Storage/storageAccounts/stmldev\"}]}}");
    json_object *body = body_of("{\"properties\":{}}");
    json_object *result = NULL;
    int rc = mlstage_arm_put_and_wait(fx.ctx, DEPL, APIV, body, 60, &result);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EFAIL);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 1);
    CU_ASSERT_PTR_NULL(result);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "PUT http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, "/deployments/infra-1?api-version=" APIV ": the operation ended "
                            "Failed after ");
    TU_ASSERT_CONTAINS(msg, "DeploymentFailed: At least one resource deployment operation failed.");
    TU_ASSERT_CONTAINS(msg, "\n  - StorageAccountAlreadyTaken: The storage account named stmldev "
                            "is already taken. (target: " RG
                            "/providers/Microsoft.Storage/storageAccounts/stmldev)");
    TU_ASSERT_CONTAINS(msg, "operation: http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, "x-ms-correlation-request-id: corr-failed-7");
    json_object_put(body);
    free(op);
    free(h_async);
    fx_done(&fx);
}

static void test_provisioning_state_is_polled_when_no_header_says_how(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *again[] = {"Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 201, again,
                        "{\"properties\":{\"provisioningState\":\"Creating\"}}");
    httpd_push_response(fx.arm, 200, again,
                        "{\"properties\":{\"provisioningState\":\"Updating\"}}");
    httpd_push_response(fx.arm, 200, NULL,
                        "{\"name\":\"ep\",\"properties\":{\"provisioningState\":\"Succeeded\"}}");
    json_object *body = body_of("{\"location\":\"westeurope\"}");
    json_object *result = NULL;
    CU_ASSERT_EQUAL(mlstage_arm_put_and_wait(fx.ctx, RG "/x/onlineEndpoints/ep", "2025-12-01", body,
                                             60, &result),
                    0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 3);
    CU_ASSERT_STRING_EQUAL(jpath(result, "name", NULL), "ep");
    json_object_put(result);

    /* A resource that comes back Failed at once is a failure with its error. */
    httpd_push_response(fx.arm, 200, NULL,
                        "{\"properties\":{\"provisioningState\":\"Failed\",\"error\":{\"code\":"
                        "\"QuotaExceeded\",\"message\":\"Not enough cores.\"}}}");
    CU_ASSERT_EQUAL(mlstage_arm_put_and_wait(fx.ctx, RG "/x/onlineEndpoints/ep", "2025-12-01", body,
                                             60, &result),
                    MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "QuotaExceeded: Not enough cores.");
    json_object_put(body);
    fx_done(&fx);
}

static void test_arm_wait_reattaches_to_a_resource_being_provisioned(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *again[] = {"Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 200, again,
                        "{\"properties\":{\"provisioningState\":\"Updating\"}}");
    httpd_push_response(fx.arm, 200, NULL,
                        "{\"properties\":{\"provisioningState\":\"Succeeded\"}}");
    json_object *result = NULL;
    CU_ASSERT_EQUAL(mlstage_arm_wait(fx.ctx, RG "/x/onlineEndpoints/ep/deployments/green",
                                     "2025-12-01", 60, &result),
                    0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    CU_ASSERT_STRING_EQUAL(jpath(result, "properties", "provisioningState"), "Succeeded");
    json_object_put(result);
    fx_done(&fx);
}

static void test_the_deadline_stops_waiting_and_names_the_operation(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *op = fx_url(&fx, "/subscriptions/s/providers/Microsoft.Resources/operationStatuses/slow"
                           "?api-version=" APIV);
    char *h_async = tu_fmt("Azure-AsyncOperation: %s", op);
    const char *first[] = {h_async, "Retry-After: 1", NULL};
    const char *again[] = {"Retry-After: 1", NULL};
    httpd_push_response(fx.arm, 201, first, "{}");
    for (int i = 0; i < 5; i++)
        httpd_push_response(fx.arm, 200, again, "{\"status\":\"Running\"}");
    double t0 = now_mono();
    int rc = mlstage_arm_put_and_wait(fx.ctx, DEPL, APIV, NULL, 2.5, NULL);
    double took = now_mono() - t0;
    CU_ASSERT_EQUAL(rc, MLSTAGE_ETIMEOUT);
    CU_ASSERT_TRUE(took >= 1.9 && took < 3.0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 3);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "still Running after");
    TU_ASSERT_CONTAINS(msg, "the operation goes on in Azure: http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, "/operationStatuses/slow");
    free(op);
    free(h_async);
    fx_done(&fx);
}

static void test_delete_waits_for_location_and_yields_nothing(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *loc = fx_url(&fx, RG "/x/operationResults/d1?api-version=2025-12-01");
    char *h_loc = tu_fmt("Location: %s", loc);
    const char *first[] = {h_loc, "Retry-After: 0", NULL};
    httpd_push_response(fx.arm, 202, first, NULL);
    httpd_push_response(fx.arm, 204, NULL, NULL);
    json_object *result = (json_object *)1;
    CU_ASSERT_EQUAL(mlstage_arm_request_and_wait(fx.ctx, "DELETE", RG "/x/deployments/blue",
                                                 "2025-12-01", NULL, 60, &result),
                    0);
    CU_ASSERT_PTR_NULL(result);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.arm, 0)->method, "DELETE");
    free(loc);
    free(h_loc);
    fx_done(&fx);
}

/* ---- retries and errors ---------------------------------------------------------------- */

static void test_429_with_retry_after_is_waited_out_then_succeeds(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *ra[] = {"Retry-After: 1", "x-ms-ratelimit-remaining-subscription-reads: 0", NULL};
    httpd_push_response(fx.arm, 429, ra,
                        "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"Slow down.\"}}");
    httpd_push_response(fx.arm, 200, NULL, "{\"name\":\"rg-ml\"}");
    long status = 0;
    json_object *res = NULL;
    double t0 = now_mono();
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, &status, &res), 0);
    CU_ASSERT_TRUE(now_mono() - t0 >= 1.0);
    CU_ASSERT_EQUAL(status, 200);
    CU_ASSERT_STRING_EQUAL(jpath(res, "name", NULL), "rg-ml");
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    json_object_put(res);
    fx_done(&fx);
}

static void test_503s_until_retries_run_out_are_eremote_with_the_arm_error(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *h[] = {"Retry-After: 0", "x-ms-correlation-request-id: corr-503", NULL};
    for (int i = 0; i < 5; i++)
        httpd_push_response(fx.arm, 503, h,
                            "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"The "
                            "service is temporarily unavailable.\"}}");
    long status = 0;
    int rc = mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, &status, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 5);
    CU_ASSERT_EQUAL(status, 503);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 5);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "GET http://127.0.0.1:");
    TU_ASSERT_CONTAINS(msg, RG "?api-version=2024-03-01: HTTP 503: ServiceUnavailable: The service "
                               "is temporarily unavailable.");
    TU_ASSERT_CONTAINS(msg, "x-ms-correlation-request-id: corr-503");
    TU_ASSERT_CONTAINS(msg, "gave up after 5 attempts");
    fx_done(&fx);
}

static void test_a_dropped_connection_is_retried(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_drop(fx.arm);
    httpd_push_response(fx.arm, 200, NULL, "{\"ok\":true}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    fx_done(&fx);
}

static void test_an_expired_token_is_refreshed_once(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *www[] = {"WWW-Authenticate: Bearer authorization_uri=\"https://login.windows.net/"
                         "t\", error=\"invalid_token\", error_description=\"The access token has "
                         "expired.\"",
                         NULL};
    const char *expired = "{\"error\":{\"code\":\"ExpiredAuthenticationToken\",\"message\":\"The "
                          "access token expiry UTC time '1/1/2026 10:00:00 AM' is earlier than "
                          "current UTC time '1/1/2026 10:05:00 AM'.\"}}";
    httpd_push_response(fx.arm, 401, www, expired);
    httpd_push_response(fx.arm, 200, NULL, "{\"ok\":1}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(httpd_request_count(fx.arm), 2);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(fx.arm, 0), "Authorization"),
                           "Bearer arm-token-1");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(fx.arm, 1), "Authorization"),
                           "Bearer arm-token-2");
    CU_ASSERT_EQUAL(fx.entra.issued, 2);

    /* Expired again right away: once is enough, the 401 is the answer. */
    httpd_push_response(fx.arm, 401, NULL, expired);
    httpd_push_response(fx.arm, 401, NULL, expired);
    httpd_push_response(fx.arm, 200, NULL, "{}");
    int rc = mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 4);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "HTTP 401: ExpiredAuthenticationToken");
    fx_done(&fx);
}

static void test_an_arm_error_body_becomes_one_message_a_person_can_act_on(void)
{
    struct fixture fx;
    fx_init(&fx);
    const char *h[] = {"x-ms-correlation-request-id: 6b2f3c8e-corr", "x-ms-request-id: 9d1e-req",
                       "Content-Type: application/json", NULL};
    httpd_push_response(
        fx.arm, 400, h,
        "{\"error\":{\"code\":\"InvalidTemplate\",\"message\":\"Deployment template validation "
        "failed: 'The provided value for the template parameter 'sku' is not valid.'\","
        "\"target\":\"/properties/parameters/sku\",\"details\":[{\"code\":\"AllowedValues\","
        "\"message\":\"Allowed: Basic, Standard.\",\"details\":[{\"code\":\"Inner\",\"message\":"
        "\"nested\"}]}],\"additionalInfo\":[{\"type\":\"TemplateViolation\",\"info\":{"
        "\"lineNumber\":"
        "12,\"linePosition\":5,\"path\":\"properties.parameters.sku\"}}]}}");
    json_object *body = body_of("{\"properties\":{\"mode\":\"Incremental\"}}");
    long status = 0;
    json_object *res = NULL;
    int rc = mlstage_arm_request(fx.ctx, "PUT", DEPL, APIV, body, &status, &res);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EFAIL);
    CU_ASSERT_EQUAL(status, 400);
    CU_ASSERT_PTR_NOT_NULL(res); /* the caller can still look at the body */
    char *url = fx_url(&fx, DEPL "?api-version=" APIV);
    char *want = tu_fmt(
        "PUT %s: HTTP 400: InvalidTemplate: Deployment template validation failed: 'The provided "
        "value for the template parameter 'sku' is not valid.' (target: /properties/parameters/sku)"
        "\n  additionalInfo TemplateViolation: "
        "{\"lineNumber\":12,\"linePosition\":5,\"path\":\"properties.parameters.sku\"}"
        "\n  - AllowedValues: Allowed: Basic, Standard."
        "\n    - Inner: nested"
        "\n  x-ms-correlation-request-id: 6b2f3c8e-corr, x-ms-request-id: 9d1e-req",
        url);
    CU_ASSERT_STRING_EQUAL(mlstage_error_message(fx.ctx), want);
    if (strcmp(mlstage_error_message(fx.ctx), want) != 0)
        fprintf(stderr, "\ngot:  %s\nwant: %s\n", mlstage_error_message(fx.ctx), want);
    json_object_put(res);
    json_object_put(body);
    free(url);
    free(want);
    fx_done(&fx);
}

static void test_403_is_eauth_with_a_hint_and_404_is_enotfound(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_response(fx.arm, 403, NULL,
                        "{\"error\":{\"code\":\"AuthorizationFailed\",\"message\":\"The client "
                        "'x' does not have authorization to perform action 'Microsoft.Resources/"
                        "deployments/write' over scope '/subscriptions/s'.\"}}");
    int rc = mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 4);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "AuthorizationFailed");
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "hint: the identity lacks a role");
    httpd_push_response(fx.arm, 404, NULL,
                        "{\"error\":{\"code\":\"ResourceGroupNotFound\",\"message\":\"Resource "
                        "group 'rg-ml' could not be found.\"}}");
    long status = 0;
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, &status, NULL),
                    MLSTAGE_ENOTFOUND);
    CU_ASSERT_EQUAL(status, 404);
    /* A proxy's HTML is quoted, not parsed. */
    httpd_push_response(fx.arm, 400, NULL, "<html><body>Bad gateway thing</body></html>");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL),
                    MLSTAGE_EFAIL);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "HTTP 400: <html><body>Bad gateway thing");
    fx_done(&fx);
}

/* ---- URLs and dry runs -------------------------------------------------------------------- */

static void test_a_dry_run_prints_the_put_and_sends_nothing(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.ctx->dry_run = 1;
    json_object *body = body_of("{\"location\":\"westeurope\",\"tags\":{\"mlstage.commit\":"
                                "\"abc123\"}}");
    json_object *result = (json_object *)1;
    CU_ASSERT_EQUAL(mlstage_arm_put_and_wait(fx.ctx, RG, "2024-03-01", body, 60, &result), 0);
    CU_ASSERT_PTR_NULL(result);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 0);
    /* No token is needed for what is only printed. */
    CU_ASSERT_EQUAL(fx.entra.issued, 0);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(fx.ctx->plan), 1);
    const char *plan = json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 0));
    TU_ASSERT_CONTAINS(plan, "PUT http://127.0.0.1:");
    TU_ASSERT_CONTAINS(plan, RG "?api-version=2024-03-01");
    TU_ASSERT_CONTAINS(plan, "\"mlstage.commit\": \"abc123\"");
    TU_ASSERT_NOT_CONTAINS(plan, "Bearer");
    /* Reads still go out, with a token. */
    httpd_push_response(fx.arm, 200, NULL, "{\"name\":\"rg-ml\"}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 1);
    CU_ASSERT_EQUAL(fx.entra.issued, 1);
    json_object_put(body);
    fx_done(&fx);
}

static void test_absolute_urls_are_accepted_only_on_the_endpoint(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* A nextLink carries its own api-version: not added twice. */
    char *next =
        fx_url(&fx, RG "/providers/Microsoft.MachineLearningServices/workspaces/w/models/m/"
                       "versions?api-version=2025-12-01&$skipToken=abc");
    httpd_push_response(fx.arm, 200, NULL, "{\"value\":[]}");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", next, "2025-12-01", NULL, NULL, NULL), 0);
    CU_ASSERT_STRING_EQUAL(httpd_request(fx.arm, 0)->query,
                           "api-version=2025-12-01&$skipToken=abc");
    const char *elsewhere[] = {"https://evil.example.com/subscriptions/s",
                               "http://127.0.0.2:1/subscriptions/s", NULL};
    for (const char *const *u = elsewhere; *u; u++) {
        CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", *u, "2024-03-01", NULL, NULL, NULL),
                        MLSTAGE_EINPUT);
        TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "not on the Resource Manager endpoint");
    }
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 1);
    CU_ASSERT_EQUAL(fx.entra.issued, 1);

    /* An operation URL elsewhere is not followed with the token either. */
    const char *h[] = {"Azure-AsyncOperation: https://evil.example.com/op?api-version=1", NULL};
    httpd_push_response(fx.arm, 201, h, "{}");
    CU_ASSERT_EQUAL(mlstage_arm_put_and_wait(fx.ctx, DEPL, APIV, NULL, 60, NULL), MLSTAGE_EREMOTE);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "off the Resource Manager endpoint");
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 2);
    free(next);
    fx_done(&fx);
}

static void test_without_credentials_nothing_is_sent_and_the_error_is_eauth(void)
{
    struct fixture fx;
    fx_init(&fx);
    unsetenv("AZURE_CLIENT_SECRET");
    unsetenv("AZURE_CLIENT_ID");
    unsetenv("AZURE_TENANT_ID");
    setenv("AZURE_TOKEN_CREDENTIALS", "prod", 1);
    int rc = mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(httpd_request_count(fx.arm), 0);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx),
                       "no Azure token for https://management.azure.com/.default");
    fx_done(&fx);
}

static void test_the_endpoint_is_the_one_requests_go_to(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* The fixture points MLSTAGE_ARM_ENDPOINT at its server: that is what a plugin is told. */
    char *e = mlstage_arm_endpoint(fx.ctx);
    CU_ASSERT_STRING_EQUAL(e, fx.base);
    free(e);
    char *slash = tu_fmt("%s//", fx.base);
    setenv("MLSTAGE_ARM_ENDPOINT", slash, 1);
    e = mlstage_arm_endpoint(fx.ctx);
    CU_ASSERT_STRING_EQUAL(e, fx.base); /* trailing '/' dropped, as in the request URLs */
    free(e);
    free(slash);
    unsetenv("MLSTAGE_ARM_ENDPOINT");
    e = mlstage_arm_endpoint(fx.ctx);
    CU_ASSERT_STRING_EQUAL(e, "https://management.azure.com");
    free(e);
    fx_done(&fx);
}

static void test_a_success_with_a_body_that_is_not_json_is_an_error(void)
{
    struct fixture fx;
    fx_init(&fx);
    httpd_push_response(fx.arm, 200, NULL, "<html>captive portal</html>");
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "GET", RG, "2024-03-01", NULL, NULL, NULL),
                    MLSTAGE_EREMOTE);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "not JSON");
    httpd_push_response(fx.arm, 204, NULL, NULL);
    json_object *res = (json_object *)1;
    CU_ASSERT_EQUAL(mlstage_arm_request(fx.ctx, "DELETE", RG, "2024-03-01", NULL, NULL, &res), 0);
    CU_ASSERT_PTR_NULL(res);
    fx_done(&fx);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"PUT follows Azure-AsyncOperation then GETs the resource",
         test_put_follows_azure_async_operation_then_gets_the_resource},
        {"PUT follows Location when there is no Azure-AsyncOperation",
         test_put_follows_location_when_there_is_no_azure_async_operation},
        {"a read-only POST is sent and polled in a dry run",
         test_a_read_only_post_is_sent_and_polled_in_a_dry_run},
        {"a failed operation reports its error and details",
         test_a_failed_operation_reports_its_error_and_details},
        {"provisioningState is polled when no header says how",
         test_provisioning_state_is_polled_when_no_header_says_how},
        {"arm_wait re-attaches to a resource being provisioned",
         test_arm_wait_reattaches_to_a_resource_being_provisioned},
        {"the deadline stops waiting and names the operation",
         test_the_deadline_stops_waiting_and_names_the_operation},
        {"DELETE waits for Location and yields nothing",
         test_delete_waits_for_location_and_yields_nothing},
        {"429 with Retry-After is waited out, then succeeds",
         test_429_with_retry_after_is_waited_out_then_succeeds},
        {"503s until retries run out are EREMOTE with the ARM error",
         test_503s_until_retries_run_out_are_eremote_with_the_arm_error},
        {"a dropped connection is retried", test_a_dropped_connection_is_retried},
        {"an expired token is refreshed once", test_an_expired_token_is_refreshed_once},
        {"an ARM error body becomes one message a person can act on",
         test_an_arm_error_body_becomes_one_message_a_person_can_act_on},
        {"403 is EAUTH with a hint and 404 is ENOTFOUND",
         test_403_is_eauth_with_a_hint_and_404_is_enotfound},
        {"a dry run prints the PUT and sends nothing",
         test_a_dry_run_prints_the_put_and_sends_nothing},
        {"absolute URLs are accepted only on the endpoint",
         test_absolute_urls_are_accepted_only_on_the_endpoint},
        {"without credentials nothing is sent and the error is EAUTH",
         test_without_credentials_nothing_is_sent_and_the_error_is_eauth},
        {"a success with a body that is not JSON is an error",
         test_a_success_with_a_body_that_is_not_json_is_an_error},
        {"the endpoint is the one requests go to", test_the_endpoint_is_the_one_requests_go_to},
        {NULL, NULL}};
    return tu_main(argc, argv, "azure resource manager", tests);
}
