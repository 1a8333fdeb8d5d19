#include "audit.h"
#include "store-audit.h"
#include "util.h"

int audit_log_at(StoreTx *tx, int64_t now, const char *actor, const char *action, const char *target, json_t *detail) {
        _cleanup_free_ char *d = NULL;

        if (detail) {
                d = json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS);
                if (!d)
                        return -ENOMEM;
        }
        return store_audit_append(tx, now, actor ? actor : "system", action, target, d);
}
