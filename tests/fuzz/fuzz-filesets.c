/* Fuzzes host file sets: file_set_canonical(), which checks a set as a
 * client sends it; then the canonical form must be a fixed point (the same
 * text and digest again), every template must render for a host or be
 * refused with a message naming the file, and the rendered files must be
 * what the agent's host_files_check() accepts. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filesets.h"
#include "hostfiles.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        HostLabel labels[] = { { (char *) "rack", (char *) "r1" }, { (char *) "role", (char *) "web" } };
        Host h = { .id = "h-0123456789ab", .hostname = (char *) "web1", .mac = (char *) "52:54:00:00:00:01",
                   .labels = labels, .n_labels = 2 };
        _cleanup_free_ char *text = NULL, *again = NULL;
        Error e = {};
        char digest[65], digest2[65];
        json_t *j, *set, *files, *f, *out;
        size_t i;
        int r;

        if (size > 65536)
                return 0;
        j = json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, NULL);
        if (!j)
                return 0;
        r = file_set_canonical(j, &text, digest, &e);
        json_decref(j);
        if (r < 0) {
                /* A refusal says why. */
                if (r != -ENOMEM && (r != -EINVAL || !e.message || !*e.message))
                        abort();
                error_clear(&e);
                return 0;
        }
        set = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        if (!set || file_set_canonical(set, &again, digest2, &e) < 0 || !streq(text, again) ||
            !streq(digest, digest2))
                abort();
        files = json_array();
        json_array_foreach(json_object_get(set, "files"), i, f) {
                const char *path = json_string_value(json_object_get(f, "path"));
                _cleanup_free_ char *content = NULL;

                r = file_render(path, json_string_value(json_object_get(f, "content")), &h, &content, &e);
                if (r < 0) {
                        /* Only a variable the host lacks, or a file grown past
                         * its cap; the message names the file. */
                        if ((r != -ENOENT && r != -EFBIG && r != -ENOMEM) || !e.message || !strstr(e.message, path))
                                abort();
                        error_clear(&e);
                        continue;
                }
                json_array_append_new(files, json_pack("{s:s, s:O, s:O, s:s}", "path", path, "mode",
                                                       json_object_get(f, "mode"), "owner",
                                                       json_object_get(f, "owner"), "content", content));
        }
        if (host_files_digest(files, digest) < 0)
                abort();
        out = json_pack("{s:s, s:o}", "digest", digest, "files", files);
        if (!out || host_files_check(out, &e) < 0)
                abort();
        json_decref(out);
        json_decref(set);
        return 0;
}
