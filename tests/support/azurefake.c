/* azurefake.c — tests/servers/azure_fake (Entra, Resource Manager, Azure ML) and a real Azurite,
 * started from C tests, with the control calls and the environment mlstage needs. */
#include "azurefake.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <mlstage/http.h>

#include "azure/azure_internal.h"
#include "azuretest.h"
#include "ctx.h"
#include "testutil.h"

#define AZURITE_BIN MLSTAGE_SOURCE_DIR "/tests/node/node_modules/.bin/azurite-blob"
#define AZURITE_HINT                                                                               \
    "Azurite is needed: install it with `npm ci --prefix tests/node` (Node.js 18+ and npm)"
#define FAKE_SERVER MLSTAGE_SOURCE_DIR "/tests/servers/azure_fake/server.py"

/* One request through the core's client: status, body, and one response header. */
static long request(const char *method, const char *url, const char *const *headers,
                    const char *body, char **answer, size_t *len, const char *want_header,
                    char **header)
{
    struct mlstage_ctx *ctx = ctx_new();
    struct mlstage_http_request req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body ? strlen(body) : 0,
        .max_attempts = 1,
        .timeout_s = 30,
        .deadline_s = 30,
    };
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(ctx, &req, &resp);
    long status = resp ? resp->status : 0;
    if (answer) {
        *answer = malloc(resp && resp->body ? resp->body_len + 1 : 1);
        if (resp && resp->body)
            memcpy(*answer, resp->body, resp->body_len + 1);
        else
            (*answer)[0] = '\0';
    }
    if (len)
        *len = resp ? resp->body_len : 0;
    if (header) {
        const char *v = resp ? mlstage_http_response_header(resp, want_header) : NULL;
        *header = v ? strdup(v) : NULL;
    }
    mlstage_http_response_free(resp);
    ctx_free(ctx);
    return status;
}

/* ---- Azurite ------------------------------------------------------------------------------ */

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

int azurite_start(struct azurite *a)
{
    memset(a, 0, sizeof(*a));
    if (access(AZURITE_BIN, X_OK) != 0) {
        a->why = tu_fmt("%s (%s is missing)", AZURITE_HINT, AZURITE_BIN);
        return -1;
    }
    a->dir = tu_tmpdir();
    a->port = azt_closed_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", a->port);
    char *log = tu_fmt("%s/azurite.out", a->dir);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* In memory and without telemetry: it writes nothing and talks to no one but us. */
        if (chdir(a->dir) != 0)
            _exit(126);
        execl(AZURITE_BIN, "azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", port,
              "--inMemoryPersistence", "--silent", "--disableTelemetry", (char *)NULL);
        _exit(127);
    }
    a->pid = pid;
    for (int i = 0; i < 300 && !port_open(a->port); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *out = tu_read(log, NULL);
            a->why = tu_fmt("azurite-blob exited at start (%s): %s", AZURITE_HINT, out ? out : "");
            free(out);
            a->pid = 0;
            free(log);
            return -1;
        }
        usleep(100 * 1000);
    }
    free(log);
    if (!port_open(a->port)) {
        a->why = tu_fmt("Azurite did not listen on port %d within 30 s", a->port);
        return -1;
    }
    a->endpoint = tu_fmt("http://127.0.0.1:%d/" AZURITE_ACCOUNT, a->port);
    return 0;
}

void azurite_stop(struct azurite *a)
{
    if (a->pid > 0) {
        kill(-a->pid, SIGTERM);
        for (int i = 0; i < 50 && a->pid > 0; i++) {
            if (waitpid(a->pid, NULL, WNOHANG) == a->pid)
                a->pid = 0;
            else
                usleep(100 * 1000);
        }
        if (a->pid > 0) {
            kill(-a->pid, SIGKILL);
            waitpid(a->pid, NULL, 0);
        }
    }
    if (a->dir)
        tu_rm_rf(a->dir);
    free(a->dir);
    free(a->endpoint);
    free(a->why);
    memset(a, 0, sizeof(*a));
}

static char *b64(const unsigned char *p, size_t n)
{
    char *out = calloc(4 * ((n + 2) / 3) + 1, 1);
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
    return out;
}

static char *hmac_b64(const char *key_b64, const char *msg)
{
    unsigned char key[128], md[32];
    size_t kl = strlen(key_b64);
    int klen = EVP_DecodeBlock(key, (const unsigned char *)key_b64, (int)kl);
    klen -= (key_b64[kl - 1] == '=') + (key_b64[kl - 2] == '=');
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, klen, (const unsigned char *)msg, strlen(msg), md, &mdlen);
    return b64(md, mdlen);
}

