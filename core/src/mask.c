/* mask.c — the process-wide set of secret values and their replacement in text. */
#include "mask.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static pthread_mutex_t mask_lock = PTHREAD_MUTEX_INITIALIZER;
static char **mask_values;
static size_t *mask_lens;
static size_t mask_n;

static int known(const char *v)
{
    for (size_t i = 0; i < mask_n; i++)
        if (strcmp(mask_values[i], v) == 0)
            return 1;
    return 0;
}

/* Keeps values sorted longest first so the longest match wins. */
static void insert(char *v)
{
    size_t len = strlen(v);
    if (len < MASK_MIN_LEN || known(v)) {
        free(v);
        return;
    }
    mask_values = xrealloc(mask_values, (mask_n + 1) * sizeof(*mask_values));
    mask_lens = xrealloc(mask_lens, (mask_n + 1) * sizeof(*mask_lens));
    size_t at = mask_n;
    while (at > 0 && mask_lens[at - 1] < len) {
        mask_values[at] = mask_values[at - 1];
        mask_lens[at] = mask_lens[at - 1];
        at--;
    }
    mask_values[at] = v;
    mask_lens[at] = len;
    mask_n++;
}

/* Percent-encoding; form bodies (x-www-form-urlencoded) write a space as '+' instead. */
static char *url_encoded(const char *v, int space_as_plus)
{
    static const char hex[] = "0123456789ABCDEF";
    struct buf b;
    buf_init(&b);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            buf_putc(&b, (char)*p);
        } else if (*p == ' ' && space_as_plus) {
            buf_putc(&b, '+');
        } else {
            buf_putc(&b, '%');
            buf_putc(&b, hex[*p >> 4]);
            buf_putc(&b, hex[*p & 15]);
        }
    }
    return buf_steal(&b);
}

/* The form json-c writes inside a string, with and without '/' escaped. */
static char *json_escaped(const char *v, int escape_slash)
{
    struct buf b;
    buf_init(&b);
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        switch (*p) {
        case '"': buf_puts(&b, "\\\""); break;
        case '\\': buf_puts(&b, "\\\\"); break;
        case '\n': buf_puts(&b, "\\n"); break;
        case '\r': buf_puts(&b, "\\r"); break;
        case '\t': buf_puts(&b, "\\t"); break;
        case '\b': buf_puts(&b, "\\b"); break;
        case '\f': buf_puts(&b, "\\f"); break;
        case '/': buf_puts(&b, escape_slash ? "\\/" : "/"); break;
        default:
            if (*p < 0x20)
                buf_printf(&b, "\\u%04x", *p);
            else
                buf_putc(&b, (char)*p);
        }
    }
    return buf_steal(&b);
}

int mask_add(const char *value)
{
    if (!value || strlen(value) < MASK_MIN_LEN)
        return 0;
    pthread_mutex_lock(&mask_lock);
    insert(xstrdup(value));
    insert(url_encoded(value, 0));
    insert(url_encoded(value, 1));
    /* JSON escaped, and that JSON carried in a URL (a query or form value). */
    for (int slash = 0; slash <= 1; slash++) {
        char *json = json_escaped(value, slash);
        insert(url_encoded(json, 0));
        insert(url_encoded(json, 1));
        insert(json);
    }
    /* Values that span lines are also masked line by line, because
     * streamed output is masked one line at a time. */
    if (strchr(value, '\n')) {
        char *copy = xstrdup(value), *save = NULL;
        for (char *line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
            insert(xstrdup(line));
        free(copy);
    }
    pthread_mutex_unlock(&mask_lock);
    return 1;
}

size_t mask_count(void)
{
    pthread_mutex_lock(&mask_lock);
    size_t n = mask_n;
    pthread_mutex_unlock(&mask_lock);
    return n;
}

/* The length of the longest secret starting at text[i], or 0. Locked by the caller. */
static size_t match_at(const char *text, size_t len, size_t i)
{
    for (size_t k = 0; k < mask_n; k++)
        if (mask_lens[k] <= len - i && text[i] == mask_values[k][0] &&
            memcmp(text + i, mask_values[k], mask_lens[k]) == 0)
            return mask_lens[k];
    return 0;
}

char *mask_apply(const char *text, size_t len, size_t *out_len)
{
    struct buf b;
    buf_init(&b);
    pthread_mutex_lock(&mask_lock);
    size_t i = 0;
    while (i < len) {
        size_t hit = match_at(text, len, i);
        if (hit) {
            /* A secret starting inside this one may end after it: cover the union,
             * or the tail of the second secret would be printed in clear. */
            size_t end = i + hit;
            for (size_t j = i + 1; j < end; j++) {
                size_t h = match_at(text, len, j);
                if (j + h > end)
                    end = j + h;
            }
            buf_puts(&b, MASK_REPLACEMENT);
            i = end;
        } else {
            /* Copy the run of bytes that cannot start a secret at once. */
            size_t j = i + 1;
            if (mask_n) {
                while (j < len) {
                    int may = 0;
                    for (size_t k = 0; k < mask_n && !may; k++)
                        may = text[j] == mask_values[k][0];
                    if (may)
                        break;
                    j++;
                }
            } else {
                j = len;
            }
            buf_append(&b, text + i, j - i);
            i = j;
        }
    }
    pthread_mutex_unlock(&mask_lock);
    if (!b.data)
        buf_append(&b, "", 0);
    if (out_len)
        *out_len = b.len;
    return buf_steal(&b);
}

int mask_contains(const char *text, size_t len)
{
    int found = 0;
    pthread_mutex_lock(&mask_lock);
    for (size_t k = 0; k < mask_n && !found; k++)
        found = memmem(text, len, mask_values[k], mask_lens[k]) != NULL;
    pthread_mutex_unlock(&mask_lock);
    return found;
}

void mask_reset(void)
{
    pthread_mutex_lock(&mask_lock);
    for (size_t i = 0; i < mask_n; i++)
        free(mask_values[i]);
    free(mask_values);
    free(mask_lens);
    mask_values = NULL;
    mask_lens = NULL;
    mask_n = 0;
    pthread_mutex_unlock(&mask_lock);
}
