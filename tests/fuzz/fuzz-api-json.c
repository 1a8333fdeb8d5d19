/* Fuzzes the validation of JSON request bodies (check-ins, labels) and the
 * iPXE template renderer with the input as template and as values. */
#include <jansson.h>
#include <stdint.h>

#include "hosts.h"
#include "ipxe.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *s = NULL, *out = NULL, *bad = NULL;
        json_t *j;

        if (size > 65536)
                return 0;
        j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (j) {
                const char *key;
                json_t *v;

                (void) hosts_checkin_invalid(j);
                json_object_foreach(j, key, v)
                        (void) hosts_label_valid(json_string_value(v)), (void) hosts_label_valid(key);
                json_decref(j);
        }
        s = strndup((const char *) data, size);
        if (!s)
                return 0;
        IpxeVars v = { .server = s, .mac = s, .cmdline = s };
        if (ipxe_render(s, &v, &out, &bad) == 0) {
                if (!out)
                        abort();
        } else if (!bad)
                abort();
        return 0;
}
