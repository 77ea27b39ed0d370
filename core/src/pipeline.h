/* pipeline.h — pipeline manifests: stages in order, when: conditions, outputs passed on. */
#ifndef MLSTAGE_PIPELINE_H
#define MLSTAGE_PIPELINE_H

#include <json-c/json.h>

#include "manifest.h"
#include "util.h"

/*
 * A pipeline file:
 *   pipeline: NAME
 *   set: {NAME: value}           # ${var.NAME} for every stage; --set wins
 *   stages:
 *     - manifest: train.yml      # a task manifest, relative to this file
 *       name: train              # optional; default: the task's name
 *       when: <condition>        # optional
 *       set: {...}               # optional, for this stage
 *     - task: notify             # or an inline task manifest
 *       plugin: notify-teams
 *       inputs: {...}
 */
struct pstage {
    char *name;
    char *pointer;              /* "/stages/3" */
    struct task_manifest *task; /* owned */
    char *when;                 /* or NULL */
    char *when_pointer;
    json_object *set; /* object of strings */
};

struct pipeline {
    struct manifest_doc *doc;
    int owns_doc;
    const char *name;
    json_object *set;
    struct pstage *stages;
    size_t n;
};

int pipeline_is_pipeline(const struct manifest_doc *doc);
/* Parses a loaded document (which stays the caller's unless owns_doc is set afterwards). */
int pipeline_from_doc(struct manifest_doc *doc, struct pipeline **out, struct mls_err *err);
int pipeline_load(const char *path, struct pipeline **out, struct mls_err *err);
void pipeline_free(struct pipeline *p);

/*
 * Evaluates an expanded condition: operands are bare words or quoted
 * strings; `a == b`, `a != b` (booleans compare case-insensitively), `&&`,
 * `||`, `!` and parentheses; a lone operand must be a boolean (true/false,
 * yes/no, 1/0, or empty for false). MLSTAGE_EINPUT with the offset otherwise.
 */
int pipeline_eval_condition(const char *expr, int *result, struct mls_err *err);

#endif
