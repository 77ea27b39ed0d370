/* manifest.c — YAML manifests into json-c with source marks, hardened against hostile files. */
#include "manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "expand.h"

/* Source positions of "${" kept per scalar, so expansion errors point at the reference. */
#define MAX_REF_MARKS 64

/* A collection being built. */
struct frame {
    json_object *node; /* owned until attached to its parent */
    int is_map;
    char *ptr;   /* JSON pointer of this node */
    char *key;   /* maps: the key read, waiting for its value */
    int anchor;  /* index into the loader's anchors, or -1 */
    size_t base; /* node count before this node: subtree size for anchors */
    int height;  /* levels of collections in this subtree, this one included */
};

/* A node an alias may refer to. */
struct anchor {
    json_object *node; /* a reference of our own; NULL for null scalars */
    size_t count;      /* nodes in the subtree, so an alias is priced before it is copied */
    int height;
    int plain;
    int complete; /* 0 while its collection is still open: an alias to it is recursive */
};

struct loader {
    const char *name;
    const unsigned char *data;
    size_t len;
    size_t *lines; /* byte offset where each line starts (libyaml's line numbering) */
    size_t nlines;
    struct manifest_doc *doc;
    struct frame *frames;
    size_t nframes, capframes;
    struct anchor *anchors;
    size_t nanchors, capanchors;
    json_object *anchor_index; /* anchor name → index of its latest definition */
    size_t nodes;
    int docs;
    struct mls_err *err;
};

/* Quotes a piece of user text for a message: clipped, control bytes escaped. */
static void clip(const char *s, size_t len, char out[96])
{
    size_t o = 0, i = 0;
    for (; i < len && o < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, 96 - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    /* Never cut a UTF-8 sequence in half. */
    while (i < len && o > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) {
        i--;
        o--;
    }
    if (i < len) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

static int fail_at(struct mls_err *err, const char *name, size_t line1, size_t col1,
                   const char *fmt, ...) MLSTAGE_PRINTF(5, 6);

static int fail_at(struct mls_err *err, const char *name, size_t line1, size_t col1,
                   const char *fmt, ...)
{
    char msg[3072];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(err, MLSTAGE_EINPUT, "%s:%zu:%zu: %s", name, line1, col1, msg);
}

/* libyaml marks are 0-based; messages are 1-based. */
#define LD_FAIL(ld, line0, col0, ...)                                                              \
    fail_at((ld)->err, (ld)->name, (size_t)(line0) + 1, (size_t)(col0) + 1, __VA_ARGS__)

/*
 * Checks UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF). Returns 0, 1 for an invalid sequence or 2 for a NUL byte,
 * with the offending offset in *bad.
 */
static int utf8_check(const unsigned char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0) {
            *bad = i;
            return 2;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            *bad = i;
            return 1;
        }
        for (size_t k = 1; k <= need; k++) {
            unsigned char cc = i + k < len ? s[i + k] : 0;
            unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (i + k >= len || cc < l || cc > h) {
                *bad = i;
                return 1;
            }
        }
        i += need + 1;
    }
    return 0;
}

/* Length of the line break at s[i] (libyaml's set: LF, CR, CRLF, NEL, LS, PS), or 0. */
static size_t break_len(const unsigned char *s, size_t len, size_t i)
{
    if (s[i] == '\n')
        return 1;
    if (s[i] == '\r')
        return i + 1 < len && s[i + 1] == '\n' ? 2 : 1;
    if (s[i] == 0xC2 && i + 1 < len && s[i + 1] == 0x85)
        return 2;
    if (s[i] == 0xE2 && i + 2 < len && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9))
        return 3;
    return 0;
}

