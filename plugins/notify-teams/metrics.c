/* metrics.c — reads the notify-teams `metrics` input, in any of its shapes, into table rows. */
#include "metrics.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/mlstage.h>

/* Longest JSON text taken for `metrics`: far more rows than a card can show. */
#define METRICS_TEXT_MAX ((size_t)1 << 20)
/* Longest metric name quoted in an error message. */
#define NAME_QUOTE_MAX 64

void metrics_free(struct metric_table *table)
{
    if (!table)
        return;
    for (size_t i = 0; i < table->count; i++) {
        free(table->rows[i].name);
        free(table->rows[i].candidate);
        free(table->rows[i].champion);
        free(table->rows[i].delta);
    }
    free(table->rows);
    table->rows = NULL;
    table->count = 0;
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) ||
           (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)));
}

/* Numbers as people read them in a table: at most 6 significant digits, never "-0". */
static void number_text(char *out, size_t cap, json_object *v)
{
    if (json_object_is_type(v, json_type_int)) {
        snprintf(out, cap, "%" PRId64, json_object_get_int64(v));
        return;
    }
    double d = json_object_get_double(v);
    snprintf(out, cap, "%.6g", d == 0 ? 0.0 : d);
}

/* An entry's name in messages: inputs.metrics.rmse, or inputs.metrics["odd name"]. */
static void entry_name(char *out, size_t cap, const char *name)
{
    int plain = *name != '\0';
    for (const char *p = name; *p && plain; p++)
        plain = isalnum((unsigned char)*p) || *p == '_' || *p == '-';
    if (plain)
        snprintf(out, cap, "inputs.metrics.%.*s", NAME_QUOTE_MAX, name);
    else
        snprintf(out, cap, "inputs.metrics[\"%.*s\"]", NAME_QUOTE_MAX, name);
}

/*
 * A cell's text: a number formatted, a string as given, a boolean as a word;
 * null or absent gives NULL. Objects and arrays are not cells.
 */
static int cell_text(struct mlstage_ctx *ctx, const char *where, const char *key, json_object *v,
                     char **out)
{
    char tmp[64];
    *out = NULL;
    switch (json_object_get_type(v)) {
    case json_type_null: return 0;
    case json_type_int:
    case json_type_double:
        if (!is_number(v))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s%s%s: expected a finite number", where,
                                     key ? "." : "", key ? key : "");
        number_text(tmp, sizeof(tmp), v);
        *out = strdup(tmp);
        break;
    case json_type_boolean: *out = strdup(json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_string: *out = strdup(json_object_get_string(v)); break;
    default:
        return mlstage_error_set(
            ctx, MLSTAGE_EINPUT, "%s%s%s: expected a number, a string or null, got %s", where,
            key ? "." : "", key ? key : "",
            json_object_is_type(v, json_type_array) ? "an array" : "an object");
    }
    return *out ? 0 : MLSTAGE_ENOMEM;
}

/* "+1.5" or "-1.93 (-3.5 %)" when the champion is a non-zero number to compare with. */
static char *delta_text(double delta, json_object *champion)
{
    char tmp[96];
    int n = snprintf(tmp, sizeof(tmp), "%+.6g", delta == 0 ? 0.0 : delta);
    if (is_number(champion) && json_object_get_double(champion) != 0 && n > 0 &&
        (size_t)n < sizeof(tmp))
        snprintf(tmp + n, sizeof(tmp) - (size_t)n, " (%+.1f %%)",
                 100.0 * delta / fabs(json_object_get_double(champion)));
    return strdup(tmp);
}

static json_object *member(json_object *obj, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(obj, key, &v) ? v : NULL;
}

static int trend_of(struct mlstage_ctx *ctx, const char *where, json_object *spec, int have_delta,
                    double delta, enum metric_trend *out)
{
    json_object *improved = member(spec, "improved"), *direction = member(spec, "direction");
    *out = METRIC_TREND_UNKNOWN;
    if (improved && !json_object_is_type(improved, json_type_null)) {
        if (!json_object_is_type(improved, json_type_boolean))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s.improved: expected true or false",
                                     where);
        *out = json_object_get_boolean(improved) ? METRIC_TREND_BETTER : METRIC_TREND_WORSE;
        return 0;
    }
    if (!direction || json_object_is_type(direction, json_type_null))
        return 0;
    const char *d =
        json_object_is_type(direction, json_type_string) ? json_object_get_string(direction) : "";
    int minimize = strcmp(d, "minimize") == 0;
    if (!minimize && strcmp(d, "maximize") != 0)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "%s.direction: expected \"minimize\" or \"maximize\"", where);
    if (!have_delta)
        return 0;
    if (delta == 0)
        *out = METRIC_TREND_SAME;
    else
        *out = (delta < 0) == minimize ? METRIC_TREND_BETTER : METRIC_TREND_WORSE;
    return 0;
}

