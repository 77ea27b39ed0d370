/* markdown.h — text put into the markdown of a stage's summary without breaking it. */
#ifndef MLSTAGE_PLUGIN_MARKDOWN_H
#define MLSTAGE_PLUGIN_MARKDOWN_H

#include <stdio.h>

/* Writes `text` as one cell of a markdown table: "|" would end the cell, a newline the table. */
void md_table_cell(FILE *f, const char *text);

#endif
