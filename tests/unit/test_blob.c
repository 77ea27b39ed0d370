/* test_blob.c — block blob uploads: against a real Azurite (SharedKey and SAS, read back and
 * compared), and against a scripted server for retries, concurrency and bearer tokens. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
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
#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/http.h>

#include "azure/azure_internal.h"
#include "azuretest.h"
#include "ctx.h"
#include "http_internal.h"
#include "httpd.h"
#include "mask.h"
#include "testutil.h"
#include "util.h"

/* Azurite's well-known development account (public, in its README). */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY                                                                                    \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define AZURITE_BIN MLSTAGE_SOURCE_DIR "/tests/node/node_modules/.bin/azurite-blob"
#define INSTALL_HINT                                                                               \
    "Azurite is needed by the blob tests: install it with `npm ci --prefix tests/node` (Node.js "  \
    "18+ and npm: apt-get install nodejs npm)"

/* ---- Azurite, started once for the whole suite ----------------------------------------- */

static struct {
    pid_t pid;
    int port;
    char *dir;
    char *endpoint; /* http://127.0.0.1:PORT/devstoreaccount1 */
    char *why;      /* why it is not running */
} azurite;

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

static void azurite_start(void)
{
    if (access(AZURITE_BIN, X_OK) != 0) {
        azurite.why = tu_fmt("%s (%s is missing)", INSTALL_HINT, AZURITE_BIN);
        return;
    }
    azurite.dir = tu_tmpdir();
    azurite.port = azt_closed_port();
    char port[16];
    snprintf(port, sizeof(port), "%d", azurite.port);
    char *log = tu_fmt("%s/azurite.out", azurite.dir);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* In memory, so nothing is written (not even in the cwd, which is a temp folder); and
         * --disableTelemetry: the emulator must not talk to anything but us. */
        if (chdir(azurite.dir) != 0)
            _exit(126);
        execl(AZURITE_BIN, "azurite-blob", "--blobHost", "127.0.0.1", "--blobPort", port,
              "--inMemoryPersistence", "--silent", "--disableTelemetry", (char *)NULL);
        _exit(127);
    }
    azurite.pid = pid;
    for (int i = 0; i < 300 && !port_open(azurite.port); i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char *out = tu_read(log, NULL);
            azurite.why =
                tu_fmt("azurite-blob exited at start (%s): %s", INSTALL_HINT, out ? out : "");
            free(out);
            azurite.pid = 0;
            free(log);
            return;
        }
        usleep(100 * 1000);
    }
    free(log);
    if (!port_open(azurite.port)) {
        azurite.why = tu_fmt("Azurite did not listen on port %d within 30 s", azurite.port);
        return;
    }
    azurite.endpoint = tu_fmt("http://127.0.0.1:%d/" DEV_ACCOUNT, azurite.port);
}

static void azurite_stop(void)
{
    if (azurite.pid > 0) {
        kill(-azurite.pid, SIGTERM);
        for (int i = 0; i < 50; i++) {
            if (waitpid(azurite.pid, NULL, WNOHANG) == azurite.pid) {
                azurite.pid = 0;
                break;
            }
            usleep(100 * 1000);
        }
        if (azurite.pid > 0) {
            kill(-azurite.pid, SIGKILL);
            waitpid(azurite.pid, NULL, 0);
        }
    }
    if (azurite.dir)
        tu_rm_rf(azurite.dir);
    free(azurite.dir);
    free(azurite.endpoint);
    free(azurite.why);
}

#define REQUIRE_AZURITE()                                                                          \
    do {                                                                                           \
        if (!azurite.endpoint) {                                                                   \
            fprintf(stderr, "\n%s\n", azurite.why ? azurite.why : "Azurite is not running");       \
            CU_FAIL_FATAL("Azurite is not running: npm ci --prefix tests/node");                   \
        }                                                                                          \
    } while (0)

/* ---- fixture and helpers ------------------------------------------------------------------ */

struct fixture {
    struct mlstage_ctx *ctx;
    char *dir;
};

static void fx_init(struct fixture *fx)
{
    mask_reset();
    azt_env_clear();
    fx->ctx = ctx_new();
    fx->dir = tu_tmpdir();
    fx->ctx->run_dir = xstrdup(fx->dir);
}

