/* cli.h — the command-line tool's entry point, exported from libmlstage for the thin executable. */
#ifndef MLSTAGE_CLI_H
#define MLSTAGE_CLI_H

#include <mlstage/export.h>

/*
 * Runs the mlstage command line and returns the process exit code. It
 * lives in the library so that the agent and the plugins it loads share
 * one copy of the core's state (mask set, logging).
 */
MLSTAGE_API int mlstage_cli_main(int argc, char **argv);

#endif
