/* aml_code.c — a local folder made an Azure ML code asset: hashed, uploaded once per content,
 * versioned.
 */
#include "aml.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A folder bigger than this is not a code snapshot: likely data or a virtualenv was included. */
#define CODE_MAX_FILES 10000
/* Digits of the content digest that name a code version: 2^64 contents before a collision. */
#define CODE_VERSION_HEX 16

struct code_file {
    char *rel; /* '/'-separated, relative to the folder */
    char *abs;
    char sha[MLSTAGE_SHA256_HEX_LEN + 1];
};

struct code_list {
    struct code_file *files;
    size_t n, cap;
};

static void list_free(struct code_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->files[i].rel);
        free(l->files[i].abs);
    }
    free(l->files);
    memset(l, 0, sizeof(*l));
}

/* What a code snapshot leaves out: version control, mlstage's own runs, Python's caches. */
static int skipped(const char *name, int is_dir)
{
    if (is_dir)
        return strcmp(name, ".git") == 0 || strcmp(name, ".mlstage") == 0 ||
               strcmp(name, "__pycache__") == 0 || strcmp(name, ".ipynb_checkpoints") == 0;
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".pyc") == 0;
}

static int by_rel(const void *a, const void *b)
{
    return strcmp(((const struct code_file *)a)->rel, ((const struct code_file *)b)->rel);
}

static int walk(struct mlstage_ctx *ctx, const char *abs, const char *rel, struct code_list *l)
{
    DIR *d = opendir(abs);
    if (!d)
        return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot read the code folder %s: %s", abs,
                                 strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *child = aml_fmt("%s/%s", abs, e->d_name);
        char *crel = rel[0] ? aml_fmt("%s/%s", rel, e->d_name) : strdup(e->d_name);
        struct stat st, lst;
        if (!child || !crel) {
            rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        } else if (lstat(child, &lst) != 0 || stat(child, &st) != 0) {
            mlstage_warn(ctx, "code snapshot: leaving out %s (%s)", child, strerror(errno));
        } else if (S_ISDIR(st.st_mode)) {
            /* A linked folder could lead back up the tree: only real folders are followed. */
            if (S_ISLNK(lst.st_mode))
                mlstage_warn(ctx, "code snapshot: leaving out %s, a link to a folder", child);
            else if (!skipped(e->d_name, 1))
                rc = walk(ctx, child, crel, l);
        } else if (S_ISREG(st.st_mode) && !skipped(e->d_name, 0)) {
            if (l->n >= CODE_MAX_FILES) {
                rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                       "the code folder holds more than %d files: point code at "
                                       "the folder with the training sources only",
                                       CODE_MAX_FILES);
            } else {
                if (l->n == l->cap) {
                    size_t cap = l->cap ? 2 * l->cap : 32;
                    struct code_file *grown = realloc(l->files, cap * sizeof(*grown));
                    if (!grown) {
                        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
                        goto next;
                    }
                    l->files = grown;
                    l->cap = cap;
                }
                struct code_file *f = &l->files[l->n++];
                memset(f, 0, sizeof(*f));
                f->rel = crel;
                f->abs = child;
                crel = child = NULL;
            }
        }
    next:
        free(child);
        free(crel);
    }
    closedir(d);
    return rc;
}

/* sha256 over the sorted "<sha256>  <path>\n" lines, as sha256sum would list the folder. */
static int content_digest(struct mlstage_ctx *ctx, struct code_list *l,
                          char digest[MLSTAGE_SHA256_HEX_LEN + 1])
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    for (size_t i = 0; i < l->n; i++) {
        if (mlstage_sha256_file(l->files[i].abs, l->files[i].sha, NULL) != 0) {
            fclose(f);
            free(text);
            return mlstage_error_set(ctx, MLSTAGE_EIO, "cannot read %s: %s", l->files[i].abs,
                                     strerror(errno));
        }
        fprintf(f, "%s  %s\n", l->files[i].sha, l->files[i].rel);
    }
    if (fclose(f) != 0) {
        free(text);
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    mlstage_sha256_buf(text, size, digest);
    free(text);
    return 0;
}

/* "mlstage-" and the folder's name, with what an asset name cannot hold as '-'. */
static char *container_name(const char *dir)
{
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    char *name = aml_fmt("mlstage-%.200s", base);
    if (!name)
        return NULL;
    for (char *p = name; *p; p++)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
              *p == '-' || *p == '_'))
            *p = '-';
    return name;
}

