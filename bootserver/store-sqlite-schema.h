/* The sqlite schema's migrations (store-sqlite-schema.c): migration N + 1
 * is sqlite_migrations[N], a script that takes user_version from N to
 * N + 1. store-sqlite.c runs those a database lacks, each in its own
 * transaction. */
#pragma once

#include <stddef.h>

extern const char *const sqlite_migrations[];
extern const size_t sqlite_n_migrations;
