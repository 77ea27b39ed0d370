/* train_collect.c — what every train backend ends with: check, stamp and publish what it made. */
#include "markdown.h"
#include "train.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define JSON_COMPACT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) ||
           (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)));
}

static const char *type_name(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "not a finite number";
    case json_type_string: return "a string";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    default: return "not a number";
    }
}

int train_read_metrics(struct mlstage_ctx *ctx, const char *path, json_object **out)
{
    json_object *doc = NULL;
    *out = NULL;
    int rc = mlstage_json_read(path, &doc);
    if (rc == MLSTAGE_ENOTFOUND)
        return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                 "the training command succeeded but wrote no metrics file %s: "
                                 "write a JSON object of numbers there, or set metrics_file",
                                 path);
    if (rc == MLSTAGE_EINPUT)
        return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                 "the metrics file %s is not valid JSON: expected a JSON object "
                                 "of numbers such as {\"rmse\": 53.8}",
                                 path);
    if (rc)
        return mlstage_error_set(ctx, MLSTAGE_EFAIL, "cannot read the metrics file %s", path);
    if (!json_object_is_type(doc, json_type_object)) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the metrics file %s is not a JSON object of numbers: it holds %s",
                               path, type_name(doc));
        goto done;
    }
    if (json_object_object_length(doc) == 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                               "the metrics file %s is an empty object: expected a JSON object "
                               "of numbers such as {\"rmse\": 53.8}",
                               path);
        goto done;
    }
    json_object_object_foreach(doc, key, val)
    {
        if (!is_number(val)) {
            rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                   "the metrics file %s is not a JSON object of numbers: "
                                   "\"%s\" is %s",
                                   path, key, type_name(val));
            goto done;
        }
    }
    *out = doc;
    doc = NULL;
done:
    json_object_put(doc);
    return rc;
}

/* "metric_" + the name with anything outside [A-Za-z0-9_] as "_"; 0 when it does not fit. */
static int metric_key(const char *name, char key[65])
{
    size_t n = strlen(name);
    if (n + strlen("metric_") > 64)
        return 0;
    strcpy(key, "metric_");
    for (size_t i = 0; i < n; i++)
        key[7 + i] = isalnum((unsigned char)name[i]) ? name[i] : '_';
    key[7 + n] = '\0';
    return 1;
}

int train_publish_metrics(struct mlstage_ctx *ctx, json_object *metrics)
{
    int rc =
        mlstage_output_set(ctx, "metrics", json_object_to_json_string_ext(metrics, JSON_COMPACT));
    json_object *seen = json_object_new_object();
    json_object_object_foreach(metrics, name, val)
    {
        char key[65];
        if (!metric_key(name, key)) {
            mlstage_warn(ctx, "metric \"%s\" has a name too long for an output; not published",
                         name);
            continue;
        }
        if (json_object_object_get_ex(seen, key, NULL))
            mlstage_warn(ctx, "metrics \"%s\" and another one both publish as %s; the last wins",
                         name, key);
        json_object_object_add(seen, key, NULL);
        /* As the file wrote it: json-c keeps a parsed number's own text. */
        rc |= mlstage_output_set(ctx, key, json_object_to_json_string_ext(val, JSON_COMPACT));
    }
    json_object_put(seen);
    return rc ? MLSTAGE_EINTERNAL : 0;
}

static int publish(struct mlstage_ctx *ctx, const struct train_job *job, json_object *metrics)
{
    int rc = 0;
    rc |= mlstage_output_set(ctx, "run_id", mlstage_run_id(ctx));
    rc |= mlstage_output_set(ctx, "model_dir", job->model_dir);
    rc |= mlstage_output_set(ctx, "metrics_file", job->metrics_file);
    rc |= mlstage_output_set(ctx, "params",
                             job->params ? json_object_to_json_string_ext(job->params, JSON_COMPACT)
                                         : "{}");
    rc |= mlstage_output_set(ctx, "log_file", job->log_path);
    rc |= train_publish_metrics(ctx, metrics);
    return rc ? MLSTAGE_EINTERNAL : 0;
}

