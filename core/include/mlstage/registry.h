/* registry.h — the local model registry under .mlstage/registry: versions, digests, aliases. */
#ifndef MLSTAGE_REGISTRY_H
#define MLSTAGE_REGISTRY_H

#include <json-c/json.h>

#include <mlstage/export.h>
#include <mlstage/fs.h>

#ifdef __cplusplus
extern "C" {
#endif

struct mlstage_ctx;
struct mlstage_registry;

/*
 * Layout: .mlstage/registry/<model>/<version>/ holds files/ (the model's
 * files) and model.json; .mlstage/registry/<model>/aliases.json maps alias
 * → version. A version appears by one atomic rename of a fully written
 * and fsynced staging folder, under an exclusive lock of the model, so
 * parallel registrations never lose, duplicate or tear a version and a
 * process killed mid-way leaves nothing visible.
 *
 * Model names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. Versions: 1, 2, 3, ...
 * References: "3", "latest", or an alias ("production").
 */

/* Opens the registry of the context's workspace (created on first write). */
MLSTAGE_API int mlstage_registry_open(struct mlstage_ctx *ctx, struct mlstage_registry **out);
MLSTAGE_API void mlstage_registry_close(struct mlstage_registry *reg);

struct mlstage_model_spec {
    const char *name;
    const char *path;        /* a folder (taken recursively) or one file */
    json_object *metrics;    /* object or NULL; borrowed */
    json_object *params;     /* object or NULL; borrowed */
    json_object *tags;       /* object of strings or NULL; provenance tags are added */
    const char *description; /* or NULL */
};

/*
 * Registers a new version: copies and hashes the files in one pass, and
 * writes model.json {"name", "version", "created", "digest" (sha256 over
 * the sorted file list), "files": [{"path","sha256","size"}], "metrics",
 * "params", "tags", "run_id", "description"}. When a version with the same
 * digest exists, nothing is written, *existed is 1 and that version is
 * returned. In a dry run nothing is written and the plan says what would
 * be. *out (may be NULL) gets a new reference to model.json.
 */
MLSTAGE_API int mlstage_registry_register(struct mlstage_registry *reg,
                                          const struct mlstage_model_spec *spec, json_object **out,
                                          int *existed);

/*
 * What a version of the model at `path` holds and its digest, computed
 * exactly as mlstage_registry_register computes them, for registries
 * elsewhere (Azure ML) that must agree with the local one: the files (a
 * folder taken recursively in name order, *.intoto.json statements left
 * out, symbolic links refused; or one file), each hashed in one streamed
 * read, and the digest: SHA-256 over their "sha256  path\n" lines.
 * `path` is resolved against the working directory; nothing is written.
 *
 * *files (may be NULL) receives a new array the caller puts, in that
 * order: {"path" (relative, '/'-separated), "file" (absolute), "sha256",
 * "size"}. MLSTAGE_EINPUT when `path` does not exist, holds no files or a
 * symbolic link; MLSTAGE_EIO when a file cannot be read.
 */
MLSTAGE_API int mlstage_model_digest(struct mlstage_ctx *ctx, const char *path, json_object **files,
                                     char digest[MLSTAGE_SHA256_HEX_LEN + 1]);

/*
 * model.json of NAME at `ref` ("3", "latest" or an alias; NULL means
 * latest), with "aliases": [...] and "path" (the files folder) added.
 * MLSTAGE_ENOTFOUND when the model, version or alias does not exist.
 */
MLSTAGE_API int mlstage_registry_get(struct mlstage_registry *reg, const char *name,
                                     const char *ref, json_object **out);

/* All versions of NAME (or, with NULL, every model: {"name": [versions]}), newest last. */
MLSTAGE_API int mlstage_registry_list(struct mlstage_registry *reg, const char *name,
                                      json_object **out);

/*
 * Points `alias` of NAME at `version` (which must exist); *previous (may be
 * NULL) receives the version it pointed at before, or 0. Atomic and
 * locked. In a dry run, planned only.
 */
MLSTAGE_API int mlstage_registry_set_alias(struct mlstage_registry *reg, const char *name,
                                           const char *alias, int version, int *previous);

#ifdef __cplusplus
}
#endif
#endif
