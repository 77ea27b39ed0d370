/* schema.c — the JSON Schema subset plugins declare inputs with: checking, validation, defaults. */
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mask.h"

/* Longest excerpt of a string value quoted in a message. */
#define QUOTE_MAX 60

/* ---- the keyword table -------------------------------------------------- */

/* What each keyword's value must be; schema_check enforces it. */
enum kw_kind {
    KW_TYPE,        /* a type name or an array of distinct type names */
    KW_SCHEMA_MAP,  /* an object of schemas */
    KW_NAMES,       /* an array of distinct strings */
    KW_BOOL_SCHEMA, /* a boolean or a schema */
    KW_SCHEMA,      /* a schema */
    KW_SCHEMA_LIST, /* a non-empty array of schemas */
    KW_ARRAY,       /* an array */
    KW_NONEMPTY,    /* a non-empty array */
    KW_ANY,         /* any value */
    KW_NUMBER,      /* a number */
    KW_COUNT,       /* a non-negative integer */
    KW_PATTERN,     /* a string that compiles as a POSIX ERE */
    KW_STRING       /* a string */
};

static const struct keyword {
    const char *name;
    enum kw_kind kind;
} keywords[] = {
    {"type", KW_TYPE},
    {"properties", KW_SCHEMA_MAP},
    {"required", KW_NAMES},
    {"additionalProperties", KW_BOOL_SCHEMA},
    {"items", KW_SCHEMA},
    {"enum", KW_NONEMPTY},
    {"const", KW_ANY},
    {"default", KW_ANY},
    {"minimum", KW_NUMBER},
    {"maximum", KW_NUMBER},
    {"exclusiveMinimum", KW_NUMBER},
    {"exclusiveMaximum", KW_NUMBER},
    {"minLength", KW_COUNT},
    {"maxLength", KW_COUNT},
    {"pattern", KW_PATTERN},
    {"minItems", KW_COUNT},
    {"maxItems", KW_COUNT},
    {"description", KW_STRING},
    {"title", KW_STRING},
    {"examples", KW_ARRAY},
    {"format", KW_STRING},
    /* Annotations, so a schema copied from a JSON Schema editor loads as is. */
    {"$schema", KW_STRING},
    {"$comment", KW_STRING},
    {"$id", KW_STRING},
    {"oneOf", KW_SCHEMA_LIST},
    {"anyOf", KW_SCHEMA_LIST},
};

static const char *const type_names[] = {"string", "number", "integer", "boolean",
                                         "object", "array",  "null"};

#define N_KEYWORDS   (sizeof(keywords) / sizeof(keywords[0]))
#define N_TYPE_NAMES (sizeof(type_names) / sizeof(type_names[0]))

/* ---- small helpers ------------------------------------------------------ */

/* The value of keyword `name` in `schema`; 0 when absent (a present null gives 1 and NULL). */
static int kw_get(json_object *schema, const char *name, json_object **value)
{
    *value = NULL;
    return json_object_is_type(schema, json_type_object) &&
           json_object_object_get_ex(schema, name, value);
}

static const char *str_of(const struct buf *b)
{
    return b->data ? b->data : "";
}

/* Cuts a buffer back to an earlier length. */
static void buf_truncate(struct buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = '\0';
}

/* Levenshtein distance, for "did you mean"; names longer than 64 bytes never match. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Keeps in *best the candidate closest to `name`, if it is close enough to be a typo. */
static void closest(const char *name, const char *candidate, const char **best, size_t *best_d)
{
    size_t la = strlen(name), lb = strlen(candidate);
    size_t d = edit_distance(name, candidate);
    /* About one edit per three characters: "metrc" → "metric", but not "x" → "y". */
    if (d == 0 || d == SIZE_MAX || d * 3 > (la > lb ? la : lb) + 1)
        return;
    if (!*best || d < *best_d) {
        *best = candidate;
        *best_d = d;
    }
}

static int is_number(json_object *v)
{
    return json_object_is_type(v, json_type_int) ||
           (json_object_is_type(v, json_type_double) && isfinite(json_object_get_double(v)));
}

/* JSON integers, and doubles with no fraction: YAML gives 1.0 as a double. */
static int is_integer(json_object *v)
{
    if (json_object_is_type(v, json_type_int))
        return 1;
    if (!json_object_is_type(v, json_type_double))
        return 0;
    double d = json_object_get_double(v);
    return isfinite(d) && d == trunc(d);
}

/* Shortest text that reads back as the same double. */
static void put_double(struct buf *b, double d)
{
    char tmp[40];
    snprintf(tmp, sizeof(tmp), "%.15g", d);
    if (strtod(tmp, NULL) != d)
        snprintf(tmp, sizeof(tmp), "%.17g", d);
    buf_puts(b, tmp);
}

static void put_number(struct buf *b, json_object *v)
{
    if (json_object_is_type(v, json_type_int))
        buf_printf(b, "%" PRId64, json_object_get_int64(v));
    else
        put_double(b, json_object_get_double(v));
}

/*
 * A string as JSON, cut to QUOTE_MAX bytes (on a character boundary) so messages stay short.
 * Secrets are masked before the cut: the masker recognises a secret only whole, so a cut one
 * would leak its first bytes.
 */
