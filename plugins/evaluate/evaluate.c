/* evaluate.c — the evaluate plugin: its descriptor, the candidate's metrics, outputs, the verdict.
 */
#include "evaluate.h"
#include "plugin_backend.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVALUATE_VERSION "0.1.0"

static const char evaluate_schema[] =
    "{"
    "\"type\": \"object\","
    "\"additionalProperties\": false,"
    "\"required\": [\"model\", \"metrics\", \"metric\"],"
    "\"properties\": {"
    "  \"model\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$\","
    "    \"description\": \"the registry model whose champion the candidate is compared with\"},"
    "  \"metrics\": {\"type\": [\"object\", \"string\"],"
    "    \"description\": \"the candidate's metrics: an object of numbers, that object as JSON "
    "text, or the path of a JSON file (relative to the workspace), such as "
    "${stages.train.outputs.metrics_file}\"},"
    "  \"metric\": {\"type\": \"string\", \"minLength\": 1,"
    "    \"description\": \"the metric that decides, such as rmse\"},"
    "  \"direction\": {\"type\": \"string\", \"enum\": [\"minimize\", \"maximize\"],"
    "    \"default\": \"minimize\", \"description\": \"whether lower or higher is better\"},"
    "  \"min_improvement\": {\"type\": \"object\", \"additionalProperties\": false,"
    "    \"properties\": {"
    "      \"absolute\": {\"type\": \"number\", \"minimum\": 0},"
    "      \"relative\": {\"type\": \"number\", \"minimum\": 0}},"
    "    \"oneOf\": [{\"required\": [\"absolute\"]}, {\"required\": [\"relative\"]}],"
    "    \"description\": \"how much better than the champion the candidate must be: "
    "{absolute: 0.5} in the metric's units, or {relative: 0.01} for 1 %; default: better "
    "at all\"},"
    "  \"thresholds\": {\"type\": \"object\","
    "    \"additionalProperties\": {\"type\": \"object\", \"additionalProperties\": false,"
    "      \"properties\": {\"min\": {\"type\": \"number\"}, \"max\": {\"type\": \"number\"}},"
    "      \"anyOf\": [{\"required\": [\"min\"]}, {\"required\": [\"max\"]}]},"
    "    \"description\": \"bounds every candidate must meet to be promoted, per metric: "
    "{r2: {min: 0.3}}\"},"
    "  \"champion_alias\": {\"type\": \"string\", \"pattern\": \"^[A-Za-z][A-Za-z0-9_-]{0,63}$\","
    "    \"default\": \"production\","
    "    \"description\": \"the registry alias that marks the champion\"},"
    "  \"fail_on_reject\": {\"type\": \"boolean\", \"default\": false,"
    "    \"description\": \"exit 1 when the candidate is not promoted (default: exit 0 with "
    "promote=false)\"},"
    "  \"subscription_id\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the Azure subscription of the workspace\"},"
    "  \"resource_group\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the workspace's resource group\"},"
    "  \"workspace\": {\"type\": [\"string\", \"null\"],"
    "    \"description\": \"azureml: the Azure Machine Learning workspace whose registry holds "
    "the champion\"}"
    "}}";

/* Every backend this build has; the manifest's backend picks one. */
static const struct evaluate_backend *const evaluate_backends[] = {
    &evaluate_local_backend,
    &evaluate_azureml_backend,
};

#define N_BACKENDS (sizeof(evaluate_backends) / sizeof(evaluate_backends[0]))

/* The table's names, for plugin_backend_pick, which does not know its struct. */
static const char *backend_name(size_t i)
{
    return evaluate_backends[i]->name;
}

/* ---- the candidate's metrics -------------------------------------------- */

/*
 * The metrics input as an object (a new reference in *out): given inline,
 * as JSON text, or as a file. *missing_file is set when it names a file
 * that does not exist (in a dry run, one an earlier stage has not made).
 */
