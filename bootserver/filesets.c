/* Host file sets: the canonical form, the templates, a host's files
 * (filesets.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "filesets.h"
#include "hash.h"
#include "hostfiles.h"
#include "json.h"
#include "labels.h"
#include "store-files.h"
#include "util.h"

/* The longest variable name between the braces. */
#define VAR_MAX 80

/* One variable of a template, name n bytes at v (spaces trimmed): its
 * value for h (NULL h: only checks the name). 0 and *ret_value (borrowed;
 * NULL when h is NULL), -EINVAL for a name that is none, -ENOENT for one
 * the host has no value for. */
static int variable(const char *v, size_t n, const Host *h, const char **ret_value, char *ret_literal, size_t size) {
        char name[VAR_MAX + 1];
        const char *key;

        if (n == 0 || n > VAR_MAX)
                return -EINVAL;
        memcpy(name, v, n);
        name[n] = 0;
        if (n >= 2 && name[0] == '"' && name[n - 1] == '"' && !memchr(name + 1, '"', n - 2)) {
                snprintf(ret_literal, size, "%.*s", (int) (n - 2), name + 1);
                *ret_value = ret_literal;
                return 0;
        }
        *ret_value = NULL;
        if (streq(name, "host.id"))
                *ret_value = h ? h->id : NULL;
        else if (streq(name, "host.name"))
                *ret_value = h ? h->hostname : NULL;
        else if (streq(name, "host.mac"))
                *ret_value = h ? h->mac : NULL;
        else if ((key = startswith(name, "label.")) && label_valid(key)) {
                for (size_t i = 0; h && i < h->n_labels; i++)
                        if (streq(h->labels[i].key, key))
                                *ret_value = h->labels[i].value;
        } else
                return -EINVAL;
        return h && !*ret_value ? -ENOENT : 0;
}

/* Walks template: checks it (h NULL) or renders it for h into *ret. */
static int template_walk(const char *path, const char *template, const Host *h, char **ret, Error *error) {
        _cleanup_free_ char *out = NULL;
        size_t n = 0, cap = 0;
        const char *p = template;

        for (;;) {
                const char *open = strstr(p, "{{"), *close, *v, *e, *value;
                char literal[VAR_MAX + 1];
                size_t piece;
                int r;

                piece = open ? (size_t) (open - p) : strlen(p);
                if (h) {
                        if (n + piece + 1 > cap) {
                                char *m;
                                cap = (n + piece + 1) * 2;
                                m = realloc(out, cap);
                                if (!m)
                                        return error_set(error, -ENOMEM, "out of memory");
                                out = m;
                        }
                        memcpy(out + n, p, piece);
                        n += piece;
                        out[n] = 0;
                }
                if (!open)
                        break;
                close = strstr(open + 2, "}}");
                if (!close)
                        return error_set(error, -EINVAL, "file '%s': '{{' without '}}'", path);
                for (v = open + 2; *v == ' '; v++)
                        ;
                for (e = close; e > v && e[-1] == ' '; e--)
                        ;
                r = variable(v, (size_t) (e - v), h, &value, literal, sizeof literal);
                if (r == -EINVAL)
                        return error_set(error, r, "file '%s': '%.*s' is not a variable (host.id, host.name, "
                                                   "host.mac, label.KEY or \"TEXT\")",
                                         path, (int) MIN((size_t) (e - v), (size_t) VAR_MAX), v);
                if (r == -ENOENT)
                        return error_set(error, r, "file '%s': host '%s' has no value for '%.*s'", path, h->id,
                                         (int) (e - v), v);
                if (h) {
                        size_t vn = strlen(value);
                        if (n + vn + 1 > cap) {
                                char *m;
                                cap = (n + vn + 1) * 2;
                                m = realloc(out, cap);
                                if (!m)
                                        return error_set(error, -ENOMEM, "out of memory");
                                out = m;
                        }
                        memcpy(out + n, value, vn + 1);
                        n += vn;
                }
                p = close + 2;
        }
        if (h) {
                if (n > HOST_FILE_CONTENT_MAX)
                        return error_set(error, -EFBIG, "file '%s': over %d bytes once rendered", path,
                                         HOST_FILE_CONTENT_MAX);
                *ret = TAKE_PTR(out);
        }
        return 0;
}

int file_render(const char *path, const char *template, const Host *h, char **ret, Error *error) {
        assert(h);
        return template_walk(path, template, h, ret, error);
}

static int path_cmp(const void *a, const void *b) {
        return strcmp(json_string_value(json_object_get(*(json_t *const *) a, "path")),
                      json_string_value(json_object_get(*(json_t *const *) b, "path")));
}

