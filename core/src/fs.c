/* fs.c — atomic writes, directory creation and whole-file reads used across the core and plugins.
 */
#include <mlstage/fs.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mlstage/context.h>
#include <mlstage/error.h>

#include "ctx.h"
#include "fsutil.h"
#include "mask.h"
#include "util.h"

int mlstage_mkdirs(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof(tmp))
        return MLSTAGE_EINPUT;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return MLSTAGE_EIO;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return MLSTAGE_EIO;
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return MLSTAGE_EIO;
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof(copy), "%s", path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int fs_write_atomic(const char *path, const void *data, size_t len, struct mls_err *err)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
        return err_set(err, MLSTAGE_EINPUT, "path too long: %s", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_set(err, MLSTAGE_EIO, "cannot create a file beside %s: %s", path,
                       strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    fsync_dir_of(path);
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return err_set(err, MLSTAGE_EIO, "cannot write %s: %s", path, strerror(e));
}

int fs_path_within(const char *path, const char *dir)
{
    if (!dir)
        return 0;
    char rdir[PATH_MAX], parent[PATH_MAX], copy[PATH_MAX];
    if (!realpath(dir, rdir))
        return 0;
    snprintf(copy, sizeof(copy), "%s", path);
    /* The file may not exist yet: resolve its folder. */
    if (!realpath(dirname(copy), parent))
        return 0;
    size_t n = strlen(rdir);
    return strncmp(parent, rdir, n) == 0 && (parent[n] == '/' || parent[n] == '\0');
}

int mlstage_file_write(struct mlstage_ctx *ctx, const char *path, const void *data, size_t len)
{
    if (ctx && ctx->dry_run && !fs_path_within(path, ctx->run_dir)) {
        mlstage_plan(ctx, "write %s (%zu bytes)", path, len);
        return 0;
    }
    struct mls_err err = {0};
    int rc = fs_write_atomic(path, data, len, &err);
    if (rc && ctx)
        mlstage_error_set(ctx, rc, "%s", err.msg);
    return rc;
}

int mlstage_json_write(struct mlstage_ctx *ctx, const char *path, json_object *doc)
{
    const char *text = json_object_to_json_string_ext(doc, MLS_JSON_PRETTY);
    size_t len;
    char *masked = mask_apply(text, strlen(text), &len);
    masked = xrealloc(masked, len + 2);
    masked[len++] = '\n';
    masked[len] = '\0';
    int rc = mlstage_file_write(ctx, path, masked, len);
    free(masked);
    return rc;
}

int mlstage_file_read(const char *path, size_t max, char **data, size_t *len)
{
    if (max == 0)
        max = 64u << 20;
    *data = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? MLSTAGE_ENOTFOUND : MLSTAGE_EIO;
    struct buf b;
    buf_init(&b);
    char chunk[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = MLSTAGE_EIO;
            break;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            rc = MLSTAGE_EINPUT;
            break;
        }
        if (buf_append(&b, chunk, (size_t)n) != 0) {
            rc = MLSTAGE_ENOMEM;
            break;
        }
    }
    close(fd);
    if (rc) {
        buf_free(&b);
        return rc;
    }
    if (len)
        *len = b.len;
    *data = buf_steal(&b);
    return *data ? 0 : MLSTAGE_ENOMEM;
}

int mlstage_json_read(const char *path, json_object **doc)
{
    char *data;
    size_t len;
    *doc = NULL;
    int rc = mlstage_file_read(path, 0, &data, &len);
    if (rc)
        return rc;
    json_tokener *tok = json_tokener_new();
    *doc = json_tokener_parse_ex(tok, data, (int)len);
    int ok = *doc && json_tokener_get_error(tok) == json_tokener_success &&
             json_tokener_get_parse_end(tok) <= len;
    json_tokener_free(tok);
    free(data);
    if (!ok) {
        json_object_put(*doc);
        *doc = NULL;
        return MLSTAGE_EINPUT;
    }
    return 0;
}
