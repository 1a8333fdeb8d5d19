/* Fuzzes the manifest parser: whatever parses must serialise and parse again
 * to the same bytes. */
#include <stdint.h>

#include "manifest.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        Manifest *m = NULL, *m2 = NULL;
        char *b1 = NULL, *b2 = NULL;
        size_t n1, n2;
        char err[256];

        if (manifest_parse((const char *) data, size, &m, err, sizeof(err)) < 0)
                return 0;
        if (manifest_to_bytes(m, &b1, &n1) < 0)
                abort();
        if (manifest_parse(b1, n1, &m2, err, sizeof(err)) < 0)
                abort();
        if (manifest_to_bytes(m2, &b2, &n2) < 0 || n1 != n2 || memcmp(b1, b2, n1) != 0)
                abort();
        free(b1);
        free(b2);
        manifest_free(m);
        manifest_free(m2);
        return 0;
}