/* Sorts the files array a by path in place. */
static int files_sort(json_t *a) {
        size_t n = json_array_size(a);
        _cleanup_free_ json_t **v = n ? calloc(n, sizeof *v) : NULL;

        if (n && !v)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                v[i] = json_incref(json_array_get(a, i));
        if (n > 0)
                qsort(v, n, sizeof *v, path_cmp);
        json_array_clear(a);
        for (size_t i = 0; i < n; i++)
                if (json_array_append_new(a, v[i]) < 0)
                        return -ENOMEM;
        return 0;
}

static int canonical_file(const json_t *f, size_t i, json_t *files, Error *error) {
        static const char *const allowed[] = { "path", "mode", "owner", "content", NULL };
        const char *path, *mode, *owner, *content, *key;
        json_t *value;
        char m[5];

        if (!json_is_object(f))
                return error_set(error, -EINVAL, "'files[%zu]': expected an object", i);
        json_object_foreach((json_t *) f, key, value) {
                bool known = false;
                for (size_t k = 0; allowed[k]; k++)
                        known = known || streq(allowed[k], key);
                if (!known)
                        return error_set(error, -EINVAL, "'files[%zu]': unknown member '%.64s'", i, key);
        }
        path = json_string_value(json_object_get(f, "path"));
        if (!path || !host_file_path_valid(path))
                return error_set(error, -EINVAL, "'files[%zu].path': expected an absolute path of at most %d "
                                                 "characters [A-Za-z0-9._+@-] without '.' or '..' components",
                                 i, HOST_FILE_PATH_MAX);
        mode = json_string_value(json_object_get(f, "mode"));
        if (json_object_get(f, "mode") && (!mode || host_file_mode_parse(mode, m) < 0))
                return error_set(error, -EINVAL, "file '%s': 'mode' expected as octal \"0644\"", path);
        if (!mode)
                memcpy(m, "0644", sizeof m);
        owner = json_string_value(json_object_get(f, "owner"));
        if (json_object_get(f, "owner") && (!owner || !host_file_owner_valid(owner)))
                return error_set(error, -EINVAL, "file '%s': 'owner' expected as \"UID:GID\"", path);
        content = json_string_value(json_object_get(f, "content"));
        if (!content)
                return error_set(error, -EINVAL, "file '%s': 'content' expected as a string", path);
        if (json_string_length(json_object_get(f, "content")) > HOST_FILE_CONTENT_MAX ||
            strlen(content) != json_string_length(json_object_get(f, "content")))
                return error_set(error, -EINVAL, "file '%s': 'content' is over %d bytes or holds a NUL", path,
                                 HOST_FILE_CONTENT_MAX);
        for (size_t k = 0; k < json_array_size(files); k++)
                if (streq(json_string_value(json_object_get(json_array_get(files, k), "path")), path))
                        return error_set(error, -EINVAL, "file '%s' is given twice", path);
        int r = template_walk(path, content, NULL, NULL, error);
        if (r < 0)
                return r;
        if (json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:s}", "path", path, "mode", m, "owner",
                                                   owner ? owner : "0:0", "content", content)) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        return 0;
}