static void fx_done(struct fixture *fx)
{
    ctx_free(fx->ctx);
    tu_rm_rf(fx->dir);
    free(fx->dir);
    azt_env_clear();
}

static char *fx_http_log(struct fixture *fx)
{
    char *p = tu_fmt("%s/http.log", fx->dir);
    char *text = tu_read(p, NULL);
    free(p);
    return text;
}

/* A file of `size` pseudo-random bytes (xorshift, seeded): no two blocks alike. */
static char *make_file(struct fixture *fx, const char *name, size_t size, uint64_t seed)
{
    char *path = tu_fmt("%s/%s", fx->dir, name);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    uint64_t x = seed | 1;
    unsigned char chunk[65536];
    size_t left = size;
    while (left > 0) {
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
    return path;
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
    int klen = EVP_DecodeBlock(key, (const unsigned char *)key_b64, (int)strlen(key_b64));
    klen -= (key_b64[strlen(key_b64) - 1] == '=') + (key_b64[strlen(key_b64) - 2] == '=');
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, klen, (const unsigned char *)msg, strlen(msg), md, &mdlen);
    return b64(md, mdlen);
}

/* A request signed with the account key, for what the client under test does not do itself. */
static struct mlstage_http_response *signed_request(struct fixture *fx, const char *method,
                                                    const char *url)
{
    char date[64], dh[96];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(dh, sizeof(dh), "x-ms-date: %s", date);
    const char *h[4] = {"x-ms-version: 2021-12-02", dh, NULL, NULL};
    char *sts = blob_string_to_sign(method, url, h, 0, DEV_ACCOUNT);
    char *sig = hmac_b64(DEV_KEY, sts);
    char *auth = tu_fmt("Authorization: SharedKey " DEV_ACCOUNT ":%s", sig);
    h[2] = auth;
    struct mlstage_http_request req = {.method = method, .url = url, .headers = h};
    struct mlstage_http_response *resp = NULL;
    mlstage_http_send(fx->ctx, &req, &resp);
    free(sts);
    free(sig);
    free(auth);
    return resp;
}

static void create_container(struct fixture *fx, const char *name)
{
    char *url = tu_fmt("%s/%s?restype=container", azurite.endpoint, name);
    struct mlstage_http_response *resp = signed_request(fx, "PUT", url);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    if (resp->status != 201 && resp->status != 409)
        fprintf(stderr, "\ncreate container %s: %ld %s\n", name, resp->status, resp->body);
    CU_ASSERT_TRUE(resp->status == 201 || resp->status == 409);
    mlstage_http_response_free(resp);
    free(url);
}

/* GETs a blob back (SharedKey) and compares it byte for byte with `path`. */
static void assert_blob_equals(struct fixture *fx, const char *container, const char *encoded_name,
                               const char *path, const char *sha)
{
    char *url = tu_fmt("%s/%s/%s", azurite.endpoint, container, encoded_name);
    struct mlstage_http_response *resp = signed_request(fx, "GET", url);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(resp->status, 200);
    size_t len = 0;
    char *want = tu_read(path, &len);
    CU_ASSERT_EQUAL(resp->body_len, len);
    CU_ASSERT_TRUE(resp->body_len == len && memcmp(resp->body, want, len) == 0);
    char hex[MLSTAGE_SHA256_HEX_LEN + 1];
    mlstage_sha256_buf(resp->body, resp->body_len, hex);
    CU_ASSERT_STRING_EQUAL(hex, sha);
    const char *meta = mlstage_http_response_header(resp, "x-ms-meta-sha256");
    CU_ASSERT_STRING_EQUAL(meta ? meta : "(none)", sha);
    const char *type = mlstage_http_response_header(resp, "Content-Type");
    CU_ASSERT_STRING_EQUAL(type ? type : "(none)", "application/octet-stream");
    free(want);
    mlstage_http_response_free(resp);
    free(url);
}

/* An account SAS (version 2019-12-12 form) for the blob service, signed with the dev key. */
static char *account_sas(void)
{
    const char *perms = "rwdlac", *expiry = "2099-01-01T00:00:00Z", *version = "2019-12-12";
    char *sts = tu_fmt("%s\n%s\nb\nsco\n\n%s\n\n\n%s\n", DEV_ACCOUNT, perms, expiry, version);
    char *sig = hmac_b64(DEV_KEY, sts);
    char *enc = mlstage_url_encode(sig);
    char *sas = tu_fmt("sv=%s&ss=b&srt=sco&sp=%s&se=%s&sig=%s", version, perms, expiry, enc);
    free(sts);
    free(sig);
    free(enc);
    return sas;
}

