/* context.h — everything a plugin may touch: inputs, secrets, logging, outputs, artefacts, run
 * facts. */
#ifndef MLSTAGE_CONTEXT_H
#define MLSTAGE_CONTEXT_H

#include <stdarg.h>
#include <stdint.h>

#include <json-c/json.h>

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;

/* ---- errors ------------------------------------------------------------ */

/*
 * Records `code` and a message in the context's error slot and returns
 * `code`, so a plugin can write `return mlstage_error_set(ctx, ...)`.
 * The message is masked before anyone sees it. A later call replaces an
 * earlier one.
 */
MLSTAGE_API int mlstage_error_set(struct mlstage_ctx *ctx, int code, const char *fmt, ...)
    MLSTAGE_PRINTF(3, 4);

/* The message in the error slot, or "" if none. Borrowed. */
MLSTAGE_API const char *mlstage_error_message(const struct mlstage_ctx *ctx);

/* ---- inputs ------------------------------------------------------------ */

/*
 * The validated inputs, with schema defaults applied and `--set`
 * overrides merged. Borrowed: valid for the life of the context; do not
 * put it.
 */
MLSTAGE_API json_object *mlstage_inputs(const struct mlstage_ctx *ctx);

/* One input by top-level key, or NULL when absent. Borrowed. */
MLSTAGE_API json_object *mlstage_input(const struct mlstage_ctx *ctx, const char *key);

/* Typed shortcuts: the value, or `dflt` when the key is absent or null. */
MLSTAGE_API const char *mlstage_input_string(const struct mlstage_ctx *ctx, const char *key,
                                             const char *dflt);
MLSTAGE_API int64_t mlstage_input_int(const struct mlstage_ctx *ctx, const char *key, int64_t dflt);
MLSTAGE_API double mlstage_input_double(const struct mlstage_ctx *ctx, const char *key,
                                        double dflt);
MLSTAGE_API int mlstage_input_bool(const struct mlstage_ctx *ctx, const char *key, int dflt);

/*
 * Non-zero in a dry run when input `key` holds a placeholder for a value
 * the dry run does not have: an earlier stage's output it did not produce
 * ("<stages.train.outputs.model_dir>") or a declared secret that is not set
 * ("<secret NAME is not set>"). The core validates such inputs leniently;
 * a plugin should plan with them rather than parse or check them.
 */
MLSTAGE_API int mlstage_input_pending(const struct mlstage_ctx *ctx, const char *key);

/* ---- secrets ----------------------------------------------------------- */

/*
 * The value of a secret the manifest declares under `secrets:`, or NULL
 * when it is not set. Borrowed. Its value is already masked everywhere.
 */
MLSTAGE_API const char *mlstage_secret_get(const struct mlstage_ctx *ctx, const char *name);

/*
 * Masks `value` (and its URL- and JSON-escaped forms) in every log line,
 * output, file and request log from now on — for tokens and keys that a
 * plugin obtains at run time. Values shorter than 4 bytes are ignored.
 */
MLSTAGE_API void mlstage_secret_register(struct mlstage_ctx *ctx, const char *value);

/* ---- logging ----------------------------------------------------------- */

enum mlstage_log_level {
    MLSTAGE_LOG_ERROR = 0,
    MLSTAGE_LOG_WARN = 1,
    MLSTAGE_LOG_INFO = 2,
    MLSTAGE_LOG_DEBUG = 3
};

/*
 * The one logging entry point: masked, filtered by -q/-v, formatted for
 * the CI system (errors and warnings become annotations), written to
 * stderr and to the run's log.
 */
MLSTAGE_API void mlstage_log(struct mlstage_ctx *ctx, enum mlstage_log_level level, const char *fmt,
                             ...) MLSTAGE_PRINTF(3, 4);
MLSTAGE_API void mlstage_logv(struct mlstage_ctx *ctx, enum mlstage_log_level level,
                              const char *fmt, va_list ap) MLSTAGE_PRINTF(3, 0);

#define mlstage_error(ctx, ...) mlstage_log((ctx), MLSTAGE_LOG_ERROR, __VA_ARGS__)
#define mlstage_warn(ctx, ...)  mlstage_log((ctx), MLSTAGE_LOG_WARN, __VA_ARGS__)
#define mlstage_info(ctx, ...)  mlstage_log((ctx), MLSTAGE_LOG_INFO, __VA_ARGS__)
#define mlstage_debug(ctx, ...) mlstage_log((ctx), MLSTAGE_LOG_DEBUG, __VA_ARGS__)

/*
 * An error or warning about a place in a file: an annotation on the line
 * in Azure DevOps and GitHub, "file:line:col: message" elsewhere.
 * `line`/`col` may be 0 when unknown.
 */
