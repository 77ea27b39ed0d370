/* main.c — the mlstage executable: everything else lives in libmlstage. */
#include "cli.h"

int main(int argc, char **argv)
{
    return mlstage_cli_main(argc, argv);
}