/* Characters (not bytes) from `from` to `to`: libyaml's columns count characters. */
static size_t chars_between(const unsigned char *s, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++)
        if ((s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* 0-based line of a byte offset. */
static size_t line_of(const struct loader *ld, size_t off)
{
    size_t lo = 0, hi = ld->nlines;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (ld->lines[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

/* Byte offset of a libyaml mark (0-based line, column in characters). */
static size_t byte_of(const struct loader *ld, size_t line, size_t col)
{
    if (line >= ld->nlines)
        return ld->len;
    size_t i = ld->lines[line];
    while (col > 0 && i < ld->len) {
        i++;
        while (i < ld->len && (ld->data[i] & 0xC0) == 0x80)
            i++;
        col--;
    }
    return i;
}

/*
 * Validates the whole text before libyaml sees it (so every bad byte is
 * reported the same way, at its own position) and records where lines start.
 */
static int scan_text(struct loader *ld)
{
    const unsigned char *s = ld->data;
    size_t len = ld->len, start = 0, cap = 64;
    if (len >= 2 && ((s[0] == 0xFF && s[1] == 0xFE) || (s[0] == 0xFE && s[1] == 0xFF)))
        return LD_FAIL(ld, 0, 0,
                       "the file is UTF-16 (it starts with a UTF-16 byte order mark); "
                       "save it as UTF-8");
    /* libyaml skips a UTF-8 byte order mark; its columns start after it. */
    if (len >= 3 && s[0] == 0xEF && s[1] == 0xBB && s[2] == 0xBF)
        start = 3;
    size_t bad = 0;
    int bad_kind = utf8_check(s, len, &bad);
    ld->lines = xcalloc(cap, sizeof(*ld->lines));
    ld->lines[0] = start;
    ld->nlines = 1;
    size_t end = bad_kind ? bad : len;
    for (size_t i = start; i < end;) {
        size_t b = break_len(s, end, i);
        if (!b) {
            i++;
            continue;
        }
        i += b;
        if (ld->nlines == cap) {
            cap *= 2;
            ld->lines = xrealloc(ld->lines, cap * sizeof(*ld->lines));
        }
        ld->lines[ld->nlines++] = i;
    }
    if (bad_kind == 0)
        return 0;
    size_t line = ld->nlines - 1;
    size_t col = chars_between(s, ld->lines[line], bad);
    if (bad_kind == 2)
        return LD_FAIL(ld, line, col,
                       "a NUL byte; a manifest must be UTF-8 text (is this a binary or a "
                       "UTF-16 file?)");
    return LD_FAIL(ld, line, col,
                   "invalid UTF-8 (byte 0x%02x); a manifest must be UTF-8 text (is it "
                   "saved as Latin-1 or a binary file?)",
                   s[bad]);
}

char *manifest_ptr_child(const char *parent, const char *token)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, parent);
    buf_putc(&b, '/');
    for (const char *p = token; *p; p++) {
        if (*p == '~')
            buf_puts(&b, "~0");
        else if (*p == '/')
            buf_puts(&b, "~1");
        else
            buf_putc(&b, *p);
    }
    char *s = buf_steal(&b);
    if (!s)
        abort();
    return s;
}

/* Where the next value goes: "" for the root, else below the open collection. */
static char *next_ptr(const struct loader *ld)
{
    if (ld->nframes == 0)
        return xstrdup("");
    const struct frame *top = &ld->frames[ld->nframes - 1];
    if (top->is_map)
        return manifest_ptr_child(top->ptr, top->key);
    char idx[32];
    snprintf(idx, sizeof(idx), "%zu", json_object_array_length(top->node));
    return manifest_ptr_child(top->ptr, idx);
}

static int expecting_key(const struct loader *ld)
{
    return ld->nframes > 0 && ld->frames[ld->nframes - 1].is_map &&
           !ld->frames[ld->nframes - 1].key;
}

static int mark_put(struct loader *ld, const char *ptr, size_t line0, size_t col0, int plain,
                    json_object *refs)
{
    json_object *m = json_object_new_array_ext(refs ? 4 : 3);
    if (!m) {
        json_object_put(refs);
        return MLSTAGE_ENOMEM;
    }
    json_object_array_add(m, json_object_new_int((int)line0 + 1));
    json_object_array_add(m, json_object_new_int((int)col0 + 1));
    json_object_array_add(m, json_object_new_int(plain));
    if (refs)
        json_object_array_add(m, refs);
    if (json_object_object_add(ld->doc->marks, ptr, m) != 0) {
        json_object_put(m);
        return MLSTAGE_ENOMEM;
    }
    return 0;
}

static size_t count_refs(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (s[i] == '$' && s[i + 1] == '{')
            n++;
    return n;
}

/*
 * Positions of each "${" of a scalar, read from its source text. Escapes
 * and folding never create or remove a "${" except in rare double-quoted
 * forms (\x24{); when the counts differ we return NULL and errors fall
 * back to the scalar's own mark rather than point at the wrong place.
 */
static json_object *ref_marks(const struct loader *ld, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = count_refs(v, ev->data.scalar.length);
    if (n == 0 || n > MAX_REF_MARKS)
        return NULL;
    size_t from = byte_of(ld, ev->start_mark.line, ev->start_mark.column);
    size_t to = byte_of(ld, ev->end_mark.line, ev->end_mark.column);
    if (to <= from || count_refs((const char *)ld->data + from, to - from) != n)
        return NULL;
    json_object *refs = json_object_new_array_ext((int)n);
    for (size_t i = from; i + 1 < to; i++) {
        if (ld->data[i] != '$' || ld->data[i + 1] != '{')
            continue;
        size_t line = line_of(ld, i);
        json_object *pos = json_object_new_array_ext(2);
        json_object_array_add(pos, json_object_new_int((int)line + 1));
        json_object_array_add(
            pos, json_object_new_int((int)chars_between(ld->data, ld->lines[line], i) + 1));
        json_object_array_add(refs, pos);
    }
    return refs;
}

static int anchor_add(struct loader *ld, const char *name, int *index)
{
    if (ld->nanchors == ld->capanchors) {
        ld->capanchors = ld->capanchors ? ld->capanchors * 2 : 16;
        ld->anchors = xrealloc(ld->anchors, ld->capanchors * sizeof(*ld->anchors));
    }
    struct anchor *a = &ld->anchors[ld->nanchors];
    memset(a, 0, sizeof(*a));
    /* A later anchor of the same name replaces the earlier one (YAML 1.2). */
    if (json_object_object_add(ld->anchor_index, name, json_object_new_int((int)ld->nanchors)) != 0)
        return MLSTAGE_ENOMEM;
    *index = (int)ld->nanchors++;
    return 0;
}

/* Hands `v` (owned) to the open collection, or makes it the root. */
static int attach(struct loader *ld, json_object *v, int height)
{
    if (ld->nframes == 0) {
        ld->doc->root = v;
        return 0;
    }
    struct frame *top = &ld->frames[ld->nframes - 1];
    if (top->height < height + 1)
        top->height = height + 1;
    int rc;
    if (top->is_map) {
        rc = json_object_object_add_ex(top->node, top->key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW);
        free(top->key);
        top->key = NULL;
    } else {
        rc = json_object_array_add(top->node, v);
    }
    if (rc != 0) {
        json_object_put(v);
        return MLSTAGE_ENOMEM;
    }
    return 0;
}

static const char *const core_tag_prefix = "tag:yaml.org,2002:";

/* "!!int" for the core tags, as the user wrote them; other tags as they are. */
static void tag_shown(const char *tag, char out[96])
{
    size_t pl = strlen(core_tag_prefix);
    if (strncmp(tag, core_tag_prefix, pl) == 0)
        snprintf(out, 96, "!!%.80s", tag + pl);
    else
        snprintf(out, 96, "%.80s", tag);
}

/* The scalar tags we honour; anything else (!!binary, !custom) would silently change meaning. */
static int check_scalar_tag(struct loader *ld, const yaml_event_t *ev, const char *tag,
                            json_object **val)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    size_t pl = strlen(core_tag_prefix);
    const char *want = strncmp(tag, core_tag_prefix, pl) == 0 ? tag + pl : NULL;
    char shown[96], tshown[96];
    clip(v, n, shown);
    tag_shown(tag, tshown);
    if (want && strcmp(want, "str") == 0) {
        *val = json_object_new_string_len(v, (int)n);
        return 0;
    }
    json_type t = json_type_string;
    if (want && strcmp(want, "int") == 0)
        t = json_type_int;
    else if (want && strcmp(want, "float") == 0)
        t = json_type_double;
    else if (want && strcmp(want, "bool") == 0)
        t = json_type_boolean;
    else if (want && strcmp(want, "null") == 0)
        t = json_type_null;
    else
        return LD_FAIL(ld, ev->start_mark.line, ev->start_mark.column,
                       "unsupported tag %s; manifests use untagged values (strings, numbers, "
                       "booleans, null, lists and mappings) or !!str, !!int, !!float, !!bool, "
                       "!!null",
                       tshown);
    json_object *typed = expand_type_plain(v);
    json_type got = json_object_get_type(typed);
    if (t == json_type_double && got == json_type_int) {
        /* !!float 1 is the float 1.0. */
        double d = (double)json_object_get_int64(typed);
        json_object_put(typed);
        typed = json_object_new_double(d);
        got = json_type_double;
    }
    if (got != t) {
        json_object_put(typed);
        return LD_FAIL(ld, ev->start_mark.line, ev->start_mark.column,
                       "'%s' is not a valid %s; remove the tag or fix the value", shown, tshown);
    }
    *val = typed;
    return 0;
}

/* YAML 1.2 core-schema integer syntax; used to tell "out of range" from "just text". */
static int int_syntax(const char *s)
{
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
        const char *digits = s[1] == 'x' ? "0123456789abcdefABCDEF" : "01234567";
        return strspn(s + 2, digits) == strlen(s + 2);
    }
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static int scalar_value(struct loader *ld, const yaml_event_t *ev, int plain, json_object **val)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const char *tag = (const char *)ev->data.scalar.tag;
    *val = NULL;
    if (tag && strcmp(tag, "!") != 0)
        return check_scalar_tag(ld, ev, tag, val);
    if (!plain) {
        *val = json_object_new_string_len(v, (int)n);
        return *val ? 0 : MLSTAGE_ENOMEM;
    }
    json_object *typed = expand_type_plain(v);
    if (json_object_is_type(typed, json_type_string) && int_syntax(v)) {
        char shown[96];
        clip(v, n, shown);
        json_object_put(typed);
        return LD_FAIL(ld, ev->start_mark.line, ev->start_mark.column,
                       "integer %s is out of range (64-bit signed); quote it to keep it as text",
                       shown);
    }
    *val = typed;
    return 0;
}

static int on_key(struct loader *ld, const yaml_event_t *ev, int plain)
{
    struct frame *top = &ld->frames[ld->nframes - 1];
    const char *k = (const char *)ev->data.scalar.value;
    size_t line = ev->start_mark.line, col = ev->start_mark.column;
    char shown[96];
    clip(k, ev->data.scalar.length, shown);
    if (plain && strcmp(k, "<<") == 0)
        return LD_FAIL(ld, line, col,
                       "merge keys (<<) are not supported; write the keys out (an alias of a "
                       "whole value, key: *name, is fine)");
    char *vptr = manifest_ptr_child(top->ptr, k);
    struct buf kp;
    buf_init(&kp);
    buf_puts(&kp, vptr);
    buf_puts(&kp, "#key");
    free(vptr);
    int rc = 0;
    if (json_object_object_get_ex(top->node, k, NULL)) {
        json_object *first = NULL;
        int first_line = 0;
        if (json_object_object_get_ex(ld->doc->marks, kp.data, &first))
            first_line = json_object_get_int(json_object_array_get_idx(first, 0));
        rc = LD_FAIL(ld, line, col,
                     "duplicate key '%s' (first defined at line %d); each key may appear only "
                     "once in a mapping",
                     shown, first_line);
        goto done;
    }
    rc = mark_put(ld, kp.data, line, col, plain, NULL);
    if (rc)
        goto done;
    if (ev->data.scalar.anchor) {
        int idx;
        rc = anchor_add(ld, (const char *)ev->data.scalar.anchor, &idx);
        if (rc)
            goto done;
        struct anchor *a = &ld->anchors[idx];
        a->node = json_object_new_string_len(k, (int)ev->data.scalar.length);
        a->count = 1;
        a->plain = 0;
        a->complete = 1;
    }
    top->key = xstrdup(k);
done:
    buf_free(&kp);
    return rc;
}

static int on_scalar(struct loader *ld, const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    size_t line = ev->start_mark.line, col = ev->start_mark.column;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    size_t bad;
    int rc = 0;
    char *ptr = NULL;
    json_object *val = NULL;
    if (n > MANIFEST_MAX_SCALAR)
        return LD_FAIL(ld, line, col,
                       "a value of %zu bytes; a single value is limited to 1 MiB (%u bytes)", n,
                       MANIFEST_MAX_SCALAR);
    /* The text was checked; escapes ("\0", "\x00") can still produce these. */
    switch (utf8_check((const unsigned char *)v, n, &bad)) {
    case 2:
        return LD_FAIL(ld, line, col,
                       "a NUL character (from an escape such as \\0) is not allowed in a value");
    case 1: return LD_FAIL(ld, line, col, "invalid UTF-8 in a value (byte %zu of it)", bad + 1);
    default: break;
    }
    if (ld->nodes >= MANIFEST_MAX_NODES)
        return LD_FAIL(ld, line, col, "more than %u values; a manifest is limited to that many",
                       MANIFEST_MAX_NODES);
    ld->nodes++;
    if (expecting_key(ld))
        return on_key(ld, ev, plain);
    rc = scalar_value(ld, ev, plain, &val);
    if (rc)
        goto done;
    ptr = next_ptr(ld);
    rc = mark_put(ld, ptr, line, col, plain, ref_marks(ld, ev));
    if (rc)
        goto done;
    if (ev->data.scalar.anchor) {
        int idx;
        rc = anchor_add(ld, (const char *)ev->data.scalar.anchor, &idx);
        if (rc)
            goto done;
        struct anchor *a = &ld->anchors[idx];
        a->node = json_object_get(val);
        a->count = 1;
        a->plain = plain;
        a->complete = 1;
    }
    rc = attach(ld, val, 0);
    val = NULL;
done:
    json_object_put(val);
    free(ptr);
    return rc;
}

static int on_start(struct loader *ld, const yaml_event_t *ev, int is_map)
{
    size_t line = ev->start_mark.line, col = ev->start_mark.column;
    const char *what = is_map ? "mapping" : "list";
    const char *tag = is_map ? (const char *)ev->data.mapping_start.tag
                             : (const char *)ev->data.sequence_start.tag;
    const char *anchor = is_map ? (const char *)ev->data.mapping_start.anchor
                                : (const char *)ev->data.sequence_start.anchor;
    int rc = 0;
    if (expecting_key(ld))
        return LD_FAIL(ld, line, col,
                       "a %s used as a mapping key; keys must be plain strings (complex keys "
                       "are not supported)",
                       what);
    if (ld->nframes + 1 > MANIFEST_MAX_DEPTH)
        return LD_FAIL(ld, line, col, "nesting deeper than %d levels; flatten the structure",
                       MANIFEST_MAX_DEPTH);
    if (tag && strcmp(tag, "!") != 0) {
        size_t pl = strlen(core_tag_prefix);
        const char *want = is_map ? "map" : "seq";
        if (strncmp(tag, core_tag_prefix, pl) != 0 || strcmp(tag + pl, want) != 0) {
            char tshown[96];
            tag_shown(tag, tshown);
            return LD_FAIL(ld, line, col, "unsupported tag %s on a %s; remove the tag", tshown,
                           what);
        }
    }
    if (ld->nodes >= MANIFEST_MAX_NODES)
        return LD_FAIL(ld, line, col, "more than %u values; a manifest is limited to that many",
                       MANIFEST_MAX_NODES);
    size_t base = ld->nodes++;
    if (ld->nframes == ld->capframes) {
        ld->capframes = ld->capframes ? ld->capframes * 2 : 8;
        ld->frames = xrealloc(ld->frames, ld->capframes * sizeof(*ld->frames));
    }
    char *ptr = next_ptr(ld);
    rc = mark_put(ld, ptr, line, col, 0, NULL);
    if (rc) {
        free(ptr);
        return rc;
    }
    struct frame *f = &ld->frames[ld->nframes++];
    memset(f, 0, sizeof(*f));
    f->is_map = is_map;
    f->node = is_map ? json_object_new_object() : json_object_new_array();
    f->ptr = ptr;
    f->anchor = -1;
    f->base = base;
    f->height = 1;
    if (!f->node)
        return MLSTAGE_ENOMEM;
    if (anchor)
        rc = anchor_add(ld, anchor, &f->anchor);
    return rc;
}

static int on_end(struct loader *ld)
{
    struct frame f = ld->frames[--ld->nframes];
    if (f.anchor >= 0) {
        struct anchor *a = &ld->anchors[f.anchor];
        a->node = json_object_get(f.node);
        a->count = ld->nodes - f.base;
        a->height = f.height;
        a->complete = 1;
    }
    free(f.ptr);
    free(f.key);
    return attach(ld, f.node, f.height);
}

static int on_alias(struct loader *ld, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    size_t line = ev->start_mark.line, col = ev->start_mark.column;
    json_object *idx = NULL;
    json_object *copy = NULL;
    char *ptr = NULL;
    int rc = 0;
    if (expecting_key(ld))
        return LD_FAIL(ld, line, col, "an alias (*%s) used as a mapping key; write the key out",
                       name);
    if (!json_object_object_get_ex(ld->anchor_index, name, &idx))
        return LD_FAIL(ld, line, col, "alias *%s refers to no anchor; define &%s before it", name,
                       name);
    const struct anchor *a = &ld->anchors[json_object_get_int(idx)];
    if (!a->complete)
        return LD_FAIL(ld, line, col,
                       "alias *%s refers to a node that contains it; recursive structures are "
                       "not supported",
                       name);
    /* Priced before copying, so an alias bomb stops at the limit instead of filling memory. */
    if (a->count > MANIFEST_MAX_NODES - ld->nodes)
        return LD_FAIL(ld, line, col,
                       "alias *%s would expand the document past %u values; aliases that "
                       "multiply (an alias bomb) are rejected",
                       name, MANIFEST_MAX_NODES);
    if (ld->nframes + (size_t)a->height > MANIFEST_MAX_DEPTH)
        return LD_FAIL(ld, line, col,
                       "alias *%s would nest deeper than %d levels; flatten the structure", name,
                       MANIFEST_MAX_DEPTH);
    ld->nodes += a->count;
    if (a->node && json_object_deep_copy(a->node, &copy, NULL) != 0)
        return MLSTAGE_ENOMEM;
    ptr = next_ptr(ld);
    rc = mark_put(ld, ptr, line, col, a->plain, NULL);
    if (rc)
        goto done;
    rc = attach(ld, copy, a->height);
    copy = NULL;
done:
    json_object_put(copy);
    free(ptr);
    return rc;
}

static int on_event(struct loader *ld, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (ld->docs++ > 0)
            return LD_FAIL(ld, ev->start_mark.line, ev->start_mark.column,
                           "a second YAML document starts here; a manifest holds exactly one "
                           "document (remove the '---' or split the file)");
        return 0;
    case YAML_SCALAR_EVENT: return on_scalar(ld, ev);
    case YAML_SEQUENCE_START_EVENT: return on_start(ld, ev, 0);
    case YAML_MAPPING_START_EVENT: return on_start(ld, ev, 1);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT: return on_end(ld);
    case YAML_ALIAS_EVENT: return on_alias(ld, ev);
    default: return 0;
    }
}

