/* manifest.h — YAML task and pipeline manifests, loaded into json-c with source marks. */
#ifndef MLSTAGE_MANIFEST_H
#define MLSTAGE_MANIFEST_H

#include <stddef.h>

#include <json-c/json.h>

#include "util.h"

/* Limits against hostile files; each violation is a clear MLSTAGE_EINPUT. */
#define MANIFEST_MAX_FILE   (4u << 20) /* 4 MiB */
#define MANIFEST_MAX_SCALAR (1u << 20) /* 1 MiB */
#define MANIFEST_MAX_DEPTH  64
#define MANIFEST_MAX_NODES  100000u /* after alias expansion; ~2 KiB of memory each */

/*
 * A loaded YAML document. Scalars are typed by the YAML 1.2 core schema
 * when plain (null, true/false, integers, floats) and are strings when
 * quoted or block. Aliases are expanded (bounded by MANIFEST_MAX_NODES);
 * merge keys (<<) are not supported and are an error.
 */
struct manifest_doc {
    char *path;        /* as given (used in messages) */
    json_object *root; /* the document; owned */
    /*
     * Source marks: JSON pointer → [line, column, plain] (1-based; plain is
     * 1 for a plain scalar). Keys have an entry of their own at
     * pointer + "#key". A scalar whose text holds "${" has a fourth
     * element: [[line, column], ...] of each "${" in its source, in order,
     * so expansion errors point at the reference itself (absent when the
     * source cannot be matched, e.g. "\x24{" escapes). Nodes copied from
     * an alias have no marks of their own below the alias. Owned.
     */
    json_object *marks;
};

/*
 * Loads and parses a file. The top level must be a mapping. Errors:
 * "path:line:col: message" in err, MLSTAGE_EINPUT ("path: message" when
 * the file cannot be opened). *out is owned by the caller
 * (manifest_doc_free). The tree may be read freely; aliased nodes are
 * copies, never shared.
 */
int manifest_load(const char *path, struct manifest_doc **out, struct mls_err *err);
/* The same from memory; `name` is used in messages. */
int manifest_load_buf(const char *name, const char *data, size_t len, struct manifest_doc **out,
                      struct mls_err *err);
void manifest_doc_free(struct manifest_doc *doc);

/*
 * The mark of the value at `pointer` (or of the nearest ancestor that has
 * one). Returns 0 and fills line/col/plain (any may be NULL), or -1.
 */
int manifest_mark(const struct manifest_doc *doc, const char *pointer, int *line, int *col,
                  int *plain);

/* `parent` + "/" + `token` escaped as an RFC 6901 reference token; newly allocated. */
char *manifest_ptr_child(const char *parent, const char *token);

/* Formats "path:line:col: " for pointer into err with the message (MLSTAGE_EINPUT). */
int manifest_error_at(const struct manifest_doc *doc, const char *pointer, struct mls_err *err,
                      const char *fmt, ...) MLSTAGE_PRINTF(4, 5);

/* A task manifest: see DESIGN.md "Task manifest". */
struct task_manifest {
    struct manifest_doc *doc; /* owned when loaded from its own file, else borrowed */
    int owns_doc;
    char *pointer;    /* where the task sits in doc: "" or "/stages/3" */
    const char *task; /* borrowed from doc */
    const char *plugin;
    const char *backend;     /* "local" or "azureml"; "local" when absent */
    const char *description; /* or NULL */
    double timeout_s;        /* 0: none */
    double kill_grace_s;     /* 0: default */
    json_object *inputs;     /* borrowed object, never NULL (empty when absent) */
    json_object *secrets;    /* borrowed array of names, never NULL */
};

/*
 * Checks the task at `pointer` of `doc`: known keys only (task, plugin,
 * backend, timeout, kill_grace, description, inputs, secrets), required
 * task and plugin, types, secret names [A-Za-z_][A-Za-z0-9_]*, durations.
 * `extra_keys` (NULL-terminated, may be NULL) are further keys the caller
 * (the pipeline) allows. Task names are [A-Za-z0-9_][A-Za-z0-9_-]* (they
 * appear in ${stages.NAME.outputs.KEY}), plugin names [a-z0-9][a-z0-9-]*.
 * On success *out borrows from doc (task, plugin, ..., inputs, secrets)
 * and owns only `pointer` (manifest_task_release). An absent or null
 * inputs/secrets is replaced in doc by an empty object/array; other null
 * optional keys count as absent. On error *out is zeroed.
 */
int manifest_task_parse(struct manifest_doc *doc, const char *pointer,
                        const char *const *extra_keys, struct task_manifest *out,
                        struct mls_err *err);
/* Loads a file and parses it as a task manifest; *out owns its doc (manifest_task_free). */
int manifest_task_load(const char *path, struct task_manifest **out, struct mls_err *err);
/* Frees what a task owns (pointer, and doc when owns_doc), not the struct; safe on NULL. */
void manifest_task_release(struct task_manifest *task);
/* manifest_task_release, then frees the struct itself (from manifest_task_load); safe on NULL. */
void manifest_task_free(struct task_manifest *task);

#endif
