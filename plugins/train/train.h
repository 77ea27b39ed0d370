/* train.h — the train plugin's seam: the job every backend runs, the backend table, collection. */
#ifndef MLSTAGE_PLUGIN_TRAIN_H
#define MLSTAGE_PLUGIN_TRAIN_H

#include <stddef.h>
#include <stdio.h>

#include <mlstage/mlstage.h>

/*
 * What to run and what to collect, resolved from the inputs once so that
 * every backend sees the same thing. Paths are absolute. All borrowed.
 */
struct train_job {
    const char *command;          /* a shell command (/bin/sh -c), or NULL */
    const char *const *argv;      /* or an argument vector, NULL-terminated */
    const char *cwd;              /* where the command runs */
    const char *const *env;       /* "KEY=VALUE" additions: env, then MLSTAGE_PARAM_*; NULL-ended */
    json_object *params;          /* the params input (object) or NULL */
    double timeout_s;             /* the command's own limit; 0: only the stage's timeout */
    const char *model_dir;        /* where the model must be afterwards */
    const char *metrics_file;     /* where the metrics must be afterwards */
    const char *const *artifacts; /* extra artefacts, NULL-terminated */
    const char *log_path;         /* the command's full output: <run>/train.log */
};

/* What a backend tells about the training it ran. */
struct train_outcome {
    int exit_code;
    double wall_s;
    /*
     * The model stayed where the training ran (a remote job): the backend
     * fetched, stamped and published what it could itself, or the job goes
     * on without us (wait: false). Nothing local for train_collect.
     */
    int remote;
};

/*
 * One backend: where and how the training command runs. A backend leaves
 * the model folder and the metrics file at the job's paths (fetching them
 * when it ran elsewhere) and the command's output in job->log_path;
 * collecting, stamping and publishing are the same for every backend.
 */
struct train_backend {
    const char *name; /* as mlstage_backend() says it: "local", "azureml" */
    /*
     * Dry run: plan lines saying exactly what run() would do. Runs nothing.
     * NULL when run() honours the dry-run flag itself (its requests are
     * printed by the core's clients, not sent).
     */
    void (*plan)(struct mlstage_ctx *ctx, const struct train_job *job);
    /*
     * Runs the training to its end. 0 when the command succeeded; else a
     * negative MLSTAGE_E* code with a message that says how it ended and
     * shows the last lines of its output.
     */
    int (*run)(struct mlstage_ctx *ctx, const struct train_job *job, struct train_outcome *out);
};

extern const struct train_backend train_local_backend;
extern const struct train_backend train_azureml_backend;

/*
 * After a successful run: checks the model folder, the metrics file and
 * the extra artefacts, declares them as artefacts (hashed, stamped),
 * publishes the outputs and writes the summary. MLSTAGE_EFAIL with a
 * message naming the file when one is missing or malformed.
 */
int train_collect(struct mlstage_ctx *ctx, const struct train_job *job,
                  const struct train_outcome *outcome);

/*
 * Reads a metrics file: a JSON object of finite numbers. *out is a new
 * reference; MLSTAGE_EFAIL naming the file and what is wrong with it.
 */
int train_read_metrics(struct mlstage_ctx *ctx, const char *path, json_object **out);

/* Publishes outputs "metrics" (compact JSON) and metric_<name> for each metric. */
int train_publish_metrics(struct mlstage_ctx *ctx, json_object *metrics);

/* Inline code for summaries: text that cannot break the markdown (table cells: markdown.h). */
void train_md_code(FILE *f, const char *text);

/* A number as the shortest text that reads back as the same double. */
void train_format_number(double value, char out[32]);

/* argv as a shell would need it typed: words quoted only where needed. New string. */
char *train_argv_text(const char *const *argv);

#endif
