/* evaluate_rules.c — the promotion decision: thresholds, then the champion, then the improvement.
 */
#include "evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void evaluate_format_number(double value, char out[32])
{
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, 32, "%.*g", precision, value);
        if (strtod(out, NULL) == value)
            break;
    }
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) ||
           (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)));
}

/* The number under `key`, when there is one. */
static int number_of(json_object *obj, const char *key, double *out)
{
    json_object *v = NULL;
    if (!obj || !json_object_object_get_ex(obj, key, &v) || !is_number(v))
        return 0;
    *out = json_object_get_double(v);
    return 1;
}

/* MLSTAGE_EINPUT naming the missing metric and the metrics the candidate has. */
static int missing_metric(struct mlstage_ctx *ctx, const char *where, const char *name,
                          json_object *candidate)
{
    char have[1024] = "";
    size_t n = 0;
    json_object_object_foreach(candidate, key, val)
    {
        if (!is_number(val))
            continue;
        snprintf(have + strlen(have), sizeof(have) - strlen(have), "%s%s", n++ ? ", " : "", key);
    }
    json_object *v = NULL;
    if (json_object_object_get_ex(candidate, name, &v))
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "%s: the candidate's metric \"%s\" is not a number (%s); "
                                 "numeric metrics: %s",
                                 where, name, json_object_to_json_string(v), n ? have : "none");
    return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                             "%s: the candidate's metrics have no \"%s\"; they have: %s", where,
                             name, n ? have : "no numeric metric at all");
}

static int row_add(struct evaluate_result *res, const char *name, double value)
{
    for (size_t i = 0; i < res->n_rows; i++)
        if (strcmp(res->rows[i].name, name) == 0)
            return 0;
    struct evaluate_row *rows = realloc(res->rows, (res->n_rows + 1) * sizeof(*rows));
    if (!rows)
        return MLSTAGE_ENOMEM;
    res->rows = rows;
    memset(&rows[res->n_rows], 0, sizeof(rows[0]));
    rows[res->n_rows].name = name;
    rows[res->n_rows].candidate = value;
    rows[res->n_rows].within = 1;
    res->n_rows++;
    return 0;
}

/*
 * Fills the rows: the deciding metric, the threshold metrics, then every
 * other number. Names are borrowed from the inputs and the candidate, which
 * both outlive the result.
 */
static int build_rows(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                      json_object *candidate, struct evaluate_result *res)
{
    double v;
    if (!number_of(candidate, rules->metric, &v))
        return missing_metric(ctx, "inputs.metric", rules->metric, candidate);
    if (row_add(res, rules->metric, v) != 0)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    res->rows[0].primary = 1;
    if (rules->thresholds) {
        json_object_object_foreach(rules->thresholds, tname, bounds)
        {
            char where[128];
            snprintf(where, sizeof(where), "inputs.thresholds.%s", tname);
            if (!number_of(candidate, tname, &v))
                return missing_metric(ctx, where, tname, candidate);
            double min = 0, max = 0;
            int has_min = number_of(bounds, "min", &min), has_max = number_of(bounds, "max", &max);
            if (has_min && has_max && min > max)
                return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                         "%s: min %g is above max %g, so no model could pass",
                                         where, min, max);
            if (row_add(res, tname, v) != 0)
                return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
            for (size_t i = 0; i < res->n_rows; i++) {
                struct evaluate_row *r = &res->rows[i];
                if (strcmp(r->name, tname) != 0)
                    continue;
                r->has_min = has_min;
                r->has_max = has_max;
                r->min = min;
                r->max = max;
                r->within = (!has_min || r->candidate >= min) && (!has_max || r->candidate <= max);
            }
        }
    }
    json_object_object_foreach(candidate, key, val)
    {
        if (is_number(val) && row_add(res, key, json_object_get_double(val)) != 0)
            return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    return 0;
}

static void compare_rows(struct evaluate_result *res, json_object *champion_metrics)
{
    for (size_t i = 0; i < res->n_rows; i++) {
        struct evaluate_row *r = &res->rows[i];
        r->has_champion = number_of(champion_metrics, r->name, &r->champion);
        if (!r->has_champion)
            continue;
        r->delta = r->candidate - r->champion;
        r->has_relative = r->champion != 0;
        if (r->has_relative)
            r->relative = r->delta / fabs(r->champion);
    }
}

/* "r2 = 0.21 is below its minimum 0.3; mae = 60 is above its maximum 50". */
static void threshold_failures(const struct evaluate_result *res, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < res->n_rows; i++) {
        const struct evaluate_row *r = &res->rows[i];
        if (r->within)
            continue;
        size_t len = strlen(out);
        int below = r->has_min && r->candidate < r->min;
        snprintf(out + len, size - len, "%s%s = %.5g is %s its %s %.5g", len ? "; " : "", r->name,
                 r->candidate, below ? "below" : "above", below ? "minimum" : "maximum",
                 below ? r->min : r->max);
    }
}