static void put_quoted(struct buf *b, const char *s, size_t len)
{
    char *masked = mask_apply(s, len, &len);
    s = masked;
    int cut = len > QUOTE_MAX;
    if (cut) {
        len = QUOTE_MAX;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    json_object *tmp = json_object_new_string_len(s, (int)len);
    const char *text = json_object_to_json_string_ext(tmp, MLS_JSON_PLAIN);
    if (cut) {
        buf_append(b, text, strlen(text) - 1); /* without the closing quote */
        buf_puts(b, "...\"");
    } else {
        buf_puts(b, text);
    }
    json_object_put(tmp);
    free(masked);
}

/* A value as the user wrote it: "abc" (quoted), 1.5, true, null, or object/array. */
static void put_value(struct buf *b, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string:
        put_quoted(b, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        break;
    case json_type_int:
    case json_type_double: put_number(b, v); break;
    case json_type_boolean: buf_puts(b, json_object_get_boolean(v) ? "true" : "false"); break;
    case json_type_null: buf_puts(b, "null"); break;
    default: buf_puts(b, json_object_to_json_string_ext(v, MLS_JSON_PLAIN)); break;
    }
}

/* What was found where something else was expected: `string "abc"`, `number 1.5`, `object`. */
static void put_got(struct buf *b, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string: buf_puts(b, "string "); break;
    case json_type_int:
    case json_type_double: buf_puts(b, "number "); break;
    case json_type_boolean: buf_puts(b, "boolean "); break;
    case json_type_object: buf_puts(b, "object"); return;
    case json_type_array: buf_puts(b, "array"); return;
    default: break;
    }
    put_value(b, v);
}

/* Equality as JSON Schema sees it: 1 and 1.0 are the same number. */
static int values_equal(json_object *a, json_object *b)
{
    if (is_number(a) && is_number(b)) {
        if (json_object_is_type(a, json_type_int) && json_object_is_type(b, json_type_int))
            return json_object_get_int64(a) == json_object_get_int64(b);
        return json_object_get_double(a) == json_object_get_double(b);
    }
    if (json_object_get_type(a) != json_object_get_type(b))
        return 0;
    switch (json_object_get_type(a)) {
    case json_type_array: {
        size_t n = json_object_array_length(a);
        if (n != json_object_array_length(b))
            return 0;
        for (size_t i = 0; i < n; i++)
            if (!values_equal(json_object_array_get_idx(a, i), json_object_array_get_idx(b, i)))
                return 0;
        return 1;
    }
    case json_type_object: {
        if (json_object_object_length(a) != json_object_object_length(b))
            return 0;
        struct json_object_iter it;
        json_object_object_foreachC(a, it)
        {
            json_object *other;
            if (!json_object_object_get_ex(b, it.key, &other) || !values_equal(it.val, other))
                return 0;
        }
        return 1;
    }
    default: return json_object_equal(a, b);
    }
}

/* The type names a "type" keyword lists (a string or an array); returns how many. */
static size_t type_list(json_object *type, const char *names[N_TYPE_NAMES])
{
    size_t n = 0;
    if (json_object_is_type(type, json_type_string)) {
        names[n++] = json_object_get_string(type);
    } else if (json_object_is_type(type, json_type_array)) {
        size_t len = json_object_array_length(type);
        for (size_t i = 0; i < len && n < N_TYPE_NAMES; i++) {
            json_object *t = json_object_array_get_idx(type, i);
            if (json_object_is_type(t, json_type_string))
                names[n++] = json_object_get_string(t);
        }
    }
    return n;
}

static int type_matches(const char *type, json_object *v)
{
    if (strcmp(type, "integer") == 0)
        return is_integer(v);
    if (strcmp(type, "number") == 0)
        return is_number(v);
    if (strcmp(type, "string") == 0)
        return json_object_is_type(v, json_type_string);
    if (strcmp(type, "boolean") == 0)
        return json_object_is_type(v, json_type_boolean);
    if (strcmp(type, "object") == 0)
        return json_object_is_type(v, json_type_object);
    if (strcmp(type, "array") == 0)
        return json_object_is_type(v, json_type_array);
    if (strcmp(type, "null") == 0)
        return json_object_is_type(v, json_type_null);
    return 0;
}

/* "string", "string or null", "string, number or null". */
static void put_type_names(struct buf *b, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            buf_puts(b, i + 1 == n ? " or " : ", ");
        buf_puts(b, names[i]);
    }
}

