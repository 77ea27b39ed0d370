/* example.h — the example project in a temp git workspace, trained models, and child processes. */
#ifndef MLSTAGE_TEST_EXAMPLE_H
#define MLSTAGE_TEST_EXAMPLE_H

#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "testutil.h"

/* The interpreter the example needs: Debian's, which has scikit-learn. */
#define EX_PYTHON "/usr/bin/python3"

/* Non-zero when EX_PYTHON can import sklearn; otherwise says why on stderr, once. */
int ex_have_sklearn(void);

/*
 * A fresh temp folder that is a git repository with one commit holding
 * the source tree's examples/ and tasks/ — what a user's clone looks
 * like. The caller frees the path (and tu_rm_rf's it).
 */
char *ex_workspace(void);

/*
 * Runs the real examples/diabetes/train.py once per alpha (in one Python
 * process, so scikit-learn is imported once), writing <out>/<i>/model,
 * metrics.json and params.json. Returns 0 when all succeeded.
 */
int ex_train(const char *out, const double *alphas, size_t n);

/* `git rev-parse REV` in `dir`; the caller frees. */
char *ex_git(const char *dir, const char *rev);

/* Runs the built mlstage in `ws` (--workspace ws, no CI, NO_COLOR), with extra env entries. */
void ex_mlstage(const char *ws, const char *const *args, const char *const *env,
                struct tu_cmd *res);

/* Parses text as JSON (NULL when it is not); a new reference. */
json_object *ex_json(const char *text);
/* A member's string value (numbers as text), or NULL. Borrowed. */
const char *ex_str(json_object *o, const char *key);
/* outputs.KEY of an `--output json` document, or NULL. */
const char *ex_output(json_object *doc, const char *key);

/*
 * Makes this process the reaper of orphaned descendants, so servers that
 * outlive an mlstage run become its children: they can be counted, and
 * reaped once stopped.
 */
void ex_become_subreaper(void);
/* Reaps every exited child without blocking. */
void ex_reap(void);
/* The live (not zombie) children of this process, at most `max`; how many there are. */
size_t ex_children(pid_t *out, size_t max);
/* SIGTERM to the process group, SIGKILL after 5 s, reaped; 0 when it is gone. */
int ex_stop_group(pid_t pgid);
/* Non-zero while pid names a live process that is not a zombie. */
int ex_alive(pid_t pid);

/* An HTTP request to a loopback URL through the core's client; body may be NULL. */
long ex_http(const char *method, const char *url, const char *body, char **answer);

#endif