static int put_asset(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *name,
                     const char *version, const char *code_uri, const char *digest, size_t nfiles)
{
    json_object *container = json_object_new_object(), *cprops = json_object_new_object();
    json_object_object_add(cprops, "description",
                           json_object_new_string("code snapshots uploaded by mlstage"));
    json_object_object_add(container, "properties", cprops);
    char *cpath = aml_path(ws, "/codes/%s", name);
    char *vpath = aml_path(ws, "/codes/%s/versions/%s", name, version);
    int rc = cpath && vpath
                 ? mlstage_arm_request(ctx, "PUT", cpath, AML_API_VERSION, container, NULL, NULL)
                 : MLSTAGE_ENOMEM;
    if (rc == 0) {
        json_object *body = json_object_new_object(), *props = json_object_new_object();
        json_object *extra = json_object_new_object();
        char *desc = aml_fmt("%zu files, sha256 of their listing %s", nfiles, digest);
        json_object_object_add(props, "codeUri", json_object_new_string(code_uri));
        json_object_object_add(props, "isAnonymous", json_object_new_boolean(0));
        json_object_object_add(props, "description", json_object_new_string(desc ? desc : ""));
        json_object_object_add(props, "tags", mlstage_provenance_tags(ctx));
        json_object_object_add(extra, "mlstage.sha256", json_object_new_string(digest));
        json_object_object_add(props, "properties", extra);
        json_object_object_add(body, "properties", props);
        rc = mlstage_arm_request(ctx, "PUT", vpath, AML_API_VERSION, body, NULL, NULL);
        json_object_put(body);
        free(desc);
    }
    json_object_put(container);
    free(cpath);
    free(vpath);
    return rc;
}

int aml_code_upload(struct mlstage_ctx *ctx, const struct aml_workspace *ws, const char *dir,
                    const char *datastore, char **code_id)
{
    struct code_list files = {0};
    struct aml_datastore ds;
    char digest[MLSTAGE_SHA256_HEX_LEN + 1], version[CODE_VERSION_HEX + 1];
    char *name = NULL, *vpath = NULL, *prefix = NULL, *code_uri = NULL;
    struct stat st;
    long status = 0;
    int rc;
    memset(&ds, 0, sizeof(ds));
    *code_id = NULL;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.code: %s is not a folder", dir);
    if ((rc = walk(ctx, dir, "", &files)) != 0)
        goto done;
    if (files.n == 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.code: the folder %s holds no files",
                               dir);
        goto done;
    }
    qsort(files.files, files.n, sizeof(*files.files), by_rel);
    if ((rc = content_digest(ctx, &files, digest)) != 0)
        goto done;
    snprintf(version, sizeof(version), "%.*s", CODE_VERSION_HEX, digest);
    name = container_name(dir);
    vpath = name ? aml_path(ws, "/codes/%s/versions/%s", name, version) : NULL;
    if (!vpath) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    *code_id = strdup(vpath);

    /* The same content was uploaded before (by any run): it is that version. */
    rc = mlstage_arm_request(ctx, "GET", vpath, AML_API_VERSION, NULL, &status, NULL);
    if (rc == 0) {
        mlstage_info(ctx, "code snapshot of %s: %zu files, already code %s version %s", dir,
                     files.n, name, version);
        goto done;
    }
    if (rc != MLSTAGE_ENOTFOUND)
        goto done;
    if ((rc = aml_datastore_open(ctx, ws, datastore, &ds)) != 0)
        goto done;
    prefix = aml_fmt("LocalUpload/mlstage/%s/%s", version, name + strlen("mlstage-"));
    code_uri = prefix ? aml_fmt("%s/%s/%s", ds.url, ds.container, prefix) : NULL;
    if (!code_uri) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    mlstage_info(ctx, "code snapshot of %s: %zu files to datastore %s, %s", dir, files.n, ds.name,
                 prefix);
    for (size_t i = 0; i < files.n; i++) {
        char *blob = aml_fmt("%s/%s", prefix, files.files[i].rel);
        char sha[MLSTAGE_SHA256_HEX_LEN + 1];
        rc = blob ? mlstage_blob_upload_file(ctx, &ds.target, files.files[i].abs, blob, NULL, sha,
                                             NULL)
                  : MLSTAGE_ENOMEM;
        free(blob);
        if (rc)
            goto done;
        if (strcmp(sha, files.files[i].sha) != 0) {
            rc = mlstage_error_set(ctx, MLSTAGE_EIO,
                                   "%s changed while it was uploaded: run again once nothing "
                                   "writes to the code folder",
                                   files.files[i].abs);
            goto done;
        }
    }
    rc = put_asset(ctx, ws, name, version, code_uri, digest, files.n);
done:
    if (rc) {
        free(*code_id);
        *code_id = NULL;
    }
    list_free(&files);
    aml_datastore_free(&ds);
    free(name);
    free(vpath);
    free(prefix);
    free(code_uri);
    return rc;
}
