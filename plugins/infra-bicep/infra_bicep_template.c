/* infra_bicep_template.c — the template: read (or compiled from Bicep), checked for shape, and
 * described. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "infra_bicep.h"

/* ARM's parameter (and output) types; the template may spell them in any case. */
static const char *const arm_types[] = {"string", "securestring", "int",  "bool",
                                        "object", "secureobject", "array"};
#define N_ARM_TYPES (sizeof(arm_types) / sizeof(arm_types[0]))

/* The members a deployment template may have at the top level (deploymentTemplate.json). */
static const char *const template_members[] = {
    "$schema",         "contentVersion", "apiProfile", "parameters", "variables",
    "functions",       "resources",      "outputs",    "metadata",   "definitions",
    "languageVersion", "imports",        "extensions"};
#define N_TEMPLATE_MEMBERS (sizeof(template_members) / sizeof(template_members[0]))

int infra_type_is_secure(const char *arm_type)
{
    return arm_type &&
           (strcasecmp(arm_type, "securestring") == 0 || strcasecmp(arm_type, "secureobject") == 0);
}

int infra_type_known(const char *arm_type)
{
    for (size_t i = 0; arm_type && i < N_ARM_TYPES; i++)
        if (strcasecmp(arm_type, arm_types[i]) == 0)
            return 1;
    return 0;
}

void infra_template_free(struct infra_template *tmpl)
{
    if (!tmpl)
        return;
    free(tmpl->path);
    free(tmpl->compiled_with);
    free(tmpl->compiled_path);
    json_object_put(tmpl->doc);
    memset(tmpl, 0, sizeof(*tmpl));
}

json_object *infra_template_param(const struct infra_template *tmpl, const char *name,
                                  const char **declared_name)
{
    json_object *params = infra_get_ci(tmpl->doc, "parameters");
    if (!params || !json_object_is_type(params, json_type_object))
        return NULL;
    json_object_object_foreach(params, key, decl)
    {
        if (strcasecmp(key, name) == 0) {
            if (declared_name)
                *declared_name = key;
            return decl;
        }
    }
    return NULL;
}

/* ---- compiling Bicep ------------------------------------------------------ */

/* The first line a compile script prints names the compiler it found. */
#define COMPILER_MARK "@infra-bicep-compiler "

/*
 * Runs in /bin/sh so that PATH is searched in the run's own environment and so that the
 * compiler's stdout (the JSON) goes to a file while its stderr (warnings) stays in the log.
 */
static const char compile_script[] =
    "if command -v bicep >/dev/null 2>&1; then\n"
    "  echo '" COMPILER_MARK "bicep'\n"
    "  exec bicep build --stdout \"$INFRA_BICEP_FILE\" >\"$INFRA_BICEP_OUT\"\n"
    "elif command -v az >/dev/null 2>&1; then\n"
    "  echo '" COMPILER_MARK "az bicep'\n"
    "  exec az bicep build --stdout --file \"$INFRA_BICEP_FILE\" >\"$INFRA_BICEP_OUT\"\n"
    "fi\n"
    "exit 127\n";

struct compile_state {
    struct mlstage_ctx *ctx;
    char *compiler;
    char *last; /* the last non-empty line of output: usually the reason it failed */
};

