/* pipeline.c — `mlstage pipeline run`: stages in order, when: conditions, outputs passed on. */
#include "pipeline.h"

#include <ctype.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mlstage/error.h>
#include <mlstage/fs.h>
#include <mlstage/version.h>

#include "ci.h"
#include "cli_internal.h"
#include "expand.h"
#include "host.h"
#include "log.h"
#include "mask.h"
#include "stage.h"

static const char *const pipeline_keys[] = {"pipeline", "description", "set", "stages", NULL};
static const char *const stage_keys[] = {"name", "manifest", "when", "set", NULL};

/* ---- loading ----------------------------------------------------------- */

static int valid_stage_name(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int key_allowed(const char *const *keys, const char *key)
{
    for (const char *const *k = keys; *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

/* A `set:` mapping of scalars: returned as an object of strings. */
static int parse_set(struct manifest_doc *doc, const char *pointer, json_object *set,
                     json_object **out, struct mls_err *err)
{
    *out = json_object_new_object();
    if (!set)
        return 0;
    if (!json_object_is_type(set, json_type_object))
        return manifest_error_at(doc, pointer, err,
                                 "set: expected a mapping of NAME: value, got %s",
                                 json_type_to_name(json_object_get_type(set)));
    json_object_object_foreach(set, key, val)
    {
        char ptr[1200];
        snprintf(ptr, sizeof(ptr), "%s/%s", pointer, key);
        json_type t = json_object_get_type(val);
        if (t == json_type_object || t == json_type_array)
            return manifest_error_at(doc, ptr, err, "set.%s: expected a scalar value", key);
        json_object_object_add(*out, key,
                               json_object_new_string(val ? json_object_get_string(val) : ""));
    }
    return 0;
}

static char *dir_of(const char *path)
{
    char *copy = xstrdup(path);
    char *slash = strrchr(copy, '/');
    if (!slash) {
        free(copy);
        return xstrdup(".");
    }
    if (slash == copy)
        slash[1] = '\0';
    else
        *slash = '\0';
    return copy;
}

int pipeline_is_pipeline(const struct manifest_doc *doc)
{
    return doc && json_object_is_type(doc->root, json_type_object) &&
           json_object_object_get_ex(doc->root, "stages", NULL);
}

int pipeline_from_doc(struct manifest_doc *doc, struct pipeline **out, struct mls_err *err)
{
    struct pipeline *p = xcalloc(1, sizeof(*p));
    int rc = 0;
    *out = NULL;
    p->doc = doc;
    json_object *root = doc->root, *v = NULL;
    {
        json_object_object_foreach(root, key, val)
        {
            (void)val;
            if (!key_allowed(pipeline_keys, key)) {
                char ptr[600];
                snprintf(ptr, sizeof(ptr), "/%s#key", key);
                rc = manifest_error_at(doc, ptr, err,
                                       "unknown key \"%s\" in a pipeline: expected pipeline, "
                                       "description, set or stages",
                                       key);
                goto done;
            }
        }
    }
    if (json_object_object_get_ex(root, "pipeline", &v)) {
        if (!json_object_is_type(v, json_type_string)) {
            rc = manifest_error_at(doc, "/pipeline", err, "pipeline: expected a name (string)");
            goto done;
        }
        p->name = json_object_get_string(v);
    } else {
        p->name = "pipeline";
    }
    json_object *set = NULL;
    json_object_object_get_ex(root, "set", &set);
    if ((rc = parse_set(doc, "/set", set, &p->set, err)) != 0)
        goto done;
    json_object *stages = NULL;
    json_object_object_get_ex(root, "stages", &stages);
    if (!json_object_is_type(stages, json_type_array) || json_object_array_length(stages) == 0) {
        rc = manifest_error_at(doc, "/stages", err,
                               "stages: expected a non-empty list of stages (each with "
                               "manifest: FILE or an inline task)");
        goto done;
    }
    size_t n = json_object_array_length(stages);
    p->stages = xcalloc(n, sizeof(*p->stages));
    char *base = dir_of(doc->path);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct pstage *st = &p->stages[i];
        p->n = i + 1;
        json_object *s = json_object_array_get_idx(stages, i);
        char ptr[64];
        snprintf(ptr, sizeof(ptr), "/stages/%zu", i);
        st->pointer = xstrdup(ptr);
        if (!json_object_is_type(s, json_type_object)) {
            rc = manifest_error_at(doc, ptr, err,
                                   "stage %zu: expected a mapping with manifest: FILE or an "
                                   "inline task (task, plugin, inputs)",
                                   i + 1);
            break;
        }
        json_object *mf = NULL;
        if (json_object_object_get_ex(s, "manifest", &mf)) {
            char mptr[80];
            snprintf(mptr, sizeof(mptr), "%s/manifest", ptr);
            if (!json_object_is_type(mf, json_type_string)) {
                rc = manifest_error_at(doc, mptr, err, "manifest: expected a file path");
                break;
            }
            json_object_object_foreach(s, key, val)
            {
                (void)val;
                if (!key_allowed(stage_keys, key)) {
                    char kptr[700];
                    snprintf(kptr, sizeof(kptr), "%s/%s#key", ptr, key);
                    rc = manifest_error_at(doc, kptr, err,
                                           "unknown key \"%s\" in a stage that names a "
                                           "manifest: expected name, manifest, when or set",
                                           key);
                    break;
                }
            }
            if (rc)
                break;
            const char *rel = json_object_get_string(mf);
            char path[PATH_MAX];
            if (rel[0] == '/')
                snprintf(path, sizeof(path), "%s", rel);
            else
                snprintf(path, sizeof(path), "%s/%s", base, rel);
            struct mls_err sub = {0};
            if (manifest_task_load(path, &st->task, &sub) != 0) {
                rc = manifest_error_at(doc, mptr, err, "in %s: %s", rel, sub.msg);
                if (sub.code)
                    err->code = rc = sub.code;
                break;
            }
        } else {
            st->task = xcalloc(1, sizeof(*st->task));
            rc = manifest_task_parse(doc, ptr, stage_keys, st->task, err);
            if (rc) {
                free(st->task);
                st->task = NULL;
                break;
            }
        }
        json_object *name = NULL;
        if (json_object_object_get_ex(s, "name", &name)) {
            char nptr[80];
            snprintf(nptr, sizeof(nptr), "%s/name", ptr);
            if (!valid_stage_name(json_object_get_string(name))) {
                rc = manifest_error_at(doc, nptr, err,
                                       "name: expected a stage name of letters, digits, _ and -");
                break;
            }
            st->name = xstrdup(json_object_get_string(name));
        } else {
            st->name = xstrdup(st->task->task);
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->stages[j].name, st->name) == 0) {
                rc = manifest_error_at(doc, ptr, err,
                                       "stage name \"%s\" is used twice (also stage %zu); give "
                                       "one a name:",
                                       st->name, j + 1);
                break;
            }
        }
        if (rc)
            break;
        json_object *when = NULL;
        if (json_object_object_get_ex(s, "when", &when)) {
            char wptr[80];
            snprintf(wptr, sizeof(wptr), "%s/when", ptr);
            if (json_object_is_type(when, json_type_object) ||
                json_object_is_type(when, json_type_array)) {
                rc = manifest_error_at(doc, wptr, err,
                                       "when: expected a condition such as "
                                       "${stages.evaluate.outputs.promote} == true");
                break;
            }
            st->when = xstrdup(json_object_get_string(when));
            st->when_pointer = xstrdup(wptr);
        }
        json_object *sset = NULL;
        json_object_object_get_ex(s, "set", &sset);
        char sptr[80];
        snprintf(sptr, sizeof(sptr), "%s/set", ptr);
        if ((rc = parse_set(doc, sptr, sset, &st->set, err)) != 0)
            break;
    }
    free(base);
done:
    if (rc) {
        p->doc = NULL; /* the caller still owns doc */
        pipeline_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int pipeline_load(const char *path, struct pipeline **out, struct mls_err *err)
{
    struct manifest_doc *doc = NULL;
    *out = NULL;
    int rc = manifest_load(path, &doc, err);
    if (rc)
        return rc;
    if (!pipeline_is_pipeline(doc)) {
        rc = manifest_error_at(doc, "", err,
                               "not a pipeline: expected a top-level stages: list (a task "
                               "manifest runs with `mlstage run`)");
        manifest_doc_free(doc);
        return rc;
    }
    rc = pipeline_from_doc(doc, out, err);
    if (rc) {
        manifest_doc_free(doc);
        return rc;
    }
    (*out)->owns_doc = 1;
    return 0;
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++) {
        struct pstage *st = &p->stages[i];
        free(st->name);
        free(st->pointer);
        free(st->when);
        free(st->when_pointer);
        json_object_put(st->set);
        manifest_task_free(st->task);
    }
    free(p->stages);
    json_object_put(p->set);
    if (p->owns_doc)
        manifest_doc_free(p->doc);
    free(p);
}

/* ---- conditions -------------------------------------------------------- */

struct cond {
    const char *s;
    size_t pos;
    struct mls_err *err;
};

static void skip_ws(struct cond *c)
{
    while (isspace((unsigned char)c->s[c->pos]))
        c->pos++;
}

static int cond_fail(struct cond *c, const char *what)
{
    return err_set(c->err, MLSTAGE_EINPUT, "%s at offset %zu of \"%s\"", what, c->pos, c->s);
}

/* An operand: a quoted string or a bare word up to whitespace, an operator or a parenthesis. */
static int cond_atom(struct cond *c, struct buf *out)
{
    skip_ws(c);
    char q = c->s[c->pos];
    if (q == '\'' || q == '"') {
        c->pos++;
        while (c->s[c->pos] && c->s[c->pos] != q)
            buf_putc(out, c->s[c->pos++]);
        if (c->s[c->pos] != q)
            return cond_fail(c, "unclosed quote");
        c->pos++;
        if (!out->data)
            buf_append(out, "", 0);
        return 0;
    }
    size_t start = c->pos;
    while (c->s[c->pos] && !isspace((unsigned char)c->s[c->pos]) && !strchr("()!=&|", c->s[c->pos]))
        c->pos++;
    /* A lone '!' inside a word such as "a!b" is part of the word only when not followed by '='. */
    if (c->pos == start)
        return cond_fail(c, "expected a value");
    buf_append(out, c->s + start, c->pos - start);
    return 0;
}

static int truthy(const char *v, int *out, struct cond *c)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0) {
        *out = 1;
        return 0;
    }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 ||
        *v == '\0') {
        *out = 0;
        return 0;
    }
    char what[300];
    snprintf(what, sizeof(what),
             "\"%s\" is not a boolean (true/false): compare it with == or !=", v);
    return cond_fail(c, what);
}

