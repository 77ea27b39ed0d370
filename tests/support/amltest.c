/* amltest.c — the world the azureml halves are tested in: azure_fake (Entra, ARM, Azure ML) with a
 * real Azurite behind its default datastore, started once per suite. */
#include "amltest.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <mlstage/azure.h>
#include <mlstage/http.h>

#include "azure/azure_internal.h"
#include "azuretest.h"
#include "ctx.h"
#include "testutil.h"

#define AZURITE_BIN MLSTAGE_SOURCE_DIR "/tests/node/node_modules/.bin/azurite-blob"
#define FAKE_PY     MLSTAGE_SOURCE_DIR "/tests/servers/azure_fake/server.py"
#define ACCOUNT     "devstoreaccount1"
#define CLIENT_ID   "22222222-2222-2222-2222-222222222222"
#define TENANT_ID   "11111111-1111-1111-1111-111111111111"

static struct {
    char *dir;
    pid_t azurite_pid, fake_pid;
    int azurite_port, fake_port;
    char *azurite_url; /* http://127.0.0.1:PORT/devstoreaccount1 */
    char *fake_url;
    char *why;
    char *env_store[8];
    const char *env[24];
    char *token;
} W;

const char *amlt_why(void)
{
    return W.why ? W.why : "";
}

const char *amlt_url(void)
{
    return W.fake_url;
}

void amlt_require(void)
{
    if (!W.fake_url) {
        fprintf(stderr, "\n%s\n", amlt_why());
        CU_FAIL_FATAL("azure_fake or Azurite is not running (npm ci --prefix tests/node)");
    }
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void stop_child(pid_t *pid, int group)
{
    if (*pid <= 0)
        return;
    kill(group ? -*pid : *pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(*pid, NULL, WNOHANG) == *pid) {
            *pid = 0;
            return;
        }
        usleep(50 * 1000);
    }
    kill(group ? -*pid : *pid, SIGKILL);
    waitpid(*pid, NULL, 0);
    *pid = 0;
}

static int azurite_start(void)
{
    if (access(AZURITE_BIN, X_OK) != 0) {
        W.why = tu_fmt("Azurite is needed: install it with `npm ci --prefix tests/node` (%s is "
                       "missing)",
                       AZURITE_BIN);
        return -1;
    }
    W.azurite_port = azt_closed_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", W.azurite_port);
    char *log = tu_fmt("%s/azurite.out", W.dir);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (chdir(W.dir) != 0)
            _exit(126);
        execl(AZURITE_BIN, "azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", port,
              "--inMemoryPersistence", "--silent", "--disableTelemetry", (char *)NULL);
        _exit(127);
    }
    W.azurite_pid = pid;
    for (int i = 0; i < 300 && !port_open(W.azurite_port); i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            char *out = tu_read(log, NULL);
            W.why = tu_fmt("azurite-blob exited at start: %s", out ? out : "");
            free(out);
            W.azurite_pid = 0;
            free(log);
            return -1;
        }
        usleep(100 * 1000);
    }
    free(log);
    if (!port_open(W.azurite_port)) {
        W.why = tu_fmt("Azurite did not listen on port %d within 30 s", W.azurite_port);
        return -1;
    }
    W.azurite_url = tu_fmt("http://127.0.0.1:%d/" ACCOUNT, W.azurite_port);
    return 0;
}

