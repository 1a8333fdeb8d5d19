/* Fuzzes the comps reader and the expansion of group requests: any input
 * is read or refused, and what is read expands without fault. */
#include <stdint.h>
#include <unistd.h>

#include "comps.h"
#include "fileio.h"
#include "fuzz.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const specs[] = { "core", "^server-env", "*", "^*", "C*", "[" };
        _cleanup_free_ char *dir = fuzz_mkdtemp("comps"), *path = path_join(dir, "comps.xml");
        Comps *c = comps_new();

        if (!path || !c || write_file_atomic(path, data, size, 0644) < 0)
                abort();
        if (comps_add_file(c, path, "fuzz") == 0)
                for (size_t i = 0; i < ELEMENTSOF(specs); i++) {
                        CompsExpansion e = {};
                        int r = comps_expand(c, specs[i], GROUP_PACKAGE_MANDATORY | GROUP_PACKAGE_DEFAULT |
                                                                  GROUP_PACKAGE_OPTIONAL | GROUP_PACKAGE_CONDITIONAL,
                                             &e);

                        if (r < 0 && r != -ENOENT)
                                abort();
                        if (r == 0 && (!e.groups || !e.packages))
                                abort();
                        comps_expansion_release(&e);
                }
        comps_free(c);
        (void) unlink(path);
        (void) rmdir(dir);
        return 0;
}