static int load_candidate(struct mlstage_ctx *ctx, json_object **out, int *missing_file)
{
    json_object *in = mlstage_input(ctx, "metrics"), *doc = NULL;
    *out = NULL;
    *missing_file = 0;
    if (json_object_is_type(in, json_type_object)) {
        *out = json_object_get(in);
        return 0;
    }
    const char *text = json_object_get_string(in);
    while (isspace((unsigned char)*text))
        text++;
    if (*text == '{') {
        json_tokener *tok = json_tokener_new();
        doc = json_tokener_parse_ex(tok, text, (int)strlen(text));
        enum json_tokener_error jerr = json_tokener_get_error(tok);
        json_tokener_free(tok);
        if (!doc || jerr != json_tokener_success) {
            json_object_put(doc);
            return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                     "inputs.metrics: not valid JSON (%s): expected an object "
                                     "of numbers, a JSON file, or JSON text such as "
                                     "{\"rmse\": 53.8}",
                                     json_tokener_error_desc(jerr));
        }
    } else {
        char *path = NULL;
        if (*text != '/' && asprintf(&path, "%s/%s", mlstage_workspace_dir(ctx), text) < 0)
            return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        int rc = mlstage_json_read(path ? path : text, &doc);
        if (rc == MLSTAGE_ENOTFOUND) {
            *missing_file = 1;
            rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                   "inputs.metrics: there is no file %s; give the metrics file "
                                   "of a training run, such as ${stages.train.outputs."
                                   "metrics_file}, or the metrics as JSON",
                                   path ? path : text);
        } else if (rc) {
            rc =
                mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.metrics: %s is not a JSON file (%s)",
                                  path ? path : text, mlstage_strerror(rc));
        }
        free(path);
        if (rc)
            return rc;
    }
    if (!json_object_is_type(doc, json_type_object)) {
        json_object_put(doc);
        return mlstage_error_set(ctx, MLSTAGE_EINPUT,
                                 "inputs.metrics: expected a JSON object of numbers such as "
                                 "{\"rmse\": 53.8}");
    }
    *out = doc;
    return 0;
}

/* ---- outputs -------------------------------------------------------------- */

/* PREFIX + the metric name with anything outside [A-Za-z0-9_] as "_"; 0 when too long. */
static int metric_key(const char *prefix, const char *name, char key[65])
{
    size_t p = strlen(prefix), n = strlen(name);
    if (p + n > 64)
        return 0;
    memcpy(key, prefix, p);
    for (size_t i = 0; i < n; i++)
        key[p + i] = isalnum((unsigned char)name[i]) ? name[i] : '_';
    key[p + n] = '\0';
    return 1;
}

/*
 * PREFIX_<metric> = value, or "none". Measured values are written exactly; a
 * derived one (`derived`: a difference) to 15 digits, so that 72.3 - 54
 * reads 18.3 and not the 18.299999999999997 the subtraction leaves.
 */
static int output_number(struct mlstage_ctx *ctx, const char *prefix, const char *name, int has,
                         double value, int derived)
{
    char key[65], num[32];
    if (!metric_key(prefix, name, key))
        return 0;
    if (has && derived)
        snprintf(num, sizeof(num), "%.15g", value);
    else if (has)
        evaluate_format_number(value, num);
    return mlstage_output_set(ctx, key, has ? num : "none");
}

/*
 * metrics_table: every metric as {"candidate", "champion", "delta"} (null
 * where there is no champion value), with "direction" on the deciding one —
 * the shape a notify-teams card takes as its metrics input.
 */
/* A number that serialises the way people wrote it: 54.01, not 54.009999999999998. */
static json_object *short_double(double v)
{
    char text[32];
    snprintf(text, sizeof(text), "%.15g", v);
    return json_object_new_double_s(v, text);
}