/* Booleans compare case-insensitively (True == true); everything else byte for byte. */
static int values_equal(const char *a, const char *b)
{
    int ab = !strcasecmp(a, "true") || !strcasecmp(a, "false");
    int bb = !strcasecmp(b, "true") || !strcasecmp(b, "false");
    return ab && bb ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

static int cond_or(struct cond *c, int *v);

static int cond_unary(struct cond *c, int *v)
{
    skip_ws(c);
    if (c->s[c->pos] == '!' && c->s[c->pos + 1] != '=') {
        c->pos++;
        int rc = cond_unary(c, v);
        *v = !*v;
        return rc;
    }
    if (c->s[c->pos] == '(') {
        c->pos++;
        int rc = cond_or(c, v);
        if (rc)
            return rc;
        skip_ws(c);
        if (c->s[c->pos] != ')')
            return cond_fail(c, "expected )");
        c->pos++;
        return 0;
    }
    struct buf a, b;
    buf_init(&a);
    buf_init(&b);
    int rc = cond_atom(c, &a);
    if (rc == 0) {
        skip_ws(c);
        int eq = strncmp(c->s + c->pos, "==", 2) == 0, ne = strncmp(c->s + c->pos, "!=", 2) == 0;
        if (eq || ne) {
            c->pos += 2;
            rc = cond_atom(c, &b);
            if (rc == 0)
                *v = values_equal(a.data, b.data) == eq;
        } else {
            rc = truthy(a.data, v, c);
        }
    }
    buf_free(&a);
    buf_free(&b);
    return rc;
}

static int cond_and(struct cond *c, int *v)
{
    int rc = cond_unary(c, v);
    while (rc == 0) {
        skip_ws(c);
        if (strncmp(c->s + c->pos, "&&", 2) != 0)
            break;
        c->pos += 2;
        int r;
        rc = cond_unary(c, &r);
        *v = *v && r;
    }
    return rc;
}

static int cond_or(struct cond *c, int *v)
{
    int rc = cond_and(c, v);
    while (rc == 0) {
        skip_ws(c);
        if (strncmp(c->s + c->pos, "||", 2) != 0)
            break;
        c->pos += 2;
        int r;
        rc = cond_and(c, &r);
        *v = *v || r;
    }
    return rc;
}

int pipeline_eval_condition(const char *expr, int *result, struct mls_err *err)
{
    struct cond c = {.s = expr, .pos = 0, .err = err};
    int rc = cond_or(&c, result);
    if (rc)
        return rc;
    skip_ws(&c);
    if (c.s[c.pos])
        return cond_fail(&c, "unexpected text (operators: == != && || ! and parentheses)");
    return 0;
}

/* ---- running ----------------------------------------------------------- */

static int selected(const struct cli_opts *o, const struct pipeline *p, size_t i)
{
    if (o->n_only) {
        for (size_t k = 0; k < o->n_only; k++)
            if (strcmp(o->only[k], p->stages[i].name) == 0)
                return 1;
        return 0;
    }
    if (o->from) {
        for (size_t k = 0; k < p->n; k++)
            if (strcmp(p->stages[k].name, o->from) == 0)
                return i >= k;
    }
    return 1;
}

/*
 * What makes runs of a stage comparable across invocations: the same
 * pipeline manifest (named relative to the workspace when inside it, so a
 * moved checkout still matches) run with the same --set values. Recorded in
 * every stage's run.json as "pipeline".
 */
static json_object *pipeline_identity(const struct cli_opts *o, const struct pipeline *p)
{
    char real[PATH_MAX];
    const char *path = realpath(p->doc->path, real) ? real : p->doc->path;
    size_t n = strlen(o->workspace_abs);
    if (strncmp(path, o->workspace_abs, n) == 0 && path[n] == '/')
        path += n + 1;
    json_object *id = json_object_new_object();
    json_object_object_add(id, "manifest", json_object_new_string(path));
    json_object_object_add(id, "name", json_object_new_string(p->name));
    json_object_object_add(id, "set", json_object_get(o->vars));
    return id;
}

/*
 * The outputs of the latest successful, real (not dry) run of `stage` by this
 * pipeline (pipeline_identity) in the workspace: a stage of another pipeline,
 * or of this one with other --set values, may have built another model.
 */
static json_object *previous_outputs(const char *workspace, const char *stage,
                                     json_object *identity, char **run_id)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/.mlstage/runs", workspace);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    json_object *found = NULL;
    for (int i = n - 1; i >= 0; i--) {
        if (!found && names[i]->d_name[0] != '.') {
            char path[PATH_MAX];
            json_object *rec = NULL, *v = NULL;
            if (pathf(path, sizeof(path), "%s/%s/run.json", dir, names[i]->d_name) == 0 &&
                mlstage_json_read(path, &rec) == 0) {
                const char *label = NULL, *status = NULL;
                if (json_object_object_get_ex(rec, "stage", &v) ||
                    json_object_object_get_ex(rec, "task", &v))
                    label = json_object_get_string(v);
                if (json_object_object_get_ex(rec, "status", &v))
                    status = json_object_get_string(v);
                int dry =
                    json_object_object_get_ex(rec, "dry_run", &v) && json_object_get_boolean(v);
                json_object *ran_by = NULL;
                json_object_object_get_ex(rec, "pipeline", &ran_by);
                if (label && status && !dry && strcmp(label, stage) == 0 &&
                    strcmp(status, "succeeded") == 0 && json_object_equal(ran_by, identity) &&
                    json_object_object_get_ex(rec, "outputs", &v)) {
                    found = json_object_get(v);
                    *run_id = xstrdup(names[i]->d_name);
                }
                json_object_put(rec);
            }
        }
        free(names[i]);
    }
    free(names);
    return found;
}