/* Unicode characters in a UTF-8 string: JSON Schema lengths count characters, not bytes. */
static size_t utf8_length(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* Names that read well after a dot in a message; others are shown as ["a.b"]. */
static int plain_name(const char *key)
{
    if (!*key)
        return 0;
    for (const char *p = key; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
            return 0;
    return 1;
}

/* ---- validation --------------------------------------------------------- */

struct vctx {
    struct buf ptr;      /* JSON pointer of the value being checked: /requests/0/body */
    struct buf name;     /* its name in messages: inputs.requests[0].body */
    struct mls_err *err; /* where the first failure goes */
    char *bad;           /* the pointer of the first failure; owned */
};

struct mark {
    size_t ptr_len, name_len;
};

static struct mark mark_of(const struct vctx *vc)
{
    struct mark m = {vc->ptr.len, vc->name.len};
    return m;
}

static void pop(struct vctx *vc, struct mark m)
{
    buf_truncate(&vc->ptr, m.ptr_len);
    buf_truncate(&vc->name, m.name_len);
}

/* Appends a key to the JSON pointer, escaped as RFC 6901 asks (~ → ~0, / → ~1). */
static void ptr_push_key(struct vctx *vc, const char *key)
{
    buf_putc(&vc->ptr, '/');
    for (const char *p = key; *p; p++) {
        if (*p == '~')
            buf_puts(&vc->ptr, "~0");
        else if (*p == '/')
            buf_puts(&vc->ptr, "~1");
        else
            buf_putc(&vc->ptr, *p);
    }
}

static struct mark push_key(struct vctx *vc, const char *key)
{
    struct mark m = mark_of(vc);
    ptr_push_key(vc, key);
    if (plain_name(key)) {
        if (vc->name.len)
            buf_putc(&vc->name, '.');
        buf_puts(&vc->name, key);
    } else {
        buf_putc(&vc->name, '[');
        put_quoted(&vc->name, key, strlen(key));
        buf_putc(&vc->name, ']');
    }
    return m;
}

static struct mark push_index(struct vctx *vc, size_t i)
{
    struct mark m = mark_of(vc);
    buf_printf(&vc->ptr, "/%zu", i);
    buf_printf(&vc->name, "[%zu]", i);
    return m;
}

/* Records a failure at the current value ("inputs.alpha: <msg>") with its pointer. */
static int fail(struct vctx *vc, int code, const char *fmt, ...) MLSTAGE_PRINTF(3, 4);
static int fail(struct vctx *vc, int code, const char *fmt, ...)
{
    struct buf msg;
    va_list ap;
    buf_init(&msg);
    if (vc->name.len)
        buf_printf(&msg, "%s: ", str_of(&vc->name));
    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    err_set(vc->err, code, "%s", str_of(&msg));
    buf_free(&msg);
    if (!vc->bad)
        vc->bad = xstrdup(str_of(&vc->ptr));
    return code;
}

static int validate(struct vctx *vc, json_object *schema, json_object *inst, json_object **out);

static int check_type(struct vctx *vc, json_object *schema, json_object *inst)
{
    json_object *type;
    const char *names[N_TYPE_NAMES];
    struct buf got;
    size_t n;
    int rc = 0;
    buf_init(&got);
    if (!kw_get(schema, "type", &type))
        goto done;
    n = type_list(type, names);
    for (size_t i = 0; i < n; i++)
        if (type_matches(names[i], inst))
            goto done;
    put_got(&got, inst);
    struct buf want;
    buf_init(&want);
    put_type_names(&want, names, n);
    rc = fail(vc, MLSTAGE_EINPUT, "expected %s, got %s", str_of(&want), str_of(&got));
    buf_free(&want);
done:
    buf_free(&got);
    return rc;
}

static int check_enum_const(struct vctx *vc, json_object *schema, json_object *inst)
{
    json_object *list, *expected;
    struct buf a, b;
    int rc = 0;
    buf_init(&a);
    buf_init(&b);
    if (kw_get(schema, "enum", &list) && json_object_is_type(list, json_type_array)) {
        size_t n = json_object_array_length(list);
        for (size_t i = 0; i < n; i++)
            if (values_equal(json_object_array_get_idx(list, i), inst))
                goto check_const;
        put_value(&a, inst);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                buf_puts(&b, ", ");
            put_value(&b, json_object_array_get_idx(list, i));
        }
        rc = fail(vc, MLSTAGE_EINPUT, "%s is not one of %s", str_of(&a), str_of(&b));
        goto done;
    }
check_const:
    if (kw_get(schema, "const", &expected) && !values_equal(expected, inst)) {
        put_value(&a, expected);
        put_got(&b, inst);
        rc = fail(vc, MLSTAGE_EINPUT, "expected %s, got %s", str_of(&a), str_of(&b));
    }
done:
    buf_free(&a);
    buf_free(&b);
    return rc;
}

static int check_number(struct vctx *vc, json_object *schema, json_object *inst)
{
    static const struct {
        const char *kw;
        int sign;      /* -1: a lower bound, +1: an upper bound */
        int exclusive; /* the bound itself is out */
        const char *text;
    } bounds[] = {
        {"minimum", -1, 0, "is below the minimum"},
        {"maximum", +1, 0, "is above the maximum"},
        {"exclusiveMinimum", -1, 1, "is not above the exclusive minimum"},
        {"exclusiveMaximum", +1, 1, "is not below the exclusive maximum"},
    };
    double d = json_object_get_double(inst);
    struct buf a, b;
    int rc = 0;
    buf_init(&a);
    buf_init(&b);
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        json_object *limit;
        if (!kw_get(schema, bounds[i].kw, &limit) || !is_number(limit))
            continue;
        double l = json_object_get_double(limit);
        int out = bounds[i].sign < 0 ? (bounds[i].exclusive ? d <= l : d < l)
                                     : (bounds[i].exclusive ? d >= l : d > l);
        if (!out)
            continue;
        put_number(&a, inst);
        put_number(&b, limit);
        rc = fail(vc, MLSTAGE_EINPUT, "%s %s %s", str_of(&a), bounds[i].text, str_of(&b));
        goto done;
    }
done:
    buf_free(&a);
    buf_free(&b);
    return rc;
}