/* The datastore's container, created as a workspace's storage account has it. */
static int container_create(void)
{
    char date[64], dh[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(dh, sizeof(dh), "x-ms-date: %s", date);
    char *url = tu_fmt("%s/" AMLT_CONTAINER "?restype=container", W.azurite_url);
    const char *h[4] = {"x-ms-version: 2021-12-02", dh, NULL, NULL};
    char *sts = blob_string_to_sign("PUT", url, h, 0, ACCOUNT);
    unsigned char key[128], md[32];
    int klen = EVP_DecodeBlock(key, (const unsigned char *)AMLT_AZURITE_KEY,
                               (int)strlen(AMLT_AZURITE_KEY));
    klen -= 2; /* the key ends with "==" */
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, klen, (const unsigned char *)sts, strlen(sts), md, &mdlen);
    char sig[64];
    EVP_EncodeBlock((unsigned char *)sig, md, (int)mdlen);
    char *auth = tu_fmt("Authorization: SharedKey " ACCOUNT ":%s", sig);
    h[2] = auth;
    struct mlstage_ctx *ctx = ctx_new();
    struct mlstage_http_request req = {.method = "PUT", .url = url, .headers = h};
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    int ok = resp && (resp->status == 201 || resp->status == 409);
    if (!ok)
        W.why = tu_fmt("cannot create container " AMLT_CONTAINER " in Azurite: HTTP %ld %s",
                       resp ? resp->status : 0L, resp && resp->body ? resp->body : "");
    mlstage_http_response_free(resp);
    ctx_free(ctx);
    free(auth);
    free(sts);
    free(url);
    return ok ? 0 : -1;
}

static int fake_start(void)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    char *log = tu_fmt("%s/azure_fake.err", W.dir);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        execlp("python3", "python3", FAKE_PY, "--port", "0", "--retry-after", "0", "--azurite",
               W.azurite_url, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    W.fake_pid = pid;
    FILE *out = fdopen(fds[0], "r");
    char line[128];
    int port = 0;
    if (!out || !fgets(line, sizeof(line), out) ||
        sscanf(line, "listening http://127.0.0.1:%d", &port) != 1) {
        char *err = tu_read(log, NULL);
        W.why = tu_fmt("azure_fake did not start: %s", err ? err : "");
        free(err);
        free(log);
        if (out)
            fclose(out);
        return -1;
    }
    /* Nothing more comes on stdout; keeping the pipe open would only hold a descriptor. */
    fclose(out);
    free(log);
    W.fake_port = port;
    W.fake_url = tu_fmt("http://127.0.0.1:%d", port);
    return 0;
}

int amlt_start(void)
{
    W.dir = tu_tmpdir();
    if (azurite_start() != 0 || container_create() != 0 || fake_start() != 0) {
        free(W.fake_url);
        W.fake_url = NULL;
        return -1;
    }
    size_t n = 0, s = 0;
    W.env_store[s] = tu_fmt("AZURE_AUTHORITY_HOST=%s", W.fake_url);
    W.env[n++] = W.env_store[s++];
    W.env_store[s] = tu_fmt("MLSTAGE_ARM_ENDPOINT=%s", W.fake_url);
    W.env[n++] = W.env_store[s++];
    W.env_store[s] = tu_fmt("MLSTAGE_BLOB_ENDPOINT=%s", W.azurite_url);
    W.env[n++] = W.env_store[s++];
    W.env_store[s] = tu_fmt("IMDS_ENDPOINT=http://127.0.0.1:%d", azt_closed_port());
    W.env[n++] = W.env_store[s++];
    W.env[n++] = "AZURE_TENANT_ID=" TENANT_ID;
    W.env[n++] = "AZURE_CLIENT_ID=" CLIENT_ID;
    W.env[n++] = "AZURE_CLIENT_SECRET=" AMLT_CLIENT_SECRET;
    static const char *const unset[] = {"AZURE_FEDERATED_TOKEN_FILE",
                                        "AZURE_TOKEN_CREDENTIALS",
                                        "ACTIONS_ID_TOKEN_REQUEST_URL",
                                        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
                                        "IDENTITY_ENDPOINT",
                                        "IDENTITY_HEADER",
                                        "MSI_ENDPOINT",
                                        "MSI_SECRET",
                                        NULL};
    for (const char *const *u = unset; *u; u++)
        W.env[n++] = *u;
    W.env[n] = NULL;
    return 0;
}

void amlt_stop(void)
{
    stop_child(&W.fake_pid, 1);
    stop_child(&W.azurite_pid, 1);
    if (W.dir)
        tu_rm_rf(W.dir);
    free(W.dir);
    free(W.azurite_url);
    free(W.fake_url);
    free(W.why);
    free(W.token);
    for (size_t i = 0; i < sizeof(W.env_store) / sizeof(W.env_store[0]); i++)
        free(W.env_store[i]);
    memset(&W, 0, sizeof(W));
}

