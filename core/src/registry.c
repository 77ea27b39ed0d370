/* registry.c — the local model registry under .mlstage/registry: versions, digests, aliases. */
#include <mlstage/registry.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mlstage/context.h>
#include <mlstage/error.h>
#include <mlstage/fs.h>

#include "ctx.h"
#include "fsutil.h"
#include "util.h"

#define STAGING_PREFIX ".staging-"

struct mlstage_registry {
    struct mlstage_ctx *ctx;
    char root[PATH_MAX]; /* <workspace>/.mlstage/registry */
};

static int valid_model_name(const char *s)
{
    if (!s || !isalnum((unsigned char)s[0]) || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int valid_alias(const char *s)
{
    if (!s || !isalpha((unsigned char)s[0]) || strlen(s) > 64 || strcmp(s, "latest") == 0)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

int mlstage_registry_open(struct mlstage_ctx *ctx, struct mlstage_registry **out)
{
    *out = NULL;
    const char *ws = mlstage_workspace_dir(ctx);
    if (!ws)
        return mlstage_error_set(ctx, MLSTAGE_EINTERNAL, "the context has no workspace");
    struct mlstage_registry *reg = xcalloc(1, sizeof(*reg));
    reg->ctx = ctx;
    if (pathf(reg->root, sizeof(reg->root), "%s/.mlstage/registry", ws) != 0) {
        free(reg);
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "workspace path too long: %s", ws);
    }
    *out = reg;
    return 0;
}

void mlstage_registry_close(struct mlstage_registry *reg)
{
    free(reg);
}

/* ---- locking ----------------------------------------------------------- */

/* An exclusive flock on <model>/.lock; released by closing the descriptor. */
static int lock_model(struct mlstage_registry *reg, const char *model_dir)
{
    char path[PATH_MAX];
    if (pathf(path, sizeof(path), "%s/.lock", model_dir) != 0)
        return -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        mlstage_error_set(reg->ctx, MLSTAGE_EIO, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            mlstage_error_set(reg->ctx, MLSTAGE_EIO, "cannot lock %s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* ---- reading ----------------------------------------------------------- */

static int is_version_name(const char *s, int *v)
{
    if (!s[0] || s[0] == '0' || strlen(s) > 9)
        return 0;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    *v = atoi(s);
    return 1;
}

/* Sorted version numbers that are complete (have model.json). Caller frees. */
static int *list_versions(const char *model_dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(model_dir);
    if (!d)
        return NULL;
    int *versions = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v;
        if (!is_version_name(e->d_name, &v))
            continue;
        char path[PATH_MAX];
        if (pathf(path, sizeof(path), "%s/%s/model.json", model_dir, e->d_name) != 0 ||
            access(path, R_OK) != 0)
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            versions = xrealloc(versions, cap * sizeof(*versions));
        }
        versions[(*count)++] = v;
    }
    closedir(d);
    for (size_t i = 1; i < *count; i++)
        for (size_t j = i; j > 0 && versions[j - 1] > versions[j]; j--) {
            int t = versions[j];
            versions[j] = versions[j - 1];
            versions[j - 1] = t;
        }
    return versions;
}

static json_object *read_aliases(const char *model_dir)
{
    char path[PATH_MAX];
    json_object *doc = NULL;
    if (pathf(path, sizeof(path), "%s/aliases.json", model_dir) != 0 ||
        mlstage_json_read(path, &doc) != 0 || !json_object_is_type(doc, json_type_object)) {
        json_object_put(doc);
        return json_object_new_object();
    }
    return doc;
}

static int read_version(const char *model_dir, int version, json_object *aliases, json_object **out)
{
    char path[PATH_MAX];
    if (pathf(path, sizeof(path), "%s/%d/model.json", model_dir, version) != 0)
        return MLSTAGE_EINPUT;
    int rc = mlstage_json_read(path, out);
    if (rc)
        return rc;
    json_object *names = json_object_new_array();
    json_object_object_foreach(aliases, alias, v)
    {
        if (json_object_get_int(v) == version)
            json_object_array_add(names, json_object_new_string(alias));
    }
    json_object_object_add(*out, "aliases", names);
    if (pathf(path, sizeof(path), "%s/%d/files", model_dir, version) == 0)
        json_object_object_add(*out, "path", json_object_new_string(path));
    return 0;
}

static int model_dir_of(struct mlstage_registry *reg, const char *name, char *out, size_t size)
{
    if (!valid_model_name(name))
        return mlstage_error_set(reg->ctx, MLSTAGE_EINPUT,
                                 "invalid model name \"%s\": expected "
                                 "[A-Za-z0-9][A-Za-z0-9._-]*, at most 64 characters",
                                 name ? name : "(null)");
    if (pathf(out, size, "%s/%s", reg->root, name) != 0)
        return mlstage_error_set(reg->ctx, MLSTAGE_EINPUT, "registry path too long");
    return 0;
}

int mlstage_registry_get(struct mlstage_registry *reg, const char *name, const char *ref,
                         json_object **out)
{
    *out = NULL;
    char dir[PATH_MAX];
    int rc = model_dir_of(reg, name, dir, sizeof(dir));
    if (rc)
        return rc;
    size_t n;
    int *versions = list_versions(dir, &n);
    json_object *aliases = read_aliases(dir);
    int want = 0;
    if (!ref || strcmp(ref, "latest") == 0) {
        want = n ? versions[n - 1] : 0;
    } else if (!is_version_name(ref, &want)) {
        json_object *v = NULL;
        if (json_object_object_get_ex(aliases, ref, &v))
            want = json_object_get_int(v);
    }
    if (n == 0)
        rc =
            mlstage_error_set(reg->ctx, MLSTAGE_ENOTFOUND, "model %s is not in the registry", name);
    else if (want == 0)
        rc = mlstage_error_set(reg->ctx, MLSTAGE_ENOTFOUND, "model %s has no alias \"%s\"", name,
                               ref);
    else if ((rc = read_version(dir, want, aliases, out)) != 0)
        rc = mlstage_error_set(reg->ctx, rc == MLSTAGE_ENOTFOUND ? MLSTAGE_ENOTFOUND : MLSTAGE_EIO,
                               "model %s has no version %d", name, want);
    free(versions);
    json_object_put(aliases);
    return rc;
}

int mlstage_registry_list(struct mlstage_registry *reg, const char *name, json_object **out)
{
    *out = NULL;
    if (name) {
        char dir[PATH_MAX];
        int rc = model_dir_of(reg, name, dir, sizeof(dir));
        if (rc)
            return rc;
        size_t n;
        int *versions = list_versions(dir, &n);
        if (n == 0) {
            free(versions);
            return mlstage_error_set(reg->ctx, MLSTAGE_ENOTFOUND, "model %s is not in the registry",
                                     name);
        }
        json_object *aliases = read_aliases(dir);
        *out = json_object_new_array();
        for (size_t i = 0; i < n; i++) {
            json_object *v = NULL;
            if (read_version(dir, versions[i], aliases, &v) == 0)
                json_object_array_add(*out, v);
        }
        json_object_put(aliases);
        free(versions);
        return 0;
    }
    *out = json_object_new_object();
    struct dirent **names = NULL;
    int n = scandir(reg->root, &names, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        json_object *versions = NULL;
        if (valid_model_name(names[i]->d_name) &&
            mlstage_registry_list(reg, names[i]->d_name, &versions) == 0)
            json_object_object_add(*out, names[i]->d_name, versions);
        free(names[i]);
    }
    free(names);
    return 0;
}

/* ---- registering ------------------------------------------------------- */

struct file_entry {
    char *rel;
    char *abs;
};

static int collect_files(struct mlstage_ctx *ctx, const char *base, const char *rel,
                         struct file_entry **files, size_t *n)
{
    char path[PATH_MAX];
    if (pathf(path, sizeof(path), "%s%s%s", base, *rel ? "/" : "", rel) != 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "path too long under %s", base);
    struct stat st;
    if (lstat(path, &st) != 0)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "%s: %s", path, strerror(errno));
    if (S_ISLNK(st.st_mode))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "%s is a symbolic link: a model version holds real files only",
                                 path);
    if (S_ISREG(st.st_mode)) {
        *files = xrealloc(*files, (*n + 1) * sizeof(**files));
        (*files)[*n].rel = xstrdup(*rel ? rel : strrchr(base, '/') ? strrchr(base, '/') + 1 : base);
        (*files)[*n].abs = xstrdup(path);
        (*n)++;
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s is not a regular file or folder", path);
    struct dirent **names = NULL;
    int count = scandir(path, &names, NULL, alphasort);
    if (count < 0)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    for (int i = 0; i < count; i++) {
        const char *fn = names[i]->d_name;
        size_t len = strlen(fn);
        int skip = strcmp(fn, ".") == 0 || strcmp(fn, "..") == 0 ||
                   (len > 12 && strcmp(fn + len - 12, ".intoto.json") == 0);
        if (!skip && rc == 0) {
            char sub[PATH_MAX];
            if (pathf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", fn) != 0)
                rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "path too long under %s", path);
            else
                rc = collect_files(ctx, base, sub, files, n);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static void free_files(struct file_entry *files, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(files[i].rel);
        free(files[i].abs);
    }
    free(files);
}

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[PATH_MAX];
            if (pathf(sub, sizeof(sub), "%s/%s", path, e->d_name) == 0)
                rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/*
 * Staging folders of registrations that died (their pid is gone) are
 * removed; they were never visible as versions.
 */
static void sweep_staging(const char *model_dir)
{
    DIR *d = opendir(model_dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, STAGING_PREFIX, strlen(STAGING_PREFIX)) != 0)
            continue;
        long pid = strtol(e->d_name + strlen(STAGING_PREFIX), NULL, 10);
        if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        char path[PATH_MAX];
        if (pathf(path, sizeof(path), "%s/%s", model_dir, e->d_name) == 0)
            rm_tree(path);
    }
    if (d)
        closedir(d);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* The version whose digest equals `digest`, or 0. */
static int find_digest(const char *model_dir, const char *digest)
{
    size_t n;
    int *versions = list_versions(model_dir, &n);
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        char path[PATH_MAX];
        json_object *doc = NULL, *d = NULL;
        if (pathf(path, sizeof(path), "%s/%d/model.json", model_dir, versions[i]) == 0 &&
            mlstage_json_read(path, &doc) == 0 && json_object_object_get_ex(doc, "digest", &d) &&
            strcmp(json_object_get_string(d), digest) == 0)
            found = versions[i];
        json_object_put(doc);
    }
    free(versions);
    return found;
}

static void add_all(json_object *dst, json_object *src)
{
    if (!src || !json_object_is_type(src, json_type_object))
        return;
    json_object_object_foreach(src, key, val)
    {
        json_object_object_add(dst, key, json_object_get(val));
    }
}

/* Hashes files without copying them (dry runs): the digest tells whether it would be new. */
static int hash_only(struct mlstage_ctx *ctx, struct file_entry *files, size_t n, json_object *list,
                     struct buf *manifest, int with_abs)
{
    for (size_t i = 0; i < n; i++) {
        char hex[MLSTAGE_SHA256_HEX_LEN + 1];
        uint64_t size = 0;
        if (mlstage_sha256_file(files[i].abs, hex, &size) != 0)
            return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot read %s: %s", files[i].abs,
                                     strerror(errno));
        json_object *f = json_object_new_object();
        json_object_object_add(f, "path", json_object_new_string(files[i].rel));
        json_object_object_add(f, "sha256", json_object_new_string(hex));
        json_object_object_add(f, "size", json_object_new_int64((int64_t)size));
        json_object_array_add(list, f);
        buf_printf(manifest, "%s  %s\n", hex, files[i].rel);
        if (with_abs)
            json_object_object_add(f, "file", json_object_new_string(files[i].abs));
    }
    return 0;
}

/* The files of a model at `path` (resolved into `base`): what a version of it holds. */
static int gather_files(struct mlstage_ctx *ctx, const char *path, char base[PATH_MAX],
                        struct file_entry **files, size_t *n)
{
    *files = NULL;
    *n = 0;
    if (!path)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "no model files given");
    if (!realpath(path, base))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "model files %s: %s", path, strerror(errno));
    int rc = collect_files(ctx, base, "", files, n);
    if (rc == 0 && *n == 0)
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s holds no files to register", path);
    return rc;
}

