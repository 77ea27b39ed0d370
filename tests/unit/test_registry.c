/* test_registry.c — the local registry: versions, idempotency, aliases, parallel writers, kill -9.
 */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/registry.h>

#include "ctx.h"
#include "testutil.h"

static char *ws;

static struct mlstage_ctx *new_ctx(void)
{
    struct mlstage_ctx *ctx = ctx_new();
    ctx->workspace_dir = strdup(ws);
    ctx->run_id = strdup("20261123T000000.000Z-abcdef");
    ctx->task = strdup("register");
    return ctx;
}

static void setup(void)
{
    if (ws)
        tu_rm_rf(ws);
    free(ws);
    ws = tu_tmpdir();
}

/* A model folder with two files whose content depends on `seed`. */
static char *make_model(const char *name, int seed)
{
    char *dir = tu_fmt("%s/src-%s", ws, name);
    char *sub = tu_fmt("%s/nested", dir);
    mkdir(dir, 0755);
    mkdir(sub, 0755);
    char *a = tu_fmt("%s/model.pkl", dir), *b = tu_fmt("%s/nested/meta.json", dir);
    char *ca = tu_fmt("weights-%d\n", seed), *cb = tu_fmt("{\"seed\": %d}\n", seed);
    tu_write(a, ca);
    tu_write(b, cb);
    free(a);
    free(b);
    free(ca);
    free(cb);
    free(sub);
    return dir;
}

static int reg_one(const char *model, const char *path, json_object **out, int *existed)
{
    struct mlstage_ctx *ctx = new_ctx();
    struct mlstage_registry *reg = NULL;
    int rc = mlstage_registry_open(ctx, &reg);
    if (rc == 0) {
        json_object *metrics = json_object_new_object();
        json_object_object_add(metrics, "rmse", json_object_new_double(54.0));
        struct mlstage_model_spec spec = {.name = model, .path = path, .metrics = metrics};
        rc = mlstage_registry_register(reg, &spec, out, existed);
        if (rc)
            fprintf(stderr, "register: %s\n", mlstage_error_message(ctx));
        json_object_put(metrics);
    }
    mlstage_registry_close(reg);
    ctx_free(ctx);
    return rc;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static void registers_a_version_with_files_digests_and_tags(void)
{
    setup();
    char *src = make_model("m", 1);
    json_object *doc = NULL;
    int existed = -1;
    CU_ASSERT_EQUAL_FATAL(reg_one("diabetes", src, &doc, &existed), 0);
    CU_ASSERT_EQUAL(existed, 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "1");
    json_object *files = NULL, *tags = NULL;
    json_object_object_get_ex(doc, "files", &files);
    json_object_object_get_ex(doc, "tags", &tags);
    CU_ASSERT_EQUAL(json_object_array_length(files), 2);
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 0), "path"), "model.pkl");
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 1), "path"), "nested/meta.json");
    CU_ASSERT_STRING_EQUAL(jstr(tags, "mlstage.run_id"), "20261123T000000.000Z-abcdef");
    /* the copy's digest equals sha256sum of the source */
    struct tu_cmd sum;
    char *cmd = tu_fmt("sha256sum '%s/model.pkl' | cut -c1-64", src);
    tu_sh(cmd, NULL, NULL, &sum);
    sum.out[64] = '\0';
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 0), "sha256"), sum.out);
    char *copy = tu_fmt("%s/.mlstage/registry/diabetes/1/files/model.pkl", ws);
    char *content = tu_read(copy, NULL);
    CU_ASSERT_STRING_EQUAL(content, "weights-1\n");
    free(content);
    free(copy);
    tu_cmd_free(&sum);
    free(cmd);
    json_object_put(doc);
    free(src);
}

static void same_files_return_the_existing_version(void)
{
    setup();
    char *src = make_model("m", 1), *other = make_model("o", 2);
    json_object *doc = NULL;
    int existed = 0;
    CU_ASSERT_EQUAL(reg_one("diabetes", src, &doc, &existed), 0);
    json_object_put(doc);
    CU_ASSERT_EQUAL(reg_one("diabetes", src, &doc, &existed), 0);
    CU_ASSERT_EQUAL(existed, 1);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "1");
    json_object_put(doc);
    CU_ASSERT_EQUAL(reg_one("diabetes", other, &doc, &existed), 0);
    CU_ASSERT_EQUAL(existed, 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "2");
    json_object_put(doc);
    free(src);
    free(other);
}

