/* cli.c — the mlstage command line: commands, options, output and exit codes. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include <mlstage/version.h>

int mlstage_cli_main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("mlstage %s\n", MLSTAGE_VERSION);
        return 0;
    }
    fprintf(stderr, "mlstage: not yet\n");
    return 2;
}