static void set_stage(json_object *tbl, const char *name, const char *status, json_object *outputs)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "status", json_object_new_string(status));
    json_object_object_add(e, "outputs", outputs ? outputs : json_object_new_object());
    json_object_object_add(tbl, name, e);
}

/* Does the condition read an output of a stage that has not produced real outputs yet? */
static int refers_to_pending(const char *when, json_object *tbl)
{
    const char *p = when;
    while ((p = strstr(p, "${stages.")) != NULL) {
        p += 9;
        size_t n = strcspn(p, ".}");
        char name[80];
        snprintf(name, sizeof(name), "%.*s", (int)(n < 79 ? n : 79), p);
        json_object *e = NULL, *st = NULL;
        if (json_object_object_get_ex(tbl, name, &e) &&
            json_object_object_get_ex(e, "status", &st) &&
            strcmp(json_object_get_string(st), "pending") == 0)
            return 1;
    }
    return 0;
}

/* Expands and evaluates a stage's when:. *decided is 0 in a dry run that lacks the outputs. */
static int eval_when(const struct cli_opts *o, const struct pipeline *p, const struct pstage *st,
                     json_object *tbl, json_object *vars, json_object *git, int *run, int *decided,
                     char **expanded, struct mls_err *err)
{
    *run = 1;
    *decided = 1;
    *expanded = NULL;
    if (!st->when)
        return 0;
    struct expand_env env = {
        .getenv_fn = (const char *(*)(const char *))getenv,
        .vars = vars,
        .git = git,
        .stages = tbl,
        .placeholders = o->dry_run,
        .run_id = "<run.id>",
        .run_dir = "<run.dir>",
        .outputs_dir = "<run.outputs_dir>",
    };
    json_object *node = json_object_new_string(st->when), *out = NULL;
    int rc = expand_tree(&env, p->doc, st->when_pointer, node, &out, err);
    json_object_put(node);
    if (rc)
        return rc;
    *expanded = xstrdup(json_object_get_string(out));
    json_object_put(out);
    if (o->dry_run && refers_to_pending(st->when, tbl)) {
        *decided = 0;
        return 0;
    }
    struct mls_err cerr = {0};
    rc = pipeline_eval_condition(*expanded, run, &cerr);
    if (rc) {
        int line = 0, col = 0;
        manifest_mark(p->doc, st->when_pointer, &line, &col, NULL);
        return err_set(err, MLSTAGE_EINPUT, "%s:%d:%d: when: %s", p->doc->path, line, col,
                       cerr.msg);
    }
    return 0;
}

