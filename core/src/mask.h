/* mask.h — the process-wide set of secret values and their replacement in text. */
#ifndef MLSTAGE_MASK_H
#define MLSTAGE_MASK_H

#include <stddef.h>

#define MASK_REPLACEMENT "***"
#define MASK_MIN_LEN     4

/*
 * Adds a secret value to the set. Also adds the forms in which it shows up
 * in our outputs: URL-encoded (form and query values), JSON-escaped (a
 * value inside a JSON string) and both combined. Values shorter than
 * MASK_MIN_LEN are ignored (masking "a" would garble every line); returns
 * 1 when added, 0 when ignored. Thread-safe.
 */
int mask_add(const char *value);

/* Number of values in the set (including derived forms). */
size_t mask_count(void);

/*
 * Returns a newly allocated copy of `text` (length `len`) with every
 * occurrence of every secret replaced by MASK_REPLACEMENT; where secrets
 * overlap, the longest match wins and the whole overlapping span is
 * replaced once. *out_len (may be NULL) gets the length. Never NULL.
 * Thread-safe.
 */
char *mask_apply(const char *text, size_t len, size_t *out_len);

/* Non-zero when `text` contains any secret. */
int mask_contains(const char *text, size_t len);

/* Forgets every value (tests). */
void mask_reset(void);

#endif
