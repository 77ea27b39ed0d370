/* log.h — the one logging sink of the process: levels, masking, CI syntax, the run log. */
#ifndef MLSTAGE_LOG_H
#define MLSTAGE_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include <mlstage/context.h>

#include "ci.h"

/*
 * Human text goes to stderr; the runner's logging commands (annotations,
 * groups, debug) go to log_ci_stream(), where the runners read them. Every line is
 * masked first. `level` is the most verbose level shown (-q: WARN,
 * default: INFO, -v: DEBUG).
 */
void log_configure(enum mlstage_log_level level, enum ci_kind ci, int color);
enum mlstage_log_level log_level(void);
enum ci_kind log_ci(void);

/*
 * Where the runner's commands (outputs, annotations, groups, summary) go:
 * stdout, unless `--output json` keeps stdout for its one document and
 * sends them to stderr, which both runners scan for commands as well.
 * NULL restores stdout.
 */
void log_set_ci_stream(FILE *f);
FILE *log_ci_stream(void);

/*
 * Also appends every line (masked, with a timestamp and level, no colour,
 * whatever the level filter) to `f`; NULL stops. The caller owns f.
 */
void log_set_file(FILE *f);

void log_msg(enum mlstage_log_level level, const char *fmt, ...) MLSTAGE_PRINTF(2, 3);
void log_vmsg(enum mlstage_log_level level, const char *fmt, va_list ap) MLSTAGE_PRINTF(2, 0);
/* An error/warning about a place in a file; file may be NULL, line/col 0. */
void log_issue(enum mlstage_log_level level, const char *file, int line, int col, const char *msg);
/* A line of a plugin's raw output: masked, as is, at INFO. */
void log_line(const char *line, size_t len);
void log_group_begin(const char *title);
void log_group_end(void);
/* A dry-run plan line: "plan: ..." at INFO, always shown unless -q. */
void log_plan(const char *msg);

#endif
