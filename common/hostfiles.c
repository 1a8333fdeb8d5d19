/* Host files' shared rules and digest (hostfiles.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hostfiles.h"
#include "json.h"
#include "macro.h"
#include "util.h"

bool host_file_path_valid(const char *p) {
        size_t n = strlen(p), comp = 0;

        if (n < 2 || n > HOST_FILE_PATH_MAX || p[0] != '/' || p[n - 1] == '/')
                return false;
        for (size_t i = 1; i <= n; i++) {
                if (p[i] == '/' || p[i] == 0) {
                        const char *c = p + i - comp;
                        if (comp == 0 || (comp == 1 && c[0] == '.') || (comp == 2 && c[0] == '.' && c[1] == '.'))
                                return false;
                        comp = 0;
                        continue;
                }
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+@-", p[i]))
                        return false;
                comp++;
        }
        return true;
}

int host_file_mode_parse(const char *s, char ret[5]) {
        size_t n = strlen(s);

        if (n < 3 || n > 4 || (n == 4 && s[0] != '0'))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (s[i] < '0' || s[i] > '7')
                        return -EINVAL;
        ret[0] = '0';
        memcpy(ret + 4 - n, s, n);
        ret[4] = 0;
        return 0;
}

bool host_file_owner_valid(const char *s) {
        const char *colon = strchr(s, ':');
        size_t a, b;

        if (!colon)
                return false;
        a = (size_t) (colon - s);
        b = strlen(colon + 1);
        if (a == 0 || b == 0 || a > 10 || b > 10 || strspn(s, "0123456789") != a ||
            strspn(colon + 1, "0123456789") != b)
                return false;
        return strtoull(s, NULL, 10) < (1ull << 31) && strtoull(colon + 1, NULL, 10) < (1ull << 31);
}

static int path_cmp(const void *a, const void *b) {
        return strcmp(json_string_value(json_object_get(*(json_t *const *) a, "path")),
                      json_string_value(json_object_get(*(json_t *const *) b, "path")));
}

int host_files_digest(const json_t *files, char ret[65]) {
        size_t n = json_array_size(files);
        _cleanup_free_ json_t **v = NULL;
        _cleanup_json_ json_t *plain = json_array();
        _cleanup_free_ char *text = NULL;
        int r = 0;

        if (!json_is_array(files) || n > HOST_FILES_MAX)
                return -EINVAL;
        v = calloc(n + 1, sizeof *v);
        if (!v || !plain)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *f = json_array_get(files, i);
                if (!json_is_string(json_object_get(f, "path")) || !json_is_string(json_object_get(f, "mode")) ||
                    !json_is_string(json_object_get(f, "owner")) || !json_is_string(json_object_get(f, "content"))) {
                        r = -EINVAL;
                        n = i;
                        break;
                }
                v[i] = json_pack("{s:O, s:O, s:O, s:O}", "path", json_object_get(f, "path"), "mode",
                                 json_object_get(f, "mode"), "owner", json_object_get(f, "owner"), "content",
                                 json_object_get(f, "content"));
                if (!v[i]) {
                        r = -ENOMEM;
                        n = i;
                        break;
                }
        }
        if (r >= 0)
                qsort(v, n, sizeof *v, path_cmp);
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(plain, v[i]) < 0 && r >= 0)
                        r = -ENOMEM;
        if (r < 0)
                return r;
        text = json_dumps(plain, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
        if (!text)
                return -ENOMEM;
        sha256_buffer_hex(text, strlen(text), ret);
        return 0;
}

int host_files_check(const json_t *j, Error *error) {
        const json_t *files = json_object_get(j, "files"), *f;
        const char *digest = json_string_value(json_object_get(j, "digest"));
        char mine[65], mode[5];
        size_t i;
        int r;

        if (!digest || !sha256_hex_valid(digest))
                return error_set(error, -EBADMSG, "'digest': expected a sha256 digest");
        if (!json_is_array(files) || json_array_size(files) > HOST_FILES_MAX)
                return error_set(error, -EBADMSG, "'files': expected an array of at most %d files", HOST_FILES_MAX);
        json_array_foreach(files, i, f) {
                const char *path = json_string_value(json_object_get(f, "path"));
                const char *m = json_string_value(json_object_get(f, "mode"));
                const char *owner = json_string_value(json_object_get(f, "owner"));
                const json_t *content = json_object_get(f, "content");

                if (!path || !host_file_path_valid(path))
                        return error_set(error, -EBADMSG, "'files[%zu].path': not a valid path", i);
                if (!m || host_file_mode_parse(m, mode) < 0 || !streq(m, mode))
                        return error_set(error, -EBADMSG, "file '%s': 'mode' is not four octal digits", path);
                if (!owner || !host_file_owner_valid(owner))
                        return error_set(error, -EBADMSG, "file '%s': 'owner' is not UID:GID", path);
                if (!json_is_string(content) || json_string_length(content) > HOST_FILE_CONTENT_MAX ||
                    strlen(json_string_value(content)) != json_string_length(content))
                        return error_set(error, -EBADMSG, "file '%s': 'content' is not text of at most %d bytes",
                                         path, HOST_FILE_CONTENT_MAX);
                for (size_t k = 0; k < i; k++)
                        if (streq(json_string_value(json_object_get(json_array_get(files, k), "path")), path))
                                return error_set(error, -EBADMSG, "file '%s' is given twice", path);
        }
        r = host_files_digest(files, mine);
        if (r < 0)
                return error_set(error, r == -ENOMEM ? r : -EBADMSG, "cannot compute the files' digest");
        if (!streq(mine, digest))
                return error_set(error, -EBADMSG, "the files' digest is %s, not the %s they came with", mine, digest);
        return 0;
}
