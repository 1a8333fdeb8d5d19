#include <libgen.h>
#include <limits.h>
#include <ctype.h>
#include <strings.h>

#include "definition.h"
#include "fileio.h"
#include "ini.h"
#include "loaderentry.h"
#include "log.h"
#include "manifest.h"
#include "util.h"

static const char *const rootfs_type_names[_ROOTFS_TYPE_MAX] = {
        [ROOTFS_EROFS] = "erofs",
        [ROOTFS_SQUASHFS] = "squashfs",
};

const char *rootfs_type_to_string(RootfsType t) {
        return t >= 0 && t < _ROOTFS_TYPE_MAX ? rootfs_type_names[t] : NULL;
}

RootfsType rootfs_type_from_string(const char *s) {
        for (int i = 0; i < _ROOTFS_TYPE_MAX; i++)
                if (streq(s, rootfs_type_names[i]))
                        return i;
        return _ROOTFS_TYPE_INVALID;
}

static const char *const boot_loader_type_names[_BOOT_LOADER_TYPE_MAX] = {
        [BOOT_LOADER_SYSTEMD_BOOT] = "systemd-boot",
        [BOOT_LOADER_GRUB] = "grub",
};

static const char *const boot_firmware_names[_BOOT_FIRMWARE_MAX] = {
        [BOOT_FIRMWARE_UEFI] = "uefi",
        [BOOT_FIRMWARE_BIOS] = "bios",
        [BOOT_FIRMWARE_BOTH] = "both",
};

const char *boot_loader_type_to_string(BootLoaderType t) {
        return t >= 0 && t < _BOOT_LOADER_TYPE_MAX ? boot_loader_type_names[t] : NULL;
}

BootLoaderType boot_loader_type_from_string(const char *s) {
        for (int i = 0; i < _BOOT_LOADER_TYPE_MAX; i++)
                if (streq_ptr(s, boot_loader_type_names[i]))
                        return i;
        return _BOOT_LOADER_TYPE_INVALID;
}

const char *boot_firmware_to_string(BootFirmware f) {
        return f >= 0 && f < _BOOT_FIRMWARE_MAX ? boot_firmware_names[f] : NULL;
}

BootFirmware boot_firmware_from_string(const char *s) {
        for (int i = 0; i < _BOOT_FIRMWARE_MAX; i++)
                if (streq_ptr(s, boot_firmware_names[i]))
                        return i;
        return _BOOT_FIRMWARE_INVALID;
}

ImageDef *image_def_free(ImageDef *d) {
        if (!d)
                return NULL;
        free(d->path);
        free(d->name);
        free(d->version);
        free(d->arch);
        free(d->releasever);
        free(d->min_from_version);
        strv_free(d->packages);
        for (size_t i = 0; i < d->n_repos; i++) {
                free(d->repos[i].id);
                free(d->repos[i].name);
                free(d->repos[i].baseurl);
                strv_free(d->repos[i].baseurls);
                free(d->repos[i].mirrorlist);
                free(d->repos[i].metalink);
                strv_free(d->repos[i].gpgkeys);
                strv_free(d->repos[i].includepkgs);
                strv_free(d->repos[i].excludepkgs);
                free(d->repos[i].file);
        }
        strv_free(d->exclude);
        strv_free(d->modules);
        strv_free(d->modules_disable);
        free(d->repos);
        free(d->cmdline);
        strv_free(d->initramfs_modules);
        free(d->rpmdb_path);
        free(d);
        return NULL;
}

typedef struct ParseState {
        ImageDef *def;
        const char *dir; /* directory of the file being read, for relative repo paths */
        unsigned line_name, line_version, line_loader, line_firmware;
} ParseState;

static const struct {
        const char *arch, *basearch;
} basearches[] = {
        { "i386", "i386" },       { "i486", "i386" },       { "i586", "i386" },       { "i686", "i386" },
        { "athlon", "i386" },     { "armv7hl", "armhfp" },  { "armv7hnl", "armhfp" }, { "armv6hl", "armhfp" },
        { "amd64", "x86_64" },    { "ia32e", "x86_64" },    { "x86_64_v2", "x86_64" }, { "x86_64_v3", "x86_64" },
        { "ppc64p7", "ppc64" },
};

const char *arch_to_basearch(const char *arch) {
        for (size_t i = 0; i < ELEMENTSOF(basearches); i++)
                if (streq(arch, basearches[i].arch))
                        return basearches[i].basearch;
        return arch;
}

static bool var_char(char c, bool first) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