MLSTAGE_API void mlstage_log_issue(struct mlstage_ctx *ctx, enum mlstage_log_level level,
                                   const char *file, int line, int col, const char *fmt, ...)
    MLSTAGE_PRINTF(6, 7);

/* A collapsible group in CI logs, indented text elsewhere. Not nested. */
MLSTAGE_API void mlstage_group_begin(struct mlstage_ctx *ctx, const char *title);
MLSTAGE_API void mlstage_group_end(struct mlstage_ctx *ctx);

/*
 * In a dry run, the one way to say what would happen: one plan line,
 * printed to stderr and recorded in the run (and in --output json).
 */
MLSTAGE_API void mlstage_plan(struct mlstage_ctx *ctx, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);

/* ---- outputs, artefacts, summary -------------------------------------- */

/*
 * Publishes a stage output: KEY must match [A-Za-z_][A-Za-z0-9_]* (at most
 * 64 bytes). It becomes an Azure DevOps output variable, a GitHub step
 * output, `${stages.TASK.outputs.KEY}` in pipelines, and an entry of
 * outputs.json and run.json. Setting a key twice keeps the last value.
 */
MLSTAGE_API int mlstage_output_set(struct mlstage_ctx *ctx, const char *key, const char *value);
MLSTAGE_API int mlstage_output_setf(struct mlstage_ctx *ctx, const char *key, const char *fmt, ...)
    MLSTAGE_PRINTF(3, 4);

/*
 * Declares `path` (a file, or a directory taken recursively) as an
 * artefact of the stage. The core hashes every file now (SHA-256,
 * streamed) and writes `<path>.intoto.json` beside it when the stage
 * ends. When `subjects` is not NULL it receives a new reference to the
 * array of in-toto subjects ({"name", "digest": {"sha256"}}, names relative
 * to the artefact's parent folder); the caller puts it.
 */
MLSTAGE_API int mlstage_artifact_add(struct mlstage_ctx *ctx, const char *path,
                                     json_object **subjects);

/*
 * Appends markdown to the stage's summary: the Azure DevOps build summary,
 * the GitHub step summary, and summary.md in the run folder.
 */
MLSTAGE_API int mlstage_summary_append(struct mlstage_ctx *ctx, const char *markdown);

/* ---- facts about this run (all borrowed, valid for the context's life) - */

MLSTAGE_API const char *mlstage_run_id(const struct mlstage_ctx *ctx);
/* .mlstage/runs/<run-id>, absolute. */
MLSTAGE_API const char *mlstage_run_dir(const struct mlstage_ctx *ctx);
/* .mlstage/runs/<run-id>/outputs, absolute, created before run(). */
MLSTAGE_API const char *mlstage_outputs_dir(const struct mlstage_ctx *ctx);
/* The folder holding .mlstage (the repository root or --workspace), absolute. */
MLSTAGE_API const char *mlstage_workspace_dir(const struct mlstage_ctx *ctx);
/* The `task:` name of the manifest. */
MLSTAGE_API const char *mlstage_task_name(const struct mlstage_ctx *ctx);
/* The manifest's path as given on the command line. */
MLSTAGE_API const char *mlstage_manifest_path(const struct mlstage_ctx *ctx);
/* "local" or "azureml". */
MLSTAGE_API const char *mlstage_backend(const struct mlstage_ctx *ctx);
/* Non-zero in a dry run: send no mutating request, write nothing outside the run folder. */
MLSTAGE_API int mlstage_dry_run(const struct mlstage_ctx *ctx);

/*
 * Seconds left before the stage's timeout stops the plugin (0 once it has
 * passed), or -1 when the stage has no timeout. For a plugin that waits on
 * something remote: it can stop waiting in time and say what goes on
 * without it, instead of being killed mid-sentence.
 */
MLSTAGE_API double mlstage_time_left(const struct mlstage_ctx *ctx);

/*
 * Git metadata of the workspace, or NULL outside a repository:
 * {"commit", "branch" (null when detached), "detached", "tags": [],
 *  "dirty", "author": {"name","email","time"}, "committer": {...},
 *  "origin" (credentials stripped, or null), "uri" (in-toto form)}.
 */
MLSTAGE_API json_object *mlstage_git(const struct mlstage_ctx *ctx);

/*
 * The CI run: {"system": "azure-devops"|"github"|"none", "run_url" (or
 * null), "run_id", "repository", "ref", "actor"} — whatever the runner told.
 */
MLSTAGE_API json_object *mlstage_ci(const struct mlstage_ctx *ctx);

/*
 * The provenance tags every artefact carries wherever it lands (registry
 * versions, endpoints, cards, CI variables), as a new object of strings:
 * {"mlstage.commit", "mlstage.branch", "mlstage.dirty", "mlstage.run_id",
 *  "mlstage.ci_run_url", "mlstage.task"}. The caller puts it.
 */
MLSTAGE_API json_object *mlstage_provenance_tags(const struct mlstage_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif
