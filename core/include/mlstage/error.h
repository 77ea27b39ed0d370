/* error.h — the one error enum shared by the core and plugins, and its mapping to exit codes. */
#ifndef MLSTAGE_ERROR_H
#define MLSTAGE_ERROR_H

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Every mlstage function returns 0 or one of these negative codes; the
 * human-readable detail goes into the context's error slot (see
 * mlstage_error_set). Each code maps to exactly one process exit code.
 */
enum mlstage_error {
    MLSTAGE_OK = 0,
    MLSTAGE_EFAIL = -1,     /* the stage's work failed                    → exit 1   */
    MLSTAGE_EINPUT = -2,    /* usage, manifest or input error             → exit 2   */
    MLSTAGE_EPLUGIN = -3,   /* plugin missing, wrong ABI or bad schema    → exit 3   */
    MLSTAGE_EAUTH = -4,     /* backend authentication or configuration    → exit 4   */
    MLSTAGE_EREMOTE = -5,   /* a remote service kept failing after retries → exit 5  */
    MLSTAGE_ETIMEOUT = -6,  /* the stage ran past its timeout             → exit 124 */
    MLSTAGE_EINTERNAL = -7, /* internal error or plugin crash             → exit 70  */
    MLSTAGE_ENOMEM = -8,    /* out of memory                              → exit 70  */
    MLSTAGE_EIO = -9,       /* a file could not be read or written        → exit 1   */
    MLSTAGE_ENOTFOUND = -10 /* a looked-up item does not exist            → exit 1   */
};

/* Short static description of a code ("manifest or input error"). */
MLSTAGE_API const char *mlstage_strerror(int code);

/* The process exit code for a code: 0, 1, 2, 3, 4, 5, 70 or 124. */
MLSTAGE_API int mlstage_exit_code(int code);

#ifdef __cplusplus
}
#endif
#endif