static void expect_file_sha(const char *path, char out[MLSTAGE_SHA256_HEX_LEN + 1])
{
    CU_ASSERT_EQUAL_FATAL(mlstage_sha256_file(path, out, NULL), 0);
}

/* ---- against Azurite --------------------------------------------------------------------- */

static void test_azurite_is_installed_and_running(void)
{
    if (!azurite.endpoint)
        fprintf(stderr, "\n%s\n", azurite.why ? azurite.why : "Azurite is not running");
    CU_ASSERT_PTR_NOT_NULL(azurite.endpoint);
}

static void test_shared_key_uploads_a_multi_block_file_read_back_identical(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "models");
    /* 20 MiB and a bit: five full 4 MiB blocks and a short sixth. */
    size_t size = ((size_t)20 << 20) + 12345;
    char *path = make_file(&fx, "model.bin", size, 42);
    char want[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    struct mlstage_blob_target t = {.endpoint = azurite.endpoint,
                                    .container = "models",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    char hex[MLSTAGE_SHA256_HEX_LEN + 1] = "";
    uint64_t got = 0;
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "diabetes/1/model.bin", NULL, hex, &got);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(got, size);
    CU_ASSERT_STRING_EQUAL(hex, want);
    assert_blob_equals(&fx, "models", "diabetes/1/model.bin", path, want);
    char *log = fx_http_log(&fx);
    TU_ASSERT_CONTAINS(log, "comp=block&blockid=");
    TU_ASSERT_CONTAINS(log, "comp=blocklist attempt 1/5 -> 201");
    TU_ASSERT_NOT_CONTAINS(log, DEV_KEY);
    free(log);
    free(path);
    fx_done(&fx);
}

static void test_shared_key_uploads_small_and_empty_files_in_one_put(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "small");
    struct mlstage_blob_target t = {.endpoint = azurite.endpoint,
                                    .container = "small",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    const size_t sizes[] = {1000, 0};
    for (size_t i = 0; i < 2; i++) {
        char *name = tu_fmt("f%zu.json", i);
        char *path = make_file(&fx, name, sizes[i], 7 + i);
        char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
        expect_file_sha(path, want);
        int rc = mlstage_blob_upload_file(fx.ctx, &t, path, name, NULL, hex, NULL);
        if (rc)
            fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_STRING_EQUAL(hex, want);
        assert_blob_equals(&fx, "small", name, path, want);
        free(name);
        free(path);
    }
    char *log = fx_http_log(&fx);
    TU_ASSERT_NOT_CONTAINS(log, "comp=block");
    free(log);
    fx_done(&fx);
}

static void test_blob_names_are_encoded_the_same_in_url_and_signature(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "names");
    char *path = make_file(&fx, "w.bin", 5000, 3);
    char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    struct mlstage_blob_target t = {.endpoint = azurite.endpoint,
                                    .container = "names",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "runs/my model+v1/weights (1)=ä.bin", NULL,
                                      hex, NULL);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL(rc, 0);
    assert_blob_equals(&fx, "names", "runs/my%20model%2Bv1/weights%20%281%29%3D%C3%A4.bin", path,
                       want);
    free(path);
    fx_done(&fx);
}

