/* evaluate.h — the evaluate plugin's seam: the champion backends, the rules, the report. */
#ifndef MLSTAGE_PLUGIN_EVALUATE_H
#define MLSTAGE_PLUGIN_EVALUATE_H

#include <stddef.h>

#include <mlstage/mlstage.h>

/*
 * One backend: where the champion lives. The comparison and the report are
 * the same for every backend.
 */
struct evaluate_backend {
    const char *name; /* as mlstage_backend() says it: "local", "azureml" */
    /*
     * The version `alias` of `model` points at, as its registry record
     * ({"version", "metrics", ...}; a new reference in *out), or *out NULL
     * when there is none yet (no such model, or no such alias). Errors only
     * when the registry cannot be read.
     */
    int (*champion)(struct mlstage_ctx *ctx, const char *model, const char *alias,
                    json_object **out);
};

extern const struct evaluate_backend evaluate_local_backend;
extern const struct evaluate_backend evaluate_azureml_backend;

/* The rules from the inputs. */
struct evaluate_rules {
    const char *model;
    const char *alias;
    const char *metric; /* the metric that decides */
    int maximize;
    int has_absolute, has_relative;
    double absolute, relative; /* minimum improvement */
    json_object *thresholds;   /* {"r2": {"min": 0.3}} or NULL; borrowed */
};

/* One metric in the comparison. */
struct evaluate_row {
    const char *name; /* borrowed from the candidate's metrics */
    double candidate;
    int has_champion;
    double champion;
    double delta;     /* candidate - champion */
    int has_relative; /* champion is not 0 */
    double relative;  /* delta / |champion| */
    int has_min, has_max;
    double min, max;
    int within; /* the thresholds hold (1 when there are none) */
    int primary;
};

/* The decision and everything the report shows. */
struct evaluate_result {
    int promote;
    int thresholds_ok;
    int comparable;            /* a champion with the metric exists */
    int enough;                /* comparable, and better by at least the minimum improvement */
    int champion_version;      /* 0: none */
    char reason[1024];         /* one sentence a person can act on */
    struct evaluate_row *rows; /* the deciding metric, threshold metrics, then the others */
    size_t n_rows;
};

/*
 * Applies the rules to the candidate's metrics (an object) and the
 * champion's record (or NULL). MLSTAGE_EINPUT naming the metric and the
 * metrics present when the deciding metric or a threshold metric is not a
 * number in the candidate's metrics. The result keeps pointers into
 * `candidate`; free it with evaluate_result_free.
 */
int evaluate_decide(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                    json_object *candidate, json_object *champion, struct evaluate_result *out);
void evaluate_result_free(struct evaluate_result *res);

/*
 * The report: a markdown table and a mermaid chart in the step summary,
 * and evaluation.svg (a bar chart per metric) in the run folder, declared
 * as an artefact. *svg_path (may be NULL) receives the chart's path (free).
 */
int evaluate_report(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                    const struct evaluate_result *res, char **svg_path);

/* A number as the shortest text that reads back as the same double. */
void evaluate_format_number(double value, char out[32]);

#endif