int repo_vars_substitute(const char *s, const char *arch, const char *releasever, char **ret, char **ret_unknown) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0, alloc = strlen(s) + 1;

        out = malloc(alloc);
        if (!out)
                return -ENOMEM;
        for (const char *p = s; *p;) {
                const char *value = NULL, *name, *end;
                size_t name_len, vlen;

                if (p[0] != '$' || !(p[1] == '{' || var_char(p[1], true))) {
                        out[len++] = *p++;
                        continue;
                }
                if (p[1] == '{') {
                        name = p + 2;
                        end = strchr(name, '}');
                        if (!end)
                                return -EINVAL;
                        name_len = (size_t) (end - name);
                        end++;
                } else {
                        name = p + 1;
                        for (end = name; var_char(*end, end == name); end++)
                                ;
                        name_len = (size_t) (end - name);
                }
                if (name_len == 8 && strncmp(name, "basearch", 8) == 0)
                        value = arch_to_basearch(arch);
                else if (name_len == 4 && strncmp(name, "arch", 4) == 0)
                        value = arch;
                else if (name_len == 10 && strncmp(name, "releasever", 10) == 0)
                        value = releasever;
                if (!value) {
                        if (ret_unknown)
                                *ret_unknown = strndup(name, name_len);
                        return -ENOENT;
                }
                vlen = strlen(value);
                if (len + vlen + strlen(end) + 1 > alloc) {
                        char *n;
                        alloc = len + vlen + strlen(end) + 1;
                        n = realloc(out, alloc);
                        if (!n)
                                return -ENOMEM;
                        out = n;
                }
                memcpy(out + len, value, vlen);
                len += vlen;
                p = end;
        }
        out[len] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

static int replace_string(char **p, const char *v) {
        char *c = strdup(v);
        if (!c)
                return -ENOMEM;
        free(*p);
        *p = c;
        return 0;
}

/* Turns a baseurl as written into an absolute URL: URLs are kept, absolute
 * paths become file:// URLs, relative paths are taken from the definition's
 * directory. */
static int make_url(const char *dir, const char *v, char **ret) {
        char *u;

        if (startswith(v, "file://") || startswith(v, "http://") || startswith(v, "https://"))
                u = strdup(v);
        else if (strstr(v, "://"))
                return -EPROTONOSUPPORT;
        else if (v[0] == '/')
                u = strdup_printf("file://%s", v);
        else {
                char abs[PATH_MAX];
                _cleanup_free_ char *joined = path_join(dir, v), *cwd = NULL;
                if (!joined)
                        return -ENOMEM;
                /* The path may not exist yet (a repo built later); keep the
                 * joined path then, made absolute. */
                if (realpath(joined, abs))
                        u = strdup_printf("file://%s", abs);
                else if (joined[0] == '/')
                        u = strdup_printf("file://%s", joined);
                else {
                        cwd = get_current_dir_name();
                        u = cwd ? strdup_printf("file://%s/%s", cwd, joined) : NULL;
                }
        }
        if (!u)
                return -ENOMEM;
        /* A trailing slash would double up when joining locations. */
        while (strlen(u) > 8 && endswith(u, "/"))
                u[strlen(u) - 1] = 0;
        *ret = u;
        return 0;
}

static int parse_size_key(const char *file, unsigned line, const char *key, const char *value, uint64_t *ret,
                          Error *error) {
        int r = parse_size(value, ret);
        if (r < 0 || *ret == 0)
                return error_set_at(error, -EINVAL, file, line, "invalid size '%s' for '%s' (use e.g. 64M or 1G)",
                                    value, key);
        if (*ret % 512 != 0)
                return error_set_at(error, -EINVAL, file, line, "'%s' must be a multiple of 512 bytes", key);
        return 0;
}

static bool version_operator(const char *w) {
        return streq(w, "=") || streq(w, "<") || streq(w, "<=") || streq(w, ">") || streq(w, ">=");
}

/* Adds the packages of an install line: names, and "NAME OP VERSION" (as
 * rpm writes Requires) kept as one entry "NAME OP VERSION". */
