/* The audit log's listing (store-audit.c), here for the test that shows
 * which index each one uses. Parameters: ?1 the id after which, ?2 how
 * many, ?3 an action or its prefix (NULL: any), ?4 1 for the oldest first
 * or -1 for the newest, ?5 the target. Rows come oldest first either way. */
#pragma once

#define AUDIT_LIST_COLUMNS "SELECT id, time, actor, action, target, detail FROM audit "
#define AUDIT_LIST_ACTION "(?3 IS NULL OR action = ?3 OR substr(action, 1, length(?3) + 1) = ?3 || '.') "

/* Any target. */
#define AUDIT_LIST_SQL                                                                                           \
        "SELECT * FROM (" AUDIT_LIST_COLUMNS "WHERE id > ?1 AND " AUDIT_LIST_ACTION "ORDER BY id * ?4 LIMIT ?2) " \
        "AS a ORDER BY id"

/* One target's: "target = ?5" alone, so that both databases take the
 * index audit_target (a test checks their plans). */
#define AUDIT_LIST_TARGET_SQL                                                                              \
        "SELECT * FROM (" AUDIT_LIST_COLUMNS "WHERE target = ?5 AND id > ?1 AND " AUDIT_LIST_ACTION "ORDER " \
        "BY id * ?4 LIMIT ?2) AS a ORDER BY id"
