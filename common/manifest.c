#include <stdarg.h>

#include "hash.h"
#include "manifest.h"
#include "util.h"

/* 1 to 64 characters of ASCII letters, digits and the punctuation in
 * extra, not starting with '.' (no hidden files, no "..") or '-' (no
 * options). ASCII only, so the answer does not depend on the locale. NULL
 * is not valid. */
static bool token_valid(const char *s, const char *extra) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 64 || s[0] == '.' || s[0] == '-')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
                    !strchr(extra, c))
                        return false;
        }
        return true;
}

bool image_name_valid(const char *s) {
        return token_valid(s, "._-+~");
}

bool image_version_valid(const char *s) {
        return token_valid(s, "._-~^");
}

Manifest *manifest_new(void) {
        return calloc(1, sizeof(Manifest));
}

Manifest *manifest_free(Manifest *m) {
        if (!m)
                return NULL;
        free(m->name);
        free(m->version);
        free(m->arch);
        free(m->cmdline);
        free(m->kernel_version);
        free(m->min_from_version);
        for (size_t i = 0; i < m->n_artifacts; i++) {
                free(m->artifacts[i].type);
                free(m->artifacts[i].sha256);
                free(m->artifacts[i].fstype);
        }
        free(m->artifacts);
        json_decref(m->lock);
        json_decref(m->tools);
        json_decref(m->boot);
        free(m->loader);
        free(m->firmware);
        free(m);
        return NULL;
}

int manifest_add_artifact(Manifest *m, const char *type, const char *sha256, uint64_t size, const char *fstype) {
        ManifestArtifact *a = realloc(m->artifacts, sizeof(*a) * (m->n_artifacts + 1));
        if (!a)
                return -ENOMEM;
        m->artifacts = a;
        a = &m->artifacts[m->n_artifacts];
        *a = (ManifestArtifact){
                .type = strdup(type),
                .sha256 = strdup(sha256),
                .size = size,
                .fstype = fstype ? strdup(fstype) : NULL,
        };
        m->n_artifacts++;
        if (!a->type || !a->sha256 || (fstype && !a->fstype))
                return -ENOMEM;
        return 0;
}

const ManifestArtifact *manifest_find_artifact(const Manifest *m, const char *type) {
        for (size_t i = 0; i < m->n_artifacts; i++)
                if (streq(m->artifacts[i].type, type))
                        return &m->artifacts[i];
        return NULL;
}

static int set_string(json_t *o, const char *key, const char *v) {
        if (!v)
                return 0;
        return json_object_set_new(o, key, json_string(v)) < 0 ? -ENOMEM : 0;
}

int manifest_to_bytes(const Manifest *m, char **ret, size_t *ret_size) {
        json_t *o = json_object(), *arts = json_array();
        char *s;
        int r = 0;

        if (!o || !arts) {
                json_decref(o);
                json_decref(arts);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_artifacts && r >= 0; i++) {
                const ManifestArtifact *a = &m->artifacts[i];
                json_t *j = json_pack("{s:s, s:s, s:I}", "type", a->type, "sha256", a->sha256, "size",
                                      (json_int_t) a->size);
                if (!j)
                        r = -ENOMEM;
                else if (a->fstype && set_string(j, "fstype", a->fstype) < 0)
                        r = -ENOMEM;
                if (j && json_array_append_new(arts, j) < 0)
                        r = -ENOMEM;
        }
        if (r >= 0 && json_object_set_new(o, "artifacts", arts) < 0)
                r = -ENOMEM;
        else
                arts = NULL;
        if (r >= 0)
                r = json_object_set_new(o, "format", json_integer(MANIFEST_FORMAT)) |
                                    json_object_set_new(o, "build_time", json_integer((json_int_t) m->build_time)) |
                                    json_object_set_new(o, "root_size", json_integer((json_int_t) m->root_size)) |
                                    set_string(o, "name", m->name) | set_string(o, "version", m->version) |
                                    set_string(o, "arch", m->arch) | set_string(o, "cmdline", m->cmdline) |
                                    set_string(o, "kernel_version", m->kernel_version) |
                                    set_string(o, "min_from_version", m->min_from_version) |
                                    set_string(o, "loader", m->loader) | set_string(o, "firmware", m->firmware)
                            ? -ENOMEM
                            : 0;
        if (r >= 0 && m->lock && json_object_set(o, "lock", m->lock) < 0)
                r = -ENOMEM;
        if (r >= 0 && m->tools && json_object_set(o, "tools", m->tools) < 0)
                r = -ENOMEM;
        if (r >= 0 && m->boot && json_object_set(o, "boot", m->boot) < 0)
                r = -ENOMEM;
        if (r < 0) {
                json_decref(arts);
                json_decref(o);
                return r;
        }
        s = json_dumps(o, JSON_SORT_KEYS | JSON_INDENT(2));
        json_decref(o);
        if (!s)
                return -ENOMEM;
        /* Text files end with a newline; it is part of the signed bytes. */
        {
                size_t n = strlen(s);
                char *t = realloc(s, n + 2);
                if (!t) {
                        free(s);
                        return -ENOMEM;
                }
                t[n] = '\n';
                t[n + 1] = 0;
                *ret = t;
                *ret_size = n + 1;
        }
        return 0;
}

