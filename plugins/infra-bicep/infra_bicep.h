/* infra_bicep.h — the infra-bicep stage: the checked deployment every backend works from, the
 * shared offline steps, and the table each backend fills. */
#ifndef MLSTAGE_PLUGIN_INFRA_BICEP_H
#define MLSTAGE_PLUGIN_INFRA_BICEP_H

#include <mlstage/mlstage.h>

/* Microsoft.Resources/deployments, the contract in reference/azure/arm/. */
#define INFRA_DEPLOYMENTS_API "2025-04-01"

enum infra_mode { INFRA_VALIDATE, INFRA_WHAT_IF, INFRA_DEPLOY };

/* The ARM template the stage deploys, after loading (and compiling a .bicep file). */
struct infra_template {
    char *path;          /* the file the manifest names, resolved against the workspace; owned */
    char *compiled_with; /* "bicep" or "az bicep" when `path` was a .bicep file, else NULL; owned */
    char *compiled_path; /* where the compiled JSON was written (in the run's outputs); owned */
    json_object *doc;    /* the ARM template JSON; owned */
    char hash[MLSTAGE_SHA256_HEX_LEN + 1]; /* SHA-256 of the template as sent (compact JSON) */
};

/* Everything a backend needs, checked offline before any backend runs. */
struct infra_job {
    struct infra_template tmpl;
    char *parameters_path; /* the parameter file, resolved, or NULL; owned */
    /*
     * The request's `parameters`: {"name": {"value": ...} | {"reference": ...}}, keyed by
     * the template's own spelling of each name; owned.
     */
    json_object *parameters;
    enum infra_mode mode;
    const char *mode_name;       /* "validate", "what-if" or "deploy"; static */
    const char *deployment_mode; /* "Incremental" or "Complete"; borrowed */
    const char *subscription_id; /* borrowed, NULL when not given */
    const char *resource_group;  /* borrowed, NULL when not given */
    char *deployment_name;       /* given or derived from the task and commit; owned */
    json_object *tags;           /* provenance tags and the manifest's tags; owned */
    double wait_timeout_s;       /* deadline for a long-running operation */
};

/*
 * One backend: a small table the plugin's run() picks by the context's backend name. Each
 * function returns 0 or a negative MLSTAGE_E* code with the detail in the context's error
 * slot, and honours the dry-run flag.
 */
struct infra_backend {
    const char *name;
    /* Refuses (MLSTAGE_EINPUT) inputs this backend needs but the manifest lacks. */
    int (*check)(struct mlstage_ctx *ctx, const struct infra_job *job);
    /* Carries out job->mode and publishes the stage's outputs. */
    int (*run)(struct mlstage_ctx *ctx, const struct infra_job *job);
};

extern const struct infra_backend infra_local_backend;
extern const struct infra_backend infra_azureml_backend;

/* ---- infra_bicep.c: what the other files share ---------------------------- */

/*
 * Problems found offline: each reported at once as an error on its file (a CI annotation
 * on the line when known), counted, and named in the one error the stage ends with.
 */
struct infra_problems {
    struct mlstage_ctx *ctx;
    size_t count;
    char *subjects; /* "baseName, environment": what the problems were about; owned */
};

void infra_problem(struct infra_problems *pr, const char *file, int line, int col,
                   const char *subject, const char *fmt, ...) MLSTAGE_PRINTF(6, 7);

/* Non-zero when a problem about `subject` was reported already. */
int infra_problems_about(const struct infra_problems *pr, const char *subject);

/*
 * 0 when nothing was reported; otherwise MLSTAGE_EINPUT with "N problems with the WHAT
 * of FILE (listed above): subjects". Frees what `pr` holds either way.
 */
int infra_problems_finish(struct infra_problems *pr, const char *what, const char *file);

/*
 * The 1-based line of the member `"key":` in JSON `text` (after the member `"within":`
 * when given), or 0 when `text` is NULL or it is not found; *col (may be NULL) its column.
 */
int infra_find_key(const char *text, const char *within, const char *key, int *col);

/* A manifest path made absolute: relative ones are relative to the workspace. Caller frees. */
char *infra_resolve(struct mlstage_ctx *ctx, const char *path);

