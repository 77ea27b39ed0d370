/* fsutil.h — file helpers of the core that take an error slot instead of a context. */
#ifndef MLSTAGE_FSUTIL_H
#define MLSTAGE_FSUTIL_H

#include <stddef.h>

#include "util.h"

/* Temp file in the same folder, fsync, rename, fsync of the folder. */
int fs_write_atomic(const char *path, const void *data, size_t len, struct mls_err *err);

/* Non-zero when `path` (which may not exist yet) lies inside `dir`. */
int fs_path_within(const char *path, const char *dir);

#endif