static int check_string(struct vctx *vc, json_object *schema, json_object *inst)
{
    const char *s = json_object_get_string(inst);
    size_t bytes = (size_t)json_object_get_string_len(inst);
    size_t chars = utf8_length(s, bytes);
    json_object *v;
    struct buf q;
    regex_t re;
    int compiled = 0, rc = 0;
    buf_init(&q);
    put_quoted(&q, s, bytes);
    if (kw_get(schema, "minLength", &v) && is_integer(v) &&
        (double)chars < json_object_get_double(v)) {
        rc = fail(vc, MLSTAGE_EINPUT, "%s is shorter than the minimum length %" PRId64, str_of(&q),
                  json_object_get_int64(v));
        goto done;
    }
    if (kw_get(schema, "maxLength", &v) && is_integer(v) &&
        (double)chars > json_object_get_double(v)) {
        rc = fail(vc, MLSTAGE_EINPUT, "%s is longer than the maximum length %" PRId64, str_of(&q),
                  json_object_get_int64(v));
        goto done;
    }
    if (kw_get(schema, "pattern", &v) && json_object_is_type(v, json_type_string)) {
        const char *pattern = json_object_get_string(v);
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
            rc = fail(vc, MLSTAGE_EPLUGIN, "the schema's pattern \"%s\" is not a valid POSIX ERE",
                      pattern);
            goto done;
        }
        compiled = 1;
        if (regexec(&re, s, 0, NULL, 0) != 0) {
            rc = fail(vc, MLSTAGE_EINPUT, "%s does not match the pattern \"%s\"", str_of(&q),
                      pattern);
            goto done;
        }
    }
done:
    if (compiled)
        regfree(&re);
    buf_free(&q);
    return rc;
}

/* A copy of a value the schema says nothing more about. */
static int copy_value(json_object *v, json_object **out)
{
    *out = NULL;
    if (!v)
        return 0;
    return json_object_deep_copy(v, out, NULL) == 0 ? 0 : MLSTAGE_ENOMEM;
}

/* Numbers are copied as they are, except that 1.0 where only an integer fits becomes 1. */
static int copy_number(json_object *schema, json_object *inst, json_object **out)
{
    json_object *type;
    const char *names[N_TYPE_NAMES];
    size_t n = kw_get(schema, "type", &type) ? type_list(type, names) : 0;
    int integer = 0, number = 0;
    for (size_t i = 0; i < n; i++) {
        integer |= strcmp(names[i], "integer") == 0;
        number |= strcmp(names[i], "number") == 0;
    }
    double d = json_object_get_double(inst);
    if (integer && !number && json_object_is_type(inst, json_type_double) && fabs(d) < 9.2e18) {
        *out = json_object_new_int64((int64_t)d);
        return *out ? 0 : MLSTAGE_ENOMEM;
    }
    return copy_value(inst, out);
}

static int validate_array(struct vctx *vc, json_object *schema, json_object *inst,
                          json_object **out)
{
    size_t n = json_object_array_length(inst);
    json_object *v, *items = NULL, *copy = NULL;
    int rc = 0;
    *out = NULL;
    if (kw_get(schema, "minItems", &v) && is_integer(v) && (double)n < json_object_get_double(v)) {
        rc = fail(vc, MLSTAGE_EINPUT, "expected at least %" PRId64 " item%s, got %zu",
                  json_object_get_int64(v), json_object_get_int64(v) == 1 ? "" : "s", n);
        goto done;
    }
    if (kw_get(schema, "maxItems", &v) && is_integer(v) && (double)n > json_object_get_double(v)) {
        rc = fail(vc, MLSTAGE_EINPUT, "expected at most %" PRId64 " item%s, got %zu",
                  json_object_get_int64(v), json_object_get_int64(v) == 1 ? "" : "s", n);
        goto done;
    }
    if (!kw_get(schema, "items", &items) || !json_object_is_type(items, json_type_object)) {
        rc = copy_value(inst, &copy);
        goto done;
    }
    copy = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        json_object *item = NULL;
        struct mark m = push_index(vc, i);
        rc = validate(vc, items, json_object_array_get_idx(inst, i), &item);
        pop(vc, m);
        if (rc != 0)
            goto done;
        json_object_array_add(copy, item);
    }
done:
    if (rc == 0) {
        *out = copy;
        copy = NULL;
    }
    json_object_put(copy);
    return rc;
}

/* A property's schema: its entry in "properties", else "additionalProperties" when a schema. */
static json_object *property_schema(json_object *schema, const char *key)
{
    json_object *props, *sub, *addl;
    if (kw_get(schema, "properties", &props) && json_object_is_type(props, json_type_object) &&
        json_object_object_get_ex(props, key, &sub))
        return sub;
    if (kw_get(schema, "additionalProperties", &addl) &&
        json_object_is_type(addl, json_type_object))
        return addl;
    return NULL;
}

