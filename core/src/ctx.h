/* ctx.h — the inside of struct mlstage_ctx and the channel from a plugin's process to the agent. */
#ifndef MLSTAGE_CTX_H
#define MLSTAGE_CTX_H

#include <pthread.h>
#include <stdio.h>

#include <json-c/json.h>

#include <mlstage/context.h>

struct mlstage_ctx {
    /* Facts, owned; set by the host before run(). */
    char *run_id;
    char *run_dir;
    char *outputs_dir;
    char *workspace_dir;
    char *task;
    char *manifest_path;
    char *backend;
    int dry_run;
    double deadline;      /* now_mono() when the stage's timeout fires; 0: no timeout */
    json_object *inputs;  /* validated, defaults applied */
    json_object *secrets; /* declared name → value (set ones only) */
    json_object *git;     /* or NULL; read through ctx_git() */
    int git_fd;           /* in a plugin process: git arrives here after the fork, else -1 */
    json_object *ci;

    /*
     * The channel to the agent when the plugin runs in a child process:
     * one JSON message per line (see host.c). -1 when running in-process,
     * where calls act directly (tests).
     */
    int ctl_fd;

    pthread_mutex_t lock; /* the error slot, the channel, the records below */
    int err_code;
    char err_msg[4096];

    /* What the stage produced, recorded on both sides of the channel. */
    json_object *outputs;   /* key → string */
    json_object *artifacts; /* [{"path", "subjects"}] */
    json_object *plan;      /* [string] */
    int group_open;

    /* The Azure client's tokens and caches (azure/), created on first use. */
    struct azure_state *azure;
};

struct azure_state;
void azure_state_free(struct azure_state *st);

/* A context with empty records and no facts; ctl_fd -1. Never NULL. */
struct mlstage_ctx *ctx_new(void);
void ctx_free(struct mlstage_ctx *ctx);

/*
 * Sends one message to the agent (no-op in-process); thread-safe. Takes
 * ownership of msg.
 */
int ctx_send(struct mlstage_ctx *ctx, json_object *msg);

/* The git metadata, reading it from git_fd the first time in a plugin process. */
json_object *ctx_git(struct mlstage_ctx *ctx);

/* Key rule for outputs: [A-Za-z_][A-Za-z0-9_]{0,63}. */
int ctx_valid_output_key(const char *key);

/* Appends a line to the run's http.log (masked); thread-safe; no-op without a run dir. */
void ctx_http_log(struct mlstage_ctx *ctx, const char *line);

#endif
