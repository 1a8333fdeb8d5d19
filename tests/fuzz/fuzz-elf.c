/* Fuzzes the ELF reader the builder uses to find the dynamic loader and the
 * libraries the agent needs in the initramfs (initramfs_elf_deps()). The
 * input is copied to page-aligned memory, as the builder maps the file.
 * Invariants abort: a loader or library name is a non-empty string. The
 * corpus holds small files gcc made: a dynamic program, a shared library, a
 * static program and a relocatable object, the shape of a kernel module. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "initramfs.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_strv_free_ char **needed = NULL;
        _cleanup_free_ char *interp = NULL;
        uint8_t *map;

        if (size == 0 || size > 1024 * 1024)
                return 0;
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED)
                abort();
        memcpy(map, data, size);
        if (initramfs_elf_deps(map, size, &interp, &needed) == 0) {
                if (interp && !*interp)
                        abort();
                for (char **n = needed; n && *n; n++)
                        if (!**n)
                                abort();
        }
        munmap(map, size);
        return 0;
}
