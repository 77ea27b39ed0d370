/* error.c — the one place that maps error codes to text and to process exit codes. */
#include <mlstage/error.h>

const char *mlstage_strerror(int code)
{
    switch (code) {
    case MLSTAGE_OK: return "success";
    case MLSTAGE_EFAIL: return "the stage's work failed";
    case MLSTAGE_EINPUT: return "usage, manifest or input error";
    case MLSTAGE_EPLUGIN: return "plugin could not be loaded";
    case MLSTAGE_EAUTH: return "backend authentication or configuration failed";
    case MLSTAGE_EREMOTE: return "a remote service kept failing";
    case MLSTAGE_ETIMEOUT: return "timed out";
    case MLSTAGE_EINTERNAL: return "internal error";
    case MLSTAGE_ENOMEM: return "out of memory";
    case MLSTAGE_EIO: return "file input/output error";
    case MLSTAGE_ENOTFOUND: return "not found";
    default: return "unknown error";
    }
}

int mlstage_exit_code(int code)
{
    switch (code) {
    case MLSTAGE_OK: return 0;
    case MLSTAGE_EFAIL: return 1;
    case MLSTAGE_EINPUT: return 2;
    case MLSTAGE_EPLUGIN: return 3;
    case MLSTAGE_EAUTH: return 4;
    case MLSTAGE_EREMOTE: return 5;
    case MLSTAGE_ETIMEOUT: return 124;
    case MLSTAGE_EIO: return 1;
    case MLSTAGE_ENOTFOUND: return 1;
    default: return 70;
    }
}