static void test_sas_uploads_blocks_and_its_signature_is_never_written(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "sas");
    char *sas = account_sas();
    const char *sig = strstr(sas, "sig=") + 4;
    char *path = make_file(&fx, "data.bin", (size_t)9 << 20, 99);
    char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    char *with_q = tu_fmt("?%s", sas);
    struct mlstage_blob_target t = {
        .endpoint = azurite.endpoint, .container = "sas", .auth = MLSTAGE_BLOB_SAS, .sas = with_q};
    struct mlstage_blob_upload_opts o = {.block_size = (size_t)2 << 20, .concurrency = 3};
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "data.bin", &o, hex, NULL);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(hex, want);
    assert_blob_equals(&fx, "sas", "data.bin", path, want);
    char *log = fx_http_log(&fx);
    /* The SAS is a registered secret, masked whole before the query is redacted. */
    CU_ASSERT_TRUE(tu_contains(log, "sig=REDACTED") || tu_contains(log, "&***"));
    TU_ASSERT_NOT_CONTAINS(log, sig);
    /* Five 2 MiB blocks. */
    TU_ASSERT_CONTAINS(log, "comp=block&blockid=YmxrLTAwMDAwMDA0&");
    TU_ASSERT_NOT_CONTAINS(log, "comp=block&blockid=YmxrLTAwMDAwMDA1&");
    free(log);

    /* A broken signature: refused, and the error does not quote the SAS either. */
    char *bad = tu_fmt("%s", sas);
    char *s = strstr(bad, "sig=") + 4;
    s[0] = s[0] == 'A' ? 'B' : 'A';
    t.sas = bad;
    rc = mlstage_blob_upload_file(fx.ctx, &t, path, "data2.bin", &o, hex, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "HTTP 403");
    TU_ASSERT_CONTAINS(msg, "nothing committed");
    TU_ASSERT_NOT_CONTAINS(msg, s);
    free(bad);
    free(with_q);
    free(sas);
    free(path);
    fx_done(&fx);
}

static void test_a_wrong_key_is_eauth_and_a_missing_container_enotfound(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "keys");
    char *path = make_file(&fx, "x.bin", 100, 5);
    /* The right length and valid base64, but not the account's key. */
    char wrong[] = DEV_KEY;
    wrong[0] = 'A';
    struct mlstage_blob_target t = {.endpoint = azurite.endpoint,
                                    .container = "keys",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = wrong};
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "x.bin", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EAUTH);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 4);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "HTTP 403");
    t.account_key = DEV_KEY;
    t.container = "no-such-container";
    rc = mlstage_blob_upload_file(fx.ctx, &t, path, "x.bin", NULL, NULL, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_ENOTFOUND);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "ContainerNotFound");
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "the container must exist");
    free(path);
    fx_done(&fx);
}

static void test_a_small_blob_is_read_back_with_shared_key_and_sas(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "reads");
    char *path = tu_fmt("%s/metrics.json", fx.dir);
    tu_write(path, "{\"rmse\": 53.8}\n");
    struct mlstage_blob_target t = {.endpoint = azurite.endpoint,
                                    .container = "reads",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    CU_ASSERT_EQUAL_FATAL(
        mlstage_blob_upload_file(fx.ctx, &t, path, "jobs/j 1/metrics.json", NULL, NULL, NULL), 0);
    char *data = NULL;
    size_t len = 0;
    int rc = mlstage_blob_read(fx.ctx, &t, "jobs/j 1/metrics.json", 0, &data, &len);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(len, 15);
    CU_ASSERT_STRING_EQUAL(data ? data : "", "{\"rmse\": 53.8}\n");
    free(data);

    /* The same through a SAS; larger than asked for is refused, absent is ENOTFOUND. */
    char *sas = account_sas();
    struct mlstage_blob_target st = {
        .endpoint = azurite.endpoint, .container = "reads", .auth = MLSTAGE_BLOB_SAS, .sas = sas};
    CU_ASSERT_EQUAL(mlstage_blob_read(fx.ctx, &st, "jobs/j 1/metrics.json", 64, &data, NULL), 0);
    CU_ASSERT_STRING_EQUAL(data ? data : "", "{\"rmse\": 53.8}\n");
    free(data);
    CU_ASSERT_EQUAL(mlstage_blob_read(fx.ctx, &st, "jobs/j 1/metrics.json", 10, &data, NULL),
                    MLSTAGE_EFAIL);
    CU_ASSERT_PTR_NULL(data);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "more than the 10 expected");
    CU_ASSERT_EQUAL(mlstage_blob_read(fx.ctx, &t, "jobs/none.json", 0, &data, NULL),
                    MLSTAGE_ENOTFOUND);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "BlobNotFound");
    TU_ASSERT_NOT_CONTAINS(mlstage_error_message(fx.ctx), "the container must exist");
    /* A read is sent in a dry run too. */
    fx.ctx->dry_run = 1;
    CU_ASSERT_EQUAL(mlstage_blob_read(fx.ctx, &t, "jobs/j 1/metrics.json", 0, &data, NULL), 0);
    CU_ASSERT_STRING_EQUAL(data ? data : "", "{\"rmse\": 53.8}\n");
    free(data);
    free(sas);
    free(path);
    fx_done(&fx);
}

