/* common.c — small pieces the Azure client's files share: clock, environment, UUIDs, JSON. */
#include "azure_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "ctx.h"

double azure_clock_skew_s;

double azure_now(void)
{
    return now_wall() + azure_clock_skew_s;
}

const char *azure_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void azure_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* Only a correlation id: uniqueness per request matters, not unpredictability. */
        uint64_t x = (uint64_t)(now_wall() * 1e9) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(b); i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b[i] = (unsigned char)x;
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

const char *azure_json_str(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
        !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

json_object *azure_json_parse(const char *body, size_t len)
{
    json_object *obj = NULL;
    size_t i = 0;
    while (i < len && isspace((unsigned char)body[i]))
        i++;
    if (i == len || len > (size_t)INT32_MAX)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    obj = json_tokener_parse_ex(tok, body, (int)len);
    if (obj && json_tokener_get_error(tok) == json_tokener_success) {
        for (size_t j = json_tokener_get_parse_end(tok); j < len; j++) {
            if (!isspace((unsigned char)body[j])) {
                json_object_put(obj);
                obj = NULL;
                break;
            }
        }
    } else {
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}

char *arm_endpoint(void)
{
    const char *e = azure_env("MLSTAGE_ARM_ENDPOINT");
    char *out = xstrdup(e ? e : AZURE_DEFAULT_ARM);
    size_t n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
    return out;
}

struct azure_state *azure_state_of(struct mlstage_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    if (!ctx->azure)
        ctx->azure = azure_state_new();
    struct azure_state *st = ctx->azure;
    pthread_mutex_unlock(&ctx->lock);
    return st;
}
