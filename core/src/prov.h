/* prov.h — artefact digests and in-toto Statement v1 / SLSA Provenance v1 files, and their
 * verification. */
#ifndef MLSTAGE_PROV_H
#define MLSTAGE_PROV_H

#include <json-c/json.h>

#include "util.h"

#define PROV_SUFFIX         ".intoto.json"
#define PROV_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define PROV_PREDICATE_TYPE "https://slsa.dev/provenance/v1"
#define PROV_BUILD_TYPE     "https://github.com/mlstage/mlstage/buildtypes/stage/v1"

/*
 * Hashes an artefact: a file, or every regular file under a directory.
 * *subjects is a new array of {"name": "<path relative to the artefact's
 * parent, '/'-separated>", "digest": {"sha256": "..."}, "annotations":
 * {"size": <bytes>}}, sorted by name in C byte order. Symlinks (the
 * artefact itself or inside it) and special files are MLSTAGE_EINPUT; so
 * is a folder without files. "X.intoto.json" beside an "X" inside a folder
 * is a nested artefact's statement and is left out. A missing artefact is
 * MLSTAGE_ENOTFOUND.
 */
int prov_hash_artifact(const char *path, json_object **subjects, struct mls_err *err);

/* What a statement records besides its subjects. */
struct prov_meta {
    const char *task;
    const char *manifest_path;
    const char *manifest_sha256; /* of the manifest file, or NULL */
    const char *plugin;
    const char *plugin_version;
    const char *backend;
    json_object *inputs; /* as given to the plugin; masked on write */
    json_object *vars;   /* --set values, or NULL */
    json_object *git;    /* gitinfo, or NULL → "git": null */
    json_object *ci;     /* ci_info */
    const char *run_id;
    const char *status; /* "succeeded", "failed", ... */
    double started;     /* epoch seconds */
    double finished;
};

/* "<artefact>.intoto.json" for an artefact path (trailing '/' ignored); newly allocated. */
char *prov_statement_path(const char *artifact_path);

/*
 * Builds the statement (new reference; `subjects` is borrowed): _type,
 * subject, predicateType, predicate.buildDefinition {buildType,
 * externalParameters {task, manifest, plugin, backend, inputs, vars},
 * internalParameters {plugin_version, mlstage_version, run_id, git (the
 * gitinfo object, or null outside a repository), ci}, resolvedDependencies
 * [{"uri": git uri, "digest": {"gitCommit"}, "annotations": {branch,
 * detached, tags, dirty, author, committer, message, origin}} when in a
 * repository, {"uri": "file:<manifest>", "digest": {"sha256"}}]},
 * predicate.runDetails {builder {id, version {mlstage}}, metadata
 * {invocationId, startedOn, finishedOn, mlstage_status}}.
 *
 * The manifest is named relative to the repository's top level when it
 * lies inside it, else by its absolute path. builder.id names the platform,
 * not the run: https://github.com/mlstage/mlstage/builders/<local |
 * github-actions | azure-devops>@v<version>. invocationId is the CI run URL
 * + "#" + run id, or "mlstage:run:<run id>" outside CI.
 */
json_object *prov_statement_new(json_object *subjects, const struct prov_meta *meta);

/* Builds and writes the statement beside the artefact, atomically and masked. */
int prov_statement_write(const char *artifact_path, json_object *subjects,
                         const struct prov_meta *meta, struct mls_err *err);

/*
 * Verifies `path` — an artefact or its statement — by re-hashing every
 * subject relative to the statement's folder. *report (may be NULL) gets a
 * new object {"statement", "artifact", "ok", "subjects": [{"name",
 * "expected", "actual" (or null), "status": "ok|mismatch|missing|unreadable",
 * "error"?}], "unexpected": [names of files in a directory artefact not in
 * the statement]}. A file replaced by a symlink is a mismatch. Returns 0
 * when everything matches, MLSTAGE_EFAIL on any mismatch, missing or
 * unexpected file (err names the first), MLSTAGE_EINPUT when there is no
 * readable statement of our type (wrong _type or predicateType, no
 * subjects, a subject without sha256 or with a name leaving its folder);
 * *report is set only for 0 and MLSTAGE_EFAIL.
 */
int prov_verify(const char *path, json_object **report, struct mls_err *err);

#endif
