/* models.c — `mlstage models list|show`: the local registry from the command line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mlstage/error.h>
#include <mlstage/registry.h>

#include "cli_internal.h"
#include "ctx.h"
#include "log.h"

static const char *str_of(json_object *o, const char *key, const char *dflt)
{
    json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, key, &v) || !v)
        return dflt;
    return json_object_get_string(v);
}

/* "rmse=54.01 r2=0.449" from a metrics object, numbers rounded for a table. */
static void metrics_line(json_object *metrics, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    if (!metrics)
        return;
    json_object_object_foreach(metrics, key, val)
    {
        if (used >= size)
            break;
        json_type t = json_object_get_type(val);
        int n = t == json_type_double || t == json_type_int
                    ? snprintf(out + used, size - used, "%s%s=%.4g", used ? " " : "", key,
                               json_object_get_double(val))
                    : 0;
        if (n > 0)
            used += (size_t)n < size - used ? (size_t)n : size - used;
    }
}

static void print_version_row(json_object *v)
{
    json_object *aliases = NULL, *metrics = NULL, *tags = NULL;
    json_object_object_get_ex(v, "aliases", &aliases);
    json_object_object_get_ex(v, "metrics", &metrics);
    json_object_object_get_ex(v, "tags", &tags);
    char al[256] = "", ml[256];
    size_t used = 0;
    for (size_t i = 0; i < json_object_array_length(aliases) && used < sizeof(al); i++)
        used += (size_t)snprintf(al + used, sizeof(al) - used, "%s%s", i ? "," : "",
                                 json_object_get_string(json_object_array_get_idx(aliases, i)));
    metrics_line(metrics, ml, sizeof(ml));
    printf("%-20s %-4s %-24s %-12.12s %-8.8s %-16s %s\n", str_of(v, "name", "?"),
           str_of(v, "version", "?"), str_of(v, "created", ""), str_of(v, "digest", ""),
           str_of(tags, "mlstage.commit", ""), al[0] ? al : "-", ml);
}

static int show(struct cli_opts *o, struct mlstage_registry *reg, const char *spec)
{
    char name[128];
    const char *ref = NULL;
    const char *sep = strpbrk(spec, ":@");
    snprintf(name, sizeof(name), "%.*s", sep ? (int)(sep - spec) : (int)strlen(spec), spec);
    if (sep)
        ref = sep + 1;
    json_object *doc = NULL;
    int rc = mlstage_registry_get(reg, name, ref, &doc);
    if (rc)
        return rc;
    if (o->json) {
        cli_print_json(doc);
    } else {
        json_object *files = NULL, *tags = NULL, *metrics = NULL, *params = NULL;
        json_object_object_get_ex(doc, "files", &files);
        json_object_object_get_ex(doc, "tags", &tags);
        json_object_object_get_ex(doc, "metrics", &metrics);
        json_object_object_get_ex(doc, "params", &params);
        printf("model    %s version %s\n", str_of(doc, "name", "?"), str_of(doc, "version", "?"));
        printf("created  %s by run %s\n", str_of(doc, "created", "?"), str_of(doc, "run_id", "?"));
        printf("digest   sha256:%s\n", str_of(doc, "digest", "?"));
        printf("path     %s\n", str_of(doc, "path", "?"));
        printf("aliases  %s\n",
               json_object_to_json_string_ext(json_object_object_get(doc, "aliases"),
                                              JSON_C_TO_STRING_PLAIN));
        printf("metrics  %s\n", json_object_to_json_string_ext(metrics, JSON_C_TO_STRING_PLAIN));
        printf("params   %s\n", json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN));
        printf("tags\n");
        json_object_object_foreach(tags, key, val)
        {
            printf("  %-22s %s\n", key, json_object_get_string(val));
        }
        printf("files\n");
        for (size_t i = 0; i < json_object_array_length(files); i++) {
            json_object *f = json_object_array_get_idx(files, i);
            printf("  %s  %10s  %s\n", str_of(f, "sha256", "?"), str_of(f, "size", "?"),
                   str_of(f, "path", "?"));
        }
    }
    json_object_put(doc);
    return 0;
}

static int list(struct cli_opts *o, struct mlstage_registry *reg, const char *name)
{
    json_object *doc = NULL;
    int rc = mlstage_registry_list(reg, name, &doc);
    if (rc)
        return rc;
    if (o->json) {
        cli_print_json(doc);
        json_object_put(doc);
        return 0;
    }
    printf("%-20s %-4s %-24s %-12s %-8s %-16s %s\n", "MODEL", "VER", "CREATED", "DIGEST", "COMMIT",
           "ALIASES", "METRICS");
    if (name) {
        for (size_t i = 0; i < json_object_array_length(doc); i++)
            print_version_row(json_object_array_get_idx(doc, i));
    } else {
        json_object_object_foreach(doc, model, versions)
        {
            (void)model;
            for (size_t i = 0; i < json_object_array_length(versions); i++)
                print_version_row(json_object_array_get_idx(versions, i));
        }
    }
    json_object_put(doc);
    return 0;
}

int cli_cmd_models(int argc, char **argv)
{
    struct cli_opts o = {0};
    int rc = cli_parse_opts(argc, argv, "models", &o);
    if (rc) {
        cli_free_opts(&o);
        return rc < 0 ? 0 : rc;
    }
    int ok_usage = o.n_args >= 1 && ((strcmp(o.args[0], "list") == 0 && o.n_args <= 2) ||
                                     (strcmp(o.args[0], "show") == 0 && o.n_args == 2));
    if (!ok_usage) {
        cli_free_opts(&o);
        fprintf(stderr, "mlstage: usage: mlstage models list [NAME] | models show "
                        "NAME[:VERSION|@ALIAS]\nTry 'mlstage models --help'.\n");
        return 2;
    }
    if ((rc = cli_resolve_workspace(&o)) != 0) {
        cli_free_opts(&o);
        return rc;
    }
    struct mlstage_ctx *ctx = ctx_new();
    ctx->workspace_dir = xstrdup(o.workspace_abs);
    struct mlstage_registry *reg = NULL;
    rc = mlstage_registry_open(ctx, &reg);
    if (rc == 0)
        rc = strcmp(o.args[0], "list") == 0 ? list(&o, reg, o.n_args == 2 ? o.args[1] : NULL)
                                            : show(&o, reg, o.args[1]);
    if (rc)
        cli_fail(&o, rc, mlstage_error_message(ctx));
    mlstage_registry_close(reg);
    ctx_free(ctx);
    cli_free_opts(&o);
    return mlstage_exit_code(rc);
}
