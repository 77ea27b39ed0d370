/* gitinfo.h — the git facts provenance needs, read with libgit2. */
#ifndef MLSTAGE_GITINFO_H
#define MLSTAGE_GITINFO_H

#include <json-c/json.h>

#include "util.h"

/*
 * Collects metadata of the repository containing `path` (discovered
 * upwards). *out receives a new object:
 *   {"commit": "<40 hex>", "short_commit": "<7>", "branch": "main" | null,
 *    "detached": bool, "tags": ["v1.0", ...] (tags pointing at HEAD),
 *    "dirty": bool (tracked changes in index or worktree, or untracked
 *    files not ignored), "author": {"name","email","time"(RFC 3339)},
 *    "committer": {...}, "message": "<subject line>",
 *    "origin": "https://host/org/repo" | null (remote.origin.url as
 *    configured — not insteadOf-rewritten — with credentials stripped;
 *    scp-like becomes ssh://, a local path file://),
 *    "uri": "git+https://host/org/repo@refs/heads/main" (in-toto form; a
 *    file:// URI of the top level when there is no origin),
 *    "toplevel": "/abs/path"}
 * Outside a repository (or in one without commits, or a bare one without
 * a work tree) *out is NULL and 0 is returned; the caller warns. Errors
 * reading a repository that exists are MLSTAGE_EIO (a repository owned by
 * another user says how to trust it, as git does).
 */
int gitinfo_collect(const char *path, json_object **out, struct mls_err *err);

/*
 * With skip set, libgit2 initialised afterwards in this process loads no CA
 * certificates (it is only used on local repositories); see gitinfo.c.
 */
void gitinfo_skip_ca_bundle(int skip);

/* Top level of the work tree containing `path`, newly allocated, or NULL. */
char *gitinfo_toplevel(const char *path);

/*
 * The folder at or above `path` that holds a .git entry (folder or file),
 * found without libgit2 — cheap enough to call before anything else;
 * newly allocated, or NULL.
 */
char *gitinfo_find_toplevel(const char *path);

/*
 * gitinfo_collect in a background process (forked before the agent has
 * any thread). libgit2's start-up and a status of the work tree cost
 * milliseconds, so the agent starts it first and overlaps it with
 * everything else.
 */
struct gitinfo_job;
struct gitinfo_job *gitinfo_start(const char *path);
/*
 * Waits for the job (the first call only) and returns its result, borrowed
 * and valid until gitinfo_job_free: the metadata, or NULL outside a
 * repository or on error (*err, when given, says which; both are warnings
 * to the caller, never failures).
 */
json_object *gitinfo_wait(struct gitinfo_job *job, struct mls_err *err);
/*
 * A descriptor that polls readable (or hung up) once gitinfo_wait would not
 * block, or -1 when it would not block now.
 */
int gitinfo_poll_fd(const struct gitinfo_job *job);
void gitinfo_job_free(struct gitinfo_job *job);

/*
 * Strips user:password@ (or a lone token@) from a URL and turns scp-like
 * "git@host:org/repo" into "ssh://host/org/repo"; anything else (a local
 * path) is returned as is. Newly allocated; NULL for NULL.
 */
char *gitinfo_strip_credentials(const char *url);

#endif