int mlstage_model_digest(struct mlstage_ctx *ctx, const char *path, json_object **files,
                         char digest[MLSTAGE_SHA256_HEX_LEN + 1])
{
    struct file_entry *entries = NULL;
    size_t n = 0;
    char base[PATH_MAX];
    json_object *list = json_object_new_array();
    struct buf manifest;
    buf_init(&manifest);
    if (files)
        *files = NULL;
    int rc = gather_files(ctx, path, base, &entries, &n);
    if (rc == 0)
        rc = hash_only(ctx, entries, n, list, &manifest, 1);
    if (rc == 0) {
        mlstage_sha256_buf(manifest.data, manifest.len, digest);
        if (files)
            *files = json_object_get(list);
    }
    json_object_put(list);
    buf_free(&manifest);
    free_files(entries, n);
    return rc;
}

/* Copies and hashes every file into staging/files in one pass each. */
static int copy_files(struct mlstage_registry *reg, const char *staging, struct file_entry *files,
                      size_t n, json_object *list, struct buf *manifest)
{
    for (size_t i = 0; i < n; i++) {
        char dst[PATH_MAX];
        if (pathf(dst, sizeof(dst), "%s/files/%s", staging, files[i].rel) != 0)
            return mlstage_error_set(reg->ctx, MLSTAGE_EINPUT, "path too long: %s", files[i].rel);
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        if (mlstage_mkdirs(dst, 0755) != 0)
            return mlstage_error_set(reg->ctx, MLSTAGE_EIO, "cannot create %s: %s", dst,
                                     strerror(errno));
        *slash = '/';
        char hex[MLSTAGE_SHA256_HEX_LEN + 1];
        uint64_t size = 0;
        if (mlstage_copy_hashed(files[i].abs, dst, hex, &size) != 0)
            return mlstage_error_set(reg->ctx, MLSTAGE_EIO, "cannot copy %s: %s", files[i].abs,
                                     strerror(errno));
        json_object *f = json_object_new_object();
        json_object_object_add(f, "path", json_object_new_string(files[i].rel));
        json_object_object_add(f, "sha256", json_object_new_string(hex));
        json_object_object_add(f, "size", json_object_new_int64((int64_t)size));
        json_object_array_add(list, f);
        buf_printf(manifest, "%s  %s\n", hex, files[i].rel);
    }
    return 0;
}