/* What to do about libyaml's most common complaints. */
static const char *hint_for(const char *problem, const char *context, int ch, int prev)
{
    /* "[${var.x}]": '{' ends a plain scalar inside a flow collection. */
    if (ch == '{' && prev == '$' && strstr(problem, "did not find expected ','"))
        return "; a ${...} reference inside [...] or {...} must be quoted: \"${...}\"";
    if (strstr(problem, "mapping values are not allowed"))
        return "; quote a value that contains ': '";
    if (strstr(problem, "did not find expected key") ||
        strstr(problem, "did not find expected '-' indicator"))
        return "; check the indentation of this line";
    if (strstr(problem, "unexpected end of stream") && context && strstr(context, "quoted scalar"))
        return "; close the quote";
    if (strstr(problem, "cannot start any token") && (ch == '@' || ch == '`' || ch == '%'))
        return "; quote a value that starts with @, ` or %";
    return "";
}

/* A libyaml failure as "file:line:col: problem context". */
static int parser_fail(struct loader *ld, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return err_set(ld->err, MLSTAGE_ENOMEM, "%s: out of memory while parsing", ld->name);
    if (p->error == YAML_READER_ERROR) {
        size_t line = line_of(ld, p->problem_offset);
        size_t col = chars_between(ld->data, ld->lines[line], p->problem_offset);
        if (p->problem_value >= 0)
            return LD_FAIL(ld, line, col, "%s (U+%04X); a manifest must be printable UTF-8 text",
                           p->problem, (unsigned)p->problem_value);
        return LD_FAIL(ld, line, col, "%s; a manifest must be UTF-8 text", p->problem);
    }
    const char *problem = p->problem ? p->problem : "unknown YAML error";
    size_t line = p->problem_mark.line, col = p->problem_mark.column;
    size_t at = byte_of(ld, line, col);
    if (at < ld->len && ld->data[at] == '\t') {
        size_t ls = ld->lines[line < ld->nlines ? line : ld->nlines - 1];
        int leading = 1;
        for (size_t i = ls; i < at; i++)
            if (ld->data[i] != ' ' && ld->data[i] != '\t')
                leading = 0;
        if (leading)
            return LD_FAIL(ld, line, col,
                           "a tab character in indentation; YAML indents with spaces only");
    }
    char where[96] = "";
    if (p->context && (p->context_mark.line != line || p->context_mark.column != col))
        snprintf(where, sizeof(where), " (which started at line %zu, column %zu)",
                 p->context_mark.line + 1, p->context_mark.column + 1);
    return LD_FAIL(ld, line, col, "%s%s%s%s%s", problem, p->context ? " " : "",
                   p->context ? p->context : "", where,
                   hint_for(problem, p->context, at < ld->len ? ld->data[at] : 0,
                            at > 0 && at <= ld->len ? ld->data[at - 1] : 0));
}

