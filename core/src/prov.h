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
 * Hashes an artefact: a file, or every regular file under a directory
 * (sorted, symlinks not followed and reported as errors). *subjects is a
 * new array of {"name": "<path relative to the artefact's parent>",
 * "digest": {"sha256": "..."}, "size"?...} — names use '/'.
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
 * Builds the statement (new reference): _type, subject, predicateType,
 * predicate.buildDefinition {buildType, externalParameters {task, manifest,
 * plugin, backend, inputs, vars}, internalParameters {plugin_version,
 * mlstage_version, git}, resolvedDependencies [git commit, manifest]},
 * predicate.runDetails {builder {id, version}, metadata {invocationId,
 * startedOn, finishedOn}}.
 */
json_object *prov_statement_new(json_object *subjects, const struct prov_meta *meta);

/* Builds and writes the statement beside the artefact, atomically and masked. */
int prov_statement_write(const char *artifact_path, json_object *subjects,
                         const struct prov_meta *meta, struct mls_err *err);

/*
 * Verifies `path` — an artefact or its statement — by re-hashing every
 * subject. *report (may be NULL) gets a new object {"statement", "ok",
 * "subjects": [{"name","expected","actual","status":"ok|mismatch|missing"}],
 * "unexpected": [names of files in a directory artefact not in the statement]}.
 * Returns 0 when everything matches, MLSTAGE_EFAIL on any mismatch,
 * MLSTAGE_EINPUT when there is no readable statement.
 */
int prov_verify(const char *path, json_object **report, struct mls_err *err);

#endif