const char *const *amlt_env(void)
{
    return W.env;
}

long amlt_http(const char *method, const char *path, const char *body, const char *const *headers,
               char **answer)
{
    struct mlstage_ctx *ctx = ctx_new();
    const char *h[16];
    size_t n = 0;
    if (body)
        h[n++] = "Content-Type: application/json";
    for (const char *const *x = headers; x && *x && n < 15; x++)
        h[n++] = *x;
    h[n] = NULL;
    char *url = tu_fmt("%s%s", W.fake_url, path);
    struct mlstage_http_request req = {
        .method = method,
        .url = url,
        .headers = h,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_attempts = 1,
        .timeout_s = 20,
        .deadline_s = 20,
    };
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    long status = resp ? resp->status : 0;
    if (answer)
        *answer = strdup(resp && resp->body ? resp->body : "");
    mlstage_http_response_free(resp);
    ctx_free(ctx);
    free(url);
    return status;
}

json_object *amlt_json(const char *method, const char *path, const char *body)
{
    char *text = NULL;
    amlt_http(method, path, body, NULL, &text);
    json_object *doc = text ? json_tokener_parse(text) : NULL;
    free(text);
    return doc;
}

void amlt_reset(void)
{
    CU_ASSERT_EQUAL(amlt_http("POST", "/_fake/reset", NULL, NULL, NULL), 200);
    CU_ASSERT_EQUAL(amlt_http("POST", "/_fake/config", "{\"retry_after\": 0}", NULL, NULL), 200);
    free(W.token);
    W.token = NULL;
}

int amlt_fault(const char *rules_json)
{
    char *answer = NULL;
    long status = amlt_http("POST", "/_fake/faults", rules_json, NULL, &answer);
    if (status != 200)
        fprintf(stderr, "\nfault rules refused (%ld): %s\n", status, answer);
    free(answer);
    return status == 200 ? 0 : -1;
}

json_object *amlt_requests(long since)
{
    char *path = tu_fmt("/_fake/requests?since=%ld", since);
    json_object *doc = amlt_json("GET", path, NULL), *list = NULL;
    free(path);
    if (doc && json_object_object_get_ex(doc, "requests", &list))
        list = json_object_get(list);
    json_object_put(doc);
    return list ? list : json_object_new_array();
}

long amlt_requests_next(void)
{
    json_object *doc = amlt_json("GET", "/_fake/requests?since=999999999", NULL), *next = NULL;
    long n = doc && json_object_object_get_ex(doc, "next", &next) ? json_object_get_int64(next) : 0;
    json_object_put(doc);
    return n;
}

static const char *token(void)
{
    if (W.token)
        return W.token;
    char *scope = tu_fmt("%s/.default", W.fake_url);
    char *s_enc = mlstage_url_encode(scope), *c_enc = mlstage_url_encode(AMLT_CLIENT_SECRET);
    char *form =
        tu_fmt("grant_type=client_credentials&client_id=" CLIENT_ID "&client_secret=%s&scope=%s",
               c_enc, s_enc);
    struct mlstage_ctx *ctx = ctx_new();
    char *url = tu_fmt("%s/" TENANT_ID "/oauth2/v2.0/token", W.fake_url);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    struct mlstage_http_request req = {
        .method = "POST", .url = url, .headers = h, .body = form, .body_len = strlen(form)};
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    json_object *doc = resp ? json_tokener_parse(resp->body) : NULL, *t = NULL;
    if (doc && json_object_object_get_ex(doc, "access_token", &t))
        W.token = strdup(json_object_get_string(t));
    json_object_put(doc);
    mlstage_http_response_free(resp);
    ctx_free(ctx);
    free(url);
    free(form);
    free(scope);
    free(s_enc);
    free(c_enc);
    return W.token ? W.token : "";
}

