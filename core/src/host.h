/* host.h — finding plugins and running one in a child process the agent survives. */
#ifndef MLSTAGE_HOST_H
#define MLSTAGE_HOST_H

#include <json-c/json.h>

#include "manifest.h"
#include "util.h"

struct mlstage_ctx;

/*
 * Plugin search path, in order: --plugin-path folders, $MLSTAGE_PLUGIN_PATH
 * (':'-separated), bin/../lib/mlstage/plugins beside the executable, then
 * the install folder. A new NULL-terminated list of absolute existing
 * folders without duplicates; free with host_dirs_free.
 */
char **host_dirs(const char *const *cli_dirs);
void host_dirs_free(char **dirs);

/*
 * The file of plugin `name` (`<dir>/<name>.so`, first match wins), newly
 * allocated. MLSTAGE_EPLUGIN naming the folders searched when absent.
 */
int host_find(char **dirs, const char *name, char **path, struct mls_err *err);

/*
 * Loads a plugin in a child process and returns its descriptor as a new
 * object {"name", "version", "abi", "summary", "path", "inputs": schema}.
 * MLSTAGE_EPLUGIN for a plugin that cannot be loaded, lacks the entry
 * point, speaks another ABI, is misnamed or declares an invalid schema —
 * and when loading it crashes the child.
 */
int host_probe(const char *path, json_object **info, struct mls_err *err);

/* What the agent asks of one plugin run. */
struct host_run_spec {
    const char *plugin_path;
    const char *plugin_name;
    struct mlstage_ctx *ctx;          /* facts set; records filled from the child */
    const struct task_manifest *task; /* for source marks in input errors */
    json_object *inputs;              /* expanded, not yet validated */
    json_object *overrides;           /* --set values that name declared inputs, or NULL */
    double timeout_s;                 /* 0: none */
    double kill_grace_s;              /* 0: 10 s */
    /*
     * Git metadata for the plugin's context, borrowed; may be NULL. It is
     * fetched once git_poll_fd (when given and not -1) polls ready, so the
     * collection overlaps the plugin's run and never holds up its output,
     * its timeout or a stop signal.
     */
    json_object *(*git)(void *ud);
    int (*git_poll_fd)(void *ud);
    void *git_ud;
};

struct host_result {
    int code;             /* 0 or MLSTAGE_E* */
    char *message;        /* the error detail, masked, or NULL */
    char *plugin_version; /* from the plugin's descriptor, or NULL */
    json_object *inputs;  /* validated inputs as the plugin saw them, or NULL */
    int signal;           /* the signal that ended the child, or 0 */
    int timed_out;
    int interrupted; /* the agent was asked to stop (SIGINT/SIGTERM) */
};

/*
 * Forks; the child opens the plugin (RTLD_NOW | RTLD_LOCAL), checks its
 * ABI and schema, validates the inputs and runs it with a context whose
 * calls travel back over a pipe. The parent streams the child's output
 * and messages into the log and the context's records, enforces the
 * timeout (SIGTERM to the child's process group, SIGKILL after the grace)
 * and reports a crash with the signal's name. res->code is MLSTAGE_EPLUGIN,
 * EINPUT, ETIMEOUT, EINTERNAL (crash) or the plugin's own result.
 */
int host_run(const struct host_run_spec *spec, struct host_result *res);
void host_result_free(struct host_result *res);

#endif