static int validate_object(struct vctx *vc, json_object *schema, json_object *inst,
                           json_object **out)
{
    json_object *props = NULL, *addl = NULL, *required = NULL, *copy = NULL;
    struct json_object_iter it;
    int rc = 0;
    *out = NULL;
    if (!kw_get(schema, "properties", &props) || !json_object_is_type(props, json_type_object))
        props = NULL;
    kw_get(schema, "additionalProperties", &addl);

    /* Unknown names first: a typo is the likeliest reason for a missing required input too. */
    if (json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl)) {
        json_object_object_foreachC(inst, it)
        {
            if (props && json_object_object_get_ex(props, it.key, NULL))
                continue;
            const char *best = NULL;
            size_t best_d = 0;
            struct json_object_iter p;
            if (props) {
                json_object_object_foreachC(props, p)
                {
                    closest(it.key, p.key, &best, &best_d);
                }
            }
            struct mark m = mark_of(vc);
            ptr_push_key(vc, it.key);
            if (best)
                rc = fail(vc, MLSTAGE_EINPUT, "unknown input \"%s\" (did you mean \"%s\"?)", it.key,
                          best);
            else
                rc = fail(vc, MLSTAGE_EINPUT, "unknown input \"%s\"", it.key);
            pop(vc, m);
            goto done;
        }
    }

    /* A default satisfies "required", as it does in validators that apply defaults. */
    if (kw_get(schema, "required", &required) && json_object_is_type(required, json_type_array)) {
        size_t n = json_object_array_length(required);
        for (size_t i = 0; i < n; i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(required, i));
            json_object *sub, *dflt;
            if (!name || json_object_object_get_ex(inst, name, NULL))
                continue;
            if (props && json_object_object_get_ex(props, name, &sub) &&
                kw_get(sub, "default", &dflt))
                continue;
            rc = fail(vc, MLSTAGE_EINPUT, "missing required input \"%s\"", name);
            goto done;
        }
    }

    copy = json_object_new_object();
    json_object_object_foreachC(inst, it)
    {
        json_object *sub = property_schema(schema, it.key), *value = NULL;
        struct mark m = push_key(vc, it.key);
        rc = sub ? validate(vc, sub, it.val, &value) : copy_value(it.val, &value);
        pop(vc, m);
        if (rc != 0)
            goto done;
        json_object_object_add(copy, it.key, value);
    }
    if (props) {
        json_object_object_foreachC(props, it)
        {
            json_object *dflt, *value = NULL;
            if (json_object_object_get_ex(inst, it.key, NULL) || !kw_get(it.val, "default", &dflt))
                continue;
            /* Validating the default applies the defaults nested inside it as well. */
            struct mark m = push_key(vc, it.key);
            rc = validate(vc, it.val, dflt, &value);
            pop(vc, m);
            if (rc != 0)
                goto done;
            json_object_object_add(copy, it.key, value);
        }
    }
done:
    if (rc == 0) {
        *out = copy;
        copy = NULL;
    }
    json_object_put(copy);
    return rc;
}

/*
 * anyOf / oneOf over the value validated so far (*copy): the matching
 * branch's result, with its own defaults, replaces *copy.
 */
static int validate_branches(struct vctx *vc, json_object *schema, const char *kw,
                             json_object **copy)
{
    json_object *list, *chosen = NULL;
    struct mls_err *outer_err = vc->err;
    char *outer_bad = vc->bad;
    struct mls_err branch_err;
    struct buf why;
    size_t matches = 0, first = 0, n;
    int one = strcmp(kw, "oneOf") == 0, rc = 0;
    buf_init(&why);
    if (!kw_get(schema, kw, &list) || !json_object_is_type(list, json_type_array))
        goto done;
    n = json_object_array_length(list);
    for (size_t i = 0; i < n; i++) {
        json_object *result = NULL;
        err_clear(&branch_err);
        vc->err = &branch_err;
        vc->bad = NULL;
        int brc = validate(vc, json_object_array_get_idx(list, i), *copy, &result);
        free(vc->bad);
        vc->err = outer_err;
        vc->bad = outer_bad;
        if (brc == MLSTAGE_ENOMEM) {
            rc = brc;
            goto done;
        }
        if (brc != 0) {
            /* Branch messages name the same value: keep only what each expected. */
            const char *msg = branch_err.msg;
            size_t nl = vc->name.len;
            if (nl && strncmp(msg, str_of(&vc->name), nl) == 0 && strncmp(msg + nl, ": ", 2) == 0)
                msg += nl + 2;
            buf_printf(&why, "%s(%zu) %s", why.len ? "; " : "", i + 1, msg);
            continue;
        }
        if (matches++ == 0) {
            chosen = result;
            first = i;
            if (!one)
                break;
        } else {
            json_object_put(result);
            rc = fail(vc, MLSTAGE_EINPUT,
                      "matches both form %zu and form %zu of oneOf, "
                      "expected exactly one",
                      first + 1, i + 1);
            goto done;
        }
    }
    if (!matches) {
        rc = fail(vc, MLSTAGE_EINPUT, "does not match any of the allowed forms: %s", str_of(&why));
        goto done;
    }
    json_object_put(*copy);
    *copy = chosen;
    chosen = NULL;
done:
    json_object_put(chosen);
    buf_free(&why);
    return rc;
}

