/* plugin.h — the versioned descriptor a stage plugin exports to the host. */
#ifndef MLSTAGE_PLUGIN_H
#define MLSTAGE_PLUGIN_H

#include <stdint.h>

#include <mlstage/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Bumped whenever struct mlstage_plugin or the meaning of a context call
 * changes incompatibly. The host refuses a plugin built against another
 * version (exit 3) rather than guess.
 */
#define MLSTAGE_ABI_VERSION 1u

struct mlstage_ctx;

struct mlstage_plugin {
    uint32_t abi_version; /* MLSTAGE_ABI_VERSION */
    const char *name;     /* "register": must match the file name */
    const char *version;  /* the plugin's own semver */
    const char *summary;  /* one line for `mlstage plugins` */
    /*
     * JSON Schema of the manifest's `inputs` mapping: an object schema with
     * properties (type, enum, default, minimum, maximum, description,
     * nested properties/items), required and additionalProperties. The core
     * validates and applies defaults before run() is called.
     */
    const char *input_schema;
    /*
     * Does the stage's work. Returns 0, or a negative MLSTAGE_E* code with
     * the detail set by mlstage_error_set(). Runs in a child process: a
     * crash or a hang cannot take the agent down.
     */
    int (*run)(struct mlstage_ctx *ctx);
};

/* The one symbol a plugin exports. */
#define MLSTAGE_PLUGIN_ENTRY "mlstage_plugin_init"
typedef const struct mlstage_plugin *(*mlstage_plugin_init_fn)(void);

/*
 * Declares the entry point of a plugin whose descriptor is `desc`:
 *
 *     static const struct mlstage_plugin train_plugin = { ... };
 *     MLSTAGE_PLUGIN_DEFINE(train_plugin)
 */
#define MLSTAGE_PLUGIN_DEFINE(desc)                                                                \
    MLSTAGE_API const struct mlstage_plugin *mlstage_plugin_init(void);                            \
    MLSTAGE_API const struct mlstage_plugin *mlstage_plugin_init(void)                             \
    {                                                                                              \
        return &(desc);                                                                            \
    }

#ifdef __cplusplus
}
#endif
#endif
