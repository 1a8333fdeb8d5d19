/* The webhooks' cursors in the store: for each webhook by name, the id of
 * the last audit entry it is done with (sent, given up, or not one of its
 * events). Backend-neutral; store-webhooks.c implements it. */
#pragma once

#include <stdint.h>

#include "store.h"

/* 1 and the cursor of webhook name in *ret_id when it has one, 0 when not. */
int store_webhook_cursor_get(StoreTx *tx, const char *name, int64_t *ret_id);
/* Sets the cursor of webhook name to id, making it when there is none. */
int store_webhook_cursor_set(StoreTx *tx, const char *name, int64_t id);
/* The id of the newest audit entry, 0 when there is none. */
int store_audit_last_id(StoreTx *tx, int64_t *ret_id);
