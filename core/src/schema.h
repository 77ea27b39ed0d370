/* schema.h — the JSON Schema subset plugins declare inputs with: validation and defaults. */
#ifndef MLSTAGE_SCHEMA_H
#define MLSTAGE_SCHEMA_H

#include <json-c/json.h>

#include "util.h"

/*
 * Supported keywords: type (string, number, integer, boolean, object,
 * array, null, or an array of these), properties, required,
 * additionalProperties (boolean or schema), items, enum, const, default,
 * minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength,
 * maxLength, pattern (POSIX ERE), minItems, maxItems, description, title,
 * examples, format, $schema, $comment, $id (annotations only), oneOf/anyOf of
 * the above.
 */

/* Checks that a plugin's schema is well-formed and uses only supported keywords (MLSTAGE_EPLUGIN).
 */
int schema_check(json_object *schema, struct mls_err *err);

/*
 * Validates `instance` (not modified) and returns in *out a new reference
 * to a copy with defaults applied for absent properties. On failure
 * returns MLSTAGE_EINPUT, a message naming the input in `err` ("inputs.alpha:
 * expected number, got string \"abc\"") and in *bad_pointer (may be NULL)
 * a newly allocated JSON pointer to the offending value (or to its parent
 * when a required property is missing), for source marks.
 * `root_name` prefixes the names in messages ("inputs").
 */
int schema_validate(json_object *schema, json_object *instance, const char *root_name,
                    json_object **out, char **bad_pointer, struct mls_err *err);

/*
 * Converts a --set string for property `key` of `schema` to the declared
 * type (integer, number, boolean; JSON for object/array; else string).
 * New reference, or NULL with err set when it does not convert.
 */
json_object *schema_coerce(json_object *schema, const char *key, const char *text,
                           struct mls_err *err);

/*
 * Dry runs hand plugins placeholders for values they do not have ("<stages.
 * train.outputs.model_dir>", "<secret NAME is not set>"), which no enum or
 * type can accept. This removes such top-level values from `instance` and
 * their names from `schema`'s required (both are modified: pass copies)
 * and returns them as a new object to put back after validation, or NULL.
 */
json_object *schema_hold_placeholders(json_object *instance, json_object *schema);

#endif