static const char *kind_name(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_int:
    case json_type_double: return "a number";
    case json_type_string: return "a string";
    case json_type_array: return "a list";
    case json_type_object: return "a mapping";
    }
    return "a value";
}

static void loader_free(struct loader *ld)
{
    for (size_t i = 0; i < ld->nframes; i++) {
        json_object_put(ld->frames[i].node);
        free(ld->frames[i].ptr);
        free(ld->frames[i].key);
    }
    free(ld->frames);
    for (size_t i = 0; i < ld->nanchors; i++)
        json_object_put(ld->anchors[i].node);
    free(ld->anchors);
    json_object_put(ld->anchor_index);
    free(ld->lines);
}

int manifest_load_buf(const char *name, const char *data, size_t len, struct manifest_doc **out,
                      struct mls_err *err)
{
    struct loader ld;
    yaml_parser_t parser;
    int parser_ok = 0;
    int rc = 0;
    memset(&ld, 0, sizeof(ld));
    *out = NULL;
    ld.name = name;
    ld.data = (const unsigned char *)data;
    ld.len = len;
    ld.err = err;
    if (len > MANIFEST_MAX_FILE) {
        rc = fail_at(err, name, 1, 1, "the file is %zu bytes; a manifest is limited to 4 MiB (%u)",
                     len, MANIFEST_MAX_FILE);
        goto done;
    }
    rc = scan_text(&ld);
    if (rc)
        goto done;
    ld.doc = xcalloc(1, sizeof(*ld.doc));
    ld.doc->path = xstrdup(name);
    ld.doc->marks = json_object_new_object();
    ld.anchor_index = json_object_new_object();
    if (!ld.doc->marks || !ld.anchor_index || !yaml_parser_initialize(&parser)) {
        rc = err_set(err, MLSTAGE_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    parser_ok = 1;
    yaml_parser_set_input_string(&parser, ld.data, len);
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_fail(&ld, &parser);
            goto done;
        }
        rc = on_event(&ld, &ev);
        yaml_event_type_t type = ev.type;
        yaml_event_delete(&ev);
        if (rc == MLSTAGE_ENOMEM)
            err_set(err, rc, "%s: out of memory", name);
        if (rc)
            goto done;
        if (type == YAML_STREAM_END_EVENT)
            break;
    }
    if (ld.docs == 0) {
        rc = fail_at(err, name, 1, 1,
                     "the file is empty; expected a mapping of keys such as 'task: train'");
        goto done;
    }
    if (!json_object_is_type(ld.doc->root, json_type_object)) {
        rc = manifest_error_at(ld.doc, "", err,
                               "the document is %s; expected a mapping of keys such as "
                               "'task: train'",
                               ld.doc->root ? kind_name(ld.doc->root) : "empty");
        goto done;
    }
    *out = ld.doc;
    ld.doc = NULL;
done:
    if (parser_ok)
        yaml_parser_delete(&parser);
    loader_free(&ld);
    manifest_doc_free(ld.doc);
    return rc;
}