static void compile_line(void *userdata, const char *line)
{
    struct compile_state *st = userdata;
    if (!st->compiler && strncmp(line, COMPILER_MARK, strlen(COMPILER_MARK)) == 0) {
        st->compiler = strdup(line + strlen(COMPILER_MARK));
        return;
    }
    mlstage_info(st->ctx, "%s", line);
    if (*line) {
        free(st->last);
        st->last = strdup(line);
    }
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

/* "dir/main.bicep" -> "dir/main.json", the prebuilt template a Bicep file is shipped with. */
static char *json_beside(const char *bicep_path)
{
    size_t stem = strlen(bicep_path) - strlen(".bicep");
    char *out = NULL;
    if (asprintf(&out, "%.*s.json", (int)stem, bicep_path) < 0)
        return NULL;
    return out;
}

/* Compiles `resolved` (shown as `shown`) into the run's outputs; *out_path: the JSON file. */
static int compile_bicep(struct mlstage_ctx *ctx, const char *shown, const char *resolved,
                         struct infra_template *tmpl, char **out_path)
{
    const char *base = strrchr(resolved, '/') ? strrchr(resolved, '/') + 1 : resolved;
    char *json_path = NULL, *env_file = NULL, *env_out = NULL, *prebuilt = NULL;
    struct compile_state st = {ctx, NULL, NULL};
    struct mlstage_proc_result res = {0};
    struct stat sb;
    int rc;
    *out_path = NULL;
    if (asprintf(&json_path, "%s/%.*s.json", mlstage_outputs_dir(ctx),
                 (int)(strlen(base) - strlen(".bicep")), base) < 0 ||
        asprintf(&env_file, "INFRA_BICEP_FILE=%s", resolved) < 0 ||
        asprintf(&env_out, "INFRA_BICEP_OUT=%s", json_path) < 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    const char *env[] = {env_file, env_out, NULL};
    struct mlstage_proc_opts opts = {
        .shell = compile_script,
        .env = env,
        .quiet = 1,
        .timeout_s = 300,
        .on_line = compile_line,
        .userdata = &st,
    };
    if ((rc = mlstage_proc_run(ctx, &opts, &res)) != 0)
        goto done;
    if (!st.compiler) {
        prebuilt = json_beside(shown);
        char *prebuilt_resolved = json_beside(resolved);
        int have = prebuilt_resolved && stat(prebuilt_resolved, &sb) == 0;
        free(prebuilt_resolved);
        if (have)
            rc = mlstage_error_set(
                ctx, MLSTAGE_EINPUT,
                "inputs.template: cannot compile %s: neither bicep nor az is on PATH. Set "
                "template: %s (the prebuilt ARM template beside it), or install the Bicep CLI",
                shown, prebuilt ? prebuilt : "the .json beside it");
        else
            rc = mlstage_error_set(
                ctx, MLSTAGE_EINPUT,
                "inputs.template: cannot compile %s: neither bicep nor az is on PATH, and there "
                "is no prebuilt %s beside it. Install the Bicep CLI, or build the ARM template "
                "elsewhere (bicep build %s) and point template: at it",
                shown, prebuilt ? prebuilt : "ARM template", shown);
        goto done;
    }
    if (res.exit_code != 0) {
        /* Its output was streamed above; the error repeats only the last line, the reason. */
        prebuilt = json_beside(shown);
        char *prebuilt_resolved = json_beside(resolved);
        int have = prebuilt_resolved && stat(prebuilt_resolved, &sb) == 0;
        free(prebuilt_resolved);
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT,
                               "inputs.template: %s build of %s failed (%s %d)%s%s%s%s%s",
                               st.compiler, shown, res.signal ? "signal" : "exit status",
                               res.signal ? res.signal : res.exit_code, st.last ? ": " : "",
                               st.last ? st.last : "", have ? "; the prebuilt ARM template " : "",
                               have ? prebuilt : "", have ? " beside it needs no compiler" : "");
        goto done;
    }
    mlstage_info(ctx, "compiled %s with %s build --stdout", shown, st.compiler);
    tmpl->compiled_with = st.compiler;
    st.compiler = NULL;
    *out_path = json_path;
    json_path = NULL;
done:
    mlstage_proc_result_free(&res);
    free(st.compiler);
    free(st.last);
    free(json_path);
    free(env_file);
    free(env_out);
    free(prebuilt);
    return rc;
}

/* ---- reading and checking ------------------------------------------------- */

int infra_json_parse(struct mlstage_ctx *ctx, const char *shown, const char *path, char **text,
                     json_object **doc)
{
    size_t len = 0;
    json_tokener *tok = NULL;
    int rc = mlstage_file_read(path, 0, text, &len);
    *doc = NULL;
    if (rc == MLSTAGE_ENOTFOUND)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s does not exist", shown);
    if (rc)
        return mlstage_error_set(ctx, MLSTAGE_EINPUT, "cannot read %s", shown);
    if (!(tok = json_tokener_new_ex(128)))
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    /* A UTF-8 byte order mark is what editors on Windows leave; ARM accepts it. */
    size_t skip = len >= 3 && memcmp(*text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    *doc = json_tokener_parse_ex(tok, *text + skip, (int)(len - skip));
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = skip + json_tokener_get_parse_end(tok);
    while (*doc && jerr == json_tokener_success && end < len &&
           isspace((unsigned char)(*text)[end]))
        end++;
    if (!*doc || jerr != json_tokener_success || end < len) {
        const char *why = jerr == json_tokener_continue  ? "the file ends inside an object or array"
                          : jerr != json_tokener_success ? json_tokener_error_desc(jerr)
                                                         : "unexpected text after the document";
        int line = 1, col = 1;
        for (size_t i = 0; i < end && i < len; i++, col++)
            if ((*text)[i] == '\n')
                line++, col = 0;
        json_object_put(*doc);
        *doc = NULL;
        mlstage_log_issue(ctx, MLSTAGE_LOG_ERROR, shown, line, col, "not valid JSON: %s", why);
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "%s is not valid JSON (line %d, column %d)",
                               shown, line, col);
    }
    json_tokener_free(tok);
    return rc;
}

/* The shape ARM insists on, every problem reported. */
static void check_shape(struct infra_problems *pr, const char *shown, const char *text,
                        json_object *doc)
{
    json_object *v;
    int col = 0;
    if (!json_object_is_type(doc, json_type_object)) {
        infra_problem(pr, shown, 1, 1, "template", "an ARM template is a JSON object");
        return;
    }
    json_object_object_foreach(doc, key, val)
    {
        (void)val;
        size_t i = 0;
        while (i < N_TEMPLATE_MEMBERS && strcasecmp(key, template_members[i]) != 0)
            i++;
        if (i == N_TEMPLATE_MEMBERS)
            infra_problem(pr, shown, infra_find_key(text, NULL, key, &col), col, "template",
                          "unknown top-level member \"%s\" (Resource Manager refuses it)", key);
    }
    if (!(v = infra_get_ci(doc, "$schema")) || !json_object_is_type(v, json_type_string))
        infra_problem(pr, shown, 0, 0, "template",
                      "\"$schema\" is missing: this is not an ARM deployment template");
    if (!(v = infra_get_ci(doc, "contentVersion")) || !json_object_is_type(v, json_type_string))
        infra_problem(pr, shown, 0, 0, "template", "\"contentVersion\" is missing");
    v = infra_get_ci(doc, "resources");
    if (!v ||
        !(json_object_is_type(v, json_type_array) || json_object_is_type(v, json_type_object)))
        infra_problem(pr, shown, 0, 0, "template",
                      "\"resources\" is missing (an array, or an object of symbolic names)");
    v = infra_get_ci(doc, "parameters");
    if (v && !json_object_is_type(v, json_type_object)) {
        infra_problem(pr, shown, infra_find_key(text, NULL, "parameters", NULL), 0, "template",
                      "\"parameters\" must be an object");
        return;
    }
    if (!v)
        return;
    json_object_object_foreach(v, name, decl)
    {
        int line = infra_find_key(text, "parameters", name, &col);
        json_object *type = infra_get_ci(decl, "type");
        if (!json_object_is_type(decl, json_type_object))
            infra_problem(pr, shown, line, col, name, "the declaration must be an object");
        else if (!type && infra_get_ci(decl, "$ref"))
            continue; /* a user-defined type (languageVersion 2.0): ARM checks it */
        else if (!type || !json_object_is_type(type, json_type_string) ||
                 !infra_type_known(json_object_get_string(type)))
            infra_problem(pr, shown, line, col, name,
                          "declared with type %s; ARM's types are string, securestring, int, "
                          "bool, object, secureObject and array",
                          type ? json_object_to_json_string(type) : "(none)");
    }
}

int infra_template_load(struct mlstage_ctx *ctx, const char *path, struct infra_template *out)
{
    char *resolved = infra_resolve(ctx, path), *json_path = NULL, *text = NULL;
    struct infra_problems pr = {.ctx = ctx};
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (!resolved)
        return mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
    struct stat sb;
    if (stat(resolved, &sb) != 0) {
        rc = mlstage_error_set(ctx, MLSTAGE_EINPUT, "inputs.template: %s does not exist%s", path,
                               path[0] == '/' ? "" : " (relative to the workspace)");
        goto done;
    }
    if (ends_with_ci(resolved, ".bicep")) {
        if ((rc = compile_bicep(ctx, path, resolved, out, &json_path)) != 0)
            goto done;
    } else if (!(json_path = strdup(resolved))) {
        rc = mlstage_error_set(ctx, MLSTAGE_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = infra_json_parse(ctx, out->compiled_with ? json_path : path, json_path, &text,
                               &out->doc)) != 0)
        goto done;
    /* Lines of a compiled template would point into the compiler's output, not the Bicep. */
    check_shape(&pr, path, out->compiled_with ? NULL : text, out->doc);
    if ((rc = infra_problems_finish(&pr, "template", path)) != 0)
        goto done;
    const char *compact = json_object_to_json_string_ext(
        out->doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    mlstage_sha256_buf(compact, strlen(compact), out->hash);
    out->path = resolved;
    resolved = NULL;
    if (out->compiled_with) {
        out->compiled_path = json_path;
        json_path = NULL;
    }
done:
    if (rc) {
        json_object_put(out->doc);
        out->doc = NULL;
    }
    free(resolved);
    free(json_path);
    free(text);
    return rc;
}

/* ---- describing ------------------------------------------------------------- */

static const char *str_of(json_object *o)
{
    return o && !json_object_is_type(o, json_type_null) ? json_object_get_string(o) : NULL;
}

/* A child's type relative to its parent ("blobServices") made whole. */
static char *full_type(const char *parent, const char *type)
{
    char *out = NULL;
    if (!parent || strchr(type, '/'))
        return strdup(type);
    if (asprintf(&out, "%s/%s", parent, type) < 0)
        return NULL;
    return out;
}

static void describe(json_object *list, const char *symbol, json_object *res, const char *parent)
{
    if (!json_object_is_type(res, json_type_object))
        return;
    const char *type = str_of(infra_get_ci(res, "type"));
    char *whole = full_type(parent, type ? type : "(no type)");
    json_object *entry = json_object_new_object(), *v;
    if (symbol)
        json_object_object_add(entry, "symbol", json_object_new_string(symbol));
    json_object_object_add(entry, "type", json_object_new_string(whole ? whole : "?"));
    const char *name = str_of(infra_get_ci(res, "name"));
    json_object_object_add(entry, "name", json_object_new_string(name ? name : "(no name)"));
    const char *api = str_of(infra_get_ci(res, "apiVersion"));
    json_object_object_add(entry, "apiVersion", json_object_new_string(api ? api : "(none)"));
    if ((v = infra_get_ci(res, "condition")))
        json_object_object_add(entry, "condition",
                               json_object_new_string(json_object_is_type(v, json_type_string)
                                                          ? json_object_get_string(v)
                                                          : json_object_to_json_string(v)));
    if ((v = infra_get_ci(res, "copy")))
        json_object_object_add(entry, "copy", json_object_get(v));
    if ((v = infra_get_ci(res, "existing")) && json_object_get_boolean(v))
        json_object_object_add(entry, "existing", json_object_new_boolean(1));
    json_object_array_add(list, entry);
    json_object *children = infra_get_ci(res, "resources");
    for (size_t i = 0;
         json_object_is_type(children, json_type_array) && i < json_object_array_length(children);
         i++)
        describe(list, NULL, json_object_array_get_idx(children, i), whole);
    free(whole);
}

json_object *infra_template_resources(const struct infra_template *tmpl)
{
    json_object *list = json_object_new_array();
    json_object *res = infra_get_ci(tmpl->doc, "resources");
    if (json_object_is_type(res, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(res); i++)
            describe(list, NULL, json_object_array_get_idx(res, i), NULL);
    } else if (json_object_is_type(res, json_type_object)) {
        /* languageVersion 2.0: resources keyed by their symbolic names */
        json_object_object_foreach(res, symbol, r)
        {
            describe(list, symbol, r, NULL);
        }
    }
    return list;
}