static json_object *merged_vars(const struct cli_opts *o, const struct pipeline *p,
                                const struct pstage *st)
{
    json_object *vars = json_object_new_object();
    json_object *layers[3] = {p->set, st->set, o->vars};
    for (int i = 0; i < 3; i++) {
        if (!layers[i])
            continue;
        json_object_object_foreach(layers[i], key, val)
        {
            json_object_object_add(vars, key, json_object_get(val));
        }
    }
    return vars;
}

/*
 * The variables a stage runs with, as merged_vars, with the values of the
 * pipeline's and the stage's `set:` expanded: they may name earlier stages'
 * outputs (set: {metrics: "${stages.train.outputs.metrics_file}"}), which is
 * how a stage that is a manifest file receives them. Expanded only once the
 * stage is to run, since the outputs exist only then; `placeholders` as in
 * a dry run. *out is new (put it); errors carry the `set:` value's position.
 */
static int stage_vars(const struct cli_opts *o, const struct pipeline *p, const struct pstage *st,
                      json_object *tbl, json_object *git, int placeholders, json_object **out,
                      struct mls_err *err)
{
    struct expand_env env = {
        .getenv_fn = (const char *(*)(const char *))getenv,
        .vars = o->vars,
        .git = git,
        .stages = tbl,
        .placeholders = placeholders,
    };
    json_object *vars = json_object_new_object();
    json_object *layers[2] = {p->set, st->set};
    char pointers[2][1100];
    snprintf(pointers[0], sizeof(pointers[0]), "/set");
    snprintf(pointers[1], sizeof(pointers[1]), "%s/set", st->pointer);
    int rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!layers[i])
            continue;
        json_object_object_foreach(layers[i], key, val)
        {
            const char *text = json_object_get_string(val);
            char *expanded = NULL;
            if (strstr(text, "${")) {
                rc = expand_string(&env, text, &expanded, NULL, err);
                if (rc) {
                    char ptr[1200], msg[sizeof(err->msg)];
                    int line = 0, col = 0;
                    snprintf(ptr, sizeof(ptr), "%s/%s", pointers[i], key);
                    snprintf(msg, sizeof(msg), "%s", err->msg);
                    if (manifest_mark(p->doc, ptr, &line, &col, NULL) == 0)
                        err_set(err, rc, "%s:%d:%d: set.%s: %s", p->doc->path, line, col, key, msg);
                    else
                        err_set(err, rc, "%s: set.%s: %s", p->doc->path, key, msg);
                    break;
                }
            }
            json_object_object_add(
                vars, key, expanded ? json_object_new_string(expanded) : json_object_get(val));
            free(expanded);
        }
    }
    if (rc == 0 && o->vars) {
        json_object_object_foreach(o->vars, key, val)
        {
            json_object_object_add(vars, key, json_object_get(val));
        }
    }
    if (rc) {
        json_object_put(vars);
        vars = NULL;
    }
    *out = vars;
    return rc;
}