static int publish_table(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                         const struct evaluate_result *res)
{
    json_object *table = json_object_new_object();
    for (size_t i = 0; i < res->n_rows; i++) {
        const struct evaluate_row *r = &res->rows[i];
        json_object *row = json_object_new_object();
        json_object_object_add(row, "candidate", short_double(r->candidate));
        json_object_object_add(row, "champion", r->has_champion ? short_double(r->champion) : NULL);
        json_object_object_add(row, "delta", r->has_champion ? short_double(r->delta) : NULL);
        if (strcmp(r->name, rules->metric) == 0)
            json_object_object_add(
                row, "direction",
                json_object_new_string(rules->maximize ? "maximize" : "minimize"));
        json_object_object_add(table, r->name, row);
    }
    int rc =
        mlstage_output_set(ctx, "metrics_table",
                           json_object_to_json_string_ext(
                               table, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(table);
    return rc;
}

static int publish(struct mlstage_ctx *ctx, const struct evaluate_rules *rules,
                   const struct evaluate_result *res, const char *svg_path)
{
    int rc = 0;
    char version[16];
    snprintf(version, sizeof(version), "%d", res->champion_version);
    rc |= mlstage_output_set(ctx, "promote", res->promote ? "true" : "false");
    rc |= mlstage_output_set(ctx, "reason", res->reason);
    rc |= mlstage_output_set(ctx, "champion_version", res->champion_version ? version : "none");
    rc |= mlstage_output_set(ctx, "metric", rules->metric);
    rc |= mlstage_output_set(ctx, "direction", rules->maximize ? "maximize" : "minimize");
    rc |= mlstage_output_set(ctx, "thresholds_passed", res->thresholds_ok ? "true" : "false");
    rc |= mlstage_output_set(ctx, "chart_file", svg_path ? svg_path : "");
    for (size_t i = 0; i < res->n_rows; i++) {
        const struct evaluate_row *r = &res->rows[i];
        char key[65];
        if (!metric_key("delta_relative_", r->name, key)) {
            mlstage_warn(ctx, "metric \"%s\" has a name too long for outputs; not published",
                         r->name);
            continue;
        }
        rc |= output_number(ctx, "candidate_", r->name, 1, r->candidate, 0);
        rc |= output_number(ctx, "champion_", r->name, r->has_champion, r->champion, 0);
        rc |= output_number(ctx, "delta_", r->name, r->has_champion, r->delta, 1);
        rc |= output_number(ctx, "delta_relative_", r->name, r->has_relative, r->relative, 1);
    }
    rc |= publish_table(ctx, rules, res);
    return rc ? MLSTAGE_EINTERNAL : 0;
}

/* ---- run ------------------------------------------------------------------ */

static void rules_from_inputs(struct mlstage_ctx *ctx, struct evaluate_rules *rules)
{
    json_object *min = mlstage_input(ctx, "min_improvement"), *v = NULL;
    memset(rules, 0, sizeof(*rules));
    rules->model = mlstage_input_string(ctx, "model", "");
    rules->alias = mlstage_input_string(ctx, "champion_alias", "production");
    rules->metric = mlstage_input_string(ctx, "metric", "");
    rules->maximize = strcmp(mlstage_input_string(ctx, "direction", "minimize"), "maximize") == 0;
    if (min && json_object_object_get_ex(min, "absolute", &v)) {
        rules->has_absolute = 1;
        rules->absolute = json_object_get_double(v);
    }
    if (min && json_object_object_get_ex(min, "relative", &v)) {
        rules->has_relative = 1;
        rules->relative = json_object_get_double(v);
    }
    rules->thresholds = mlstage_input(ctx, "thresholds");
}

static int evaluate_run(struct mlstage_ctx *ctx)
{
    const struct evaluate_backend *backend = NULL;
    struct evaluate_rules rules;
    struct evaluate_result res;
    json_object *candidate = NULL, *champion = NULL;
    char *svg_path = NULL;
    size_t which = 0;
    int missing_file = 0, rc;
    memset(&res, 0, sizeof(res));
    if ((rc = plugin_backend_pick(ctx, "evaluate", backend_name, N_BACKENDS, &which)) != 0)
        return rc;
    backend = evaluate_backends[which];
    rules_from_inputs(ctx, &rules);

    if ((rc = backend->champion(ctx, rules.model, rules.alias, &champion)) != 0)
        goto done;
    rc = load_candidate(ctx, &candidate, &missing_file);
    if (rc && missing_file && mlstage_dry_run(ctx)) {
        /* A dry run of a pipeline: training has not run, so its metrics are not there yet. */
        json_object *version = NULL;
        mlstage_plan(ctx, "compare the candidate metrics in %s with %s@%s (%s%s) by %s",
                     mlstage_input_string(ctx, "metrics", ""), rules.model, rules.alias,
                     champion ? "version " : "no champion yet",
                     champion && json_object_object_get_ex(champion, "version", &version)
                         ? json_object_get_string(version)
                         : "",
                     rules.metric);
        rc = 0;
        goto done;
    }
    if (rc)
        goto done;
    if ((rc = evaluate_decide(ctx, &rules, candidate, champion, &res)) != 0)
        goto done;
    mlstage_info(ctx, "promote=%s: %s", res.promote ? "true" : "false", res.reason);
    if ((rc = evaluate_report(ctx, &rules, &res, &svg_path)) != 0 ||
        (rc = publish(ctx, &rules, &res, svg_path)) != 0)
        goto done;
    if (!res.promote && mlstage_input_bool(ctx, "fail_on_reject", 0))
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the candidate was rejected and fail_on_reject is true: %s",
                               res.reason);
done:
    free(svg_path);
    evaluate_result_free(&res);
    json_object_put(candidate);
    json_object_put(champion);
    return rc;
}

static const struct mlstage_plugin evaluate_plugin = {
    .abi_version = MLSTAGE_ABI_VERSION,
    .name = "evaluate",
    .version = EVALUATE_VERSION,
    .summary = "compare the candidate's metrics with the registry's champion and decide promotion",
    .input_schema = evaluate_schema,
    .run = evaluate_run,
};

MLSTAGE_PLUGIN_DEFINE(evaluate_plugin)
