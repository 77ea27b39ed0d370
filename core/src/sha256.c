/* sha256.c — SHA-256 of files and buffers, and copies hashed in the same pass (OpenSSL EVP). */
#include <mlstage/fs.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <mlstage/error.h>

#include "util.h"

/*
 * 1 MiB: large enough that the syscall and EVP call overhead disappears
 * against the hashing itself (measured on par with `openssl dgst`), small
 * enough to keep the peak RSS far below what a 1 GiB model would need.
 */
#define SHA256_CHUNK (1u << 20)

static int errno_code(int e)
{
    if (e == ENOENT || e == ENOTDIR)
        return MLSTAGE_ENOTFOUND;
    if (e == ENOMEM)
        return MLSTAGE_ENOMEM;
    return MLSTAGE_EIO;
}

static int write_full(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Streams `in` through SHA-256 and, when `out` >= 0, writes every chunk to
 * it too. errno is left describing a failure.
 */
static int hash_stream(int in, int out, char hex[MLSTAGE_SHA256_HEX_LEN + 1], uint64_t *size)
{
    int rc = MLSTAGE_EIO;
    uint64_t total = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    unsigned char *chunk = malloc(SHA256_CHUNK);
    EVP_MD_CTX *md_ctx = EVP_MD_CTX_new();
    if (!chunk || !md_ctx) {
        errno = ENOMEM;
        rc = MLSTAGE_ENOMEM;
        goto done;
    }
    if (EVP_DigestInit_ex(md_ctx, EVP_sha256(), NULL) != 1) {
        errno = EINVAL;
        rc = MLSTAGE_EINTERNAL;
        goto done;
    }
    /* Advisory only: a kernel that ignores it still gives correct bytes. */
    (void)posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        ssize_t n = read_full(in, chunk, SHA256_CHUNK);
        if (n < 0) {
            rc = errno_code(errno);
            goto done;
        }
        if (n == 0)
            break;
        if (EVP_DigestUpdate(md_ctx, chunk, (size_t)n) != 1) {
            errno = EINVAL;
            rc = MLSTAGE_EINTERNAL;
            goto done;
        }
        if (out >= 0 && write_full(out, chunk, (size_t)n) != 0) {
            rc = errno_code(errno);
            goto done;
        }
        total += (uint64_t)n;
        if ((size_t)n < SHA256_CHUNK)
            break; /* short read after read_full means end of file */
    }
    if (EVP_DigestFinal_ex(md_ctx, md, &md_len) != 1 || md_len != 32) {
        errno = EINVAL;
        rc = MLSTAGE_EINTERNAL;
        goto done;
    }
    hex_encode(md, 32, hex);
    if (size)
        *size = total;
    rc = 0;
done:;
    int saved = errno;
    EVP_MD_CTX_free(md_ctx);
    free(chunk);
    errno = saved;
    return rc;
}

int mlstage_sha256_file(const char *path, char hex[MLSTAGE_SHA256_HEX_LEN + 1], uint64_t *size)
{
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno_code(errno);
        goto done;
    }
    rc = hash_stream(fd, -1, hex, size);
done:;
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
    return rc;
}

void mlstage_sha256_buf(const void *data, size_t len, char hex[MLSTAGE_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32) {
        /* Only a broken OpenSSL gets here; an empty digest must never be recorded. */
        fprintf(stderr, "mlstage: OpenSSL SHA-256 is unavailable\n");
        abort();
    }
    hex_encode(md, 32, hex);
}

static void fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        /* The rename is durable only once the folder is; best effort. */
        (void)fsync(fd);
        close(fd);
    }
}

int mlstage_copy_hashed(const char *src, const char *dst, char hex[MLSTAGE_SHA256_HEX_LEN + 1],
                        uint64_t *size)
{
    int rc = MLSTAGE_EIO;
    int in = -1, out = -1;
    char tmp[PATH_MAX];
    tmp[0] = '\0';
    if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dst) >= (int)sizeof(tmp)) {
        tmp[0] = '\0';
        errno = ENAMETOOLONG;
        rc = MLSTAGE_EINPUT;
        goto done;
    }
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        tmp[0] = '\0';
        rc = errno_code(errno);
        goto done;
    }
    /* The temp file sits in the destination folder so that rename is atomic. */
    out = mkostemp(tmp, O_CLOEXEC);
    if (out < 0) {
        tmp[0] = '\0';
        rc = errno_code(errno);
        goto done;
    }
    rc = hash_stream(in, out, hex, size);
    if (rc)
        goto done;
    rc = MLSTAGE_EIO;
    if (fchmod(out, 0644) != 0 || fsync(out) != 0)
        goto done;
    int cr = close(out);
    out = -1;
    if (cr != 0)
        goto done;
    if (rename(tmp, dst) != 0)
        goto done;
    tmp[0] = '\0';
    fsync_parent(dst);
    rc = 0;
done:;
    int saved = errno;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (tmp[0])
        unlink(tmp);
    errno = saved;
    return rc;
}