int manifest_load(const char *path, struct manifest_doc **out, struct mls_err *err)
{
    char *data = NULL;
    size_t len = 0, cap;
    struct stat st;
    int rc = 0;
    *out = NULL;
    /* Non-blocking, so that opening a FIFO nobody writes to cannot hang us. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return err_set(err, MLSTAGE_EINPUT, "%s: cannot open the manifest: %s", path,
                       strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc =
            err_set(err, MLSTAGE_EINPUT, "%s: cannot read the manifest: %s", path, strerror(errno));
        goto done;
    }
    if (S_ISDIR(st.st_mode)) {
        rc =
            err_set(err, MLSTAGE_EINPUT, "%s: is a directory; expected a YAML manifest file", path);
        goto done;
    }
    /*
     * FIFOs, sockets and devices could block or never end: a manifest is a
     * file. (A file that grows while read is still caught by the read cap.)
     */
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(err, MLSTAGE_EINPUT,
                     "%s: is not a regular file (a FIFO, socket or device); expected a YAML "
                     "manifest file",
                     path);
        goto done;
    }
    /* Refuse before reading a byte. */
    if (st.st_size > (off_t)MANIFEST_MAX_FILE) {
        rc = fail_at(err, path, 1, 1,
                     "the file is %lld bytes; a manifest is limited to 4 MiB (%u bytes)",
                     (long long)st.st_size, MANIFEST_MAX_FILE);
        goto done;
    }
    cap = (size_t)st.st_size + 1;
    data = xcalloc(cap + 1, 1);
    for (;;) {
        if (len == cap) {
            if (cap > MANIFEST_MAX_FILE)
                break;
            cap = cap * 2 > MANIFEST_MAX_FILE + 1 ? MANIFEST_MAX_FILE + 1 : cap * 2;
            data = xrealloc(data, cap + 1);
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(err, MLSTAGE_EINPUT, "%s: cannot read the manifest: %s", path,
                         strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MANIFEST_MAX_FILE)
            break;
    }
    if (len > MANIFEST_MAX_FILE) {
        rc = fail_at(err, path, 1, 1,
                     "the file is over 4 MiB; a manifest is limited to 4 MiB (%u bytes)",
                     MANIFEST_MAX_FILE);
        goto done;
    }
    rc = manifest_load_buf(path, data, len, out, err);
done:
    close(fd);
    free(data);
    return rc;
}

