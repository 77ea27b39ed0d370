/* ci.h — the CI system adapters: detection and each runner's exact command syntax and escaping. */
#ifndef MLSTAGE_CI_H
#define MLSTAGE_CI_H

#include <stdio.h>

#include <json-c/json.h>

#include "util.h"

enum ci_kind { CI_NONE = 0, CI_AZURE_DEVOPS, CI_GITHUB };

/*
 * The CI system from the environment: TF_BUILD=True → Azure DevOps (the
 * value compared case-insensitively, as the agent sets "True"),
 * GITHUB_ACTIONS=true → GitHub, else none. `getenv_fn` is getenv in
 * production; tests pass their own.
 */
enum ci_kind ci_detect(const char *(*getenv_fn)(const char *name));

/* "azure-devops", "github", "none" and back; -1 for an unknown name. */
const char *ci_name(enum ci_kind kind);
int ci_parse(const char *name);

/*
 * Facts about the CI run as a new object: {"system", "run_url", "run_id",
 * "repository", "ref", "sha", "actor"}; strings or null.
 * Azure DevOps: run_url =
 * $SYSTEM_COLLECTIONURI$SYSTEM_TEAMPROJECT/_build/results?buildId=$BUILD_BUILDID; GitHub:
 * $GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID/attempts/$GITHUB_RUN_ATTEMPT.
 */
json_object *ci_info(enum ci_kind kind, const char *(*getenv_fn)(const char *name));

/* Escaping, returned as new strings the caller frees. */
/* ##vso property value: % → %AZP25, CR → %0D, LF → %0A, ; → %3B, ] → %5D. */
char *ci_vso_escape_property(const char *value);
/* ##vso message: %, CR, LF only. */
char *ci_vso_escape_message(const char *value);
/* GitHub command data: % → %25, CR → %0D, LF → %0A. */
char *ci_gh_escape_data(const char *value);
/* GitHub command property: as data plus : → %3A and , → %2C. */
char *ci_gh_escape_property(const char *value);

/*
 * Publishes an output variable.
 * Azure DevOps: "##vso[task.setvariable variable=KEY;isOutput=true]VALUE" on `out`.
 * GitHub: appended to the file named by $GITHUB_OUTPUT — "KEY=VALUE", or
 * "KEY<<DELIM\nVALUE\nDELIM" with a random delimiter absent from the value
 * when the value has a newline; without $GITHUB_OUTPUT, an error.
 * None: nothing (the caller prints and records outputs).
 */
int ci_output(enum ci_kind kind, FILE *out, const char *(*getenv_fn)(const char *name),
              const char *key, const char *value, struct mls_err *err);

/*
 * An error or warning annotation (level: "error" or "warning").
 * Azure DevOps: "##vso[task.logissue type=error;sourcepath=F;linenumber=L;columnnumber=C;]MSG"
 * GitHub: "::error file=F,line=L,col=C::MSG". None: "F:L:C: error: MSG".
 * file may be NULL and line/col 0; absent properties are left out.
 */
void ci_issue(enum ci_kind kind, FILE *out, const char *level, const char *file, int line, int col,
              const char *msg);

/* Debug line: "##[debug]MSG" / "::debug::MSG" / "MSG". */
void ci_debug(enum ci_kind kind, FILE *out, const char *msg);

/* Group markers: "##[group]T"/"##[endgroup]", "::group::T"/"::endgroup::", "== T ==" / nothing. */
void ci_group_begin(enum ci_kind kind, FILE *out, const char *title);
void ci_group_end(enum ci_kind kind, FILE *out);

/*
 * Publishes a markdown summary file: "##vso[task.uploadsummary]ABSPATH" on
 * Azure DevOps; appended to $GITHUB_STEP_SUMMARY on GitHub (refused beyond
 * the runner's 1 MiB per step, with a note instead); nothing for none.
 */
int ci_summary(enum ci_kind kind, FILE *out, const char *(*getenv_fn)(const char *name),
               const char *md_path, struct mls_err *err);

#endif