static int validate(struct vctx *vc, json_object *schema, json_object *inst, json_object **out)
{
    json_object *copy = NULL;
    int rc;
    *out = NULL;
    if ((rc = check_type(vc, schema, inst)) != 0 || (rc = check_enum_const(vc, schema, inst)) != 0)
        goto done;
    switch (json_object_get_type(inst)) {
    case json_type_int:
    case json_type_double:
        if ((rc = check_number(vc, schema, inst)) == 0)
            rc = copy_number(schema, inst, &copy);
        break;
    case json_type_string:
        if ((rc = check_string(vc, schema, inst)) == 0)
            rc = copy_value(inst, &copy);
        break;
    case json_type_array: rc = validate_array(vc, schema, inst, &copy); break;
    case json_type_object: rc = validate_object(vc, schema, inst, &copy); break;
    default: rc = copy_value(inst, &copy); break;
    }
    if (rc != 0)
        goto done;
    if ((rc = validate_branches(vc, schema, "anyOf", &copy)) != 0 ||
        (rc = validate_branches(vc, schema, "oneOf", &copy)) != 0)
        goto done;
    *out = copy;
    copy = NULL;
done:
    json_object_put(copy);
    return rc;
}

int schema_validate(json_object *schema, json_object *instance, const char *root_name,
                    json_object **out, char **bad_pointer, struct mls_err *err)
{
    struct vctx vc = {.err = err};
    json_object *copy = NULL;
    int rc;
    buf_init(&vc.ptr);
    buf_init(&vc.name);
    if (out)
        *out = NULL;
    if (bad_pointer)
        *bad_pointer = NULL;
    buf_puts(&vc.ptr, "");
    buf_puts(&vc.name, root_name ? root_name : "");
    rc = validate(&vc, schema, instance, &copy);
    if (rc != 0)
        goto done;
    if (out) {
        *out = copy;
        copy = NULL;
    }
done:
    if (rc != 0 && bad_pointer) {
        *bad_pointer = vc.bad ? vc.bad : xstrdup("");
        vc.bad = NULL;
    }
    json_object_put(copy);
    free(vc.bad);
    buf_free(&vc.ptr);
    buf_free(&vc.name);
    return rc;
}

/* ---- checking a schema -------------------------------------------------- */

struct cctx {
    struct buf path; /* JSON pointer into the schema: /properties/alpha */
    struct mls_err *err;
};

static int cfail(struct cctx *cc, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
static int cfail(struct cctx *cc, const char *fmt, ...)
{
    struct buf msg;
    va_list ap;
    buf_init(&msg);
    if (cc->path.len)
        buf_printf(&msg, "input schema at %s: ", str_of(&cc->path));
    else
        buf_puts(&msg, "input schema: ");
    va_start(ap, fmt);
    buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    err_set(cc->err, MLSTAGE_EPLUGIN, "%s", str_of(&msg));
    buf_free(&msg);
    return MLSTAGE_EPLUGIN;
}

static int check(struct cctx *cc, json_object *schema);

/* Checks a nested schema at path + "/" + seg (+ "/" + index when index >= 0). */
static int check_sub(struct cctx *cc, const char *seg, long index, json_object *sub)
{
    size_t len = cc->path.len;
    buf_putc(&cc->path, '/');
    for (const char *p = seg; *p; p++) {
        if (*p == '~')
            buf_puts(&cc->path, "~0");
        else if (*p == '/')
            buf_puts(&cc->path, "~1");
        else
            buf_putc(&cc->path, *p);
    }
    if (index >= 0)
        buf_printf(&cc->path, "/%ld", index);
    int rc = check(cc, sub);
    buf_truncate(&cc->path, len);
    return rc;
}

static int is_count(json_object *v)
{
    return is_integer(v) && json_object_get_double(v) >= 0;
}

/* Checks one keyword's value against its kind. */
static int check_keyword(struct cctx *cc, const struct keyword *k, json_object *v)
{
    struct buf got;
    const char *want = NULL;
    int rc = 0;
    buf_init(&got);
    switch (k->kind) {
    case KW_TYPE: {
        const char *names[N_TYPE_NAMES];
        size_t n;
        if (json_object_is_type(v, json_type_array)) {
            if (json_object_array_length(v) == 0 || json_object_array_length(v) > N_TYPE_NAMES) {
                want = "a type name or a non-empty array of distinct type names";
                break;
            }
            for (size_t i = 0; i < json_object_array_length(v); i++)
                if (!json_object_is_type(json_object_array_get_idx(v, i), json_type_string))
                    want = "a type name or an array of type names";
            if (want)
                break;
        } else if (!json_object_is_type(v, json_type_string)) {
            want = "a type name or an array of type names";
            break;
        }
        n = type_list(v, names);
        for (size_t i = 0; i < n; i++) {
            size_t t = 0;
            while (t < N_TYPE_NAMES && strcmp(names[i], type_names[t]) != 0)
                t++;
            if (t == N_TYPE_NAMES) {
                rc = cfail(cc,
                           "unknown type \"%s\" (expected string, number, integer, "
                           "boolean, object, array or null)",
                           names[i]);
                goto done;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(names[i], names[j]) == 0) {
                    rc = cfail(cc, "type \"%s\" is listed twice", names[i]);
                    goto done;
                }
        }
        break;
    }
    case KW_SCHEMA_MAP: {
        struct json_object_iter it;
        if (!json_object_is_type(v, json_type_object)) {
            want = "an object of schemas";
            break;
        }
        json_object_object_foreachC(v, it)
        {
            size_t len = cc->path.len;
            buf_puts(&cc->path, "/properties");
            rc = check_sub(cc, it.key, -1, it.val);
            buf_truncate(&cc->path, len);
            if (rc != 0)
                goto done;
        }
        break;
    }
    case KW_NAMES: {
        if (!json_object_is_type(v, json_type_array)) {
            want = "an array of property names";
            break;
        }
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n && !want; i++) {
            json_object *name = json_object_array_get_idx(v, i);
            if (!json_object_is_type(name, json_type_string)) {
                want = "an array of property names";
                break;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(json_object_get_string(name),
                           json_object_get_string(json_object_array_get_idx(v, j))) == 0) {
                    rc = cfail(cc, "\"required\" lists \"%s\" twice", json_object_get_string(name));
                    goto done;
                }
        }
        break;
    }
    case KW_BOOL_SCHEMA:
        if (json_object_is_type(v, json_type_boolean))
            break;
        if (!json_object_is_type(v, json_type_object)) {
            want = "a boolean or a schema";
            break;
        }
        rc = check_sub(cc, k->name, -1, v);
        break;
    case KW_SCHEMA:
        if (!json_object_is_type(v, json_type_object)) {
            want = "a schema (an object)";
            break;
        }
        rc = check_sub(cc, k->name, -1, v);
        break;
    case KW_SCHEMA_LIST:
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0) {
            want = "a non-empty array of schemas";
            break;
        }
        for (size_t i = 0; i < json_object_array_length(v) && rc == 0; i++)
            rc = check_sub(cc, k->name, (long)i, json_object_array_get_idx(v, i));
        break;
    case KW_ARRAY:
        if (!json_object_is_type(v, json_type_array))
            want = "an array";
        break;
    case KW_NONEMPTY:
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) == 0)
            want = "a non-empty array";
        break;
    case KW_ANY: break;
    case KW_NUMBER:
        if (!is_number(v))
            want = "a number";
        break;
    case KW_COUNT:
        if (!is_count(v))
            want = "a non-negative integer";
        break;
    case KW_PATTERN: {
        regex_t re;
        if (!json_object_is_type(v, json_type_string)) {
            want = "a string (a POSIX extended regular expression)";
            break;
        }
        int e = regcomp(&re, json_object_get_string(v), REG_EXTENDED | REG_NOSUB);
        if (e != 0) {
            char why[256];
            regerror(e, &re, why, sizeof(why));
            rc = cfail(cc,
                       "\"pattern\" \"%s\" is not a valid POSIX extended regular "
                       "expression: %s",
                       json_object_get_string(v), why);
            goto done;
        }
        regfree(&re);
        break;
    }
    case KW_STRING:
        if (!json_object_is_type(v, json_type_string))
            want = "a string";
        break;
    }
    if (want && rc == 0) {
        put_got(&got, v);
        rc = cfail(cc, "\"%s\" must be %s, got %s", k->name, want, str_of(&got));
    }
