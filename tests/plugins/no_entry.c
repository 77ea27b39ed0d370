/* no_entry.c — a test-only shared object without the plugin entry point. */
#include <mlstage/export.h>

MLSTAGE_API int not_a_plugin(void);
MLSTAGE_API int not_a_plugin(void)
{
    return 42;
}