int file_set_canonical(const json_t *body, char **ret, char ret_digest[65], Error *error) {
        _cleanup_json_ json_t *files = json_array(), *selector = json_object(), *set = NULL;
        const json_t *sel = json_object_get(body, "selector"), *fl = json_object_get(body, "files"), *f;
        const char *key;
        json_t *value;
        char *text;
        size_t i;
        int r;

        if (!files || !selector)
                return error_set(error, -ENOMEM, "out of memory");
        if (sel && !json_is_null(sel) && !json_is_object(sel))
                return error_set(error, -EINVAL, "'selector': expected an object of labels {\"KEY\": \"VALUE\"}");
        json_object_foreach((json_t *) sel, key, value) {
                if (!label_valid(key) || !json_is_string(value) || !label_valid(json_string_value(value)))
                        return error_set(error, -EINVAL, "'selector': '%.64s' is not a label KEY: \"VALUE\"", key);
                if (json_object_set(selector, key, value) < 0)
                        return error_set(error, -ENOMEM, "out of memory");
        }
        if (!json_is_array(fl))
                return error_set(error, -EINVAL, "'files': expected an array");
        if (json_array_size(fl) > HOST_FILES_SET_MAX)
                return error_set(error, -EINVAL, "'files': more than %d files", HOST_FILES_SET_MAX);
        json_array_foreach(fl, i, f) {
                r = canonical_file(f, i, files, error);
                if (r < 0)
                        return r;
        }
        if (files_sort(files) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        set = json_pack("{s:O, s:O}", "selector", selector, "files", files);
        text = set ? json_dumps(set, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII) : NULL;
        if (!text)
                return error_set(error, -ENOMEM, "out of memory");
        sha256_buffer_hex(text, strlen(text), ret_digest);
        *ret = text;
        return 0;
}

json_t *file_set_version_json(const char *name, int64_t seq, const char *digest, const char *spec, const char *actor,
                              int64_t created) {
        _cleanup_json_ json_t *j = json_pack("{s:s, s:I, s:s, s:s, s:I, s:b}", "name", name, "version",
                                             (json_int_t) seq, "digest", digest, "actor", actor, "created",
                                             (json_int_t) created, "deleted", !spec);
        _cleanup_json_ json_t *s = NULL;

        if (!j)
                return NULL;
        if (spec && *spec) {
                s = json_loads(spec, 0, NULL);
                if (!s || json_object_update(j, s) < 0)
                        return NULL;
        }
        return TAKE_PTR(j);
}

/* Whether every label of selector is one of h's. */
static bool selector_matches(const json_t *selector, const Host *h) {
        const char *key;
        json_t *value;

        json_object_foreach((json_t *) selector, key, value) {
                bool found = false;
                for (size_t i = 0; i < h->n_labels && !found; i++)
                        found = streq(h->labels[i].key, key) && streq(h->labels[i].value, json_string_value(value));
                if (!found)
                        return false;
        }
        return true;
}

bool file_set_selects(const char *spec, const Host *h) {
        _cleanup_json_ json_t *set = spec ? json_loads(spec, 0, NULL) : NULL;

        return set && selector_matches(json_object_get(set, "selector"), h);
}

/* Renders the files of set (its canonical JSON parsed) for h into out
 * (the reply's files). */
static int set_render(const FileSetRow *row, const json_t *set, const Host *h, json_t *out, Error *error) {
        const json_t *f;
        size_t i;

        json_array_foreach(json_object_get(set, "files"), i, f) {
                const char *path = json_string_value(json_object_get(f, "path"));
                _cleanup_free_ char *content = NULL;
                const json_t *o;
                size_t k;
                int r;

                json_array_foreach(out, k, o)
                        if (streq(json_string_value(json_object_get(o, "path")), path))
                                return error_set(error, -EEXIST, "file '%s' is in sets '%s' and '%s'", path,
                                                 json_string_value(json_object_get(o, "set")), row->name);
                r = file_render(path, json_string_value(json_object_get(f, "content")), h, &content, error);
                if (r < 0)
                        return r;
                if (json_array_append_new(out, json_pack("{s:s, s:O, s:O, s:s, s:s, s:I}", "path", path, "mode",
                                                         json_object_get(f, "mode"), "owner",
                                                         json_object_get(f, "owner"), "content", content, "set",
                                                         row->name, "version", (json_int_t) row->seq)) < 0)
                        return error_set(error, -ENOMEM, "out of memory");
        }
        return 0;
}

int files_host_render(StoreTx *tx, const char *id, json_t **ret, char ret_digest[65], Error *error) {
        _cleanup_(host_release) Host h = {};
        _cleanup_json_ json_t *out = json_array();
        FileSetRow *rows = NULL;
        size_t n = 0;
        char digest[65];
        int r;

        if (!out)
                return error_set(error, -ENOMEM, "out of memory");
        /* Each set at the version the host is pinned to, else at its live
         * one (docs/host-files.md, "Rollouts"). */
        r = store_file_set_for_host(tx, id, &rows, &n);
        if (r < 0)
                return error_set(error, r, "cannot read the file sets: %m");
        /* The check-in asks on every round: with no sets, the host need not
         * be read. */
        r = n > 0 ? store_host_get(tx, id, &h) : 0;
        if (r < 0) {
                file_set_rows_free(rows, n);
                return r == -ENOENT ? r : error_set(error, r, "cannot read host '%s': %m", id);
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                _cleanup_json_ json_t *set = json_loads(rows[i].spec, 0, NULL);
                if (!set)
                        r = error_set(error, -EIO, "file set '%s': its stored form does not parse", rows[i].name);
                else if (selector_matches(json_object_get(set, "selector"), &h))
                        r = set_render(&rows[i], set, &h, out, error);
        }
        file_set_rows_free(rows, n);
        if (r < 0)
                return r;
        if (files_sort(out) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        if (json_array_size(out) > HOST_FILES_MAX)
                return error_set(error, -EFBIG, "host '%s' gets over %d files", id, HOST_FILES_MAX);
        r = host_files_digest(out, digest);
        if (r < 0)
                return error_set(error, r, "cannot compute the digest of the files of host '%s'", id);
        if (ret) {
                json_t *j = json_pack("{s:s, s:O}", "digest", digest, "files", out);
                if (!j)
                        return error_set(error, -ENOMEM, "out of memory");
                *ret = j;
        }
        if (ret_digest)
                memcpy(ret_digest, digest, sizeof digest);
        return 0;
}
