/* Fuzzes the lock reader: whatever it accepts must write back and read
 * again. */
#include <jansson.h>
#include <stdint.h>

#include "lock.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        json_t *j, *j2 = NULL;
        Lock *l = NULL, *l2 = NULL;

        j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return 0;
        if (lock_from_json(j, &l) == 0) {
                if (lock_to_json(l, &j2) < 0 || lock_from_json(j2, &l2) < 0)
                        abort();
                if (l->n_packages != l2->n_packages || l->n_repos != l2->n_repos)
                        abort();
                lock_free(l);
                lock_free(l2);
                json_decref(j2);
        }
        json_decref(j);
        return 0;
}
