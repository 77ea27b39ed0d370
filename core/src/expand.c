/* expand.c — ${...} references in manifest values: parsing, resolution and re-typing. */
#include "expand.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMS                                                                                      \
    "${env.NAME}, ${var.NAME}, ${secret.NAME}, ${run.id|dir|outputs_dir}, "                        \
    "${git.commit|short_commit|branch} or ${stages.NAME.outputs.KEY} (write $${ for a literal "    \
    "${)"

/* Names listed in messages are capped so a huge object cannot flood the error slot. */
#define MAX_LISTED 20

static char *dup_n(const char *s, size_t n)
{
    char *p = xcalloc(n + 1, 1);
    memcpy(p, s, n);
    return p;
}

static int all_digits(const char *s, int base)
{
    if (!*s)
        return 0;
    for (; *s; s++) {
        int c = (unsigned char)*s;
        int ok = base == 8 ? (c >= '0' && c <= '7')
                 : base == 16
                     ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                     : (c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?  (YAML 1.2 core schema) */
static int float_syntax(const char *s)
{
    size_t ip = 0, fp = 0;
    if (*s == '-' || *s == '+')
        s++;
    while (*s >= '0' && *s <= '9') {
        s++;
        ip++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            fp++;
        }
    }
    if (ip == 0 && fp == 0)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            s++;
    }
    return *s == '\0';
}

static int one_of(const char *s, const char *a, const char *b, const char *c)
{
    return strcmp(s, a) == 0 || strcmp(s, b) == 0 || strcmp(s, c) == 0;
}

static json_object *int_or_text(const char *s, const char *digits, int base, int negative)
{
    errno = 0;
    char *end = NULL;
    long long v = strtoll(digits, &end, base);
    /* Out of range stays text: a precision-losing number would be worse than a type error. */
    if (errno == ERANGE || *end != '\0')
        return json_object_new_string(s);
    return json_object_new_int64(negative ? -v : v);
}

/* Whether a plain scalar holding these references may be re-typed after expansion. */
static int retypable(const char *s)
{
    return !strstr(s, "${git.") && !strstr(s, "${run.") && !strstr(s, "${secret.");
}

json_object *expand_type_plain(const char *s)
{
    if (!s || !*s || strcmp(s, "~") == 0 || one_of(s, "null", "Null", "NULL"))
        return NULL;
    if (one_of(s, "true", "True", "TRUE"))
        return json_object_new_boolean(1);
    if (one_of(s, "false", "False", "FALSE"))
        return json_object_new_boolean(0);
    if (s[0] == '0' && s[1] == 'o' && all_digits(s + 2, 8))
        return int_or_text(s, s + 2, 8, 0);
    if (s[0] == '0' && s[1] == 'x' && all_digits(s + 2, 16))
        return int_or_text(s, s + 2, 16, 0);
    const char *digits = s + (*s == '-' || *s == '+');
    if (all_digits(digits, 10))
        return int_or_text(s, s, 10, 0);
    if (float_syntax(s)) {
        errno = 0;
        double d = strtod(s, NULL);
        return json_object_new_double(d);
    }
    if (one_of(digits, ".inf", ".Inf", ".INF"))
        return json_object_new_double(*s == '-' ? -INFINITY : INFINITY);
    if (one_of(s, ".nan", ".NaN", ".NAN"))
        return json_object_new_double(NAN);
    return json_object_new_string(s);
}

static int ident_ok(const char *s, const char *extra)
{
    if (!*s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (s++; *s; s++) {
        int c = (unsigned char)*s;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || (extra && strchr(extra, c))))
            return 0;
    }
    return 1;
}

/* "a, b, c" of an object's keys (or "none"). */
static void list_keys(json_object *obj, struct buf *b)
{
    size_t n = 0;
    if (json_object_is_type(obj, json_type_object)) {
        json_object_object_foreach(obj, k, v)
        {
            (void)v;
            if (n == MAX_LISTED) {
                buf_puts(b, ", ...");
                break;
            }
            buf_printf(b, "%s%s", n++ ? ", " : "", k);
        }
    }
    if (n == 0)
        buf_puts(b, "none");
}

