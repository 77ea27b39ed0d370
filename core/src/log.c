/* log.c — the one logging sink of the process: levels, masking, CI syntax, the run log. */
#include "log.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mask.h"
#include "util.h"

static enum mlstage_log_level cur_level = MLSTAGE_LOG_INFO;
static enum ci_kind cur_ci = CI_NONE;
static int use_color;
static int in_group;
static FILE *run_log;
static FILE *ci_stream; /* where CI commands go: stdout unless set (NULL) */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void log_configure(enum mlstage_log_level level, enum ci_kind ci, int color)
{
    cur_level = level;
    cur_ci = ci;
    use_color = color;
}

enum mlstage_log_level log_level(void)
{
    return cur_level;
}

enum ci_kind log_ci(void)
{
    return cur_ci;
}

void log_set_ci_stream(FILE *f)
{
    ci_stream = f;
}

FILE *log_ci_stream(void)
{
    return ci_stream ? ci_stream : stdout;
}

void log_set_file(FILE *f)
{
    pthread_mutex_lock(&log_lock);
    run_log = f;
    pthread_mutex_unlock(&log_lock);
}

static const char *level_name(enum mlstage_log_level level)
{
    switch (level) {
    case MLSTAGE_LOG_ERROR: return "error";
    case MLSTAGE_LOG_WARN: return "warning";
    case MLSTAGE_LOG_INFO: return "info";
    default: return "debug";
    }
}

static void to_run_log(enum mlstage_log_level level, const char *masked)
{
    if (!run_log)
        return;
    char ts[32];
    time_rfc3339(now_wall(), ts);
    fprintf(run_log, "%s %-7s %s\n", ts, level_name(level), masked);
    fflush(run_log);
}

/*
 * "FILE:LINE:COL: text", as manifest errors read, split at the first colon;
 * 0 when the message does not start with a position. *file is new.
 */
static int split_position(const char *msg, char **file, int *line, int *col, const char **rest)
{
    const char *p = strchr(msg, ':');
    if (!p || p == msg || !isdigit((unsigned char)p[1]))
        return 0;
    char *end;
    long l = strtol(p + 1, &end, 10);
    if (*end != ':' || !isdigit((unsigned char)end[1]))
        return 0;
    long c = strtol(end + 1, &end, 10);
    if (strncmp(end, ": ", 2) != 0 || l <= 0 || l > 100000000 || c <= 0 || c > 100000000)
        return 0;
    *file = strndup(msg, (size_t)(p - msg));
    *line = (int)l;
    *col = (int)c;
    *rest = end + 2;
    return *file != NULL;
}

/* Writes one masked message, line by line, in the right syntax. Locked. */
static void emit(enum mlstage_log_level level, const char *file, int line, int col,
                 const char *text)
{
    char *masked = mask_apply(text, strlen(text), NULL);
    size_t n = strlen(masked);
    while (n && (masked[n - 1] == '\n' || masked[n - 1] == '\r'))
        masked[--n] = '\0';
    to_run_log(level, masked);
    if (level > cur_level) {
        free(masked);
        return;
    }
    const char *indent = in_group && cur_ci == CI_NONE ? "  " : "";
    if (level <= MLSTAGE_LOG_WARN) {
        const char *lv = level == MLSTAGE_LOG_ERROR ? "error" : "warning";
        if (cur_ci == CI_NONE) {
            const char *on = "", *off = "";
            if (use_color) {
                on = level == MLSTAGE_LOG_ERROR ? "\033[31m" : "\033[33m";
                off = "\033[0m";
            }
            if (file && line > 0)
                fprintf(stderr, "%s%s%s:%d:%d: %s:%s %s\n", indent, on, file, line, col, lv, off,
                        masked);
            else if (file)
                fprintf(stderr, "%s%s%s: %s:%s %s\n", indent, on, file, lv, off, masked);
            else
                fprintf(stderr, "%s%s%s:%s %s\n", indent, on, lv, off, masked);
        } else {
            /* A position at the head of the text becomes the runner's file annotation. */
            char *at = NULL;
            const char *rest = masked;
            if (!file && split_position(masked, &at, &line, &col, &rest))
                file = at;
            fflush(stderr);
            ci_issue(cur_ci, log_ci_stream(), lv, file, line, col, rest);
            fflush(log_ci_stream());
            free(at);
        }
    } else if (level == MLSTAGE_LOG_DEBUG && cur_ci != CI_NONE) {
        fflush(stderr);
        ci_debug(cur_ci, log_ci_stream(), masked);
        fflush(log_ci_stream());
    } else if (level == MLSTAGE_LOG_DEBUG) {
        fprintf(stderr, "%s%sdebug: %s%s\n", indent, use_color ? "\033[2m" : "", masked,
                use_color ? "\033[0m" : "");
    } else {
        fprintf(stderr, "%s%s\n", indent, masked);
    }
    free(masked);
}

void log_vmsg(enum mlstage_log_level level, const char *fmt, va_list ap)
{
    struct buf b;
    buf_init(&b);
    buf_vprintf(&b, fmt, ap);
    pthread_mutex_lock(&log_lock);
    emit(level, NULL, 0, 0, b.data ? b.data : "");
    pthread_mutex_unlock(&log_lock);
    buf_free(&b);
}

void log_msg(enum mlstage_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void log_issue(enum mlstage_log_level level, const char *file, int line, int col, const char *msg)
{
    pthread_mutex_lock(&log_lock);
    emit(level, file, line, col, msg);
    pthread_mutex_unlock(&log_lock);
}

void log_line(const char *line, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, line, len);
    copy[len] = '\0';
    pthread_mutex_lock(&log_lock);
    emit(MLSTAGE_LOG_INFO, NULL, 0, 0, copy);
    pthread_mutex_unlock(&log_lock);
    free(copy);
}

void log_group_begin(const char *title)
{
    pthread_mutex_lock(&log_lock);
    char *masked = mask_apply(title, strlen(title), NULL);
    to_run_log(MLSTAGE_LOG_INFO, masked);
    if (cur_level >= MLSTAGE_LOG_INFO) {
        if (cur_ci == CI_NONE) {
            fprintf(stderr, "%s== %s ==%s\n", use_color ? "\033[1m" : "", masked,
                    use_color ? "\033[0m" : "");
        } else {
            fflush(stderr);
            ci_group_begin(cur_ci, log_ci_stream(), masked);
            fflush(log_ci_stream());
        }
    }
    in_group = 1;
    free(masked);
    pthread_mutex_unlock(&log_lock);
}

void log_group_end(void)
{
    pthread_mutex_lock(&log_lock);
    if (in_group && cur_level >= MLSTAGE_LOG_INFO && cur_ci != CI_NONE) {
        fflush(stderr);
        ci_group_end(cur_ci, log_ci_stream());
        fflush(log_ci_stream());
    }
    in_group = 0;
    pthread_mutex_unlock(&log_lock);
}

void log_plan(const char *msg)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "plan: %s", msg);
    pthread_mutex_lock(&log_lock);
    emit(MLSTAGE_LOG_INFO, NULL, 0, 0, b.data);
    pthread_mutex_unlock(&log_lock);
    buf_free(&b);
}
