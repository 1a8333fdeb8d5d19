/* The fleet page's files (bootserver/ui/), built into slipwayd by
 * bootserver/ui/embed.sh: no file is read at run time. */
#pragma once

#include <stddef.h>

typedef struct UiAsset {
        const char *name;         /* "index.html", "app.js", ... */
        const char *content_type;
        const unsigned char *data;
        size_t size;
} UiAsset;

/* Ends in an entry whose name is NULL. */
extern const UiAsset ui_assets[];
