/* Fuzzes the boot entries the agent reads from the ESP: file names with
 * their boot counters (bootentry_parse_file_name()), entry bodies and the
 * menu order (bootentries_load()).
 *
 * An input is up to 8 entries separated by NUL bytes, each its file name on
 * the first line and the file's content after it. Every name is parsed;
 * those that can be file names are written to a fresh ESP, which is then
 * loaded. Invariants abort: a slipway-<gen>-<version> name survives a
 * rename through loader_entry_file_name(), the slot is 'a', 'b' or none, and
 * the menu order is a consistent order. The corpus holds entries as the
 * builder's disk and bootentry_write() make them, at each step of boot
 * counting, and entries of other systems. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bootentry.h"
#include "fileio.h"
#include "fuzz.h"
#include "util.h"

#define RECORDS_MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sign(int v) {
        return (v > 0) - (v < 0);
}

/* A parsed name must come back the same through the name the agent would
 * give it after a rename. */
static void check_name(const char *name) {
        _cleanup_(bootentry_release) BootEntry e = { .tries_left = -1 }, again = { .tries_left = -1 };
        _cleanup_free_ char *id = NULL, *renamed = NULL;

        if (bootentry_parse_file_name(name, &e) < 0)
                return;
        if (!streq(e.file, name) || !startswith(name, e.id) || e.tries_left < -1 || e.tries_done < 0)
                abort();
        if (e.gen == 0) {
                if (e.version)
                        abort();
                return;
        }
        id = loader_entry_id(e.gen, e.version);
        if (!id || !streq(id, e.id))
                abort();
        renamed = loader_entry_file_name(e.id, e.tries_left, e.tries_done);
        if (!renamed || bootentry_parse_file_name(renamed, &again) < 0)
                abort();
        if (!streq(again.id, e.id) || again.gen != e.gen || !streq(again.version, e.version) ||
            again.tries_left != e.tries_left || (e.tries_left >= 0 && again.tries_done != e.tries_done))
                abort();
}

/* Whether name can be created in a directory as it is. */
static bool plain_file_name(const char *name) {
        return *name && strlen(name) <= NAME_MAX && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *text = NULL, *esp = NULL, *dir = NULL;
        char *names[RECORDS_MAX] = {};
        size_t n_names = 0, n = 0;
        BootEntry *e = NULL;

        if (size > 64 * 1024)
                return 0;
        /* NUL separates the records: a copy with a final NUL holds them all. */
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        esp = fuzz_mkdtemp("bootentry");
        dir = path_join(esp, "loader/entries");
        if (!dir || mkdir_p(dir, 0755) < 0)
                abort();

        for (char *rec = text; rec < text + size + 1 && n_names < RECORDS_MAX; rec += strlen(rec) + 1) {
                char *body = strchr(rec, '\n');
                _cleanup_free_ char *path = NULL;

                if (body)
                        *body++ = '\0';
                check_name(rec);
                for (size_t i = 0; i < n_names; i++)
                        if (sign(bootentry_verscmp(rec, names[i])) != -sign(bootentry_verscmp(names[i], rec)))
                                abort();
                if (!plain_file_name(rec))
                        continue;
                path = path_join(dir, rec);
                /* A name twice: the first one stays. */
                if (!path || access(path, F_OK) == 0 || write_file_atomic(path, strempty(body), strlen(strempty(body)), 0644) < 0)
                        continue;
                names[n_names++] = rec;
        }

        if (bootentries_load(esp, &e, &n) == 0) {
                if (n > n_names)
                        abort();
                for (size_t i = 0; i < n; i++) {
                        if (e[i].slot != 0 && e[i].slot != 'a' && e[i].slot != 'b')
                                abort();
                        if (bootentry_compare(&e[i], &e[i]) != 0)
                                abort();
                        for (size_t j = i + 1; j < n; j++)
                                if (bootentry_compare(&e[i], &e[j]) > 0 || bootentry_compare(&e[j], &e[i]) < 0)
                                        abort();
                }
                bootentries_free(e, n);
        }

        if (rm_rf(esp) < 0)
                abort();
        return 0;
}
