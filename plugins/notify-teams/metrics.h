/* metrics.h — the `metrics` input of notify-teams: its accepted shapes, read into table rows. */
#ifndef NOTIFY_TEAMS_METRICS_H
#define NOTIFY_TEAMS_METRICS_H

#include <stddef.h>

#include <json-c/json.h>

struct mlstage_ctx;

/* How a metric moved, when its direction is known: it decides the delta's colour. */
enum metric_trend {
    METRIC_TREND_UNKNOWN = 0,
    METRIC_TREND_BETTER,
    METRIC_TREND_WORSE,
    METRIC_TREND_SAME
};

/* One row of the card's metrics table; every text is owned, NULL when not known. */
struct metric_row {
    char *name;
    char *candidate;
    char *champion;
    char *delta; /* "-1.93 (-3.5 %)": given, or candidate - champion when both are numbers */
    enum metric_trend trend;
};

struct metric_table {
    struct metric_row *rows;
    size_t count;
};

/*
 * Reads the `metrics` input (`input` may be NULL: no table) into rows, in
 * input order. The accepted shapes, also as JSON text (a pipeline passes a
 * stage output, which is a string):
 *
 *   {"rmse": {"candidate": 53.1, "champion": 55.0, "delta": -1.9,
 *             "direction": "minimize"}, ...}     delta optional, computed
 *   {"rmse": 53.1, ...}                          candidate values only
 *   [{"name": "rmse", "candidate": 53.1, ...}]   rows in a list ("metric" for "name")
 *
 * "direction" (minimize|maximize) colours the delta green when it improves
 * and red when it worsens; "improved" (a boolean) says so directly. Other
 * keys are ignored. Returns 0, or MLSTAGE_EINPUT with the error slot naming
 * the entry at fault; *out is then empty.
 */
int metrics_read(struct mlstage_ctx *ctx, json_object *input, struct metric_table *out);

/* Frees the rows; safe on an empty or zeroed table. */
void metrics_free(struct metric_table *table);

#endif
