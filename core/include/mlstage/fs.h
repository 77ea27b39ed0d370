/* fs.h — files the way a registry needs them: atomic writes, directories, hashing in one pass. */
#ifndef MLSTAGE_FS_H
#define MLSTAGE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;

#define MLSTAGE_SHA256_HEX_LEN 64

/*
 * SHA-256 of a file, streamed through a large buffer in constant memory.
 * `hex` receives 64 lowercase hex digits and a NUL; `size` (may be NULL)
 * the byte count.
 */
MLSTAGE_API int mlstage_sha256_file(const char *path, char hex[MLSTAGE_SHA256_HEX_LEN + 1],
                                    uint64_t *size);

/* SHA-256 of a buffer, as 64 lowercase hex digits and a NUL. */
MLSTAGE_API void mlstage_sha256_buf(const void *data, size_t len,
                                    char hex[MLSTAGE_SHA256_HEX_LEN + 1]);

/*
 * Copies `src` to `dst` (created with mode 0644, fsynced) hashing it in the
 * same read pass.
 */
MLSTAGE_API int mlstage_copy_hashed(const char *src, const char *dst,
                                    char hex[MLSTAGE_SHA256_HEX_LEN + 1], uint64_t *size);

/* mkdir -p with `mode`; existing directories are fine. */
MLSTAGE_API int mlstage_mkdirs(const char *path, mode_t mode);

/*
 * Writes `path` atomically: a temp file in the same folder, fsync, rename,
 * fsync of the folder. Readers see the old file or the new one, never a
 * torn one. In a dry run, a path outside the run folder is not written:
 * the write is printed as a plan line and 0 is returned.
 */
MLSTAGE_API int mlstage_file_write(struct mlstage_ctx *ctx, const char *path, const void *data,
                                   size_t len);

/* Writes a JSON document the same way: pretty, '/' unescaped, masked. */
MLSTAGE_API int mlstage_json_write(struct mlstage_ctx *ctx, const char *path, json_object *doc);

/*
 * Reads a whole file (at most `max` bytes; 0: 64 MiB) into a NUL-terminated
 * buffer the caller frees. MLSTAGE_ENOTFOUND when it does not exist.
 */
MLSTAGE_API int mlstage_file_read(const char *path, size_t max, char **data, size_t *len);

/* Parses a JSON file; *doc is a new reference. */
MLSTAGE_API int mlstage_json_read(const char *path, json_object **doc);

#ifdef __cplusplus
}
#endif
#endif