/* Inline code that survives backticks in the text. */
void train_md_code(FILE *f, const char *text)
{
    const char *fence = strchr(text, '`') ? "`` " : "`";
    fputs(fence, f);
    for (const char *p = text; *p; p++)
        fputc(*p == '\n' ? ' ' : *p, f);
    fputs(strchr(text, '`') ? " ``" : "`", f);
}

static int summarize(struct mlstage_ctx *ctx, const struct train_job *job,
                     const struct train_outcome *outcome, json_object *metrics, size_t n_files)
{
    char *md = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&md, &size);
    if (!f)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    char *cmd = job->command ? strdup(job->command) : train_argv_text(job->argv);
    fprintf(f, "### Training (%s)\n\n", mlstage_task_name(ctx));
    train_md_code(f, cmd ? cmd : "");
    fprintf(f, " exited %d after %.1f s (backend %s, run %s).\n\n", outcome->exit_code,
            outcome->wall_s, mlstage_backend(ctx), mlstage_run_id(ctx));
    free(cmd);
    fputs("| metric | value |\n|---|---:|\n", f);
    json_object_object_foreach(metrics, name, val)
    {
        fputs("| ", f);
        md_table_cell(f, name);
        fprintf(f, " | %.6g |\n", json_object_get_double(val));
    }
    if (job->params && json_object_object_length(job->params) > 0) {
        fputs("\n| parameter | value |\n|---|---|\n", f);
        json_object_object_foreach(job->params, pname, pval)
        {
            fputs("| ", f);
            md_table_cell(f, pname);
            fputs(" | ", f);
            md_table_cell(f, json_object_get_string(pval));
            fputs(" |\n", f);
        }
    }
    fprintf(f, "\nModel: ");
    train_md_code(f, job->model_dir);
    fprintf(f, " (%zu file%s), metrics: ", n_files, n_files == 1 ? "" : "s");
    train_md_code(f, job->metrics_file);
    fputs(", log: ", f);
    train_md_code(f, job->log_path);
    fputs(" — each with a provenance statement beside it.\n", f);
    if (fclose(f) != 0) {
        free(md);
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    }
    int rc = mlstage_summary_append(ctx, md);
    free(md);
    return rc;
}

int train_collect(struct mlstage_ctx *ctx, const struct train_job *job,
                  const struct train_outcome *outcome)
{
    json_object *metrics = NULL, *subjects = NULL;
    struct stat st;
    int rc;
    if (stat(job->model_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                 "the training command succeeded but left no model folder at "
                                 "%s: write the model there, or set model_dir to where it goes",
                                 job->model_dir);
    if ((rc = train_read_metrics(ctx, job->metrics_file, &metrics)) != 0)
        return rc;
    for (const char *const *a = job->artifacts; *a; a++) {
        if (stat(*a, &st) != 0) {
            rc = mlstage_error_set(ctx, MLSTAGE_EFAIL,
                                   "the artefact %s (inputs.artifacts) was not written by the "
                                   "training command",
                                   *a);
            goto done;
        }
    }
    if ((rc = mlstage_artifact_add(ctx, job->model_dir, &subjects)) != 0 ||
        (rc = mlstage_artifact_add(ctx, job->metrics_file, NULL)) != 0)
        goto done;
    for (const char *const *a = job->artifacts; *a; a++)
        if ((rc = mlstage_artifact_add(ctx, *a, NULL)) != 0)
            goto done;
    if ((rc = publish(ctx, job, metrics)) != 0)
        goto done;
    rc = summarize(ctx, job, outcome, metrics, json_object_array_length(subjects));
done:
    json_object_put(subjects);
    json_object_put(metrics);
    return rc;
}