static int add_install(ImageDef *d, const char *file, unsigned line, const char *value, Error *error) {
        _cleanup_strv_free_ char **w = strv_split_words(value);

        if (!w)
                return -ENOMEM;
        for (size_t i = 0; w[i]; i++) {
                char *spec;

                if (strpbrk(w[i], "<=>"))
                        return error_set_at(error, -EINVAL, file, line,
                                            "'%s': write a version constraint as NAME OP VERSION, with spaces (OP "
                                            "is =, <, <=, > or >=)",
                                            w[i]);
                if (w[i + 1] && version_operator(w[i + 1])) {
                        if (!w[i + 2] || strpbrk(w[i + 2], "<=>"))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "'%s %s' lacks the version after '%s'", w[i], w[i + 1], w[i + 1]);
                        spec = strdup_printf("%s %s %s", w[i], w[i + 1], w[i + 2]);
                        i += 2;
                } else
                        spec = strdup(w[i]);
                if (strv_consume(&d->packages, spec) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Splits a list (URLs, paths, globs, names) as dnf does: by blanks or commas. */
static char **split_list(const char *v) {
        _cleanup_free_ char *copy = strdup(v);

        if (!copy)
                return NULL;
        for (char *c = copy; *c; c++)
                if (*c == ',')
                        *c = ' ';
        return strv_split_words(copy);
}

static int parse_group_package_types(ImageDef *d, const char *file, unsigned line, const char *value,
                                     Error *error) {
        static const struct {
                const char *name;
                GroupPackageType bit;
        } types[] = {
                { "mandatory", GROUP_PACKAGE_MANDATORY },
                { "default", GROUP_PACKAGE_DEFAULT },
                { "optional", GROUP_PACKAGE_OPTIONAL },
                { "conditional", GROUP_PACKAGE_CONDITIONAL },
        };
        _cleanup_strv_free_ char **w = split_list(value);
        unsigned bits = 0;

        if (!w)
                return -ENOMEM;
        for (size_t i = 0; w[i]; i++) {
                unsigned bit = 0;

                for (size_t k = 0; k < ELEMENTSOF(types); k++)
                        if (streq(w[i], types[k].name))
                                bit = types[k].bit;
                if (bit == 0)
                        return error_set_at(error, -EINVAL, file, line,
                                            "unknown group package type '%s' (mandatory, default, optional or "
                                            "conditional)",
                                            w[i]);
                bits |= bit;
        }
        if (bits == 0)
                return error_set_at(error, -EINVAL, file, line, "group-package-types names no type");
        d->group_package_types = bits;
        return 0;
}

/* A module name or stream: what modulemd allows in them. */
static bool module_word_valid(const char *s) {
        if (isempty(s) || strlen(s) > 128)
                return false;
        for (const char *p = s; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr("._+-", *p))
                        return false;
        return true;
}

/* "NAME:STREAM" or "NAME:STREAM/PROFILE", each module once. */
static int add_modules(ImageDef *d, const char *file, unsigned line, const char *value, Error *error) {
        _cleanup_strv_free_ char **w = strv_split_words(value);

        if (!w)
                return -ENOMEM;
        if (!w[0])
                return error_set_at(error, -EINVAL, file, line, "enable names no module stream");
        for (size_t i = 0; w[i]; i++) {
                _cleanup_free_ char *name = NULL;
                const char *colon = strchr(w[i], ':'), *slash;
                _cleanup_free_ char *stream = NULL;

                slash = colon ? strchr(colon, '/') : NULL;
                if (colon) {
                        name = strndup(w[i], (size_t) (colon - w[i]));
                        stream = slash ? strndup(colon + 1, (size_t) (slash - colon - 1)) : strdup(colon + 1);
                        if (!name || !stream)
                                return -ENOMEM;
                }
                if (!colon || !module_word_valid(name) || !module_word_valid(stream) ||
                    (slash && !module_word_valid(slash + 1)))
                        return error_set_at(error, -EINVAL, file, line,
                                            "'%s' is not a module stream (NAME:STREAM or NAME:STREAM/PROFILE)", w[i]);
                for (char **m = d->modules; m && *m; m++)
                        if (startswith(*m, name) && (*m)[strlen(name)] == ':')
                                return error_set_at(error, -EINVAL, file, line,
                                                    "module '%s' is enabled twice (one stream per module)", name);
                if (strv_contains(d->modules_disable, name))
                        return error_set_at(error, -EINVAL, file, line, "module '%s' is both enabled and disabled",
                                            name);
                if (strv_extend(&d->modules, w[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Module names whose every stream stays inactive, default or not. */
static int add_modules_disable(ImageDef *d, const char *file, unsigned line, const char *value, Error *error) {
        _cleanup_strv_free_ char **w = strv_split_words(value);

        if (!w)
                return -ENOMEM;
        if (!w[0])
                return error_set_at(error, -EINVAL, file, line, "disable names no module");
        for (size_t i = 0; w[i]; i++) {
                if (!module_word_valid(w[i]))
                        return error_set_at(error, -EINVAL, file, line, "'%s' is not a module name", w[i]);
                for (char **m = d->modules; m && *m; m++)
                        if (startswith(*m, w[i]) && (*m)[strlen(w[i])] == ':')
                                return error_set_at(error, -EINVAL, file, line,
                                                    "module '%s' is both enabled and disabled", w[i]);
                if (!strv_contains(d->modules_disable, w[i]) && strv_extend(&d->modules_disable, w[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The repository of section "[repo ID]", added (enabled, gpgcheck on) at its
 * first key. A repository is defined in one file only. */
static int repo_get(ImageDef *d, const char *file, unsigned line, const char *id, RepoDef **ret, Error *error) {
        RepoDef *n;

        for (size_t i = 0; i < d->n_repos; i++)
                if (streq(d->repos[i].id, id)) {
                        if (!streq(d->repos[i].file, file))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "repository '%s' is defined twice (first in %s:%u)", id,
                                                    d->repos[i].file, d->repos[i].line);
                        *ret = &d->repos[i];
                        return 0;
                }
        if (!image_name_valid(id))
                return error_set_at(error, -EINVAL, file, line, "invalid repository id '%s'", id);
        n = realloc(d->repos, sizeof(RepoDef) * (d->n_repos + 1));
        if (!n)
                return -ENOMEM;
        d->repos = n;
        n = &d->repos[d->n_repos];
        *n = (RepoDef) { .id = strdup(id), .file = strdup(file), .enabled = true, .gpgcheck = true, .line = line,
                         .priority = 99, .cost = 1000 };
        if (!n->id || !n->file) {
                free(n->id);
                free(n->file);
                return -ENOMEM;
        }
        d->n_repos++;
        *ret = n;
        return 0;
}

/* The values dnf takes for a boolean option. */
static int parse_bool(const char *v) {
        static const char *const yes[] = { "1", "yes", "true", "on" }, *const no[] = { "0", "no", "false", "off" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        }
        return -EINVAL;
}

/* A list of globs, separated by spaces or commas as dnf takes them,
 * added to *list (several lines add up, as dnf's do). */
static int add_globs(char ***list, const char *file, unsigned line, const char *key, const char *value,
                     Error *error) {
        _cleanup_strv_free_ char **w = split_list(value);

        if (!w)
                return -ENOMEM;
        if (!w[0])
                return error_set_at(error, -EINVAL, file, line, "'%s' names no package", key);
        if (!*list) {
                *list = calloc(1, sizeof(char *));
                if (!*list)
                        return -ENOMEM;
        }
        for (size_t i = 0; w[i]; i++) {
                if (strpbrk(w[i], "<=>"))
                        return error_set_at(error, -EINVAL, file, line,
                                            "'%s' in '%s' is not a package name or glob", w[i], key);
                if (strv_extend(list, w[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* Adds each URL or path of value (blank or comma separated) to *list. */
static int add_urls(ParseState *st, const char *file, unsigned line, const char *key, const char *value,
                    char ***list, Error *error) {
        _cleanup_strv_free_ char **words = split_list(value);
        int r;

        if (!words)
                return -ENOMEM;
        if (!words[0])
                return error_set_at(error, -EINVAL, file, line, "%s names nothing", key);
        if (!*list && !(*list = calloc(1, sizeof(char *))))
                return -ENOMEM;
        for (char **w = words; *w; w++) {
                char *url = NULL;

                r = make_url(st->dir, *w, &url);
                if (r == -EPROTONOSUPPORT)
                        return error_set_at(error, r, file, line,
                                            "unsupported %s '%s' (a path, file://, http:// or https://)", key, *w);
                if (r < 0 || strv_consume(list, url) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* A whole number in [min, max] for key. */
static int parse_number_key(const char *file, unsigned line, const char *key, const char *value, long min,
                            long max, long *ret, Error *error) {
        char *end = NULL;
        long v;

        errno = 0;
        v = strtol(value, &end, 10);
        if (errno != 0 || !end || end == value || *end || v < min || v > max)
                return error_set_at(error, -EINVAL, file, line, "invalid %s '%s' (a whole number from %ld to %ld)",
                                    key, value, min, max);
        *ret = v;
        return 0;
}

/* A key that takes one URL or path (mirrorlist, metalink). */
static int set_url(ParseState *st, const char *file, unsigned line, const char *key, const char *value, char **p,
                   Error *error) {
        _cleanup_strv_free_ char **list = NULL;
        int r;

        r = add_urls(st, file, line, key, value, &list, error);
        if (r < 0)
                return r;
        if (strv_length(list) != 1)
                return error_set_at(error, -EINVAL, file, line, "%s takes one URL", key);
        free(*p);
        *p = TAKE_PTR(list[0]);
        return 0;
}

static int set_bool(const char *file, unsigned line, const char *key, const char *value, bool *p, Error *error) {
        int r = parse_bool(value);

        if (r < 0)
                return error_set_at(error, r, file, line, "invalid %s '%s' (1 or 0)", key, value);
        *p = r;
        return 0;
}

/* Handles one key of a repository: from a "[repo ID]" section of the
 * definition, or from an "[ID]" section of an included .repo file. $basearch,
 * $arch and $releasever are replaced first. */
static int handle_repo_key(ParseState *st, const char *file, unsigned line, const char *id, const char *key,
                           const char *raw, Error *error) {
        _cleanup_free_ char *value = NULL, *unknown = NULL;
        RepoDef *repo = NULL;
        int r;

        r = repo_vars_substitute(raw, st->def->arch, st->def->releasever, &value, &unknown);
        if (r == -ENOENT && unknown && streq(unknown, "releasever"))
                return error_set_at(error, -EINVAL, file, line,
                                    "'%s' uses $releasever, but [image] sets no releasever", key);
        if (r == -ENOENT)
                return error_set_at(error, -EINVAL, file, line,
                                    "unknown variable '$%s' in '%s' (known: $basearch, $arch, $releasever)",
                                    strempty(unknown), key);
        if (r == -EINVAL)
                return error_set_at(error, r, file, line, "'${' without its '}' in '%s'", key);
        if (r < 0)
                return r;
        r = repo_get(st->def, file, line, id, &repo, error);
        if (r < 0)
                return r;

        if (streq(key, "name"))
                return replace_string(&repo->name, value);
        if (streq(key, "baseurl")) {
                if (repo->baseurls)
                        return error_set_at(error, -EINVAL, file, line,
                                            "repository '%s' has a second baseurl (list several URLs on one line)",
                                            id);
                r = add_urls(st, file, line, key, value, &repo->baseurls, error);
                if (r < 0)
                        return r;
                return replace_string(&repo->baseurl, repo->baseurls[0]);
        }
        if (streq(key, "mirrorlist"))
                return set_url(st, file, line, key, value, &repo->mirrorlist, error);
        if (streq(key, "metalink"))
                return set_url(st, file, line, key, value, &repo->metalink, error);
        if (streq(key, "enabled"))
                return set_bool(file, line, key, value, &repo->enabled, error);
        if (streq(key, "gpgcheck"))
                return set_bool(file, line, key, value, &repo->gpgcheck, error);
        if (streq(key, "repo_gpgcheck"))
                return set_bool(file, line, key, value, &repo->repo_gpgcheck, error);
        if (streq(key, "gpgkey")) {
                if (repo->gpgkeys)
                        return error_set_at(error, -EINVAL, file, line,
                                            "repository '%s' has a second gpgkey (list several keys on one line)", id);
                return add_urls(st, file, line, key, value, &repo->gpgkeys, error);
        }
        if (streq(key, "timeout")) {
                uint64_t v;
                if (safe_atou64(value, &v) < 0 || v == 0 || v > 3600)
                        return error_set_at(error, -EINVAL, file, line,
                                            "invalid timeout '%s' (seconds, 1 to 3600)", value);
                repo->timeout = (unsigned) v;
                return 0;
        }
        if (streq(key, "minrate")) {
                uint64_t v;
                if (parse_size(value, &v) < 0 || v == 0)
                        return error_set_at(error, -EINVAL, file, line,
                                            "invalid minrate '%s' (bytes per second, e.g. 1000 or 1k)", value);
                repo->minrate = v;
                return 0;
        }
        /* What a .repo file often holds and does not change what is built. */
        if (streq(key, "countme") || streq(key, "metadata_expire") || streq(key, "type")) {
                if (streq(key, "type") && !streq(value, "rpm-md") && !streq(value, "rpm") && !streq(value, "yum"))
                        return error_set_at(error, -EINVAL, file, line, "unsupported repository type '%s' (rpm-md)",
                                            value);
                return 0;
        }
        if (streq(key, "priority") || streq(key, "cost")) {
                long v = 0;

                /* dnf's ranges: priority 1 to 99 (above is allowed, and
                 * sorts after), cost any non-negative number. */
                r = parse_number_key(file, line, key, value, streq(key, "priority") ? 1 : 0, INT_MAX, &v, error);
                if (r < 0)
                        return r;
                if (streq(key, "priority"))
                        repo->priority = (int) v;
                else
                        repo->cost = (unsigned) v;
                return 0;
        }
        if (streq(key, "includepkgs"))
                return add_globs(&repo->includepkgs, file, line, key, value, error);
        if (streq(key, "excludepkgs") || streq(key, "exclude"))
                return add_globs(&repo->excludepkgs, file, line, key, value, error);
        if (streq(key, "module_hotfixes")) {
                r = parse_bool(value);
                if (r < 0)
                        return error_set_at(error, r, file, line, "invalid module_hotfixes '%s' (1 or 0)", value);
                repo->module_hotfixes = r;
                return 0;
        }
        return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in section '[repo %s]'", key, id);
}

/* Keys of an included .repo file: every "[ID]" section is a repository. */
static int handle_repo_file_key(const char *file, unsigned line, const char *section, const char *key,
                                const char *value, void *userdata, Error *error) {
        ParseState *st = userdata;

        if (isempty(section))
                return error_set_at(error, -EINVAL, file, line, "'%s' outside a repository section", key);
        if (streq(section, "main"))
                return error_set_at(error, -EINVAL, file, line,
                                    "[main] holds dnf's own settings, not a repository: include .repo files only");
        return handle_repo_key(st, file, line, section, key, value, error);
}

/* include = FILE...: reads each .repo file (paths relative to the including
 * file's directory; $releasever and friends replaced). */
static int include_repo_files(ParseState *st, const char *file, unsigned line, const char *value, Error *error) {
        _cleanup_strv_free_ char **words = split_list(value);
        int r;

        if (!words)
                return -ENOMEM;
        if (!words[0])
                return error_set_at(error, -EINVAL, file, line, "include names no file");
        for (char **w = words; *w; w++) {
                _cleanup_free_ char *path = NULL, *copy = NULL, *unknown = NULL, *sub = NULL;
                const char *saved_dir = st->dir;

                r = repo_vars_substitute(*w, st->def->arch, st->def->releasever, &sub, &unknown);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        return error_set_at(error, -EINVAL, file, line, "cannot read the variables of include '%s'",
                                            *w);
                path = sub[0] == '/' ? strdup(sub) : path_join(st->dir, sub);
                copy = path ? strdup(path) : NULL;
                if (!copy)
                        return -ENOMEM;
                if (!path_exists(path))
                        return error_set_at(error, -ENOENT, file, line, "included file '%s' does not exist", path);
                st->dir = dirname(copy);
                /* A .repo file has no include: no loop. */
                r = ini_parse_file(path, handle_repo_file_key, st, error);
                st->dir = saved_dir;
                if (r < 0)
                        return r;
        }
        return 0;
}

static int handle_key(const char *file, unsigned line, const char *section, const char *key, const char *value,
                      void *userdata, Error *error) {
        ParseState *st = userdata;
        ImageDef *d = st->def;
        const char *repo_id;

        if (streq(section, "image")) {
                if (streq(key, "name")) {
                        if (!image_name_valid(value))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "invalid image name '%s' (a name is " IMAGE_NAME_RULE ")", value);
                        st->line_name = line;
                        return replace_string(&d->name, value);
                }
                if (streq(key, "version")) {
                        st->line_version = line;
                        return replace_string(&d->version, value);
                }
                /* Read before everything else (read_vars()). */
                if (streq(key, "arch") || streq(key, "releasever"))
                        return 0;
                if (streq(key, "min-from-version")) {
                        if (!image_version_valid(value))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "invalid min-from-version '%s' (a version is " IMAGE_VERSION_RULE
                                                    ")",
                                                    value);
                        return replace_string(&d->min_from_version, value);
                }
        } else if (streq(section, "packages")) {
                if (streq(key, "install"))
                        return add_install(d, file, line, value, error);
                if (streq(key, "exclude"))
                        return add_globs(&d->exclude, file, line, key, value, error);
                if (streq(key, "install_weak_deps")) {
                        int b = parse_bool(value);
                        if (b < 0)
                                return error_set_at(error, b, file, line, "invalid install_weak_deps '%s' (yes or no)",
                                                    value);
                        d->install_weak_deps = b;
                        return 0;
                }
                if (streq(key, "group-package-types"))
                        return parse_group_package_types(d, file, line, value, error);
        } else if (streq(section, "modules")) {
                if (streq(key, "enable"))
                        return add_modules(d, file, line, value, error);
                if (streq(key, "disable"))
                        return add_modules_disable(d, file, line, value, error);
        } else if ((repo_id = startswith(section, "repo "))) {
                return handle_repo_key(st, file, line, repo_id, key, value, error);
        } else if (streq(section, "repos")) {
                if (streq(key, "include"))
                        return include_repo_files(st, file, line, value, error);
        } else if (streq(section, "boot")) {
                if (streq(key, "cmdline")) {
                        /* The boot entries add it, for the slot they boot. */
                        if (strstr(value, LOADER_SLOT_KEY))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "cmdline must not hold " LOADER_SLOT_KEY
                                                    ": each boot entry adds the slot it boots");
                        return replace_string(&d->cmdline, value);
                }
                if (streq(key, "initramfs-modules")) {
                        strv_free(d->initramfs_modules);
                        d->initramfs_modules = strv_split_words(value);
                        return d->initramfs_modules ? 0 : -ENOMEM;
                }
                if (streq(key, "loader")) {
                        BootLoaderType t = boot_loader_type_from_string(value);
                        if (t < 0)
                                return error_set_at(error, -EINVAL, file, line,
                                                    "unknown loader '%s' (systemd-boot or grub)", value);
                        d->loader = t;
                        st->line_loader = line;
                        return 0;
                }
                if (streq(key, "firmware")) {
                        BootFirmware f = boot_firmware_from_string(value);
                        if (f < 0)
                                return error_set_at(error, -EINVAL, file, line,
                                                    "unknown firmware '%s' (uefi, bios or both)", value);
                        d->firmware = f;
                        st->line_firmware = line;
                        return 0;
                }
        } else if (streq(section, "disk")) {
                if (streq(key, "esp-size"))
                        return parse_size_key(file, line, key, value, &d->esp_size, error);
                if (streq(key, "root-size"))
                        return parse_size_key(file, line, key, value, &d->root_size, error);
                if (streq(key, "var-size"))
                        return parse_size_key(file, line, key, value, &d->var_size, error);
        } else if (streq(section, "rootfs")) {
                if (streq(key, "type")) {
                        RootfsType t = rootfs_type_from_string(value);
                        if (t < 0)
                                return error_set_at(error, -EINVAL, file, line,
                                                    "unknown rootfs type '%s' (erofs or squashfs)", value);
                        d->rootfs_type = t;
                        return 0;
                }
                if (streq(key, "rpmdb")) {
                        if (value[0] != '/' || strstr(value, ".."))
                                return error_set_at(error, -EINVAL, file, line,
                                                    "rpmdb must be an absolute path without '..'");
                        return replace_string(&d->rpmdb_path, value);
                }
        } else
                return error_set_at(error, -EINVAL, file, line, "unknown section '[%s]'", section);

        return error_set_at(error, -EINVAL, file, line, "unknown key '%s' in section '[%s]'", key, section);
}

/* Whether a module request names a profile, which installs packages. */
static bool strv_find_prefix_slash(char **l) {
        for (; l && *l; l++)
                if (strchr(*l, '/'))
                        return true;
        return false;
}

/* The first pass: [image] arch and releasever, which the repositories'
 * $basearch, $arch and $releasever need wherever they stand in the file. */
static int read_vars(const char *file, unsigned line, const char *section, const char *key, const char *value,
                     void *userdata, Error *error) {
        ImageDef *d = userdata;

        if (!streq(section, "image"))
                return 0;
        if (streq(key, "arch")) {
                if (isempty(value) || strpbrk(value, "/ $"))
                        return error_set_at(error, -EINVAL, file, line, "invalid arch '%s'", value);
                return replace_string(&d->arch, value);
        }
        if (streq(key, "releasever")) {
                if (isempty(value) || strpbrk(value, "/ $"))
                        return error_set_at(error, -EINVAL, file, line,
                                            "invalid releasever '%s' (e.g. 9, or 9.4)", value);
                return replace_string(&d->releasever, value);
        }
        return 0;
}

/* Drops the repositories with enabled = 0, saying so. */
static void drop_disabled(ImageDef *d) {
        size_t j = 0;

        for (size_t i = 0; i < d->n_repos; i++) {
                RepoDef *repo = &d->repos[i];

                if (repo->enabled) {
                        d->repos[j++] = *repo;
                        continue;
                }
                log_info("%s:%u: repository '%s'%s%s%s has enabled = 0: not used", repo->file, repo->line, repo->id,
                         repo->name ? " (" : "", strempty(repo->name), repo->name ? ")" : "");
                free(repo->id);
                free(repo->name);
                free(repo->baseurl);
                strv_free(repo->baseurls);
                free(repo->mirrorlist);
                free(repo->metalink);
                strv_free(repo->gpgkeys);
                strv_free(repo->includepkgs);
                strv_free(repo->excludepkgs);
                free(repo->file);
        }
        d->n_repos = j;
}

/* image_def_load(), its one error in error. */
static int image_def_parse(const char *path, const char *version_override, ImageDef **ret, Error *error) {
        _cleanup_image_def_free_ ImageDef *d = NULL;
        _cleanup_free_ char *copy = NULL;
        ParseState st = {};
        int r;

        d = calloc(1, sizeof(*d));
        copy = strdup(path);
        if (!d || !copy)
                return error_set(error, -ENOMEM, "out of memory");
        d->path = strdup(path);
        d->arch = strdup("x86_64");
        d->rpmdb_path = strdup("/usr/lib/sysimage/rpm");
        d->cmdline = strdup("");
        d->packages = calloc(1, sizeof(char *));
        d->install_weak_deps = true;
        d->group_package_types = GROUP_PACKAGE_MANDATORY | GROUP_PACKAGE_DEFAULT | GROUP_PACKAGE_CONDITIONAL;
        d->esp_size = 64ULL << 20;
        d->root_size = 256ULL << 20;
        d->var_size = 64ULL << 20;
        d->rootfs_type = ROOTFS_EROFS;
        if (!d->path || !d->arch || !d->rpmdb_path || !d->cmdline || !d->packages)
                return error_set(error, -ENOMEM, "out of memory");

        st.def = d;
        st.dir = dirname(copy);
        r = ini_parse_file(path, read_vars, d, error);
        if (r < 0)
                return r;
        r = ini_parse_file(path, handle_key, &st, error);
        if (r < 0)
                return r;
        drop_disabled(d);

        if (version_override) {
                r = replace_string(&d->version, version_override);
                if (r < 0)
                        return error_set(error, r, "out of memory");
                st.line_version = 0;
        }
        if (!d->name)
                return error_set_at(error, -EINVAL, path, 0, "[image] name is missing");
        if (!d->version)
                return error_set_at(error, -EINVAL, path, 0, "[image] version is missing (or pass --image-version)");
        /* One rule for builder, server and agent: an image that cannot be
         * installed is never built. */
        if (!image_version_valid(d->version)) {
                if (st.line_version)
                        return error_set_at(error, -EINVAL, path, st.line_version,
                                            "invalid version '%s' (a version is " IMAGE_VERSION_RULE ")", d->version);
                return error_set(error, -EINVAL, "invalid --image-version '%s' (a version is " IMAGE_VERSION_RULE ")",
                                 d->version);
        }
        if (strv_length(d->packages) == 0 && !strv_find_prefix_slash(d->modules))
                return error_set_at(error, -EINVAL, path, 0,
                                    "[packages] install lists no package (and [modules] enable no profile)");
        if (d->n_repos == 0)
                return error_set_at(error, -EINVAL, path, 0, "no enabled [repo ID] section with a baseurl");
        for (size_t i = 0; i < d->n_repos; i++) {
                const RepoDef *repo = &d->repos[i];

                if (!repo->baseurl && !repo->mirrorlist && !repo->metalink)
                        return error_set_at(error, -EINVAL, repo->file, repo->line,
                                            "repository '%s' has no baseurl, mirrorlist or metalink", repo->id);
                if (repo->repo_gpgcheck && !repo->gpgkeys)
                        return error_set_at(error, -EINVAL, repo->file, repo->line,
                                            "repository '%s' has repo_gpgcheck on but no gpgkey: list the keys its "
                                            "repomd.xml is signed with (gpgkey = PATH or URL)",
                                            repo->id);
                if (repo->gpgcheck && !repo->gpgkeys)
                        return error_set_at(error, -EINVAL, repo->file, repo->line,
                                            "repository '%s' has gpgcheck on but no gpgkey: list the keys its "
                                            "packages are signed with (gpgkey = PATH or URL), or set gpgcheck = 0",
                                            repo->id);
        }
        /* systemd-boot is a UEFI program: a BIOS boots GRUB only. */
        if (d->loader == BOOT_LOADER_SYSTEMD_BOOT && d->firmware != BOOT_FIRMWARE_UEFI)
                return error_set_at(error, -EINVAL, path, st.line_firmware ? st.line_firmware : st.line_loader,
                                    "firmware = %s needs loader = grub (systemd-boot runs under UEFI only)",
                                    boot_firmware_to_string(d->firmware));
        strv_sort_unique(d->packages);

        *ret = TAKE_PTR(d);
        return 0;
}

int image_def_load(const char *path, const char *version_override, ImageDef **ret) {
        _cleanup_error_ Error e = {};
        int r;

        r = image_def_parse(path, version_override, ret, &e);
        return r < 0 ? error_log(&e) : r;
}