static void list_strings(json_object *arr, struct buf *b)
{
    size_t n = 0,
           len = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < len; i++) {
        if (n == MAX_LISTED) {
            buf_puts(b, ", ...");
            break;
        }
        buf_printf(b, "%s%s", n++ ? ", " : "",
                   json_object_get_string(json_object_array_get_idx(arr, i)));
    }
    if (n == 0)
        buf_puts(b, "none");
}

static int declared(json_object *arr, const char *name)
{
    size_t len = json_object_is_type(arr, json_type_array) ? json_object_array_length(arr) : 0;
    for (size_t i = 0; i < len; i++) {
        const char *s = json_object_get_string(json_object_array_get_idx(arr, i));
        if (s && strcmp(s, name) == 0)
            return 1;
    }
    return 0;
}

/* A value as text: strings as they are, anything else as compact JSON. */
static int put_value(struct buf *out, json_object *v)
{
    if (json_object_is_type(v, json_type_string))
        return buf_append(out, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return buf_puts(out, json_object_to_json_string_ext(v, MLS_JSON_PLAIN));
}

static int fail(struct mls_err *err, const char *ref, const char *fmt, ...) MLSTAGE_PRINTF(3, 4);

/* "${ref}: message"; ref is the reference as written, clipped for long defaults. */
static int fail(struct mls_err *err, const char *ref, const char *fmt, ...)
{
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(err, MLSTAGE_EINPUT, "${%.*s%s}: %s", 120, ref, strlen(ref) > 120 ? "..." : "",
                   msg);
}

static int resolve_stage(const struct expand_env *env, const char *ref, const char *rest,
                         struct buf *out, struct mls_err *err)
{
    struct buf names;
    char *name = NULL;
    int rc = 0;
    buf_init(&names);
    const char *dot = strchr(rest, '.');
    if (!dot || strncmp(dot, ".outputs.", 9) != 0 || dot == rest || !dot[9]) {
        rc = fail(err, ref, "expected ${stages.NAME.outputs.KEY}");
        goto done;
    }
    name = xstrdup(rest);
    name[dot - rest] = '\0';
    const char *key = dot + 9;
    if (!env->stages) {
        rc = fail(err, ref, "stage outputs are only available in a pipeline");
        goto done;
    }
    json_object *stage = NULL, *status = NULL, *outputs = NULL, *v = NULL;
    if (!json_object_object_get_ex(env->stages, name, &stage)) {
        list_keys(env->stages, &names);
        rc =
            fail(err, ref, "there is no stage '%s' in this pipeline; stages: %s", name, names.data);
        goto done;
    }
    json_object_object_get_ex(stage, "status", &status);
    json_object_object_get_ex(stage, "outputs", &outputs);
    const char *st = status ? json_object_get_string(status) : "succeeded";
    list_keys(outputs, &names);
    if (strcmp(st, "skipped") == 0 || strcmp(st, "failed") == 0) {
        rc = fail(err, ref, "stage '%s' %s, so its output '%s' is not available (its outputs: %s)",
                  name, strcmp(st, "skipped") == 0 ? "was skipped" : "failed", key, names.data);
        goto done;
    }
    if (strcmp(st, "succeeded") != 0) {
        if (env->placeholders) {
            rc = buf_printf(out, "<stages.%s.outputs.%s>", name, key);
            goto done;
        }
        rc = fail(err, ref,
                  "stage '%s' has not run yet; a stage can only use outputs of stages that run "
                  "before it",
                  name);
        goto done;
    }
    if (!json_object_object_get_ex(outputs, key, &v)) {
        rc =
            fail(err, ref, "stage '%s' has no output '%s'; its outputs: %s", name, key, names.data);
        goto done;
    }
    rc = put_value(out, v);
done:
    free(name);
    buf_free(&names);
    return rc;
}

/* Resolves the text between "${" and "}" and appends the value to out. */
static int resolve(const struct expand_env *env, const char *ref, struct buf *out,
                   struct mls_err *err)
{
    struct buf list;
    char *name = xstrdup(ref);
    const char *def = NULL;
    int rc = 0;
    buf_init(&list);
    char *sep = strstr(name, ":-");
    if (sep) {
        *sep = '\0';
        def = sep + 2;
    }
    if (!*name) {
        rc = fail(err, ref, "an empty reference; expected %s", FORMS);
        goto done;
    }
    if (strpbrk(name, " \t\r\n")) {
        rc = fail(err, ref,
                  "spaces are not allowed inside ${...} (write ${env.HOME}, not "
                  "${ env.HOME })");
        goto done;
    }
    char *dot = strchr(name, '.');
    const char *rest = dot ? dot + 1 : "";
    if (dot)
        *dot = '\0';
    int is_env = strcmp(name, "env") == 0, is_var = strcmp(name, "var") == 0;
    if (!dot || !*rest) {
        rc = fail(err, ref, "a reference needs a namespace and a name; expected %s", FORMS);
        goto done;
    }
    if (def && !is_env && !is_var) {
        rc = fail(err, ref,
                  "a default (:-) is only allowed in ${env.NAME:-...} and "
                  "${var.NAME:-...}");
        goto done;
    }
    if (is_env) {
        if (!ident_ok(rest, NULL)) {
            rc = fail(err, ref, "'%s' is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                      rest);
            goto done;
        }
        const char *v = env->getenv_fn ? env->getenv_fn(rest) : getenv(rest);
        /* As in the shell, ":-" also replaces an empty value. */
        if ((!v || !*v) && def)
            rc = buf_puts(out, def);
        else if (v)
            rc = buf_puts(out, v);
        else
            rc = fail(err, ref,
                      "environment variable %s is not set; set it, or give a default: "
                      "${env.%s:-VALUE}",
                      rest, rest);
    } else if (is_var) {
        json_object *v = NULL;
        if (!ident_ok(rest, ".-")) {
            rc = fail(err, ref, "'%s' is not a variable name ([A-Za-z_][A-Za-z0-9_.-]*)", rest);
            goto done;
        }
        int set = json_object_object_get_ex(env->vars, rest, &v);
        int empty =
            set && json_object_is_type(v, json_type_string) && json_object_get_string_len(v) == 0;
        if ((!set || empty) && def) {
            rc = buf_puts(out, def);
        } else if (set) {
            rc = put_value(out, v);
        } else {
            list_keys(env->vars, &list);
            rc = fail(err, ref,
                      "variable %s is not set; pass --set %s=VALUE or give a default: "
                      "${var.%s:-VALUE} (variables set: %s)",
                      rest, rest, rest, list.data);
        }
    } else if (strcmp(name, "secret") == 0) {
        json_object *v = NULL;
        if (!declared(env->declared, rest)) {
            list_strings(env->declared, &list);
            rc = fail(err, ref,
                      "secret %s is not declared; list it under secrets: in the manifest "
                      "(declared: %s)",
                      rest, list.data);
        } else if (!json_object_object_get_ex(env->secrets, rest, &v)) {
            rc = fail(err, ref,
                      "secret %s is declared but not set; export %s in the environment (in CI, "
                      "map the secret variable into this step)",
                      rest, rest);
        } else {
            rc = put_value(out, v);
        }
    } else if (strcmp(name, "run") == 0) {
        const char *v = strcmp(rest, "id") == 0            ? env->run_id
                        : strcmp(rest, "dir") == 0         ? env->run_dir
                        : strcmp(rest, "outputs_dir") == 0 ? env->outputs_dir
                                                           : (const char *)-1;
        if (v == (const char *)-1)
            rc = fail(err, ref,
                      "unknown run key '%s'; expected ${run.id}, ${run.dir} or "
                      "${run.outputs_dir}",
                      rest);
        else if (!v)
            rc = fail(err, ref, "run.%s is not available here (no run is being prepared)", rest);
        else
            rc = buf_puts(out, v);
    } else if (strcmp(name, "git") == 0) {
        json_object *v = NULL;
        if (strcmp(rest, "commit") != 0 && strcmp(rest, "short_commit") != 0 &&
            strcmp(rest, "branch") != 0)
            rc = fail(err, ref,
                      "unknown git key '%s'; expected ${git.commit}, "
                      "${git.short_commit} or ${git.branch}",
                      rest);
        else if (!env->git)
            rc = fail(err, ref,
                      "not in a git repository (or it has no commits), so git.%s is not "
                      "available",
                      rest);
        else if ((!json_object_object_get_ex(env->git, rest, &v) || !v) &&
                 strcmp(rest, "branch") == 0)
            rc = fail(err, ref,
                      "HEAD is detached (no branch is checked out), so git.branch is not "
                      "available; use ${git.commit}");
        else if (!v)
            rc = fail(err, ref, "git.%s is not known for this repository", rest);
        else
            rc = put_value(out, v);
    } else if (strcmp(name, "stages") == 0) {
        rc = resolve_stage(env, ref, rest, out, err);
    } else {
        rc = fail(err, ref, "unknown namespace '%s'; expected %s", name, FORMS);
    }
done:
    free(name);
    buf_free(&list);
    return rc;
}

int expand_string(const struct expand_env *env, const char *in, char **out, size_t *err_offset,
                  struct mls_err *err)
{
    struct buf b;
    char *ref = NULL;
    int rc = 0;
    size_t i = 0;
    buf_init(&b);
    /* buf_steal of a never-written buf is not NUL-terminated (util.c); "" must come out as "". */
    buf_append(&b, "", 0);
    *out = NULL;
    if (err_offset)
        *err_offset = 0;
    while (in[i]) {
        if (in[i] == '$' && in[i + 1] == '$' && in[i + 2] == '{') {
            rc = buf_puts(&b, "${");
            i += 3;
        } else if (in[i] == '$' && in[i + 1] == '{') {
            const char *body = in + i + 2;
            const char *close = strchr(body, '}');
            const char *inner = strstr(body, "${");
            if (!close) {
                rc = err_set(err, MLSTAGE_EINPUT,
                             "unclosed ${: expected a closing } (write $${ for a literal ${)");
            } else if (inner && inner < close) {
                ref = dup_n(body, (size_t)(close - body));
                rc = fail(err, ref,
                          "a default cannot contain a reference (defaults are plain "
                          "text)");
            } else {
                ref = dup_n(body, (size_t)(close - body));
                rc = resolve(env, ref, &b, err);
                free(ref);
                ref = NULL;
                if (rc == 0)
                    i = (size_t)(close - in) + 1;
            }
            if (rc) {
                if (err_offset)
                    *err_offset = i;
                goto done;
            }
            continue;
        } else {
            rc = buf_putc(&b, in[i]);
            i++;
        }
        if (rc)
            goto done;
    }
    *out = buf_steal(&b);
    if (!*out)
        rc = MLSTAGE_ENOMEM;
done:
    free(ref);
    buf_free(&b);
    return rc;
}

/*
 * Where the reference at byte `off` of the value at `ptr` is written: the
 * loader's per-"${" positions when it could match them to the source, else
 * the scalar's (or its nearest ancestor's) own mark.
 */
static int ref_location(const struct manifest_doc *doc, const char *ptr, const char *value,
                        size_t off, int *line, int *col)
{
    json_object *m = NULL;
    if (doc && doc->marks && json_object_object_get_ex(doc->marks, ptr, &m) &&
        json_object_array_length(m) >= 4) {
        json_object *refs = json_object_array_get_idx(m, 3);
        size_t k = 0;
        for (size_t i = 0; value[i] && value[i + 1]; i++) {
            if (value[i] != '$' || value[i + 1] != '{')
                continue;
            if (i == off) {
                json_object *pos = json_object_array_get_idx(refs, k);
                if (!pos)
                    break;
                *line = json_object_get_int(json_object_array_get_idx(pos, 0));
                *col = json_object_get_int(json_object_array_get_idx(pos, 1));
                return 0;
            }
            k++;
        }
    }
    return manifest_mark(doc, ptr, line, col, NULL);
}

static int expand_node(const struct expand_env *env, const struct manifest_doc *doc,
                       const char *ptr, json_object *node, json_object **out, struct mls_err *err)
{
    char *text = NULL;
    json_object *copy = NULL;
    int rc = 0, typed_null = 0;
    *out = NULL;
    switch (json_object_get_type(node)) {
    case json_type_object:
        copy = json_object_new_object();
        json_object_object_foreach(node, k, v)
        {
            json_object *child = NULL;
            char *cptr = manifest_ptr_child(ptr, k);
            rc = expand_node(env, doc, cptr, v, &child, err);
            free(cptr);
            if (rc)
                goto done;
            if (json_object_object_add(copy, k, child) != 0) {
                json_object_put(child);
                rc = MLSTAGE_ENOMEM;
                goto done;
            }
        }
        break;
    case json_type_array:
        copy = json_object_new_array_ext((int)json_object_array_length(node));
        for (size_t i = 0; i < json_object_array_length(node); i++) {
            json_object *child = NULL;
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            char *cptr = manifest_ptr_child(ptr, idx);
            rc = expand_node(env, doc, cptr, json_object_array_get_idx(node, i), &child, err);
            free(cptr);
            if (rc)
                goto done;
            if (json_object_array_add(copy, child) != 0) {
                json_object_put(child);
                rc = MLSTAGE_ENOMEM;
                goto done;
            }
        }
        break;
    case json_type_string: {
        const char *s = json_object_get_string(node);
        size_t off = 0;
        int plain = 0;
        if (!strstr(s, "${")) {
            copy = json_object_new_string_len(s, json_object_get_string_len(node));
            break;
        }
        rc = expand_string(env, s, &text, &off, err);
        if (rc == MLSTAGE_EINPUT) {
            int line, col;
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            if (ref_location(doc, ptr, s, off, &line, &col) == 0)
                err_set(err, rc, "%s:%d:%d: %s", doc->path, line, col, msg);
            else if (doc)
                err_set(err, rc, "%s: %s", doc->path, msg);
        }
        if (rc)
            goto done;
        /*
         * Re-typed the way YAML would have typed the text, had it been written
         * out — but only values a user chooses (var, env, stage outputs): a
         * commit such as 0123456 or an id must stay text.
         */
        if (doc && retypable(s) && manifest_mark(doc, ptr, NULL, NULL, &plain) == 0 && plain) {
            copy = expand_type_plain(text);
            typed_null = copy == NULL;
        } else
            copy = json_object_new_string(text);
        break;
    }
    case json_type_null: break;
    default:
        if (json_object_deep_copy(node, &copy, NULL) != 0)
            rc = MLSTAGE_ENOMEM;
        break;
    }
    if (rc == 0 && node && !copy && !typed_null)
        rc = MLSTAGE_ENOMEM;
    if (rc == 0) {
        *out = copy;
        copy = NULL;
    }
done:
    if (rc == MLSTAGE_ENOMEM)
        err_set(err, rc, "out of memory while expanding references");
    json_object_put(copy);
    free(text);
    return rc;
}

int expand_tree(const struct expand_env *env, const struct manifest_doc *doc, const char *pointer,
                json_object *node, json_object **out, struct mls_err *err)
{
    return expand_node(env, doc, pointer ? pointer : "", node, out, err);
}
