/* util.h — small shared helpers of the core: error detail, growable buffers, time. */
#ifndef MLSTAGE_UTIL_H
#define MLSTAGE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <mlstage/error.h>
#include <mlstage/export.h>

/* Error detail of core functions that run without a context. */
struct mls_err {
    int code;       /* MLSTAGE_E*, 0 when unset */
    char msg[4096]; /* "file:line:col: what was expected", masked on output */
};

/* Records code and message; returns code. */
int err_set(struct mls_err *err, int code, const char *fmt, ...) MLSTAGE_PRINTF(3, 4);
void err_clear(struct mls_err *err);

/* A growable NUL-terminated byte buffer. */
struct buf {
    char *data;
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) MLSTAGE_PRINTF(2, 0);
/* Hands the data to the caller (never NULL on success) and resets b. */
char *buf_steal(struct buf *b);
void buf_free(struct buf *b);

/*
 * snprintf into a fixed buffer that reports truncation: 0, or
 * MLSTAGE_EINPUT when the result did not fit (a path longer than PATH_MAX).
 */
int pathf(char *out, size_t size, const char *fmt, ...) MLSTAGE_PRINTF(3, 4);

/* read() until `len` bytes, end of file or an error; survives EINTR. Returns bytes read or -1. */
ssize_t read_full(int fd, void *buf, size_t len);

/* Lowercase hex of `n` bytes into `out` (2n + 1 bytes, NUL-terminated). */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Seconds on the monotonic clock. */
double now_mono(void);
/* Seconds since the epoch, with sub-second precision. */
double now_wall(void);
/* RFC 3339 UTC with millisecond precision: "2026-11-23T09:21:56.123Z". */
void time_rfc3339(double epoch, char out[32]);
/* Sleeps for `seconds` (restarting on EINTR). */
void sleep_s(double seconds);

/* Parses "90", "90s", "30m", "1h30m", "2h", "500ms" into seconds; -1 on error. */
double duration_parse(const char *s);

/* strdup that never returns NULL for a non-NULL input (aborts on OOM). */
char *xstrdup(const char *s);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);

/* json-c serialisation flags used everywhere (pretty, '/' not escaped). */
#define MLS_JSON_PRETTY                                                                            \
    (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)
#define MLS_JSON_PLAIN (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

#endif
