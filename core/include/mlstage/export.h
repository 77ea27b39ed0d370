/* export.h — symbol visibility: only what the public headers declare is exported. */
#ifndef MLSTAGE_EXPORT_H
#define MLSTAGE_EXPORT_H

#define MLSTAGE_API               __attribute__((visibility("default")))
#define MLSTAGE_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#endif
