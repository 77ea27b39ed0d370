/* infra_bicep_params.c — parameter values from the file and the manifest, checked the way
 * Resource Manager checks them, every problem reported. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "infra_bicep.h"

/* Where a value came from, for messages that name the file and line. */
struct origin {
    const char *file; /* the parameter file or the manifest */
    int line, col;    /* 0 when not known */
    const char *what; /* "" or "inputs.parameter_values: " */
};

/* One value given for a declared parameter; the last source wins. */
struct given {
    const char *name;   /* the template's spelling; borrowed from the template */
    json_object *decl;  /* borrowed */
    json_object *entry; /* {"value": ...} or {"reference": ...}; owned */
    struct origin at;
};

struct binding {
    struct mlstage_ctx *ctx;
    const struct infra_template *tmpl;
    const char *template_shown;
    struct infra_problems pr;
    struct given *given;
    size_t n_given;
    char *text;                  /* the parameter file's bytes, for line numbers; owned */
    int params_line, params_col; /* where its "parameters" member is */
    int out_of_memory;
};

static const char *decl_type(json_object *decl)
{
    json_object *t = infra_get_ci(decl, "type");
    return t && json_object_is_type(t, json_type_string) ? json_object_get_string(t) : NULL;
}

/* The declared names, "a, b, c", for "did you mean" style help. */
static void declared_names(const struct infra_template *tmpl, char *out, size_t size)
{
    json_object *params = infra_get_ci(tmpl->doc, "parameters");
    size_t used = 0;
    out[0] = '\0';
    if (!json_object_is_type(params, json_type_object))
        return;
    json_object_object_foreach(params, key, decl)
    {
        (void)decl;
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", key);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
    }
}

static void unknown_parameter(struct binding *b, const struct origin *at, const char *name)
{
    char names[1024];
    declared_names(b->tmpl, names, sizeof(names));
    infra_problem(&b->pr, at->file, at->line, at->col, name,
                  "%sparameter '%s' is not declared by %s, which declares: %s", at->what, name,
                  b->template_shown, names[0] ? names : "no parameters");
}

/* Records a value for `name`, replacing an earlier one (the manifest overrides the file). */
static void give(struct binding *b, const char *name, json_object *entry, const struct origin *at)
{
    const char *declared = NULL;
    json_object *decl = infra_template_param(b->tmpl, name, &declared);
    if (!decl) {
        unknown_parameter(b, at, name);
        json_object_put(entry);
        return;
    }
    for (size_t i = 0; i < b->n_given; i++) {
        if (strcmp(b->given[i].name, declared) == 0) {
            json_object_put(b->given[i].entry);
            b->given[i].entry = entry;
            b->given[i].at = *at;
            return;
        }
    }
    struct given *grown = realloc(b->given, (b->n_given + 1) * sizeof(*grown));
    if (!grown) {
        b->out_of_memory = 1;
        json_object_put(entry);
        return;
    }
    b->given = grown;
    b->given[b->n_given++] = (struct given){declared, decl, entry, *at};
}

/* ---- the parameter file ----------------------------------------------------- */

static int read_file(struct binding *b, const char *shown, const char *path)
{
    json_object *doc = NULL, *params;
    int rc = infra_json_parse(b->ctx, shown, path, &b->text, &doc);
    const char *text = b->text;
    if (rc)
        goto done;
    if (!json_object_is_type(doc, json_type_object)) {
        infra_problem(&b->pr, shown, 1, 1, "parameters",
                      "a parameter file is a JSON object: {\"$schema\", \"contentVersion\", "
                      "\"parameters\": {\"name\": {\"value\": ...}}}");
        goto done;
    }
    params = infra_get_ci(doc, "parameters");
    if (!json_object_is_type(params, json_type_object)) {
        infra_problem(&b->pr, shown, infra_find_key(text, NULL, "parameters", NULL), 0,
                      "parameters",
                      "no \"parameters\" object: a parameter file is {\"$schema\", "
                      "\"contentVersion\", \"parameters\": {\"name\": {\"value\": ...}}}");
        goto done;
    }
    b->params_line = infra_find_key(text, NULL, "parameters", &b->params_col);
    if (!infra_get_ci(doc, "$schema") || !infra_get_ci(doc, "contentVersion"))
        mlstage_log_issue(b->ctx, MLSTAGE_LOG_WARN, shown, 1, 1,
                          "no \"$schema\" or \"contentVersion\": expected a deployment parameter "
                          "file (https://schema.management.azure.com/schemas/2019-04-01/"
                          "deploymentParameters.json#)");
    json_object_object_foreach(params, name, entry)
    {
        struct origin at = {shown, 0, 0, ""};
        at.line = infra_find_key(text, "parameters", name, &at.col);
        if (!json_object_is_type(entry, json_type_object) ||
            (!infra_has_ci(entry, "value") && !infra_has_ci(entry, "reference"))) {
            /* Still unknown names first: that is the more useful thing to say. */
            if (!infra_template_param(b->tmpl, name, NULL))
                unknown_parameter(b, &at, name);
            else
                infra_problem(&b->pr, shown, at.line, at.col, name,
                              "parameter '%s' must be written {\"value\": ...} (or a Key Vault "
                              "{\"reference\": ...}), not a bare value",
                              name);
            continue;
        }
        give(b, name, json_object_get(entry), &at);
    }
done:
    json_object_put(doc);
    return rc;
}

