/* expand.h — ${...} references in manifest values: env, var, secret, run, git, stages. */
#ifndef MLSTAGE_EXPAND_H
#define MLSTAGE_EXPAND_H

#include <json-c/json.h>

#include "manifest.h"
#include "util.h"

/*
 * What references resolve against. Syntax:
 *   ${env.NAME}  ${env.NAME:-default}   the environment
 *   ${var.NAME}  ${var.NAME:-default}   --set NAME=VALUE (and pipeline `set:`)
 *   ${secret.NAME}                      a secret declared under secrets: and set
 *   ${run.id}  ${run.dir}  ${run.outputs_dir}
 *   ${git.commit}  ${git.short_commit}  ${git.branch}
 *   ${stages.NAME.outputs.KEY}          an earlier stage's output (pipelines)
 *   $${                                 a literal "${"
 * A default may itself be empty (${var.x:-}) and contains no references;
 * defaults are allowed for env. and var. only. As in the shell, ":-" also
 * replaces a value that is set but empty. "$$" and "$x" stay as they are
 * (shell text passes through). Anything else — an unknown namespace, an
 * unset variable without a default, an undeclared or unset secret, a
 * stage that did not succeed, an unclosed "${", an empty name, spaces
 * inside the braces — is an error, never an empty string.
 */
struct expand_env {
    const char *(*getenv_fn)(const char *name);
    json_object *vars;     /* object of strings, or NULL */
    json_object *secrets;  /* declared name → value (absent when unset), or NULL */
    json_object *declared; /* array of declared secret names, or NULL */
    const char *run_id;
    const char *run_dir;
    const char *outputs_dir;
    json_object *git; /* gitinfo object, or NULL outside a repository */
    /*
     * Pipelines: {"NAME": {"status": "succeeded"|"failed"|"skipped"|"pending",
     * "outputs": {...}}} for every stage of the pipeline; NULL outside one.
     */
    json_object *stages;
    /* Dry runs: outputs of stages not run yet expand to "<stages.N.outputs.K>". */
    int placeholders;
};

/*
 * Expands one string. On error returns MLSTAGE_EINPUT with a message
 * (without location, starting with the reference as written) in err and
 * the byte offset of the bad reference's "${" in *err_offset (may be
 * NULL). *out is newly allocated (free), NULL on error. Non-string values
 * (numbers, booleans, stage outputs that are objects) expand to their
 * compact JSON text.
 */
int expand_string(const struct expand_env *env, const char *in, char **out, size_t *err_offset,
                  struct mls_err *err);

/*
 * Returns in *out a deep copy of `node` (found at `pointer` in `doc`) with
 * every string value expanded (keys are not). A plain scalar whose text
 * held a reference is re-typed from its expanded text the way YAML would
 * type it ("${var.alpha:-0.5}" → 0.5, "${var.x:-}" → null); quoted and
 * block scalars stay strings. Errors carry "file:line:col" of the
 * reference's "${" — exact for plain, quoted and block scalars, single- or
 * multi-line — falling back to the scalar's own mark where the source
 * cannot be matched ("\x24{" escapes) and to the alias's mark inside
 * aliased values. `doc` may be NULL (no locations). *out is a new
 * reference (NULL for a JSON null).
 */
int expand_tree(const struct expand_env *env, const struct manifest_doc *doc, const char *pointer,
                json_object *node, json_object **out, struct mls_err *err);

/*
 * Types a plain scalar's text as YAML 1.2 core schema would; new reference,
 * NULL for null. Integers outside int64 stay text (the loader reports
 * them; here a lossy number would be worse than a type error later).
 */
json_object *expand_type_plain(const char *text);

#endif