long amlt_arm(const char *method, const char *path, const char *body, json_object **answer)
{
    char *auth = tu_fmt("Authorization: Bearer %s", token()), *text = NULL;
    const char *h[] = {auth, NULL};
    char *full = tu_fmt("%s%c" AMLT_API, path, strchr(path, '?') ? '&' : '?');
    long status = amlt_http(method, full, body, h, &text);
    if (answer)
        *answer = text ? json_tokener_parse(text) : NULL;
    free(text);
    free(full);
    free(auth);
    return status;
}

void amlt_register_model(const char *name, const char *version, const char *tags_json)
{
    char *path = tu_fmt(AMLT_WS_PATH "/models/%s/versions/%s", name, version);
    char *body = tu_fmt("{\"properties\": {\"modelUri\": \"azureml://datastores/"
                        "workspaceblobstore/paths/models/%s/%s/\", \"tags\": %s}}",
                        name, version, tags_json ? tags_json : "{}");
    long status = amlt_arm("PUT", path, body, NULL);
    if (status != 201 && status != 200)
        fprintf(stderr, "\nregistering %s:%s: HTTP %ld\n", name, version, status);
    CU_ASSERT_TRUE(status == 201 || status == 200);
    free(body);
    free(path);
}

int amlt_endpoint_keys(const char *endpoint, char **primary, char **secondary)
{
    char *path = tu_fmt(AMLT_WS_PATH "/onlineEndpoints/%s/listKeys", endpoint);
    json_object *doc = NULL;
    long status = amlt_arm("POST", path, NULL, &doc);
    const char *p = amlt_str(doc, "primaryKey", NULL), *s = amlt_str(doc, "secondaryKey", NULL);
    *primary = p ? strdup(p) : NULL;
    *secondary = s ? strdup(s) : NULL;
    json_object_put(doc);
    free(path);
    return status == 200 && p && s ? 0 : -1;
}

static struct mlstage_blob_target blob_target(void)
{
    struct mlstage_blob_target t = {.endpoint = W.azurite_url,
                                    .container = AMLT_CONTAINER,
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = ACCOUNT,
                                    .account_key = AMLT_AZURITE_KEY};
    return t;
}

int amlt_blob_put(const char *name, const char *content)
{
    char *file = tu_fmt("%s/blob-upload", W.dir);
    tu_write(file, content);
    struct mlstage_ctx *ctx = ctx_new();
    struct mlstage_blob_target t = blob_target();
    int rc = mlstage_blob_upload_file(ctx, &t, file, name, NULL, NULL, NULL);
    if (rc)
        fprintf(stderr, "\nblob %s: %s\n", name, mlstage_error_message(ctx));
    ctx_free(ctx);
    free(file);
    return rc;
}

char *amlt_blob_get(const char *name)
{
    struct mlstage_ctx *ctx = ctx_new();
    struct mlstage_blob_target t = blob_target();
    char *data = NULL;
    if (mlstage_blob_read(ctx, &t, name, 0, &data, NULL) != 0)
        data = NULL;
    ctx_free(ctx);
    return data;
}

static json_object *walk(json_object *o, va_list ap)
{
    const char *key;
    while (o && (key = va_arg(ap, const char *)) != NULL) {
        json_object *next = NULL;
        if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &next))
            return NULL;
        o = next;
    }
    return o;
}

json_object *amlt_at(json_object *o, ...)
{
    va_list ap;
    va_start(ap, o);
    json_object *v = walk(o, ap);
    va_end(ap);
    return v;
}

const char *amlt_str(json_object *o, ...)
{
    va_list ap;
    va_start(ap, o);
    json_object *v = walk(o, ap);
    va_end(ap);
    return v ? json_object_get_string(v) : NULL;
}

int amlt_dir_contains(const char *dir, const char *needle)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *path = tu_fmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            found = amlt_dir_contains(path, needle);
        } else if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len = 0;
            char *text = tu_read(path, &len);
            found = text && memmem(text, len, needle, strlen(needle)) != NULL;
            free(text);
        }
        free(path);
    }
    if (d)
        closedir(d);
    return found;
}
