/* register.h — what the register stage asks of a backend, and the table each backend fills. */
#ifndef MLSTAGE_PLUGIN_REGISTER_H
#define MLSTAGE_PLUGIN_REGISTER_H

#include <mlstage/mlstage.h>

/* The validated inputs, in the shape every backend works from. All borrowed. */
struct register_request {
    const char *model;
    const char *model_dir;   /* a folder (taken recursively) or one file; or NULL */
    const char *model_uri;   /* files already in the remote registry's storage; or NULL */
    json_object *metrics;    /* object, or NULL */
    json_object *params;     /* object, or NULL */
    json_object *tags;       /* object of strings (never NULL); provenance tags are added */
    const char *alias;       /* or NULL */
    const char *description; /* or NULL */
};

/* What a backend reports back; register_result_free releases it. */
struct register_result {
    json_object *doc; /* the version's record (model.json or the service's), owned */
    int version;
    int existed; /* the same digest (or model_uri) was already registered: nothing was written */
    int planned; /* dry run: the version does not exist yet, it would be created */
    int alias_previous;                      /* the version the alias pointed at before, or 0 */
    char digest[MLSTAGE_SHA256_HEX_LEN + 1]; /* "" for a model_uri: its files were not read */
    char *uri;  /* where the version can be referred to from elsewhere, owned */
    char *path; /* where the version's files are, owned */
    char *id;   /* the version's resource id in a remote registry, owned; NULL locally */
};

/*
 * One backend: a small table the plugin's run() picks by the context's
 * backend name. Each function returns 0 or a negative MLSTAGE_E* code with
 * the detail in the context's error slot, and honours the dry-run flag.
 */
struct register_backend {
    const char *name;
    /* Whether it can register req->model_uri (files already where the registry keeps them). */
    int takes_model_uri;
    /* Creates the version, or finds the one with the same digest (res->existed). */
    int (*create_version)(struct mlstage_ctx *ctx, const struct register_request *req,
                          struct register_result *res);
    /* Points req->alias at res->version; sets res->alias_previous. */
    int (*set_alias)(struct mlstage_ctx *ctx, const struct register_request *req,
                     struct register_result *res);
};

extern const struct register_backend register_local_backend;
extern const struct register_backend register_azureml_backend;

void register_result_free(struct register_result *res);

#endif