static int next_version(const char *model_dir)
{
    size_t n;
    int *versions = list_versions(model_dir, &n);
    int next = n ? versions[n - 1] + 1 : 1;
    free(versions);
    /* A number is never reused, even if its folder were half there. */
    char path[PATH_MAX];
    while (pathf(path, sizeof(path), "%s/%d", model_dir, next) == 0 && access(path, F_OK) == 0)
        next++;
    return next;
}

int mlstage_registry_register(struct mlstage_registry *reg, const struct mlstage_model_spec *spec,
                              json_object **out, int *existed)
{
    struct mlstage_ctx *ctx = reg->ctx;
    struct file_entry *files = NULL;
    size_t nfiles = 0;
    json_object *list = json_object_new_array(), *doc = NULL;
    struct buf manifest;
    buf_init(&manifest);
    char model_dir[PATH_MAX], staging[PATH_MAX] = "";
    int lock_fd = -1, version = 0, rc;
    if (out)
        *out = NULL;
    if (existed)
        *existed = 0;

    if ((rc = model_dir_of(reg, spec->name, model_dir, sizeof(model_dir))) != 0)
        goto done;
    char base[PATH_MAX];
    if ((rc = gather_files(ctx, spec->path, base, &files, &nfiles)) != 0)
        goto done;

    if (mlstage_dry_run(ctx)) {
        if ((rc = hash_only(ctx, files, nfiles, list, &manifest, 0)) != 0)
            goto done;
        char digest[MLSTAGE_SHA256_HEX_LEN + 1];
        mlstage_sha256_buf(manifest.data, manifest.len, digest);
        int same = find_digest(model_dir, digest);
        if (same) {
            if (existed)
                *existed = 1;
            char ref[16];
            snprintf(ref, sizeof(ref), "%d", same);
            rc = mlstage_registry_get(reg, spec->name, ref, &doc);
            mlstage_plan(ctx,
                         "model %s: these files are already version %d (digest %.12s); "
                         "nothing to register",
                         spec->name, same, digest);
        } else {
            version = next_version(model_dir);
            mlstage_plan(ctx, "register model %s version %d: %zu file%s, digest %.12s", spec->name,
                         version, nfiles, nfiles == 1 ? "" : "s", digest);
            doc = json_object_new_object();
            json_object_object_add(doc, "name", json_object_new_string(spec->name));
            json_object_object_add(doc, "version", json_object_new_int(version));
            json_object_object_add(doc, "digest", json_object_new_string(digest));
            json_object_object_add(doc, "files", json_object_get(list));
            json_object_object_add(doc, "planned", json_object_new_boolean(1));
        }
        goto done;
    }

    if (mlstage_mkdirs(model_dir, 0755) != 0) {
        rc =
            mlstage_error_set(ctx, MLSTAGE_EIO, "cannot create %s: %s", model_dir, strerror(errno));
        goto done;
    }
    sweep_staging(model_dir);
    /* The pid in the name lets a later registration sweep what a killed one left. */
    if (pathf(staging, sizeof(staging), "%s/" STAGING_PREFIX "%ld-XXXXXX", model_dir,
              (long)getpid()) != 0 ||
        !mkdtemp(staging)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EIO, "cannot create a staging folder in %s: %s",
                               model_dir, strerror(errno));
        staging[0] = '\0';
        goto done;
    }
    if ((rc = copy_files(reg, staging, files, nfiles, list, &manifest)) != 0)
        goto done;
    char digest[MLSTAGE_SHA256_HEX_LEN + 1];
    mlstage_sha256_buf(manifest.data, manifest.len, digest);

    doc = json_object_new_object();
    json_object_object_add(doc, "name", json_object_new_string(spec->name));
    char ts[32];
    time_rfc3339(now_wall(), ts);
    json_object_object_add(doc, "created", json_object_new_string(ts));
    json_object_object_add(doc, "digest", json_object_new_string(digest));
    json_object_object_add(doc, "files", json_object_get(list));
    json_object *metrics = json_object_new_object(), *params = json_object_new_object();
    add_all(metrics, spec->metrics);
    add_all(params, spec->params);
    json_object_object_add(doc, "metrics", metrics);
    json_object_object_add(doc, "params", params);
    json_object *tags = mlstage_provenance_tags(ctx);
    add_all(tags, spec->tags);
    json_object_object_add(doc, "tags", tags);
    json_object_object_add(doc, "run_id",
                           json_object_new_string(mlstage_run_id(ctx) ? mlstage_run_id(ctx) : ""));
    json_object_object_add(
        doc, "task", json_object_new_string(mlstage_task_name(ctx) ? mlstage_task_name(ctx) : ""));
    json_object_object_add(doc, "source", json_object_new_string(base));
    if (spec->description)
        json_object_object_add(doc, "description", json_object_new_string(spec->description));

    /* Everything slow happened outside the lock; inside it: decide and rename. */
    lock_fd = lock_model(reg, model_dir);
    if (lock_fd < 0) {
        rc = MLSTAGE_EIO;
        goto done;
    }
    int same = find_digest(model_dir, digest);
    if (same) {
        if (existed)
            *existed = 1;
        json_object_put(doc);
        doc = NULL;
        char ref[16];
        snprintf(ref, sizeof(ref), "%d", same);
        rc = mlstage_registry_get(reg, spec->name, ref, &doc);
        goto done;
    }
    version = next_version(model_dir);
    json_object_object_add(doc, "version", json_object_new_int(version));
    char mj[PATH_MAX], final[PATH_MAX];
    if (pathf(mj, sizeof(mj), "%s/model.json", staging) != 0 ||
        pathf(final, sizeof(final), "%s/%d", model_dir, version) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "registry path too long");
        goto done;
    }
    if ((rc = mlstage_json_write(ctx, mj, doc)) != 0)
        goto done;
    char files_dir[PATH_MAX];
    if (pathf(files_dir, sizeof(files_dir), "%s/files", staging) == 0)
        fsync_path(files_dir);
    fsync_path(staging);
    if (rename(staging, final) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EIO, "cannot publish %s: %s", final, strerror(errno));
        goto done;
    }
    staging[0] = '\0';
    fsync_path(model_dir);
    json_object_put(doc);
    doc = NULL;
    char ref[16];
    snprintf(ref, sizeof(ref), "%d", version);
    rc = mlstage_registry_get(reg, spec->name, ref, &doc);
