/* plugin_input.h — reading a stage plugin's inputs the way its manifests write them.
 * Compiled into each plugin that uses it. */
#ifndef MLSTAGE_PLUGIN_INPUT_H
#define MLSTAGE_PLUGIN_INPUT_H

#include <mlstage/mlstage.h>

/*
 * An optional string input: NULL when absent, null or empty, since an
 * unset ${var.x:-} expands to "" and `--set x=` is how a caller clears one.
 */
const char *plugin_input_optional(struct mlstage_ctx *ctx, const char *key);

#endif
