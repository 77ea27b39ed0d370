/* mlstage.h — the whole plugin API: include this and nothing else from the core. */
#ifndef MLSTAGE_MLSTAGE_H
#define MLSTAGE_MLSTAGE_H

#include <mlstage/version.h>
#include <mlstage/export.h>
#include <mlstage/error.h>
#include <mlstage/plugin.h>
#include <mlstage/context.h>
#include <mlstage/proc.h>
#include <mlstage/http.h>
#include <mlstage/fs.h>
#include <mlstage/registry.h>
#include <mlstage/azure.h>

#endif
