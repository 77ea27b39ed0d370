/* azuretest.c — what the Azure client's tests share: a clean environment and a fake Entra token
 * endpoint. */
#include "azuretest.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"

void azt_env_clear(void)
{
    static const char *const vars[] = {"AZURE_TENANT_ID",
                                       "AZURE_CLIENT_ID",
                                       "AZURE_CLIENT_SECRET",
                                       "AZURE_FEDERATED_TOKEN_FILE",
                                       "AZURE_AUTHORITY_HOST",
                                       "AZURE_TOKEN_CREDENTIALS",
                                       "ACTIONS_ID_TOKEN_REQUEST_URL",
                                       "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                                       "GITHUB_ACTIONS",
                                       "IDENTITY_ENDPOINT",
                                       "IDENTITY_HEADER",
                                       "MSI_ENDPOINT",
                                       "MSI_SECRET",
                                       "MLSTAGE_ARM_ENDPOINT",
                                       "MLSTAGE_BLOB_ENDPOINT",
                                       NULL};
    for (const char *const *v = vars; *v; v++)
        unsetenv(*v);
    char imds[64];
    snprintf(imds, sizeof(imds), "http://127.0.0.1:%d", azt_closed_port());
    setenv("IMDS_ENDPOINT", imds, 1);
}

int azt_closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("azt_closed_port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

static pthread_mutex_t entra_lock = PTHREAD_MUTEX_INITIALIZER;

static void entra_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    struct azt_entra *e = user;
    httpd_reply_header(reply, "Content-Type", "application/json");
    if (strcmp(req->method, "POST") != 0 || !strstr(req->path, "/oauth2/v2.0/token")) {
        httpd_reply_status(reply, 404);
        httpd_reply_bodyf(reply, "{\"error\":\"not_found\"}");
        return;
    }
    pthread_mutex_lock(&entra_lock);
    int status = e->status ? e->status : 200;
    int n = status == 200 ? ++e->issued : 0;
    pthread_mutex_unlock(&entra_lock);
    httpd_reply_status(reply, status);
    if (status != 200) {
        httpd_reply_bodyf(reply,
                          "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                          "Invalid client secret provided.\",\"error_codes\":[7000215]}");
        return;
    }
    httpd_reply_bodyf(reply,
                      "{\"token_type\":\"Bearer\",\"expires_in\":%d,\"ext_expires_in\":%d,"
                      "\"access_token\":\"%s-%d\"}",
                      e->expires_in ? e->expires_in : 3599, e->expires_in ? e->expires_in : 3599,
                      e->prefix, n);
}

void azt_entra_start(struct azt_entra *e, const char *prefix)
{
    memset(e, 0, sizeof(*e));
    e->prefix = prefix;
    e->server = httpd_start_handler(entra_handler, e);
}

void azt_entra_stop(struct azt_entra *e)
{
    httpd_stop(e->server);
    e->server = NULL;
}

void azt_entra_use(struct azt_entra *e)
{
    char *url = httpd_url(e->server, "");
    setenv("AZURE_AUTHORITY_HOST", url, 1);
    free(url);
    setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47", 1);
    setenv("AZURE_CLIENT_ID", "535fb089-9ff3-47b6-9bfb-4f1264799865", 1);
    setenv("AZURE_CLIENT_SECRET", "sp-secret-value/+&=", 1);
}