done:
    buf_free(&got);
    return rc;
}

/* Bounds that no value could satisfy are a mistake in the schema. */
static int check_bounds(struct cctx *cc, json_object *schema)
{
    static const char *const pairs[][2] = {
        {"minimum", "maximum"}, {"minLength", "maxLength"}, {"minItems", "maxItems"}};
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        json_object *lo, *hi;
        if (kw_get(schema, pairs[i][0], &lo) && kw_get(schema, pairs[i][1], &hi) &&
            json_object_get_double(lo) > json_object_get_double(hi)) {
            struct buf a, b;
            buf_init(&a);
            buf_init(&b);
            put_number(&a, lo);
            put_number(&b, hi);
            int rc = cfail(cc, "\"%s\" %s is above \"%s\" %s", pairs[i][0], str_of(&a), pairs[i][1],
                           str_of(&b));
            buf_free(&a);
            buf_free(&b);
            return rc;
        }
    }
    return 0;
}

static int check(struct cctx *cc, json_object *schema)
{
    struct json_object_iter it;
    json_object *required, *props, *addl, *dflt;
    struct buf got;
    int rc = 0;
    buf_init(&got);
    if (!json_object_is_type(schema, json_type_object)) {
        put_got(&got, schema);
        rc = cfail(cc, "expected a schema (an object), got %s", str_of(&got));
        goto done;
    }
    json_object_object_foreachC(schema, it)
    {
        const struct keyword *k = NULL;
        for (size_t i = 0; i < N_KEYWORDS && !k; i++)
            if (strcmp(keywords[i].name, it.key) == 0)
                k = &keywords[i];
        if (!k) {
            const char *best = NULL;
            size_t best_d = 0;
            for (size_t i = 0; i < N_KEYWORDS; i++)
                closest(it.key, keywords[i].name, &best, &best_d);
            if (best)
                rc = cfail(cc, "unsupported keyword \"%s\" (did you mean \"%s\"?)", it.key, best);
            else
                rc = cfail(cc, "unsupported keyword \"%s\"", it.key);
            goto done;
        }
        if ((rc = check_keyword(cc, k, it.val)) != 0)
            goto done;
    }
    if ((rc = check_bounds(cc, schema)) != 0)
        goto done;

    /* With additionalProperties false, a required name that is not declared can never be met. */
    if (kw_get(schema, "required", &required) && kw_get(schema, "additionalProperties", &addl) &&
        json_object_is_type(addl, json_type_boolean) && !json_object_get_boolean(addl)) {
        if (!kw_get(schema, "properties", &props))
            props = NULL;
        for (size_t i = 0; i < json_object_array_length(required); i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(required, i));
            if (!props || !json_object_object_get_ex(props, name, NULL)) {
                rc = cfail(cc,
                           "\"required\" names \"%s\", which is not in \"properties\" "
                           "(and additionalProperties is false)",
                           name);
                goto done;
            }
        }
    }

    if (kw_get(schema, "default", &dflt)) {
        struct mls_err verr;
        err_clear(&verr);
        if (schema_validate(schema, dflt, "", NULL, NULL, &verr) != 0) {
            rc = cfail(cc, "the default does not validate: %s", verr.msg);
            goto done;
        }
    }
