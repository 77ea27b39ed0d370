/* stage.h — one stage end to end: manifest in; plugin run, artefacts stamped, run record out. */
#ifndef MLSTAGE_STAGE_H
#define MLSTAGE_STAGE_H

#include <json-c/json.h>

#include "ci.h"
#include "manifest.h"
#include "util.h"

/* What the agent was asked, shared by every stage of one invocation. */
struct stage_opts {
    int dry_run;
    json_object *vars;     /* --set NAME=VALUE as an object of strings; never NULL */
    const char *backend;   /* --backend, or NULL */
    const char *workspace; /* absolute folder that holds .mlstage */
    char **plugin_dirs;    /* host_dirs() */
    enum ci_kind ci;
    /*
     * Git metadata (gitinfo, or NULL outside a repository), borrowed. Called
     * only when needed: it may wait for the background collection.
     */
    json_object *(*git)(void *ud);
    int (*git_poll_fd)(void *ud); /* when git would block, what to poll first; may be NULL */
    void *git_ud;
    json_object *ci_info; /* ci_info(); borrowed */
    /* Pipelines: the stages table for ${stages.*} (see expand.h), or NULL. */
    json_object *stages;
    int placeholders;
    const char *stage_label; /* the pipeline's stage name, or NULL */
    json_object *pipeline;   /* which pipeline run this is (see pipeline.c), borrowed, or NULL */
};

struct stage_result {
    int code;      /* 0 or MLSTAGE_E* */
    char *message; /* masked detail, or NULL */
    char *run_id;
    char *run_dir;       /* NULL when the stage failed before it started */
    json_object *record; /* the run.json document (new reference), or NULL */
};

/*
 * Runs `task`: resolves the plugin, reads declared secrets from the
 * environment (masked from then on), expands the inputs, creates
 * .mlstage/runs/<run-id>/, runs the plugin in a child, stamps every
 * artefact with its statement, writes outputs.json and run.json
 * atomically and publishes outputs and the summary to the CI system.
 * Errors before the run starts leave no run folder.
 */
int stage_run(const struct stage_opts *opts, struct task_manifest *task, struct stage_result *res);
void stage_result_free(struct stage_result *res);

/* A new run id: UTC time to the millisecond and 24 random bits, so ids sort by time. */
char *stage_new_run_id(void);

/* Names of environment variables that are always masked when set. */
extern const char *const stage_known_secret_env[];

#endif