/* "0.5" (in the metric's units) or "1 %": the minimum improvement asked for. */
static void required_text(const struct evaluate_rules *rules, char *out, size_t size)
{
    if (rules->has_absolute)
        snprintf(out, size, "%.5g", rules->absolute);
    else if (rules->has_relative)
        snprintf(out, size, "%.3g %%", rules->relative * 100);
    else
        snprintf(out, size, "any");
}

/* A positive gain meets the minimum improvement (a gain over a champion of 0 is infinitely large).
 */
static int improvement_meets(const struct evaluate_rules *rules, const struct evaluate_row *p,
                             double gain)
{
    double rel_gain = p->has_relative ? gain / fabs(p->champion) : INFINITY;
    return (!rules->has_absolute || gain >= rules->absolute) &&
           (!rules->has_relative || rel_gain >= rules->relative);
}

static void decide(const struct evaluate_rules *rules, struct evaluate_result *res)
{
    const struct evaluate_row *p = &res->rows[0];
    const char *better = rules->maximize ? "higher is better" : "lower is better";
    char failures[600], keep[64], required[64], pct[48] = "";
    double gain = 0;
    threshold_failures(res, failures, sizeof(failures));
    res->thresholds_ok = failures[0] == '\0';
    if (res->champion_version && p->has_champion) {
        gain = rules->maximize ? p->delta : -p->delta;
        res->comparable = 1;
        res->enough = gain > 0 && improvement_meets(rules, p, gain);
        if (p->has_relative)
            snprintf(pct, sizeof(pct), " (%.3g %%)", fabs(p->relative) * 100);
    }
    if (res->champion_version)
        snprintf(keep, sizeof(keep), "Keep version %d", res->champion_version);
    else
        snprintf(keep, sizeof(keep), "Do not promote");
    required_text(rules, required, sizeof(required));

    if (!res->thresholds_ok) {
        snprintf(res->reason, sizeof(res->reason),
                 "%s: the candidate fails its thresholds (%s); train a better model or revise "
                 "the thresholds.",
                 keep, failures);
    } else if (!res->champion_version) {
        res->promote = 1;
        snprintf(res->reason, sizeof(res->reason),
                 "Promote: %s has no %s version yet and the candidate (%s = %.5g) meets every "
                 "threshold.",
                 rules->model, rules->alias, p->name, p->candidate);
    } else if (!res->comparable) {
        snprintf(res->reason, sizeof(res->reason),
                 "%s: it records no %s to compare with; register it with its metrics, or "
                 "promote the candidate (%s = %.5g) by hand.",
                 keep, p->name, p->name, p->candidate);
    } else if (res->enough) {
        res->promote = 1;
        snprintf(res->reason, sizeof(res->reason),
                 "Promote: %s goes from %.5g (version %d) to %.5g, %.5g%s better (%s)%s%s.",
                 p->name, p->champion, res->champion_version, p->candidate, gain, pct, better,
                 rules->has_absolute || rules->has_relative
                     ? ", which meets the minimum improvement of "
                     : "",
                 rules->has_absolute || rules->has_relative ? required : "");
    } else if (gain <= 0) {
        snprintf(res->reason, sizeof(res->reason),
                 "%s: the candidate's %s of %.5g is not better than version %d's %.5g (%s); "
                 "train a better model to replace it.",
                 keep, p->name, p->candidate, res->champion_version, p->champion, better);
    } else {
        snprintf(res->reason, sizeof(res->reason),
                 "%s: %s improves from %.5g to %.5g, by %.5g%s, less than the minimum "
                 "improvement of %s; lower min_improvement or train a better model.",
                 keep, p->name, p->champion, p->candidate, gain, pct, required);
    }
}

int evaluate_decide(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                    json_object *candidate, json_object *champion, struct evaluate_result *out)
{
    memset(out, 0, sizeof(*out));
    int rc = build_rows(ctx, rules, candidate, out);
    if (rc)
        return rc;
    json_object *champion_metrics = NULL, *version = NULL;
    if (champion) {
        json_object_object_get_ex(champion, "metrics", &champion_metrics);
        if (json_object_object_get_ex(champion, "version", &version))
            out->champion_version = json_object_get_int(version);
        if (out->champion_version <= 0)
            return mlstage_error_set(ctx, MLSTAGE_EIO,
                                     "the registry record of %s@%s has no version number",
                                     rules->model, rules->alias);
    }
    compare_rows(out,
                 json_object_is_type(champion_metrics, json_type_object) ? champion_metrics : NULL);
    decide(rules, out);
    return 0;
}

void evaluate_result_free(struct evaluate_result *res)
{
    if (!res)
        return;
    free(res->rows);
    memset(res, 0, sizeof(*res));
}
