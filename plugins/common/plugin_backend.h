/* plugin_backend.h — how a stage plugin picks, by the name the host gives, one of its backend
 * tables. Compiled into each plugin that has backends. */
#ifndef MLSTAGE_PLUGIN_BACKEND_H
#define MLSTAGE_PLUGIN_BACKEND_H

#include <stddef.h>

#include <mlstage/mlstage.h>

/*
 * The name of backend `i` of a plugin's table. Each plugin's table holds its
 * own struct type, so the plugin says where the name is rather than this
 * helper assuming a layout.
 */
typedef const char *(*plugin_backend_name_fn)(size_t i);

/*
 * *index receives the position, among a plugin's `count` backends, of the
 * one mlstage_backend() names. MLSTAGE_EINPUT when `plugin` (its name, for
 * the message) has none by that name; the message lists those it has.
 */
int plugin_backend_pick(struct mlstage_ctx *ctx, const char *plugin, plugin_backend_name_fn name_at,
                        size_t count, size_t *index);

#endif