long azurite_request(const struct azurite *a, const char *method, const char *path, char **body,
                     size_t *len, char **etag)
{
    char date[64], dh[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(dh, sizeof(dh), "x-ms-date: %s", date);
    char *url = tu_fmt("%s%s", a->endpoint, path);
    const char *h[4] = {"x-ms-version: 2021-12-02", dh, NULL, NULL};
    char *sts = blob_string_to_sign(method, url, h, 0, AZURITE_ACCOUNT);
    char *sig = hmac_b64(AZURITE_KEY, sts);
    char *auth = tu_fmt("Authorization: SharedKey " AZURITE_ACCOUNT ":%s", sig);
    h[2] = auth;
    long status = request(method, url, h, NULL, body, len, "ETag", etag);
    free(auth);
    free(sig);
    free(sts);
    free(url);
    return status;
}

/* ---- the fake ---------------------------------------------------------------------------- */

int azf_start(struct azf *f, const char *azurite_endpoint)
{
    memset(f, 0, sizeof(*f));
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        const char *argv[12] = {"python3", FAKE_SERVER, "--port", "0", "--retry-after", "0"};
        size_t n = 6;
        if (azurite_endpoint) {
            argv[n++] = "--azurite";
            argv[n++] = azurite_endpoint;
        }
        argv[n] = NULL;
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    f->pid = pid;
    f->out = fdopen(fds[0], "r");
    char line[128];
    if (!f->out || !fgets(line, sizeof(line), f->out) ||
        sscanf(line, "listening http://127.0.0.1:%d", &f->port) != 1) {
        fprintf(stderr, "\nthe Azure fake (%s) did not start\n", FAKE_SERVER);
        azf_stop(f);
        return -1;
    }
    f->url = tu_fmt("http://127.0.0.1:%d", f->port);
    return 0;
}

static void env_free(struct azf *f)
{
    for (size_t i = 0; i < sizeof(f->env) / sizeof(f->env[0]); i++) {
        free(f->env[i]);
        f->env[i] = NULL;
    }
}

int azf_stop(struct azf *f)
{
    int status = -1;
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        for (int i = 0; i < 100 && f->pid > 0; i++) {
            if (waitpid(f->pid, &status, WNOHANG) == f->pid)
                f->pid = 0;
            else
                usleep(50 * 1000);
        }
        if (f->pid > 0) {
            kill(-f->pid, SIGKILL);
            waitpid(f->pid, &status, 0);
            status = -1;
        }
    }
    if (f->out)
        fclose(f->out);
    free(f->url);
    env_free(f);
    memset(f, 0, sizeof(*f));
    return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long azf_call(const struct azf *f, const char *method, const char *path, const char *body,
              json_object **answer)
{
    char *url = tu_fmt("%s%s", f->url, path), *text = NULL;
    const char *headers[] = {"Content-Type: application/json", NULL};
    long status = request(method, url, body ? headers : NULL, body, &text, NULL, NULL, NULL);
    if (answer)
        *answer = json_tokener_parse(text ? text : "");
    free(text);
    free(url);
    return status;
}

void azf_reset(const struct azf *f)
{
    CU_ASSERT_EQUAL(azf_call(f, "POST", "/_fake/reset", NULL, NULL), 200);
    CU_ASSERT_EQUAL(azf_call(f, "POST", "/_fake/config", "{\"retry_after\": 0}", NULL), 200);
}

void azf_fault(const struct azf *f, const char *rules)
{
    json_object *answer = NULL;
    long status = azf_call(f, "POST", "/_fake/faults", rules, &answer);
    if (status != 200)
        fprintf(stderr, "\nfault %s refused: %s\n", rules, json_object_to_json_string(answer));
    CU_ASSERT_EQUAL(status, 200);
    json_object_put(answer);
}

json_object *azf_requests(const struct azf *f)
{
    json_object *answer = NULL, *list = NULL;
    azf_call(f, "GET", "/_fake/requests", NULL, &answer);
    if (answer && json_object_object_get_ex(answer, "requests", &list))
        list = json_object_get(list);
    json_object_put(answer);
    return list ? list : json_object_new_array();
}

json_object *azf_model_versions(const struct azf *f, const char *model)
{
    json_object *answer = NULL, *state = NULL, *ml = NULL, *out = NULL;
    azf_call(f, "GET", "/_fake/state", NULL, &answer);
    if (json_object_object_get_ex(answer, "state", &state) &&
        json_object_object_get_ex(state, "ml", &ml)) {
        json_object_object_foreach(ml, key, w)
        {
            (void)key;
            json_object *assets = NULL, *models = NULL, *m = NULL, *versions = NULL;
            if (json_object_object_get_ex(w, "assets", &assets) &&
                json_object_object_get_ex(assets, "models", &models) &&
                json_object_object_get_ex(models, model, &m) &&
                json_object_object_get_ex(m, "versions", &versions))
                out = json_object_get(versions);
        }
    }
    json_object_put(answer);
    return out ? out : json_object_new_object();
}

size_t azf_count(json_object *requests, const char *method, const char *path_substring)
{
    size_t n = 0;
    for (size_t i = 0; i < json_object_array_length(requests); i++) {
        json_object *r = json_object_array_get_idx(requests, i), *m = NULL, *p = NULL;
        if (json_object_object_get_ex(r, "method", &m) &&
            json_object_object_get_ex(r, "path", &p) &&
            strcmp(json_object_get_string(m), method) == 0 &&
            strstr(json_object_get_string(p), path_substring))
            n++;
    }
    return n;
}

const char *const *azf_env(struct azf *f, const char *blob_endpoint)
{
    env_free(f);
    size_t n = 0;
    f->env[n++] = tu_fmt("AZURE_AUTHORITY_HOST=%s", f->url);
    f->env[n++] = tu_fmt("MLSTAGE_ARM_ENDPOINT=%s", f->url);
    f->env[n++] = strdup("AZURE_TENANT_ID=" AZF_TENANT);
    f->env[n++] = strdup("AZURE_CLIENT_ID=" AZF_CLIENT);
    f->env[n++] = strdup("AZURE_CLIENT_SECRET=" AZF_SECRET);
    f->env[n++] = blob_endpoint ? tu_fmt("MLSTAGE_BLOB_ENDPOINT=%s", blob_endpoint)
                                : strdup("MLSTAGE_BLOB_ENDPOINT");
    /* Nothing from the machine running the tests: no other identity, no real metadata service. */
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
        f->env[n++] = strdup(*u);
    f->env[n] = NULL;
    return (const char *const *)f->env;
}