static void report_stage(json_object *stages_out, const struct pstage *st, const char *status,
                         const char *reason, const struct stage_result *res)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "name", json_object_new_string(st->name));
    json_object_object_add(e, "task", json_object_new_string(st->task->task));
    json_object_object_add(e, "plugin", json_object_new_string(st->task->plugin));
    json_object_object_add(e, "status", json_object_new_string(status));
    if (reason)
        json_object_object_add(e, "reason", json_object_new_string(reason));
    if (res) {
        json_object_object_add(e, "exit_code", json_object_new_int(mlstage_exit_code(res->code)));
        if (res->run_id)
            json_object_object_add(e, "run_id", json_object_new_string(res->run_id));
        if (res->message)
            json_object_object_add(e, "error", json_object_new_string(res->message));
        json_object *v = NULL;
        if (res->record && json_object_object_get_ex(res->record, "outputs", &v))
            json_object_object_add(e, "outputs", json_object_get(v));
        if (res->record && json_object_object_get_ex(res->record, "duration_s", &v))
            json_object_object_add(e, "duration_s", json_object_get(v));
        if (res->record && json_object_object_get_ex(res->record, "plan", &v))
            json_object_object_add(e, "plan", json_object_get(v));
    }
    json_object_array_add(stages_out, e);
}

