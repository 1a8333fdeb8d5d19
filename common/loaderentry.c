#include "loaderentry.h"
#include "manifest.h"
#include "util.h"

char *loader_entry_id(unsigned gen, const char *version) {
        if (gen == 0 || !image_version_valid(version))
                return NULL;
        return strdup_printf(LOADER_ENTRY_PREFIX "%u-%s", gen, version);
}

char *loader_entry_file_name(const char *id, int tries_left, int tries_done) {
        if (tries_left < 0)
                return strdup_printf("%s" LOADER_ENTRY_SUFFIX, id);
        if (tries_done <= 0)
                return strdup_printf("%s+%d" LOADER_ENTRY_SUFFIX, id, tries_left);
        return strdup_printf("%s+%d-%d" LOADER_ENTRY_SUFFIX, id, tries_left, tries_done);
}

static char *version_file(const char *version, const char *file) {
        if (!image_version_valid(version))
                return NULL;
        return strdup_printf("/" LOADER_KERNEL_DIR "/%s/%s", version, file);
}

char *loader_kernel_path(const char *version) {
        return version_file(version, "vmlinuz");
}

char *loader_initrd_path(const char *version) {
        return version_file(version, "initrd");
}

int loader_entry_body(const char *name, const char *version, char slot, const char *cmdline, char **ret) {
        _cleanup_free_ char *kernel = NULL, *initrd = NULL;
        char *body;

        cmdline = strempty(cmdline);
        if (!image_name_valid(name) || !image_version_valid(version) || (slot != 'a' && slot != 'b'))
                return -EINVAL;
        /* A line break would start a new key; a second slot would be ambiguous. */
        if (strpbrk(cmdline, "\r\n") || strstr(cmdline, LOADER_SLOT_KEY))
                return -EINVAL;
        kernel = loader_kernel_path(version);
        initrd = loader_initrd_path(version);
        if (!kernel || !initrd)
                return -ENOMEM;
        body = strdup_printf("title %s %s (slot %c)\n"
                             "version %s\n"
                             "linux %s\n"
                             "initrd %s\n"
                             "options %s%s" LOADER_SLOT_KEY "%c\n",
                             name, version, slot == 'a' ? 'A' : 'B', version, kernel, initrd, cmdline,
                             *cmdline ? " " : "", slot);
        if (!body)
                return -ENOMEM;
        *ret = body;
        return 0;
}