static void test_mlstage_blob_endpoint_overrides_the_datastore_endpoint(void)
{
    REQUIRE_AZURITE();
    struct fixture fx;
    fx_init(&fx);
    create_container(&fx, "override");
    setenv("MLSTAGE_BLOB_ENDPOINT", azurite.endpoint, 1);
    char *path = make_file(&fx, "o.bin", 2048, 11);
    char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    struct mlstage_blob_target t = {.endpoint = "https://devstoreaccount1.blob.core.windows.net",
                                    .container = "override",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &t, path, "o.bin", NULL, hex, NULL), 0);
    assert_blob_equals(&fx, "override", "o.bin", path, want);
    free(path);
    fx_done(&fx);
}

/* ---- against a scripted server ------------------------------------------------------------ */

struct script {
    pthread_mutex_t mu;
    char fail_block[32]; /* this block id answers 500 ... */
    int fail_times;      /* ... this many times (-1: always) */
    double delay_s;      /* each block takes this long */
    int in_flight, max_in_flight;
};

static void script_handler(const struct httpd_request *req, struct httpd_reply *reply, void *user)
{
    struct script *s = user;
    int is_block = req->query && strstr(req->query, "comp=block&");
    pthread_mutex_lock(&s->mu);
    int fail =
        is_block && s->fail_block[0] && strstr(req->query, s->fail_block) && s->fail_times != 0;
    if (fail && s->fail_times > 0)
        s->fail_times--;
    s->in_flight++;
    if (s->in_flight > s->max_in_flight)
        s->max_in_flight = s->in_flight;
    pthread_mutex_unlock(&s->mu);
    if (is_block && s->delay_s > 0)
        usleep((useconds_t)(s->delay_s * 1e6));
    pthread_mutex_lock(&s->mu);
    s->in_flight--;
    pthread_mutex_unlock(&s->mu);
    if (fail) {
        httpd_reply_status(reply, 500);
        httpd_reply_header(reply, "Retry-After", "0");
        httpd_reply_header(reply, "x-ms-error-code", "InternalError");
        httpd_reply_bodyf(reply, "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>"
                                 "InternalError</Code><Message>The server encountered an internal "
                                 "error.</Message></Error>");
        return;
    }
    httpd_reply_status(reply, 201);
}

static size_t count_requests(struct httpd *h, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < httpd_request_count(h); i++)
        if (httpd_request(h, i)->query && strstr(httpd_request(h, i)->query, needle))
            n++;
    return n;
}