/*
 * Reads and parses the JSON file `path` (named `shown` in messages): *text its bytes (caller
 * frees), *doc a new reference. A syntax error is reported with its line and column;
 * MLSTAGE_EINPUT for a missing, unreadable or malformed file.
 */
int infra_json_parse(struct mlstage_ctx *ctx, const char *shown, const char *path, char **text,
                     json_object **doc);

/* ---- infra_bicep_template.c: loading, compiling, describing a template ---- */

/*
 * Loads `path`: an ARM template (.json) as is, or a .bicep file compiled with `bicep build
 * --stdout` or `az bicep build --stdout --file`, whichever is on PATH (the compiled JSON is
 * kept as <outputs>/<name>.json). Checks the template's shape and its parameter
 * declarations. MLSTAGE_EINPUT when the file is missing, not a template, or a .bicep file
 * with no compiler (naming the prebuilt .json beside it).
 */
int infra_template_load(struct mlstage_ctx *ctx, const char *path, struct infra_template *out);
void infra_template_free(struct infra_template *tmpl);

/* The declaration of parameter `name` (matched as ARM does, ignoring case), or NULL. Borrowed. */
json_object *infra_template_param(const struct infra_template *tmpl, const char *name,
                                  const char **declared_name);

/* Non-zero for securestring and secureObject, in any case. */
int infra_type_is_secure(const char *arm_type);

/* Non-zero for one of ARM's seven parameter types, in any case. */
int infra_type_known(const char *arm_type);

/*
 * The resources the template declares, nested child resources included, as a new array of
 * {"symbol"?, "type", "name", "apiVersion", "condition"?, "copy"?, "existing"?}: names and
 * conditions are the template's expressions, unevaluated.
 */
json_object *infra_template_resources(const struct infra_template *tmpl);

/* A key of `obj` matched ignoring case, as ARM reads template members; borrowed or NULL. */
json_object *infra_get_ci(json_object *obj, const char *key);

/* Non-zero when `obj` has the key (ignoring case), even with a null value. */
int infra_has_ci(json_object *obj, const char *key);

/* ---- infra_bicep_params.c: parameter values and their offline checks ---- */

/*
 * Builds job->parameters from the parameter file (`params_path`, may be NULL) and the
 * manifest's inline `values` (may be NULL; they win), and checks them against the template:
 * missing, unknown, wrong type, outside allowedValues, minLength/maxLength,
 * minValue/maxValue. Every problem is reported as an error on its file (and line, when it
 * can be found); then MLSTAGE_EINPUT. securestring and secureObject values are registered
 * as secrets before anything is printed.
 */
int infra_params_bind(struct mlstage_ctx *ctx, struct infra_job *job, const char *params_path,
                      json_object *values);

/* ---- infra_bicep_request.c: the deployment request both backends speak ---- */

/* A deployment name derived from the task and the short commit, valid for ARM; caller frees. */
char *infra_default_deployment_name(struct mlstage_ctx *ctx);

/*
 * The path of the request under the Resource Manager endpoint, with placeholders for a
 * subscription or resource group not given; for the mode's operation when `op` is set
 * (".../validate", ".../whatIf"). Caller frees.
 */
char *infra_request_path(const struct infra_job *job, int op);

/* "PUT" for deploy, "POST" for validate and what-if. */
const char *infra_request_method(const struct infra_job *job);

/*
 * The request body for job->mode: Deployment (validate, deploy: with tags) or
 * DeploymentWhatIf. With `redact`, the values of secure parameters are replaced by "***"
 * whatever their length. New reference.
 */
json_object *infra_request_body(const struct infra_job *job, int redact);

/*
 * Prints the request at `level` (method, URL on the core's Resource Manager endpoint,
 * headers, body with secure values redacted) and writes it to
 * <outputs>/deployment-request.json, declared as an artefact and published as request_file.
 */
int infra_request_print(struct mlstage_ctx *ctx, const struct infra_job *job,
                        enum mlstage_log_level level);

/*
 * Prints the resources the template declares (type, apiVersion, name expression, condition)
 * and publishes what every backend reports: deployment_name, mode, template_hash,
 * resources, parameters (and template_file for a compiled Bicep file, an artefact).
 */
int infra_report_template(struct mlstage_ctx *ctx, const struct infra_job *job);

/* Logs a multi-line text one line at a time, so groups indent every line. */
void infra_log_lines(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *text);

#endif