done:
    if (staging[0])
        rm_tree(staging);
    if (lock_fd >= 0)
        close(lock_fd);
    if (rc == 0 && out)
        *out = json_object_get(doc);
    json_object_put(doc);
    json_object_put(list);
    buf_free(&manifest);
    free_files(files, nfiles);
    return rc;
}

int mlstage_registry_set_alias(struct mlstage_registry *reg, const char *name, const char *alias,
                               int version, int *previous)
{
    struct mlstage_ctx *ctx = reg->ctx;
    char dir[PATH_MAX];
    int rc = model_dir_of(reg, name, dir, sizeof(dir));
    if (previous)
        *previous = 0;
    if (rc)
        return rc;
    if (!valid_alias(alias))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "invalid alias \"%s\": expected a letter then letters, digits, "
                                 "_ or - (and not \"latest\")",
                                 alias ? alias : "(null)");
    char vdir[PATH_MAX];
    if (pathf(vdir, sizeof(vdir), "%s/%d/model.json", dir, version) != 0 || access(vdir, R_OK) != 0)
        return mlstage_error_set(ctx, MLSTAGE_ENOTFOUND, "model %s has no version %d", name,
                                 version);
    json_object *aliases = read_aliases(dir), *v = NULL;
    if (json_object_object_get_ex(aliases, alias, &v) && previous)
        *previous = json_object_get_int(v);
    json_object_put(aliases);
    if (mlstage_dry_run(ctx)) {
        mlstage_plan(ctx, "set alias %s of model %s to version %d", alias, name, version);
        return 0;
    }
    int fd = lock_model(reg, dir);
    if (fd < 0)
        return MLSTAGE_EIO;
    /* Re-read under the lock: another process may have moved another alias. */
    aliases = read_aliases(dir);
    if (previous && json_object_object_get_ex(aliases, alias, &v))
        *previous = json_object_get_int(v);
    json_object_object_add(aliases, alias, json_object_new_int(version));
    char path[PATH_MAX];
    if (pathf(path, sizeof(path), "%s/aliases.json", dir) != 0)
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "registry path too long");
    else
        rc = mlstage_json_write(ctx, path, aliases);
    json_object_put(aliases);
    close(fd);
    return rc;
}