/* ---- checking one value ----------------------------------------------------- */

/* How ARM names the JSON type of a value (its JToken type). */
static const char *jtoken(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string: return "String";
    case json_type_int: return "Integer";
    case json_type_double: return "Float";
    case json_type_boolean: return "Boolean";
    case json_type_object: return "Object";
    case json_type_array: return "Array";
    default: return "Null";
    }
}

static const char *article(const char *jtoken_name)
{
    return strchr("AEIOU", jtoken_name[0]) ? "an" : "a";
}

static const char *wanted_jtoken(const char *arm_type)
{
    if (strcasecmp(arm_type, "string") == 0 || strcasecmp(arm_type, "securestring") == 0)
        return "String";
    if (strcasecmp(arm_type, "int") == 0)
        return "Integer";
    if (strcasecmp(arm_type, "bool") == 0)
        return "Boolean";
    if (strcasecmp(arm_type, "array") == 0)
        return "Array";
    return "Object";
}

/* A value quoted for a message, or a stand-in when it is secret. */
static void quote(json_object *v, int secure, char *out, size_t size)
{
    if (secure) {
        snprintf(out, size, "(a secure value)");
        return;
    }
    const char *text =
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (strlen(text) + 1 > size && size > 4)
        snprintf(out, size, "%.*s...", (int)(size - 4), text);
    else
        snprintf(out, size, "%s", text);
}

/* UTF-8 characters, which is what a person counts (ARM counts UTF-16 units: equal for BMP). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

/* allowedValues membership as ARM does it: strings without regard to case. *case_differs. */
static int allowed(json_object *list, json_object *v, int *case_differs)
{
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *a = json_object_array_get_idx(list, i);
        if (json_object_is_type(a, json_type_string) && json_object_is_type(v, json_type_string)) {
            if (strcmp(json_object_get_string(a), json_object_get_string(v)) == 0)
                return 1;
            if (strcasecmp(json_object_get_string(a), json_object_get_string(v)) == 0) {
                *case_differs = 1;
                return 1;
            }
        } else if (json_object_equal(a, v)) {
            return 1;
        }
    }
    return 0;
}

static int bound_of(json_object *decl, const char *key, int64_t *out)
{
    json_object *v = infra_get_ci(decl, key);
    if (!v || !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
        return 0;
    *out = json_object_get_int64(v);
    return 1;
}

static void check_value(struct binding *b, const struct given *g, json_object *v)
{
    const char *type = decl_type(g->decl), *name = g->name, *file = g->at.file;
    const char *what = g->at.what;
    int secure = infra_type_is_secure(type), line = g->at.line, col = g->at.col, case_differs = 0;
    json_object *list, *nullable = infra_get_ci(g->decl, "nullable");
    char shown[96];
    int64_t bound;
    if (!type)
        return; /* a user-defined type ($ref): Resource Manager checks it */
    quote(v, secure, shown, sizeof(shown));
    if (json_object_is_type(v, json_type_null)) {
        if (!json_object_get_boolean(nullable))
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s' is null, but it is a %s that is not nullable", what,
                          name, type);
        return;
    }
    const char *want = wanted_jtoken(type), *got = jtoken(v);
    if (strcmp(want, got) != 0) {
        infra_problem(&b->pr, file, line, col, name,
                      "%sparameter '%s' is declared %s, so its value must be %s %s, but %s is "
                      "%s %s",
                      what, name, type, article(want), want, shown, article(got), got);
        return;
    }
    if ((list = infra_get_ci(g->decl, "allowedValues")) &&
        json_object_is_type(list, json_type_array)) {
        char allowed_text[512];
        quote(list, 0, allowed_text, sizeof(allowed_text));
        if (json_object_is_type(v, json_type_array)) {
            /* Each element of an array parameter must be one of the allowed values. */
            for (size_t i = 0; i < json_object_array_length(v); i++) {
                json_object *item = json_object_array_get_idx(v, i);
                if (!allowed(list, item, &case_differs)) {
                    char item_text[96];
                    quote(item, secure, item_text, sizeof(item_text));
                    infra_problem(&b->pr, file, line, col, name,
                                  "%sparameter '%s': item %zu, %s, is not one of the allowed "
                                  "values %s",
                                  what, name, i, item_text, allowed_text);
                }
            }
        } else if (!allowed(list, v, &case_differs)) {
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s': %s is not one of the allowed values %s", what, name,
                          shown, secure ? "(not shown: the parameter is secure)" : allowed_text);
        }
        if (case_differs)
            mlstage_log_issue(b->ctx, MLSTAGE_LOG_WARN, file, line, col,
                              "%sparameter '%s': %s matches an allowed value only when case is "
                              "ignored; Resource Manager accepts it, Bicep's @allowed would not",
                              what, name, shown);
    }
    if (json_object_is_type(v, json_type_string) || json_object_is_type(v, json_type_array)) {
        int is_array = json_object_is_type(v, json_type_array);
        size_t len = is_array ? json_object_array_length(v) : utf8_chars(json_object_get_string(v));
        const char *unit = is_array ? "items" : "characters";
        if (bound_of(g->decl, "minLength", &bound) && (int64_t)len < bound)
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s': %s is too short: %zu %s, minLength is %" PRId64, what,
                          name, shown, len, unit, bound);
        if (bound_of(g->decl, "maxLength", &bound) && (int64_t)len > bound)
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s': %s is too long: %zu %s, maxLength is %" PRId64, what,
                          name, shown, len, unit, bound);
    }
    if (json_object_is_type(v, json_type_int)) {
        int64_t n = json_object_get_int64(v);
        if (bound_of(g->decl, "minValue", &bound) && n < bound)
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s': %s is out of range: minValue is %" PRId64, what, name,
                          shown, bound);
        if (bound_of(g->decl, "maxValue", &bound) && n > bound)
            infra_problem(&b->pr, file, line, col, name,
                          "%sparameter '%s': %s is out of range: maxValue is %" PRId64, what, name,
                          shown, bound);
    }
}