done:
    buf_free(&got);
    return rc;
}

int schema_check(json_object *schema, struct mls_err *err)
{
    struct cctx cc = {.err = err};
    buf_init(&cc.path);
    int rc = check(&cc, schema);
    buf_free(&cc.path);
    return rc;
}

/* ---- --set values ------------------------------------------------------- */

enum {
    T_STRING = 1,
    T_NUMBER = 2,
    T_INTEGER = 4,
    T_BOOLEAN = 8,
    T_OBJECT = 16,
    T_ARRAY = 32,
    T_NULL = 64
};

static unsigned type_bits(json_object *schema)
{
    json_object *type, *list;
    const char *names[N_TYPE_NAMES];
    unsigned bits = 0;
    if (kw_get(schema, "type", &type)) {
        size_t n = type_list(type, names);
        for (size_t i = 0; i < n; i++)
            for (size_t t = 0; t < N_TYPE_NAMES; t++)
                if (strcmp(names[i], type_names[t]) == 0)
                    bits |= 1u << t;
        return bits;
    }
    /* Without "type", the branches of anyOf/oneOf say what is allowed. */
    static const char *const branch_kws[] = {"anyOf", "oneOf"};
    for (size_t k = 0; k < 2; k++)
        if (kw_get(schema, branch_kws[k], &list) && json_object_is_type(list, json_type_array))
            for (size_t i = 0; i < json_object_array_length(list); i++)
                bits |= type_bits(json_object_array_get_idx(list, i));
    return bits;
}

/* A decimal number as YAML or JSON writes it: no hex, inf or nan, which strtod would take. */
static int parse_number(const char *s, double *out)
{
    const char *p = s;
    int digits = 0;
    if (*p == '-' || *p == '+')
        p++;
    for (; *p; p++) {
        if (isdigit((unsigned char)*p))
            digits++;
        else if (!strchr(".eE+-", *p))
            return 0;
    }
    if (!digits)
        return 0;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(d))
        return 0;
    *out = d;
    return 1;
}

static int parse_integer(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!*p)
        return 0;
    for (; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno == ERANGE)
        return 0;
    *out = v;
    return 1;
}

json_object *schema_coerce(json_object *schema, const char *key, const char *text,
                           struct mls_err *err)
{
    json_object *prop = property_schema(schema, key), *result = NULL;
    /* null is left out: a NULL return means "does not convert" here. */
    unsigned bits = prop ? type_bits(prop) & ~(unsigned)T_NULL : 0;
    const char *names[N_TYPE_NAMES];
    size_t n = 0;
    int64_t i;
    double d;
    /* An undeclared key may be a ${var.NAME} rather than an input: it stays a string. */
    if (bits == 0 || bits == T_STRING)
        return json_object_new_string(text);
    if ((bits & T_BOOLEAN) && (strcasecmp(text, "true") == 0 || strcasecmp(text, "false") == 0))
        return json_object_new_boolean(strcasecmp(text, "true") == 0);
    if ((bits & (T_INTEGER | T_NUMBER)) && parse_integer(text, &i))
        return json_object_new_int64(i);
    if ((bits & T_NUMBER) && parse_number(text, &d))
        return json_object_new_double(d);
    if ((bits & T_INTEGER) && parse_number(text, &d) && d == trunc(d) && fabs(d) < 9.2e18)
        return json_object_new_int64((int64_t)d);
    if ((bits & (T_OBJECT | T_ARRAY)) && (text[0] == '{' || text[0] == '[')) {
        result = json_tokener_parse(text);
        if (((bits & T_OBJECT) && json_object_is_type(result, json_type_object)) ||
            ((bits & T_ARRAY) && json_object_is_type(result, json_type_array)))
            return result;
        json_object_put(result);
    }
    if (bits & T_STRING)
        return json_object_new_string(text);

    for (size_t t = 0; t < N_TYPE_NAMES; t++)
        if (bits & (1u << t))
            names[n++] = type_names[t];
    struct buf want, got;
    buf_init(&want);
    buf_init(&got);
    put_type_names(&want, names, n);
    put_quoted(&got, text, strlen(text));
    err_set(err, MLSTAGE_EINPUT, "--set %s: expected %s%s, got %s", key, str_of(&want),
            (bits & (T_OBJECT | T_ARRAY)) ? " (as JSON)" : "", str_of(&got));
    buf_free(&want);
    buf_free(&got);
    return NULL;
}