static int run_pipeline(const struct cli_opts *o, struct pipeline *p, struct cli_git *g)
{
    double t0 = now_mono();
    json_object *ci = ci_info((enum ci_kind)o->ci, (const char *(*)(const char *))getenv);
    char **dirs = host_dirs((const char *const *)o->plugin_paths);
    json_object *tbl = json_object_new_object(), *stages_out = json_object_new_array();
    json_object *identity = pipeline_identity(o, p);
    int result = 0;
    const char *failed_stage = NULL;

    for (size_t i = 0; i < p->n; i++)
        set_stage(tbl, p->stages[i].name, "pending", NULL);

    log_msg(MLSTAGE_LOG_INFO, "pipeline %s: %zu stage%s%s", p->name, p->n, p->n == 1 ? "" : "s",
            o->dry_run ? " (dry run: nothing is changed)" : "");
    for (size_t i = 0; i < p->n; i++) {
        struct pstage *st = &p->stages[i];
        if (result) {
            report_stage(stages_out, st, "not_run", "an earlier stage failed", NULL);
            continue;
        }
        if (!selected(o, p, i)) {
            /* A dry run reads them too, so that its plan is the real run's. */
            char *prev_id = NULL;
            json_object *prev = previous_outputs(o->workspace_abs, st->name, identity, &prev_id);
            if (prev) {
                set_stage(tbl, st->name, "succeeded", prev);
                char reason[512];
                snprintf(reason, sizeof(reason), "not selected; outputs of run %.200s", prev_id);
                report_stage(stages_out, st, "previous", reason, NULL);
                log_msg(MLSTAGE_LOG_INFO, "--- %s: not selected, using the outputs of run %s",
                        st->name, prev_id);
            } else {
                set_stage(tbl, st->name, o->dry_run ? "pending" : "skipped", NULL);
                report_stage(stages_out, st, "skipped",
                             "not selected (--only/--from); no earlier successful run of it by "
                             "this pipeline with these --set values",
                             NULL);
                log_msg(MLSTAGE_LOG_INFO,
                        "--- %s: not selected, and no earlier successful run of it by this "
                        "pipeline with these --set values",
                        st->name);
            }
            free(prev_id);
            continue;
        }
        json_object *vars = merged_vars(o, p, st);
        int run = 1, decided = 1;
        char *expanded = NULL;
        struct mls_err err = {0};
        json_object *git = st->when && strstr(st->when, "${git.") ? cli_git_get(g) : NULL;
        int rc = eval_when(o, p, st, tbl, vars, git, &run, &decided, &expanded, &err);
        if (rc) {
            log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
            struct stage_result fake = {.code = rc, .message = err.msg};
            report_stage(stages_out, st, "invalid", NULL, &fake);
            result = rc;
            failed_stage = st->name;
            json_object_put(vars);
            free(expanded);
            continue;
        }
        if (!run) {
            char reason[1200];
            snprintf(reason, sizeof(reason), "when: %s is false", expanded);
            log_msg(MLSTAGE_LOG_INFO, "--- %s: skipped (%s)", st->name, reason);
            set_stage(tbl, st->name, "skipped", NULL);
            report_stage(stages_out, st, "skipped", reason, NULL);
            json_object_put(vars);
            free(expanded);
            continue;
        }
        json_object *stage_set = NULL;
        rc = stage_vars(o, p, st, tbl, git, o->dry_run, &stage_set, &err);
        json_object_put(vars);
        vars = stage_set;
        if (rc) {
            log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
            struct stage_result fake = {.code = rc, .message = err.msg};
            report_stage(stages_out, st, "invalid", NULL, &fake);
            result = rc;
            failed_stage = st->name;
            free(expanded);
            continue;
        }
        if (!decided) {
            char line[1400];
            snprintf(line, sizeof(line), "stage %s runs only if %s", st->name, st->when);
            log_plan(line);
        }
        struct stage_opts so = {
            .dry_run = o->dry_run,
            .vars = vars,
            .backend = o->backend,
            .workspace = o->workspace_abs,
            .plugin_dirs = dirs,
            .ci = (enum ci_kind)o->ci,
            .git = cli_git_get,
            .git_poll_fd = cli_git_poll_fd,
            .git_ud = g,
            .ci_info = ci,
            .stages = tbl,
            .placeholders = o->dry_run,
            .stage_label = st->name,
            .pipeline = identity,
        };
        struct stage_result res = {0};
        stage_run(&so, st->task, &res);
        if (!res.run_dir && res.message)
            log_msg(MLSTAGE_LOG_ERROR, "%s", res.message);
        json_object *outputs = NULL;
        if (res.record)
            json_object_object_get_ex(res.record, "outputs", &outputs);
        /* A dry run's outputs are not real: later stages see placeholders. */
        set_stage(tbl, st->name,
                  o->dry_run ? "pending"
                  : res.code ? "failed"
                             : "succeeded",
                  outputs ? json_object_get(outputs) : NULL);
        const char *status = "failed";
        json_object *v = NULL;
        if (res.record && json_object_object_get_ex(res.record, "status", &v))
            status = json_object_get_string(v);
        else if (res.code == MLSTAGE_EINPUT || res.code == MLSTAGE_EPLUGIN)
            status = "invalid";
        report_stage(stages_out, st, status, decided ? NULL : "condition undecided in a dry run",
                     &res);
        if (res.code) {
            result = res.code;
            failed_stage = st->name;
        }
        stage_result_free(&res);
        json_object_put(vars);
        free(expanded);
    }

    double secs = now_mono() - t0;
    if (o->json) {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "pipeline", json_object_new_string(p->name));
        json_object_object_add(doc, "manifest", json_object_new_string(p->doc->path));
        json_object_object_add(doc, "dry_run", json_object_new_boolean(o->dry_run));
        json_object_object_add(doc, "status",
                               json_object_new_string(result ? "failed" : "succeeded"));
        json_object_object_add(doc, "exit_code", json_object_new_int(mlstage_exit_code(result)));
        if (failed_stage)
            json_object_object_add(doc, "failed_stage", json_object_new_string(failed_stage));
        json_object_object_add(doc, "duration_s", json_object_new_double(secs));
        json_object_object_add(doc, "stages", json_object_get(stages_out));
        cli_print_json(doc);
        json_object_put(doc);
    } else {
        log_msg(result ? MLSTAGE_LOG_ERROR : MLSTAGE_LOG_INFO, "pipeline %s %s in %.2f s%s%s",
                p->name,
                result       ? "failed"
                : o->dry_run ? "planned"
                             : "succeeded",
                secs, failed_stage ? " at stage " : "", failed_stage ? failed_stage : "");
        size_t n = json_object_array_length(stages_out);
        for (size_t i = 0; i < n; i++) {
            json_object *e = json_object_array_get_idx(stages_out, i), *v = NULL;
            const char *name = "", *status = "", *reason = NULL;
            if (json_object_object_get_ex(e, "name", &v))
                name = json_object_get_string(v);
            if (json_object_object_get_ex(e, "status", &v))
                status = json_object_get_string(v);
            if (json_object_object_get_ex(e, "reason", &v))
                reason = json_object_get_string(v);
            char secs_s[32] = "";
            if (json_object_object_get_ex(e, "duration_s", &v))
                snprintf(secs_s, sizeof(secs_s), "%.2f s", json_object_get_double(v));
            const char *run_id = NULL;
            if (json_object_object_get_ex(e, "run_id", &v))
                run_id = json_object_get_string(v);
            log_msg(MLSTAGE_LOG_INFO, "  %-16s %-10s %8s  %s", name, status, secs_s,
                    reason   ? reason
                    : run_id ? run_id
                             : "");
        }
    }
    json_object_put(tbl);
    json_object_put(identity);
    json_object_put(stages_out);
    json_object_put(ci);
    host_dirs_free(dirs);
    return mlstage_exit_code(result);
}

