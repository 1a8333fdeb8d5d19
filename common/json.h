/* Helpers for jansson values shared by every component. Header-only. */
#pragma once

#include <jansson.h>

#include "macro.h"

/* Drops the reference a variable holds when it goes out of scope (NULL is
 * fine); TAKE_PTR() hands it on instead. json_decrefp() is jansson's own
 * (2.11 and later, with gcc or clang). */
#define _cleanup_json_ _cleanup_(json_decrefp)
