/* Fuzzes the INI reader and the image definition on top of it. */
#include <stdint.h>

#include "definition.h"
#include "fileio.h"
#include "ini.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int accept_all(const char *file, unsigned line, const char *section, const char *key, const char *value,
                      void *userdata, Error *error) {
        (void) error;
        (void) file;
        (void) line;
        (*(size_t *) userdata) += strlen(section) + strlen(key) + strlen(value);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL;
        ImageDef *def = NULL;
        size_t total = 0;
        char path[] = "/tmp/fuzz-def-XXXXXX";
        int fd;

        if (size > 64 * 1024)
                return 0;
        text = strndup((const char *) data, size);
        if (!text)
                return 0;
        ini_parse_string("fuzz", text, accept_all, &total, NULL);

        /* The same bytes as a definition file. */
        fd = mkstemp(path);
        if (fd < 0)
                return 0;
        if (loop_write(fd, data, size) == 0 && image_def_load(path, NULL, &def) == 0) {
                /* A definition that loads is complete. */
                if (!def->name || !def->version || !def->packages || def->n_repos == 0)
                        abort();
                image_def_free(def);
        }
        close(fd);
        unlink(path);
        return 0;
}