static int pipeline_validate(const struct cli_opts *o, char **dirs, json_object *git,
                             struct pipeline *p, json_object *report)
{
    json_object *tbl = json_object_new_object(), *stages = json_object_new_array();
    int result = 0;
    for (size_t i = 0; i < p->n; i++)
        set_stage(tbl, p->stages[i].name, "pending", NULL);
    struct cli_opts vo = *o;
    vo.dry_run = 1;
    for (size_t i = 0; i < p->n; i++) {
        struct pstage *st = &p->stages[i];
        json_object *sr = json_object_new_object();
        json_object_object_add(sr, "name", json_object_new_string(st->name));
        json_object *vars = NULL;
        struct mls_err verr = {0};
        int rc = stage_vars(o, p, st, tbl, git, 1, &vars, &verr);
        if (rc) {
            log_msg(MLSTAGE_LOG_ERROR, "%s", verr.msg);
            json_object_object_add(sr, "ok", json_object_new_boolean(0));
            json_object_object_add(sr, "error", json_object_new_string(verr.msg));
            result = rc;
            json_object_array_add(stages, sr);
            continue;
        }
        struct cli_opts so = *o;
        so.vars = vars;
        rc = cli_validate_task(&so, dirs, git, st->task, tbl, sr);
        if (rc == 0 && st->when) {
            int run, decided;
            char *expanded = NULL;
            struct mls_err err = {0};
            rc = eval_when(&vo, p, st, tbl, vars, git, &run, &decided, &expanded, &err);
            if (rc == 0 && decided == 0) {
                /* Check the condition's syntax with the placeholders in place. */
                struct mls_err cerr = {0};
                int dummy;
                char *probe = xstrdup(expanded);
                for (char *q = probe; (q = strstr(q, "<stages.")) != NULL;) {
                    char *end = strchr(q, '>');
                    if (!end)
                        break;
                    memset(q, 'x', (size_t)(end - q + 1));
                }
                if (pipeline_eval_condition(probe, &dummy, &cerr) != 0 &&
                    !strstr(cerr.msg, "not a boolean")) {
                    int line = 0, col = 0;
                    manifest_mark(p->doc, st->when_pointer, &line, &col, NULL);
                    rc = err_set(&err, MLSTAGE_EINPUT, "%s:%d:%d: when: %s", p->doc->path, line,
                                 col, cerr.msg);
                }
                free(probe);
            }
            if (rc) {
                log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
                json_object_object_add(sr, "ok", json_object_new_boolean(0));
                json_object_object_add(sr, "error", json_object_new_string(err.msg));
            }
            free(expanded);
        }
        if (rc && !result)
            result = rc;
        else if (rc == MLSTAGE_EINPUT)
            result = rc;
        json_object_array_add(stages, sr);
        json_object_put(vars);
    }
    json_object_object_add(report, "pipeline", json_object_new_string(p->name));
    json_object_object_add(report, "ok", json_object_new_boolean(result == 0));
    json_object_object_add(report, "stages", stages);
    json_object_put(tbl);
    return result;
}