static void test_a_block_answered_500_once_is_retried_and_the_list_is_in_order(void)
{
    struct fixture fx;
    fx_init(&fx);
    struct script s = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_times = 1};
    /* Block 1: base64("blk-00000001"). */
    snprintf(s.fail_block, sizeof(s.fail_block), "blockid=YmxrLTAwMDAwMDAx");
    struct httpd *h = httpd_start_handler(script_handler, &s);
    char *endpoint = httpd_url(h, "/" DEV_ACCOUNT);
    char *path = make_file(&fx, "m.bin", (size_t)5 << 20, 21);
    char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    struct mlstage_blob_target t = {.endpoint = endpoint,
                                    .container = "c",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    struct mlstage_blob_upload_opts o = {.block_size = 1 << 20,
                                         .content_type = "application/x-pkl"};
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "m.bin", &o, hex, NULL);
    if (rc)
        fprintf(stderr, "\n%s\n", mlstage_error_message(fx.ctx));
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(hex, want);
    CU_ASSERT_EQUAL(count_requests(h, "blockid=YmxrLTAwMDAwMDAx"), 2);
    CU_ASSERT_EQUAL(count_requests(h, "comp=block&"), 6);
    /* Each block carries its MD5, so the service refuses a block damaged on the way. */
    for (size_t i = 0; i < httpd_request_count(h); i++) {
        const struct httpd_request *r = httpd_request(h, i);
        if (!strstr(r->query, "comp=block&"))
            continue;
        unsigned char md[16];
        EVP_Digest(r->body, r->body_len, md, NULL, EVP_md5(), NULL);
        char *want_md5 = b64(md, 16);
        const char *got_md5 = httpd_request_header(r, "Content-MD5");
        CU_ASSERT_STRING_EQUAL(got_md5 ? got_md5 : "(none)", want_md5);
        free(want_md5);
    }
    CU_ASSERT_EQUAL_FATAL(count_requests(h, "comp=blocklist"), 1);
    const struct httpd_request *list = httpd_request(h, httpd_request_count(h) - 1);
    CU_ASSERT_STRING_EQUAL(list->query, "comp=blocklist");
    CU_ASSERT_STRING_EQUAL(list->body,
                           "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
                           "<Latest>YmxrLTAwMDAwMDAw</Latest><Latest>YmxrLTAwMDAwMDAx</Latest>"
                           "<Latest>YmxrLTAwMDAwMDAy</Latest><Latest>YmxrLTAwMDAwMDAz</Latest>"
                           "<Latest>YmxrLTAwMDAwMDA0</Latest></BlockList>");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(list, "x-ms-meta-sha256"), want);
    CU_ASSERT_STRING_EQUAL(httpd_request_header(list, "x-ms-blob-content-type"),
                           "application/x-pkl");
    CU_ASSERT_STRING_EQUAL(httpd_request_header(list, "x-ms-version"), "2021-12-02");
    TU_ASSERT_CONTAINS(httpd_request_header(list, "Authorization"), "SharedKey " DEV_ACCOUNT ":");
    CU_ASSERT_PTR_NULL(httpd_request_header(list, "Expect"));
    httpd_stop(h);
    free(endpoint);
    free(path);
    fx_done(&fx);
}

static void test_blocks_are_sent_concurrently(void)
{
    struct fixture fx;
    fx_init(&fx);
    struct script s = {.mu = PTHREAD_MUTEX_INITIALIZER, .delay_s = 0.2};
    struct httpd *h = httpd_start_handler(script_handler, &s);
    char *endpoint = httpd_url(h, "/" DEV_ACCOUNT);
    char *path = make_file(&fx, "c.bin", (size_t)8 << 20, 8);
    struct mlstage_blob_target t = {.endpoint = endpoint,
                                    .container = "c",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    struct mlstage_blob_upload_opts o = {.block_size = 1 << 20, .concurrency = 4};
    double t0 = now_mono();
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &t, path, "c.bin", &o, NULL, NULL), 0);
    double took = now_mono() - t0;
    /* Eight blocks of 0.2 s each: about 0.4 s four at a time, 1.6 s one by one. */
    CU_ASSERT_EQUAL(s.max_in_flight, 4);
    CU_ASSERT_TRUE(took < 1.2);
    /* Each thread keeps its connection: four for the blocks, at most one more for the list. */
    CU_ASSERT_TRUE(httpd_connection_count(h) <= 5);
    httpd_stop(h);
    free(endpoint);
    free(path);
    fx_done(&fx);
}

static void test_a_block_that_keeps_failing_commits_nothing(void)
{
    struct fixture fx;
    fx_init(&fx);
    struct script s = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_times = -1};
    snprintf(s.fail_block, sizeof(s.fail_block), "blockid=YmxrLTAwMDAwMDAy");
    struct httpd *h = httpd_start_handler(script_handler, &s);
    char *endpoint = httpd_url(h, "/" DEV_ACCOUNT);
    char *path = make_file(&fx, "f.bin", (size_t)6 << 20, 6);
    struct mlstage_blob_target t = {.endpoint = endpoint,
                                    .container = "c",
                                    .auth = MLSTAGE_BLOB_SHARED_KEY,
                                    .account_name = DEV_ACCOUNT,
                                    .account_key = DEV_KEY};
    struct mlstage_blob_upload_opts o = {.block_size = 1 << 20};
    char hex[MLSTAGE_SHA256_HEX_LEN + 1] = "untouched";
    int rc = mlstage_blob_upload_file(fx.ctx, &t, path, "f.bin", &o, hex, NULL);
    CU_ASSERT_EQUAL(rc, MLSTAGE_EREMOTE);
    CU_ASSERT_EQUAL(mlstage_exit_code(rc), 5);
    CU_ASSERT_STRING_EQUAL(hex, "untouched");
    CU_ASSERT_EQUAL(count_requests(h, "blockid=YmxrLTAwMDAwMDAy"), 5);
    CU_ASSERT_EQUAL(count_requests(h, "comp=blocklist"), 0);
    const char *msg = mlstage_error_message(fx.ctx);
    TU_ASSERT_CONTAINS(msg, "nothing committed");
    TU_ASSERT_CONTAINS(msg, "block 2");
    TU_ASSERT_CONTAINS(msg, "InternalError");
    httpd_stop(h);
    free(endpoint);
    free(path);
    fx_done(&fx);
}

