/* cli_internal.h — what the command modules (cli.c, pipeline.c, models.c) share. */
#ifndef MLSTAGE_CLI_INTERNAL_H
#define MLSTAGE_CLI_INTERNAL_H

#include <json-c/json.h>

#include "gitinfo.h"
#include "manifest.h"

struct cli_opts {
    int dry_run;
    json_object *vars; /* --set, object of strings */
    const char *backend;
    const char *workspace; /* as given */
    char *workspace_abs;   /* resolved by cli_resolve_workspace */
    int json;
    int ci; /* enum ci_kind after parsing */
    int verbose;
    int quiet;
    char *plugin_paths[33]; /* NULL-terminated */
    size_t n_plugin_paths;
    char *only[65];
    size_t n_only;
    const char *from;
    char **args; /* positional arguments */
    int n_args;
};

/*
 * Parses a command's options (argv[0] is the command); configures logging.
 * Returns 0, 2 for a usage error (printed), or -1 when --help was shown.
 */
int cli_parse_opts(int argc, char **argv, const char *cmd, struct cli_opts *o);
void cli_free_opts(struct cli_opts *o);
void cli_print_usage(const char *cmd);
/* Masks the well-known secret environment variables (AZURE_CLIENT_SECRET, ...). */
void cli_mask_known_secrets(void);
/* --workspace, else the git top level of the current folder, else the folder; 0 or exit code. */
int cli_resolve_workspace(struct cli_opts *o);
/*
 * Git metadata of the source repository (the current folder's), collected
 * in a background process from the start of a command.
 */
struct cli_git {
    struct gitinfo_job *job;
    int warned;
};
void cli_git_start(struct cli_git *g);
/* Waits for it (once) and returns it borrowed, or NULL with one warning outside a repository. */
json_object *cli_git_get(void *g);
int cli_git_poll_fd(void *g); /* gitinfo_poll_fd of the collection */
void cli_git_free(struct cli_git *g);
/* Prints a JSON document on stdout, masked. */
void cli_print_json(json_object *doc);
/* Reports an error that happened before any run: log, and a JSON document with --output json. */
void cli_fail(const struct cli_opts *o, int code, const char *msg);

/* Validates one task (already parsed) the way `validate` does; fills report. */
int cli_validate_task(const struct cli_opts *o, char **dirs, json_object *git,
                      struct task_manifest *task, json_object *stages, json_object *report);
/* Validates a task or pipeline file; fills report; returns 0 or MLSTAGE_E*. */
int cli_validate_file(const struct cli_opts *o, char **dirs, json_object *git, const char *file,
                      json_object *report);

int cli_cmd_pipeline(int argc, char **argv);
int cli_cmd_models(int argc, char **argv);

#endif