void manifest_doc_free(struct manifest_doc *doc)
{
    if (!doc)
        return;
    free(doc->path);
    json_object_put(doc->root);
    json_object_put(doc->marks);
    free(doc);
}

int manifest_mark(const struct manifest_doc *doc, const char *pointer, int *line, int *col,
                  int *plain)
{
    json_object *m = NULL;
    if (!doc || !doc->marks || !pointer)
        return -1;
    char *p = xstrdup(pointer);
    int rc = -1;
    for (;;) {
        if (json_object_object_get_ex(doc->marks, p, &m))
            break;
        char *cut = strstr(p, "#key");
        if (!cut)
            cut = strrchr(p, '/');
        if (!cut) {
            if (*p)
                p[0] = '\0';
            else
                goto done;
            continue;
        }
        *cut = '\0';
    }
    if (line)
        *line = json_object_get_int(json_object_array_get_idx(m, 0));
    if (col)
        *col = json_object_get_int(json_object_array_get_idx(m, 1));
    if (plain)
        *plain = json_object_get_int(json_object_array_get_idx(m, 2));
    rc = 0;
done:
    free(p);
    return rc;
}

int manifest_error_at(const struct manifest_doc *doc, const char *pointer, struct mls_err *err,
                      const char *fmt, ...)
{
    char msg[3072];
    int line, col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *path = doc && doc->path ? doc->path : "<manifest>";
    if (manifest_mark(doc, pointer, &line, &col, NULL) == 0)
        return err_set(err, MLSTAGE_EINPUT, "%s:%d:%d: %s", path, line, col, msg);
    return err_set(err, MLSTAGE_EINPUT, "%s: %s", path, msg);
}