static void test_bearer_auth_sends_a_storage_token(void)
{
    struct fixture fx;
    fx_init(&fx);
    struct azt_entra entra;
    azt_entra_start(&entra, "storage-token");
    azt_entra_use(&entra);
    struct script s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct httpd *h = httpd_start_handler(script_handler, &s);
    char *endpoint = httpd_url(h, "/acct");
    char *path = make_file(&fx, "b.bin", (size_t)3 << 20, 4);
    struct mlstage_blob_target t = {
        .endpoint = endpoint, .container = "c", .auth = MLSTAGE_BLOB_BEARER};
    struct mlstage_blob_upload_opts o = {.block_size = 1 << 20};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &t, path, "b.bin", &o, NULL, NULL), 0);
    CU_ASSERT_EQUAL(entra.issued, 1);
    TU_ASSERT_CONTAINS(httpd_request(entra.server, 0)->body,
                       "scope=https%3A%2F%2Fstorage.azure.com%2F.default");
    for (size_t i = 0; i < httpd_request_count(h); i++)
        CU_ASSERT_STRING_EQUAL(httpd_request_header(httpd_request(h, i), "Authorization"),
                               "Bearer storage-token-1");
    httpd_stop(h);
    azt_entra_stop(&entra);
    free(endpoint);
    free(path);
    fx_done(&fx);
}

static void test_a_dry_run_hashes_and_plans_but_sends_nothing(void)
{
    struct fixture fx;
    fx_init(&fx);
    fx.ctx->dry_run = 1;
    struct httpd *h = httpd_start();
    char *endpoint = httpd_url(h, "/" DEV_ACCOUNT);
    char *path = make_file(&fx, "d.bin", (size_t)9 << 20, 2);
    char want[MLSTAGE_SHA256_HEX_LEN + 1], hex[MLSTAGE_SHA256_HEX_LEN + 1];
    expect_file_sha(path, want);
    char *sas = account_sas();
    struct mlstage_blob_target t = {
        .endpoint = endpoint, .container = "c", .auth = MLSTAGE_BLOB_SAS, .sas = sas};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &t, path, "d.bin", NULL, hex, NULL), 0);
    CU_ASSERT_STRING_EQUAL(hex, want);
    CU_ASSERT_EQUAL(httpd_request_count(h), 0);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(fx.ctx->plan), 1);
    const char *plan = json_object_get_string(json_object_array_get_idx(fx.ctx->plan, 0));
    TU_ASSERT_CONTAINS(plan, "/c/d.bin (9437184 bytes as 3 blocks of 4194304 bytes");
    TU_ASSERT_NOT_CONTAINS(plan, "sig=");
    httpd_stop(h);
    free(sas);
    free(endpoint);
    free(path);
    fx_done(&fx);
}

static void test_incomplete_targets_are_input_errors(void)
{
    struct fixture fx;
    fx_init(&fx);
    char *path = make_file(&fx, "i.bin", 10, 1);
    struct mlstage_blob_target none = {.container = "c", .auth = MLSTAGE_BLOB_SAS, .sas = "sig=x"};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &none, path, "i.bin", NULL, NULL, NULL),
                    MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(mlstage_error_message(fx.ctx), "MLSTAGE_BLOB_ENDPOINT");
    struct mlstage_blob_target nokey = {.endpoint = "http://127.0.0.1:1/a",
                                        .container = "c",
                                        .auth = MLSTAGE_BLOB_SHARED_KEY,
                                        .account_name = "a"};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &nokey, path, "i.bin", NULL, NULL, NULL),
                    MLSTAGE_EINPUT);
    struct mlstage_blob_target nosig = {.endpoint = "http://127.0.0.1:1/a",
                                        .container = "c",
                                        .auth = MLSTAGE_BLOB_SAS,
                                        .sas = "sv=1"};
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &nosig, path, "i.bin", NULL, NULL, NULL),
                    MLSTAGE_EINPUT);
    struct mlstage_blob_target ok = {.endpoint = "http://127.0.0.1:1/a",
                                     .container = "c",
                                     .auth = MLSTAGE_BLOB_SAS,
                                     .sas = "sig=x"};
    CU_ASSERT_EQUAL(
        mlstage_blob_upload_file(fx.ctx, &ok, "/nonexistent/file", "i.bin", NULL, NULL, NULL),
        MLSTAGE_ENOTFOUND);
    CU_ASSERT_EQUAL(mlstage_blob_upload_file(fx.ctx, &ok, path, "/abs", NULL, NULL, NULL),
                    MLSTAGE_EINPUT);
    free(path);
    fx_done(&fx);
}