static int fail(char *err, size_t n, const char *format, ...) _printf_(3, 4);
static int fail(char *err, size_t n, const char *format, ...) {
        va_list ap;
        if (err && n) {
                va_start(ap, format);
                vsnprintf(err, n, format, ap);
                va_end(ap);
        }
        return -EBADMSG;
}


static int get_string(json_t *o, const char *key, bool required, char **ret, char *err, size_t n) {
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v)) {
                if (required)
                        return fail(err, n, "manifest: '%s' is missing", key);
                *ret = NULL;
                return 0;
        }
        if (!json_is_string(v))
                return fail(err, n, "manifest: '%s' is not a string", key);
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_uint(json_t *o, const char *key, uint64_t *ret, char *err, size_t n) {
        json_t *v = json_object_get(o, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return fail(err, n, "manifest: '%s' is missing or not a non-negative integer", key);
        *ret = (uint64_t) json_integer_value(v);
        return 0;
}

/* "tools": an object of tool name -> version string. */
static int get_tools(json_t *o, json_t **ret, char *err, size_t n) {
        json_t *tools = json_object_get(o, "tools"), *v;
        const char *key;

        if (!tools)
                return 0;
        if (!json_is_object(tools))
                return fail(err, n, "manifest: 'tools' is not an object");
        json_object_foreach(tools, key, v)
                if (!json_is_string(v))
                        return fail(err, n, "manifest: the version of tool '%.64s' is not a string", key);
        *ret = json_incref(tools);
        return 0;
}

/* "boot": an object of role -> {path, sha256, source, package}, every member
 * a string, source "package" or "build host". */
static int get_boot(json_t *o, json_t **ret, char *err, size_t n) {
        static const char *const members[] = { "path", "sha256", "source", "package" };
        json_t *boot = json_object_get(o, "boot"), *f;
        const char *role;

        if (!boot)
                return 0;
        if (!json_is_object(boot))
                return fail(err, n, "manifest: 'boot' is not an object");
        json_object_foreach(boot, role, f) {
                const char *source;

                if (!json_is_object(f) || json_object_size(f) != ELEMENTSOF(members))
                        return fail(err, n, "manifest: boot file '%.64s' is not an object of %zu members", role,
                                    ELEMENTSOF(members));
                for (size_t i = 0; i < ELEMENTSOF(members); i++)
                        if (!json_is_string(json_object_get(f, members[i])))
                                return fail(err, n, "manifest: boot file '%.64s' has no string '%s'", role,
                                            members[i]);
                if (!sha256_hex_valid(json_string_value(json_object_get(f, "sha256"))))
                        return fail(err, n, "manifest: boot file '%.64s' has an invalid sha256", role);
                source = json_string_value(json_object_get(f, "source"));
                if (!streq(source, "package") && !streq(source, "build host"))
                        return fail(err, n, "manifest: boot file '%.64s' has source '%.64s' (package or build host)",
                                    role, source);
        }
        *ret = json_incref(boot);
        return 0;
}

int manifest_parse(const char *data, size_t size, Manifest **ret, char *err, size_t errsz) {
        static const char *const known[] = { "format",  "name",          "version",        "arch",
                                             "build_time", "cmdline",    "kernel_version", "min_from_version",
                                             "root_size",  "artifacts",  "lock",           "tools",
                                             "boot",       "loader",     "firmware" };
        _cleanup_manifest_free_ Manifest *m = NULL;
        json_error_t jerr;
        json_t *o, *arts, *v;
        const char *key;
        size_t i;
        uint64_t format;
        int r;

        if (size > MANIFEST_SIZE_MAX)
                return fail(err, errsz, "manifest: larger than %d bytes", MANIFEST_SIZE_MAX);
        o = json_loadb(data, size, JSON_REJECT_DUPLICATES, &jerr);
        if (!o)
                return fail(err, errsz, "manifest: invalid JSON at line %d: %s", jerr.line, jerr.text);
        m = manifest_new();
        if (!m) {
                json_decref(o);
                return -ENOMEM;
        }
        r = 0;
        if (!json_is_object(o))
                r = fail(err, errsz, "manifest: not a JSON object");
        json_object_foreach(o, key, v) {
                bool ok = false;
                if (r < 0)
                        break;
                for (i = 0; i < ELEMENTSOF(known); i++)
                        ok = ok || streq(key, known[i]);
                if (!ok)
                        r = fail(err, errsz, "manifest: unknown member '%s'", key);
        }
        if (r >= 0)
                r = get_uint(o, "format", &format, err, errsz);
        if (r >= 0 && format != MANIFEST_FORMAT)
                r = fail(err, errsz, "manifest: format %llu is not supported (expected %d)",
                         (unsigned long long) format, MANIFEST_FORMAT);
        if (r >= 0)
                r = get_string(o, "name", true, &m->name, err, errsz);
        if (r >= 0 && !image_name_valid(m->name))
                r = fail(err, errsz, "manifest: invalid name '%.64s' (an image name is " IMAGE_NAME_RULE ")",
                         m->name);
        if (r >= 0)
                r = get_string(o, "version", true, &m->version, err, errsz);
        if (r >= 0 && !image_version_valid(m->version))
                r = fail(err, errsz, "manifest: invalid version '%.64s' (a version is " IMAGE_VERSION_RULE ")",
                         m->version);
        if (r >= 0)
                r = get_string(o, "arch", true, &m->arch, err, errsz);
        if (r >= 0)
                r = get_string(o, "cmdline", false, &m->cmdline, err, errsz);
        if (r >= 0)
                r = get_string(o, "kernel_version", false, &m->kernel_version, err, errsz);
        if (r >= 0)
                r = get_string(o, "min_from_version", false, &m->min_from_version, err, errsz);
        if (r >= 0)
                r = get_uint(o, "build_time", &m->build_time, err, errsz);
        if (r >= 0)
                r = get_uint(o, "root_size", &m->root_size, err, errsz);

        arts = json_object_get(o, "artifacts");
        if (r >= 0 && !json_is_array(arts))
                r = fail(err, errsz, "manifest: 'artifacts' is missing or not an array");
        for (i = 0; r >= 0 && i < json_array_size(arts); i++) {
                json_t *a = json_array_get(arts, i);
                _cleanup_free_ char *type = NULL, *sha = NULL, *fstype = NULL;
                uint64_t asize;

                if (!json_is_object(a)) {
                        r = fail(err, errsz, "manifest: artifact %zu is not an object", i);
                        break;
                }
                r = get_string(a, "type", true, &type, err, errsz);
                if (r >= 0)
                        r = get_string(a, "sha256", true, &sha, err, errsz);
                if (r >= 0 && !sha256_hex_valid(sha))
                        r = fail(err, errsz, "manifest: artifact '%s' has an invalid sha256", type);
                if (r >= 0)
                        r = get_uint(a, "size", &asize, err, errsz);
                if (r >= 0)
                        r = get_string(a, "fstype", false, &fstype, err, errsz);
                if (r >= 0 && manifest_find_artifact(m, type))
                        r = fail(err, errsz, "manifest: artifact '%s' listed twice", type);
                if (r >= 0)
                        r = manifest_add_artifact(m, type, sha, asize, fstype);
        }

        v = json_object_get(o, "lock");
        if (r >= 0 && v) {
                if (!json_is_object(v))
                        r = fail(err, errsz, "manifest: 'lock' is not an object");
                else
                        m->lock = json_incref(v);
        }
        if (r >= 0)
                r = get_tools(o, &m->tools, err, errsz);
        if (r >= 0)
                r = get_boot(o, &m->boot, err, errsz);
        if (r >= 0)
                r = get_string(o, "loader", false, &m->loader, err, errsz);
        if (r >= 0 && m->loader && !streq(m->loader, "systemd-boot") && !streq(m->loader, "grub"))
                r = fail(err, errsz, "manifest: unknown loader '%.64s' (systemd-boot or grub)", m->loader);
        if (r >= 0)
                r = get_string(o, "firmware", false, &m->firmware, err, errsz);
        if (r >= 0 && m->firmware && !streq(m->firmware, "uefi") && !streq(m->firmware, "bios") &&
            !streq(m->firmware, "both"))
                r = fail(err, errsz, "manifest: unknown firmware '%.64s' (uefi, bios or both)", m->firmware);
        json_decref(o);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(m);
        return 0;
}

void manifest_id(const char *data, size_t size, char ret_hex[65]) {
        sha256_buffer_hex(data, size, ret_hex);
}