/* Every string in a secure value becomes a secret, before anything can print it. */
static void register_secrets(struct mlstage_ctx *ctx, json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string: mlstage_secret_register(ctx, json_object_get_string(v)); break;
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++)
            register_secrets(ctx, json_object_array_get_idx(v, i));
        break;
    case json_type_object: {
        json_object_object_foreach(v, key, item)
        {
            (void)key;
            register_secrets(ctx, item);
        }
        mlstage_secret_register(ctx,
                                json_object_to_json_string_ext(
                                    v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        break;
    }
    default: break;
    }
}

/* ---- binding ------------------------------------------------------------------ */

int infra_params_bind(struct mlstage_ctx *ctx, struct infra_job *job, const char *params_path,
                      json_object *values)
{
    struct binding b = {.ctx = ctx, .tmpl = &job->tmpl, .pr = {.ctx = ctx}};
    const char *manifest = mlstage_manifest_path(ctx);
    json_object *decls = infra_get_ci(job->tmpl.doc, "parameters");
    int rc = 0;
    b.template_shown = mlstage_input_string(ctx, "template", job->tmpl.path);
    if (params_path) {
        if (!(job->parameters_path = infra_resolve(ctx, params_path)))
            return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        if ((rc = read_file(&b, params_path, job->parameters_path)) != 0)
            goto done;
    }
    if (json_object_is_type(values, json_type_object)) {
        json_object_object_foreach(values, name, value)
        {
            json_object *entry = json_object_new_object();
            json_object_object_add(entry, "value", json_object_get(value));
            struct origin at = {manifest, 0, 0, "inputs.parameter_values: "};
            give(&b, name, entry, &at);
        }
    }
    if (b.out_of_memory) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    /* Secrets first: a problem message below must never be the first to print one. */
    for (size_t i = 0; i < b.n_given; i++)
        if (infra_type_is_secure(decl_type(b.given[i].decl)))
            register_secrets(ctx, infra_get_ci(b.given[i].entry, "value"));
    for (size_t i = 0; i < b.n_given; i++) {
        if (infra_has_ci(b.given[i].entry, "value"))
            check_value(&b, &b.given[i], infra_get_ci(b.given[i].entry, "value"));
    }
    job->parameters = json_object_new_object();
    if (json_object_is_type(decls, json_type_object)) {
        json_object_object_foreach(decls, name, decl)
        {
            size_t i = 0;
            while (i < b.n_given && strcmp(b.given[i].name, name) != 0)
                i++;
            if (i < b.n_given) {
                json_object_object_add(job->parameters, name, json_object_get(b.given[i].entry));
                continue;
            }
            if (!json_object_is_type(decl, json_type_object) ||
                infra_has_ci(decl, "defaultValue") ||
                json_object_get_boolean(infra_get_ci(decl, "nullable")) ||
                infra_problems_about(&b.pr, name))
                continue;
            if (params_path)
                infra_problem(&b.pr, params_path, b.params_line, b.params_col, name,
                              "parameter '%s' has no value: %s does not give it, nor does "
                              "inputs.parameter_values, and %s declares no defaultValue",
                              name, params_path, b.template_shown);
            else
                infra_problem(&b.pr, manifest, 0, 0, name,
                              "parameter '%s' has no value: give it in inputs.parameter_values or "
                              "in a parameter file (inputs.parameters); %s declares no "
                              "defaultValue",
                              name, b.template_shown);
        }
    }
    rc = infra_problems_finish(&b.pr, "parameters", b.template_shown);
done:
    free(b.pr.subjects);
    free(b.text);
    for (size_t i = 0; i < b.n_given; i++)
        json_object_put(b.given[i].entry);
    free(b.given);
    return rc;
}