/* The string-to-sign of the storage reference, field by field. */
static void test_the_shared_key_string_to_sign_follows_the_reference(void)
{
    const char *h[] = {"x-ms-version: 2021-12-02", "x-ms-date: Mon, 01 Jan 2026 00:00:00 GMT",
                       "x-ms-blob-type: BlockBlob", "x-ms-meta-sha256: abc", NULL};
    char *s = blob_string_to_sign(
        "PUT", "http://127.0.0.1:10000/devstoreaccount1/c/a%20b.bin?comp=block&blockid=QUJD%3D", h,
        42, DEV_ACCOUNT);
    CU_ASSERT_STRING_EQUAL(s, "PUT\n\n\n42\n\n\n\n\n\n\n\n\n"
                              "x-ms-blob-type:BlockBlob\n"
                              "x-ms-date:Mon, 01 Jan 2026 00:00:00 GMT\n"
                              "x-ms-meta-sha256:abc\n"
                              "x-ms-version:2021-12-02\n"
                              "/devstoreaccount1/devstoreaccount1/c/a%20b.bin\n"
                              "blockid:QUJD=\ncomp:block");
    free(s);
    s = blob_string_to_sign("GET", "https://acct.blob.core.windows.net/c/x", h, 0, "acct");
    TU_ASSERT_CONTAINS(s, "GET\n\n\n\n");
    TU_ASSERT_CONTAINS(s, "x-ms-version:2021-12-02\n/acct/c/x");
    free(s);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"Azurite is installed and running", test_azurite_is_installed_and_running},
        {"SharedKey uploads a multi-block file, read back identical",
         test_shared_key_uploads_a_multi_block_file_read_back_identical},
        {"SharedKey uploads small and empty files in one PUT",
         test_shared_key_uploads_small_and_empty_files_in_one_put},
        {"blob names are encoded the same in URL and signature",
         test_blob_names_are_encoded_the_same_in_url_and_signature},
        {"SAS uploads blocks and its signature is never written",
         test_sas_uploads_blocks_and_its_signature_is_never_written},
        {"a wrong key is EAUTH and a missing container ENOTFOUND",
         test_a_wrong_key_is_eauth_and_a_missing_container_enotfound},
        {"a small blob is read back with SharedKey and SAS",
         test_a_small_blob_is_read_back_with_shared_key_and_sas},
        {"MLSTAGE_BLOB_ENDPOINT overrides the datastore endpoint",
         test_mlstage_blob_endpoint_overrides_the_datastore_endpoint},
        {"a block answered 500 once is retried and the list is in order",
         test_a_block_answered_500_once_is_retried_and_the_list_is_in_order},
        {"blocks are sent concurrently", test_blocks_are_sent_concurrently},
        {"a block that keeps failing commits nothing",
         test_a_block_that_keeps_failing_commits_nothing},
        {"bearer auth sends a storage token", test_bearer_auth_sends_a_storage_token},
        {"a dry run hashes and plans but sends nothing",
         test_a_dry_run_hashes_and_plans_but_sends_nothing},
        {"incomplete targets are input errors", test_incomplete_targets_are_input_errors},
        {"the SharedKey string-to-sign follows the reference",
         test_the_shared_key_string_to_sign_follows_the_reference},
        {NULL, NULL}};
    azurite_start();
    int rc = tu_main(argc, argv, "azure blob upload", tests);
    azurite_stop();
    return rc;
}