static void aliases_move_and_report_the_previous_version(void)
{
    setup();
    char *a = make_model("a", 1), *b = make_model("b", 2);
    json_object *doc = NULL;
    reg_one("diabetes", a, &doc, NULL);
    json_object_put(doc);
    reg_one("diabetes", b, &doc, NULL);
    json_object_put(doc);
    struct mlstage_ctx *ctx = new_ctx();
    struct mlstage_registry *reg = NULL;
    mlstage_registry_open(ctx, &reg);
    int prev = -1;
    CU_ASSERT_EQUAL(mlstage_registry_get(reg, "diabetes", "production", &doc), MLSTAGE_ENOTFOUND);
    CU_ASSERT_EQUAL(mlstage_registry_set_alias(reg, "diabetes", "production", 1, &prev), 0);
    CU_ASSERT_EQUAL(prev, 0);
    CU_ASSERT_EQUAL(mlstage_registry_set_alias(reg, "diabetes", "production", 2, &prev), 0);
    CU_ASSERT_EQUAL(prev, 1);
    CU_ASSERT_EQUAL(mlstage_registry_get(reg, "diabetes", "production", &doc), 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "2");
    TU_ASSERT_CONTAINS(json_object_to_json_string(doc), "\"production\"");
    json_object_put(doc);
    CU_ASSERT_EQUAL(mlstage_registry_set_alias(reg, "diabetes", "production", 9, NULL),
                    MLSTAGE_ENOTFOUND);
    CU_ASSERT_EQUAL(mlstage_registry_set_alias(reg, "diabetes", "latest", 1, NULL), MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(mlstage_registry_get(reg, "diabetes", "1", &doc), 0);
    json_object_put(doc);
    CU_ASSERT_EQUAL(mlstage_registry_get(reg, "../etc", NULL, &doc), MLSTAGE_EINPUT);
    mlstage_registry_close(reg);
    ctx_free(ctx);
    free(a);
    free(b);
}

/* Forks n registrations at once; each child exits 0 on success. */
static void parallel(int n, int distinct)
{
    char *srcs[32];
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p%d", i);
        srcs[i] = make_model(name, distinct ? i : 7);
    }
    pid_t pids[32];
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0)
            _exit(reg_one("diabetes", srcs[i], NULL, NULL) == 0 ? 0 : 1);
    }
    for (int i = 0; i < n; i++) {
        int status = 0;
        waitpid(pids[i], &status, 0);
        CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        free(srcs[i]);
    }
}

static void sixteen_parallel_registrations_give_sixteen_complete_versions(void)
{
    setup();
    parallel(16, 1);
    struct mlstage_ctx *ctx = new_ctx();
    struct mlstage_registry *reg = NULL;
    mlstage_registry_open(ctx, &reg);
    json_object *list = NULL;
    CU_ASSERT_EQUAL_FATAL(mlstage_registry_list(reg, "diabetes", &list), 0);
    CU_ASSERT_EQUAL(json_object_array_length(list), 16);
    int seen[17] = {0};
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *v = json_object_array_get_idx(list, i);
        int ver = atoi(jstr(v, "version"));
        CU_ASSERT_TRUE(ver >= 1 && ver <= 16);
        if (ver >= 1 && ver <= 16)
            seen[ver]++;
        /* each version's files are all there and match their digests */
        json_object *files = NULL;
        json_object_object_get_ex(v, "files", &files);
        CU_ASSERT_EQUAL(json_object_array_length(files), 2);
        for (size_t k = 0; k < json_object_array_length(files); k++) {
            json_object *f = json_object_array_get_idx(files, k);
            char *p = tu_fmt("%s/%s", jstr(v, "path"), jstr(f, "path"));
            char hex[65];
            CU_ASSERT_EQUAL(mlstage_sha256_file(p, hex, NULL), 0);
            CU_ASSERT_STRING_EQUAL(hex, jstr(f, "sha256"));
            free(p);
        }
    }
    for (int v = 1; v <= 16; v++)
        CU_ASSERT_EQUAL(seen[v], 1);
    json_object_put(list);
    mlstage_registry_close(reg);
    ctx_free(ctx);
}

