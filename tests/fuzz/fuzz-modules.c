/* Fuzzes the modules.yaml reader and the choice of active streams: any
 * input is read or refused, and filtering asks nothing of a bad one. */
#include <stdint.h>
#include <unistd.h>

#include "fileio.h"
#include "fuzz.h"
#include "modules.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *dir = fuzz_mkdtemp("modules"), *path = path_join(dir, "modules.yaml");
        Modules *m = modules_new();

        if (!path || !m || write_file_atomic(path, data, size, 0644) < 0)
                abort();
        if (modules_add_file(m, path, "fuzz") == 0 && modules_activate(m, NULL) == 0) {
                size_t n;
                const ModuleChoice *c = modules_active(m, &n);

                for (size_t i = 0; i < n; i++)
                        if (!c[i].name || !c[i].stream)
                                abort();
                (void) modules_hides(m, "nodejs", "nodejs-0:18.1-1.noarch");
        }
        modules_free(m);
        (void) unlink(path);
        (void) rmdir(dir);
        return 0;
}