/* ---- task manifests ---- */

static const char *const task_keys[] = {"task",        "plugin", "backend", "timeout", "kill_grace",
                                        "description", "inputs", "secrets", NULL};

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return (size_t)-1;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int key_allowed(const char *key, const char *const *extra)
{
    for (const char *const *k = task_keys; *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    for (const char *const *k = extra; k && *k; k++)
        if (strcmp(*k, key) == 0)
            return 1;
    return 0;
}

static int unknown_key(struct manifest_doc *doc, const char *kptr, const char *key,
                       const char *const *extra, struct mls_err *err)
{
    struct buf allowed;
    const char *best = NULL;
    size_t best_d = 3;
    char shown[96];
    buf_init(&allowed);
    for (int pass = 0; pass < 2; pass++) {
        for (const char *const *k = pass ? extra : task_keys; k && *k; k++) {
            buf_printf(&allowed, "%s%s", allowed.len ? ", " : "", *k);
            size_t d = edit_distance(key, *k);
            if (d < best_d) {
                best_d = d;
                best = *k;
            }
        }
    }
    clip(key, strlen(key), shown);
    char suggestion[128] = "";
    if (best)
        snprintf(suggestion, sizeof(suggestion), "; did you mean '%s'?", best);
    int rc = manifest_error_at(doc, kptr, err, "unknown key '%s'%s allowed keys: %s", shown,
                               best ? suggestion : ";", allowed.data);
    buf_free(&allowed);
    return rc;
}

/* Matches [first][rest]* with the classes given as predicates. */
static int name_ok(const char *s, int (*first)(int), int (*rest)(int))
{
    if (!s || !*s || !first((unsigned char)*s))
        return 0;
    for (s++; *s; s++)
        if (!rest((unsigned char)*s))
            return 0;
    return 1;
}

static int is_lower_digit(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_plugin_char(int c)
{
    return is_lower_digit(c) || c == '-';
}

static int is_ident_first(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_ident_char(int c)
{
    return is_ident_first(c) || (c >= '0' && c <= '9');
}

static int is_task_first(int c)
{
    return is_ident_char(c);
}

static int is_task_char(int c)
{
    return is_ident_char(c) || c == '-';
}

/* A positive duration: "30m", "1h30m", "90" or a number of seconds. */
static int duration_value(struct manifest_doc *doc, const char *ptr, const char *key,
                          json_object *v, double *out, struct mls_err *err)
{
    double s = -1;
    if (json_object_is_type(v, json_type_string))
        s = duration_parse(json_object_get_string(v));
    else if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
        s = json_object_get_double(v);
    if (!(s > 0) || !isfinite(s)) {
        char shown[96];
        const char *text = json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                    : json_object_to_json_string(v);
        clip(text, strlen(text), shown);
        return manifest_error_at(doc, ptr, err,
                                 "%s: expected a positive duration such as 90s, 30m or 1h30m, "
                                 "or a number of seconds; got %s '%s'",
                                 key, kind_name(v), shown);
    }
    *out = s;
    return 0;
}

static int string_value(struct manifest_doc *doc, const char *ptr, const char *key, json_object *v,
                        const char *expected, const char **out, struct mls_err *err)
{
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
        return manifest_error_at(doc, ptr, err, "%s: expected %s, got %s", key, expected,
                                 json_object_is_type(v, json_type_string) ? "an empty string"
                                                                          : kind_name(v));
    *out = json_object_get_string(v);
    return 0;
}

/* Replaces an absent or null optional member by an empty container, so callers never see NULL. */
static json_object *ensure_member(json_object *obj, const char *key, json_object *v, int is_map)
{
    if (v)
        return v;
    v = is_map ? json_object_new_object() : json_object_new_array();
    json_object_object_add(obj, key, v);
    return v;
}

static int task_field(struct manifest_doc *doc, const char *pointer, json_object *obj,
                      const char *key, json_object *v, struct task_manifest *out,
                      struct mls_err *err)
{
    char *ptr = manifest_ptr_child(pointer, key);
    char shown[96];
    int rc = 0;
    if (strcmp(key, "task") == 0) {
        rc = string_value(doc, ptr, key, v, "the task's name (e.g. task: train)", &out->task, err);
        if (rc == 0 && !name_ok(out->task, is_task_first, is_task_char)) {
            clip(out->task, strlen(out->task), shown);
            rc = manifest_error_at(doc, ptr, err,
                                   "task: '%s' is not a valid name; use letters, digits, '_' "
                                   "and '-' (it is referenced as ${stages.NAME.outputs.KEY})",
                                   shown);
        }
    } else if (strcmp(key, "plugin") == 0) {
        rc =
            string_value(doc, ptr, key, v, "a plugin name (e.g. plugin: train)", &out->plugin, err);
        if (rc == 0 && !name_ok(out->plugin, is_lower_digit, is_plugin_char)) {
            clip(out->plugin, strlen(out->plugin), shown);
            rc = manifest_error_at(doc, ptr, err,
                                   "plugin: '%s' is not a valid plugin name; expected lower-case "
                                   "letters, digits and '-' ([a-z0-9][a-z0-9-]*)",
                                   shown);
        }
    } else if (strcmp(key, "backend") == 0) {
        if (!v)
            goto done;
        if (!json_object_is_type(v, json_type_string) ||
            (strcmp(json_object_get_string(v), "local") != 0 &&
             strcmp(json_object_get_string(v), "azureml") != 0)) {
            const char *text = json_object_is_type(v, json_type_string)
                                   ? json_object_get_string(v)
                                   : json_object_to_json_string(v);
            clip(text, strlen(text), shown);
            rc = manifest_error_at(
                doc, ptr, err, "backend: '%s' is not a backend; expected local or azureml", shown);
            goto done;
        }
        out->backend = json_object_get_string(v);
    } else if (strcmp(key, "timeout") == 0) {
        if (v)
            rc = duration_value(doc, ptr, key, v, &out->timeout_s, err);
    } else if (strcmp(key, "kill_grace") == 0) {
        if (v)
            rc = duration_value(doc, ptr, key, v, &out->kill_grace_s, err);
    } else if (strcmp(key, "description") == 0) {
        if (v && !json_object_is_type(v, json_type_string))
            rc = manifest_error_at(doc, ptr, err, "description: expected text, got %s",
                                   kind_name(v));
        else if (v)
            out->description = json_object_get_string(v);
    } else if (strcmp(key, "inputs") == 0) {
        if (v && !json_object_is_type(v, json_type_object)) {
            rc = manifest_error_at(doc, ptr, err,
                                   "inputs: expected a mapping of input names to values "
                                   "(name: value lines), got %s",
                                   kind_name(v));
            goto done;
        }
        out->inputs = ensure_member(obj, key, v, 1);
    } else if (strcmp(key, "secrets") == 0) {
        if (v && !json_object_is_type(v, json_type_array)) {
            rc = manifest_error_at(doc, ptr, err,
                                   "secrets: expected a list of environment variable names "
                                   "(- NAME lines), got %s",
                                   kind_name(v));
            goto done;
        }
        for (size_t i = 0; v && i < json_object_array_length(v); i++) {
            json_object *s = json_object_array_get_idx(v, i);
            const char *name = json_object_get_string(s);
            if (json_object_is_type(s, json_type_string) &&
                name_ok(name, is_ident_first, is_ident_char))
                continue;
            char idx[32];
            snprintf(idx, sizeof(idx), "%zu", i);
            char *eptr = manifest_ptr_child(ptr, idx);
            const char *text = name ? name : "null";
            clip(text, strlen(text), shown);
            rc = manifest_error_at(doc, eptr, err,
                                   "secrets[%zu]: '%s' is not a secret name; expected an "
                                   "environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                                   i, shown);
            free(eptr);
            goto done;
        }
        out->secrets = ensure_member(obj, key, v, 0);
    }
done:
    free(ptr);
    return rc;
}

int manifest_task_parse(struct manifest_doc *doc, const char *pointer,
                        const char *const *extra_keys, struct task_manifest *out,
                        struct mls_err *err)
{
    json_object *obj = NULL;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    int found = 1;
    if (!pointer)
        pointer = "";
    /* json_pointer_get leaves *res NULL for "" in json-c 0.16: the root is taken directly. */
    if (*pointer == '\0')
        obj = doc->root;
    else if (json_pointer_get(doc->root, pointer, &obj) != 0)
        found = 0;
    if (!found || !json_object_is_type(obj, json_type_object)) {
        rc = manifest_error_at(doc, pointer, err,
                               "expected a task: a mapping with task:, plugin: and inputs:, "
                               "got %s",
                               found ? kind_name(obj) : "nothing");
        goto done;
    }
    json_object_object_foreach(obj, key, val)
    {
        if (key_allowed(key, extra_keys))
            continue;
        char *vptr = manifest_ptr_child(pointer, key);
        struct buf kp;
        buf_init(&kp);
        buf_printf(&kp, "%s#key", vptr);
        rc = unknown_key(doc, kp.data, key, extra_keys, err);
        buf_free(&kp);
        free(vptr);
        goto done;
    }
    for (const char *const *k = task_keys; *k; k++) {
        json_object *v = NULL;
        /* Absent required keys get their own message below; present-but-null is a type error. */
        if (!json_object_object_get_ex(obj, *k, &v) &&
            (strcmp(*k, "task") == 0 || strcmp(*k, "plugin") == 0))
            continue;
        rc = task_field(doc, pointer, obj, *k, v, out, err);
        if (rc)
            goto done;
    }
    if (!out->task) {
        rc = manifest_error_at(doc, pointer, err,
                               "missing required key 'task' (the stage's name, e.g. task: train)");
        goto done;
    }
    if (!out->plugin) {
        rc = manifest_error_at(doc, pointer, err,
                               "missing required key 'plugin' (the plugin that runs the task, "
                               "e.g. plugin: train)");
        goto done;
    }
    if (!out->backend)
        out->backend = "local";
    out->doc = doc;
    out->pointer = xstrdup(pointer);
done:
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

int manifest_task_load(const char *path, struct task_manifest **out, struct mls_err *err)
{
    struct manifest_doc *doc = NULL;
    struct task_manifest *task = NULL;
    *out = NULL;
    int rc = manifest_load(path, &doc, err);
    if (rc)
        goto done;
    task = xcalloc(1, sizeof(*task));
    rc = manifest_task_parse(doc, "", NULL, task, err);
    if (rc)
        goto done;
    task->owns_doc = 1;
    doc = NULL;
    *out = task;
    task = NULL;
done:
    free(task);
    manifest_doc_free(doc);
    return rc;
}

void manifest_task_release(struct task_manifest *task)
{
    if (!task)
        return;
    free(task->pointer);
    if (task->owns_doc)
        manifest_doc_free(task->doc);
    memset(task, 0, sizeof(*task));
}

void manifest_task_free(struct task_manifest *task)
{
    if (!task)
        return;
    manifest_task_release(task);
    free(task);
}