static void parallel_registrations_of_the_same_files_give_one_version(void)
{
    setup();
    parallel(8, 0);
    char *dir = tu_fmt("%s/.mlstage/registry/diabetes/2", ws);
    char *one = tu_fmt("%s/.mlstage/registry/diabetes/1/model.json", ws);
    CU_ASSERT_EQUAL(access(one, F_OK), 0);
    CU_ASSERT_NOT_EQUAL(access(dir, F_OK), 0);
    free(dir);
    free(one);
}

static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void kill_9_mid_registration_leaves_no_partial_version(void)
{
    setup();
    /* A large file keeps the copy busy long enough to be killed inside it. */
    char *src = tu_fmt("%s/big", ws);
    mkdir(src, 0755);
    struct tu_cmd res;
    char *mk = tu_fmt("head -c 200000000 /dev/urandom > '%s/blob.bin'", src);
    tu_sh(mk, NULL, NULL, &res);
    tu_cmd_free(&res);
    char *model_dir = tu_fmt("%s/.mlstage/registry/big", ws);
    int killed_while_staging = 0;
    for (int attempt = 0; attempt < 5 && !killed_while_staging; attempt++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(reg_one("big", src, NULL, NULL) == 0 ? 0 : 1);
        /* Wait until its staging folder exists, then kill it mid-copy. */
        for (int i = 0; i < 2000 && count_entries(model_dir, ".staging-") == 0; i++)
            usleep(1000);
        usleep(20000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status) && count_entries(model_dir, ".staging-") > 0)
            killed_while_staging = 1;
        /* Whatever happened, no version folder may exist without being complete. */
        char *v1 = tu_fmt("%s/1", model_dir), *mj = tu_fmt("%s/1/model.json", model_dir);
        if (access(v1, F_OK) == 0)
            CU_ASSERT_EQUAL(access(mj, F_OK), 0);
        free(v1);
        free(mj);
    }
    CU_ASSERT_TRUE(killed_while_staging);
    struct mlstage_ctx *ctx = new_ctx();
    struct mlstage_registry *reg = NULL;
    mlstage_registry_open(ctx, &reg);
    json_object *doc = NULL;
    CU_ASSERT_EQUAL(mlstage_registry_get(reg, "big", NULL, &doc), MLSTAGE_ENOTFOUND);
    mlstage_registry_close(reg);
    ctx_free(ctx);
    /* The next registration sweeps what the killed ones left and publishes version 1. */
    CU_ASSERT_EQUAL(reg_one("big", src, &doc, NULL), 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "1");
    json_object_put(doc);
    CU_ASSERT_EQUAL(count_entries(model_dir, ".staging-"), 0);
    free(model_dir);
    free(mk);
    free(src);
}

static void dry_run_writes_nothing_and_plans_the_version(void)
{
    setup();
    char *src = make_model("m", 1);
    struct mlstage_ctx *ctx = new_ctx();
    ctx->dry_run = 1;
    struct mlstage_registry *reg = NULL;
    mlstage_registry_open(ctx, &reg);
    struct mlstage_model_spec spec = {.name = "diabetes", .path = src};
    json_object *doc = NULL;
    CU_ASSERT_EQUAL(mlstage_registry_register(reg, &spec, &doc, NULL), 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "version"), "1");
    CU_ASSERT_EQUAL(json_object_array_length(ctx->plan), 1);
    TU_ASSERT_CONTAINS(json_object_get_string(json_object_array_get_idx(ctx->plan, 0)),
                       "register model diabetes version 1");
    char *reg_dir = tu_fmt("%s/.mlstage", ws);
    CU_ASSERT_NOT_EQUAL(access(reg_dir, F_OK), 0);
    free(reg_dir);
    json_object_put(doc);
    mlstage_registry_close(reg);
    ctx_free(ctx);
    free(src);
}

static void symlinks_and_bad_names_are_refused(void)
{
    setup();
    char *src = make_model("m", 1);
    char *link = tu_fmt("%s/link", src);
    CU_ASSERT_EQUAL(symlink("/etc/passwd", link), 0);
    CU_ASSERT_EQUAL(reg_one("diabetes", src, NULL, NULL), MLSTAGE_EINPUT);
    unlink(link);
    CU_ASSERT_EQUAL(reg_one("bad/name", src, NULL, NULL), MLSTAGE_EINPUT);
    CU_ASSERT_EQUAL(reg_one(".hidden", src, NULL, NULL), MLSTAGE_EINPUT);
    char *missing = tu_fmt("%s/nope", ws);
    CU_ASSERT_EQUAL(reg_one("diabetes", missing, NULL, NULL), MLSTAGE_EINPUT);
    free(missing);
    free(link);
    free(src);
}