/* One metric: `spec` is {candidate, champion, delta, direction, improved} or a bare value. */
static int row_read(struct mlstage_ctx *ctx, const char *name, json_object *spec,
                    struct metric_row *row)
{
    char where[160];
    int rc;
    entry_name(where, sizeof(where), name);
    memset(row, 0, sizeof(*row));
    if (!(row->name = strdup(name)))
        return MLSTAGE_ENOMEM;
    if (!json_object_is_type(spec, json_type_object))
        return cell_text(ctx, where, NULL, spec, &row->candidate);

    json_object *candidate = member(spec, "candidate"), *champion = member(spec, "champion"),
                *delta = member(spec, "delta");
    if (!candidate && !champion && !delta)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "%s: expected at least one of candidate, champion and delta",
                                 where);
    if ((rc = cell_text(ctx, where, "candidate", candidate, &row->candidate)) != 0 ||
        (rc = cell_text(ctx, where, "champion", champion, &row->champion)) != 0)
        return rc;

    int have_delta = 0;
    double d = 0;
    if (delta && is_number(delta)) {
        have_delta = 1;
        d = json_object_get_double(delta);
    } else if (delta && !json_object_is_type(delta, json_type_null)) {
        /* Given as text ("n/a", "+2 %"): shown as it is, not compared. */
        if ((rc = cell_text(ctx, where, "delta", delta, &row->delta)) != 0)
            return rc;
    } else if (is_number(candidate) && is_number(champion)) {
        have_delta = 1;
        d = json_object_get_double(candidate) - json_object_get_double(champion);
    }
    if (have_delta && !(row->delta = delta_text(d, champion)))
        return MLSTAGE_ENOMEM;
    return trend_of(ctx, where, spec, have_delta, d, &row->trend);
}

static int rows_alloc(struct metric_table *t, size_t n)
{
    t->count = 0;
    t->rows = n ? calloc(n, sizeof(*t->rows)) : NULL;
    return n && !t->rows ? MLSTAGE_ENOMEM : 0;
}

static int table_from_object(struct mlstage_ctx *ctx, json_object *obj, struct metric_table *t)
{
    int rc = rows_alloc(t, (size_t)json_object_object_length(obj));
    if (rc)
        return rc;
    json_object_object_foreach(obj, key, val)
    {
        rc = row_read(ctx, key, val, &t->rows[t->count]);
        t->count++; /* a half-read row is freed with the others */
        if (rc)
            return rc;
    }
    return 0;
}

static int table_from_array(struct mlstage_ctx *ctx, json_object *arr, struct metric_table *t)
{
    size_t n = json_object_array_length(arr);
    int rc = rows_alloc(t, n);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        json_object *item = json_object_array_get_idx(arr, i);
        json_object *name =
            json_object_is_type(item, json_type_object) ? member(item, "name") : NULL;
        if (json_object_is_type(item, json_type_object) && !name)
            name = member(item, "metric");
        if (!json_object_is_type(name, json_type_string) || !*json_object_get_string(name))
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.metrics[%zu]: expected an object with a \"name\" "
                                     "(or \"metric\") string",
                                     i);
        rc = row_read(ctx, json_object_get_string(name), item, &t->rows[t->count]);
        t->count++;
        if (rc)
            return rc;
    }
    return 0;
}

/* JSON text, as a stage output carries it; blank text means no metrics. */
static int parse_text(struct mlstage_ctx *ctx, const char *text, size_t len, json_object **out)
{
    *out = NULL;
    size_t start = 0;
    while (start < len && isspace((unsigned char)text[start]))
        start++;
    if (start == len)
        return 0;
    if (len > METRICS_TEXT_MAX)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.metrics: %zu bytes of JSON text, more than the %zu "
                                 "accepted",
                                 len, METRICS_TEXT_MAX);
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return MLSTAGE_ENOMEM;
    json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    while (end < len && isspace((unsigned char)text[end]))
        end++;
    if (!doc || jerr != json_tokener_success || end != len ||
        !(json_object_is_type(doc, json_type_object) ||
          json_object_is_type(doc, json_type_array))) {
        json_object_put(doc);
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.metrics: a string must hold a JSON object of metrics or "
                                 "a JSON list of metric rows%s%s",
                                 jerr != json_tokener_success ? ": " : "",
                                 jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "");
    }
    *out = doc;
    return 0;
}

int metrics_read(struct mlstage_ctx *ctx, json_object *input, struct metric_table *out)
{
    json_object *parsed = NULL;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (!input || json_object_is_type(input, json_type_null))
        return 0;
    if (json_object_is_type(input, json_type_string)) {
        rc = parse_text(ctx, json_object_get_string(input),
                        (size_t)json_object_get_string_len(input), &parsed);
        if (rc || !parsed)
            goto done;
        input = parsed;
    }
    if (json_object_is_type(input, json_type_object))
        rc = table_from_object(ctx, input, out);
    else if (json_object_is_type(input, json_type_array))
        rc = table_from_array(ctx, input, out);
    else
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "inputs.metrics: expected an object, a list or JSON text");
done:
    if (rc)
        metrics_free(out);
    json_object_put(parsed);
    return rc;
}