int cli_validate_file(const struct cli_opts *o, char **dirs, json_object *git, const char *file,
                      json_object *report)
{
    struct mls_err err = {0};
    struct manifest_doc *doc = NULL;
    int rc = manifest_load(file, &doc, &err);
    if (rc)
        goto fail;
    if (pipeline_is_pipeline(doc)) {
        struct pipeline *p = NULL;
        rc = pipeline_from_doc(doc, &p, &err);
        if (rc)
            goto fail;
        p->owns_doc = 1;
        rc = pipeline_validate(o, dirs, git, p, report);
        pipeline_free(p);
        return rc;
    }
    struct task_manifest task = {0};
    rc = manifest_task_parse(doc, "", NULL, &task, &err);
    if (rc)
        goto fail;
    rc = cli_validate_task(o, dirs, git, &task, NULL, report);
    manifest_task_release(&task);
    manifest_doc_free(doc);
    return rc;
fail:
    manifest_doc_free(doc);
    log_msg(MLSTAGE_LOG_ERROR, "%s", err.msg);
    json_object_object_add(report, "ok", json_object_new_boolean(0));
    json_object_object_add(report, "error", json_object_new_string(err.msg));
    json_object_object_add(report, "exit_code", json_object_new_int(mlstage_exit_code(rc)));
    return rc;
}

int cli_cmd_pipeline(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cli_print_usage("pipeline");
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "mlstage: usage: mlstage pipeline run PIPELINE.yml [OPTIONS]\n"
                        "Try 'mlstage pipeline --help'.\n");
        return 2;
    }
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc - 1, argv + 1, "pipeline", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    if (o.n_args != 1) {
        cli_free_opts(&o);
        fprintf(stderr, "mlstage: pipeline run takes one pipeline file\n"
                        "Try 'mlstage pipeline --help'.\n");
        return 2;
    }
    if (o.n_only && o.from) {
        cli_free_opts(&o);
        fprintf(stderr, "mlstage: --only and --from cannot be combined\n");
        return 2;
    }
    cli_mask_known_secrets();
    struct cli_git git;
    cli_git_start(&git);
    struct mls_err err = {0};
    struct pipeline *p = NULL;
    rc = pipeline_load(o.args[0], &p, &err);
    if (rc) {
        cli_fail(&o, rc, err.msg);
        rc = mlstage_exit_code(rc);
        goto done;
    }
    const char *unknown = NULL;
    for (size_t k = 0; k < o.n_only && !unknown; k++) {
        int hit = 0;
        for (size_t i = 0; i < p->n; i++)
            hit |= strcmp(p->stages[i].name, o.only[k]) == 0;
        if (!hit)
            unknown = o.only[k];
    }
    if (o.from && !unknown) {
        int hit = 0;
        for (size_t i = 0; i < p->n; i++)
            hit |= strcmp(p->stages[i].name, o.from) == 0;
        if (!hit)
            unknown = o.from;
    }
    if (unknown) {
        struct buf names;
        buf_init(&names);
        for (size_t i = 0; i < p->n; i++)
            buf_printf(&names, "%s%s", i ? ", " : "", p->stages[i].name);
        err_set(&err, MLSTAGE_EINPUT, "no stage named \"%s\" in %s (stages: %s)", unknown,
                o.args[0], names.data);
        buf_free(&names);
        cli_fail(&o, MLSTAGE_EINPUT, err.msg);
        rc = 2;
        goto done;
    }
    if ((rc = cli_resolve_workspace(&o)) != 0)
        goto done;
    rc = run_pipeline(&o, p, &git);
done:
    cli_git_free(&git);
    pipeline_free(p);
    cli_free_opts(&o);
    return rc;
}