static void model_digest_agrees_with_the_registry_and_writes_nothing(void)
{
    setup();
    char *src = make_model("m", 3);
    /* A statement beside a file is provenance, not part of the model. */
    char *stmt = tu_fmt("%s/model.pkl.intoto.json", src);
    tu_write(stmt, "{}\n");
    struct mlstage_ctx *ctx = new_ctx();
    json_object *files = NULL;
    char digest[MLSTAGE_SHA256_HEX_LEN + 1];
    CU_ASSERT_EQUAL_FATAL(mlstage_model_digest(ctx, src, &files, digest), 0);
    char *registry = tu_fmt("%s/.mlstage", ws);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(registry, &st), 0);
    CU_ASSERT_EQUAL_FATAL(json_object_array_length(files), 2);
    json_object *first = json_object_array_get_idx(files, 0);
    CU_ASSERT_STRING_EQUAL(jstr(first, "path"), "model.pkl");
    char *abs = tu_fmt("%s/model.pkl", src);
    char *real = realpath(abs, NULL);
    CU_ASSERT_STRING_EQUAL(jstr(first, "file"), real);
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(files, 1), "path"), "nested/meta.json");
    /* The digest is sha256 over the "sha256  path" lines, as sha256sum would list them. */
    struct tu_cmd sum;
    char *cmd =
        tu_fmt("cd '%s' && sha256sum model.pkl nested/meta.json | sha256sum | cut -c1-64", src);
    tu_sh(cmd, NULL, NULL, &sum);
    sum.out[64] = '\0';
    CU_ASSERT_STRING_EQUAL(digest, sum.out);
    json_object *doc = NULL;
    CU_ASSERT_EQUAL_FATAL(reg_one("diabetes", src, &doc, NULL), 0);
    CU_ASSERT_STRING_EQUAL(jstr(doc, "digest"), digest);
    /* One file on its own is a model of one file. */
    char one[MLSTAGE_SHA256_HEX_LEN + 1];
    json_object *single = NULL;
    CU_ASSERT_EQUAL(mlstage_model_digest(ctx, abs, &single, one), 0);
    CU_ASSERT_EQUAL(json_object_array_length(single), 1);
    CU_ASSERT_STRING_EQUAL(jstr(json_object_array_get_idx(single, 0), "path"), "model.pkl");
    char *missing = tu_fmt("%s/nope", ws);
    CU_ASSERT_EQUAL(mlstage_model_digest(ctx, missing, NULL, one), MLSTAGE_EINPUT);
    char *empty = tu_fmt("%s/empty", ws);
    mkdir(empty, 0755);
    CU_ASSERT_EQUAL(mlstage_model_digest(ctx, empty, NULL, one), MLSTAGE_EINPUT);
    TU_ASSERT_CONTAINS(mlstage_error_message(ctx), "holds no files");
    json_object_put(single);
    json_object_put(doc);
    json_object_put(files);
    ctx_free(ctx);
    free(empty);
    free(missing);
    tu_cmd_free(&sum);
    free(cmd);
    free(real);
    free(abs);
    free(registry);
    free(stmt);
    free(src);
}

int main(int argc, char **argv)
{
    static const struct tu_test tests[] = {
        {"registers a version with files, digests and tags",
         registers_a_version_with_files_digests_and_tags},
        {"the same files return the existing version", same_files_return_the_existing_version},
        {"aliases move and report the previous version",
         aliases_move_and_report_the_previous_version},
        {"16 parallel registrations give 16 distinct complete versions",
         sixteen_parallel_registrations_give_sixteen_complete_versions},
        {"parallel registrations of the same files give one version",
         parallel_registrations_of_the_same_files_give_one_version},
        {"kill -9 mid-registration leaves no partial version",
         kill_9_mid_registration_leaves_no_partial_version},
        {"a dry run writes nothing and plans the version",
         dry_run_writes_nothing_and_plans_the_version},
        {"symlinks and bad names are refused", symlinks_and_bad_names_are_refused},
        {"mlstage_model_digest agrees with the registry and writes nothing",
         model_digest_agrees_with_the_registry_and_writes_nothing},
        {NULL, NULL},
    };
    int rc = tu_main(argc, argv, "registry", tests);
    tu_rm_rf(ws);
    free(ws);
    return rc;
}
