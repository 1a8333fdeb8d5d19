#include <ctype.h>
#include <jansson.h>

#include "fileio.h"
#include "lock.h"
#include "log.h"
#include "util.h"

/* The format this code writes: 2 adds the signature fields (each repo's
 * gpgcheck and keys, each package's key_id). It reads 1 too. */
#define LOCK_FORMAT 2
#define LOCK_FORMAT_UNSIGNED 1
/* A lock of a few thousand packages is a few MiB; anything far larger is not ours. */
#define LOCK_FILE_MAX (64U * 1024U * 1024U)

static void lock_repo_release(LockRepo *r) {
        free(r->id);
        free(r->baseurl);
        strv_free(r->mirrors);
        free(r->repomd_sha256);
        free(r->repomd_key);
        strv_free(r->keys);
}

static void lock_package_release(LockPackage *p) {
        free(p->name);
        free(p->epoch);
        free(p->version);
        free(p->release);
        free(p->arch);
        free(p->repo_id);
        free(p->location);
        free(p->sha256);
        free(p->key_id);
}

void lock_modules_free(LockModule *m, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(m[i].name);
                free(m[i].stream);
                free(m[i].profile);
                free(m[i].required_by);
        }
        free(m);
}

void lock_groups_free(LockGroup *g, size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(g[i].request);
                strv_free(g[i].ids);
                strv_free(g[i].packages);
        }
        free(g);
}

Lock *lock_free(Lock *l) {
        if (!l)
                return NULL;
        free(l->arch);
        strv_free(l->requested);
        for (size_t i = 0; i < l->n_repos; i++)
                lock_repo_release(&l->repos[i]);
        free(l->repos);
        for (size_t i = 0; i < l->n_packages; i++)
                lock_package_release(&l->packages[i]);
        free(l->packages);
        lock_modules_free(l->modules, l->n_modules);
        lock_groups_free(l->groups, l->n_groups);
        free(l);
        return NULL;
}

char *lock_package_nevra(const LockPackage *p) {
        if (isempty(p->epoch) || streq(p->epoch, "0"))
                return strdup_printf("%s-%s-%s.%s", p->name, p->version, p->release, p->arch);
        return strdup_printf("%s-%s:%s-%s.%s", p->name, p->epoch, p->version, p->release, p->arch);
}

const LockRepo *lock_find_repo(const Lock *l, const char *id) {
        for (size_t i = 0; i < l->n_repos; i++)
                if (streq(l->repos[i].id, id))
                        return &l->repos[i];
        return NULL;
}

/* Characters a location may carry into a URL unescaped. */
static bool url_path_char(char c) {
        return isascii(c) && (isalnum(c) || strchr("-._~/+", c));
}

char *lock_package_url(const Lock *l, const LockPackage *p) {
        const LockRepo *repo = lock_find_repo(l, p->repo_id);

        return repo ? lock_package_url_at(p, repo->baseurl) : NULL;
}

char *lock_package_url_at(const LockPackage *p, const char *base) {
        _cleanup_free_ char *escaped = NULL;
        size_t j = 0;

        escaped = malloc(strlen(p->location) * 3 + 1);
        if (!escaped)
                return NULL;
        for (const char *s = p->location; *s; s++) {
                if (url_path_char(*s))
                        escaped[j++] = *s;
                else {
                        snprintf(escaped + j, 4, "%%%02X", (unsigned) (unsigned char) *s);
                        j += 3;
                }
        }
        escaped[j] = 0;
        return path_join(base, escaped);
}

static int package_cmp(const void *a, const void *b) {
        const LockPackage *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c == 0)
                c = strcmp(x->arch, y->arch);
        /* Ties (only in hand-made locks) still sort the same way every time. */
        if (c == 0)
                c = strcmp(x->sha256, y->sha256);
        return c;
}

void lock_sort(Lock *l) {
        if (l->n_packages > 1)
                qsort(l->packages, l->n_packages, sizeof(LockPackage), package_cmp);
}

/* ---- to JSON ---- */

static int json_add_string(json_t *o, const char *key, const char *value) {
        json_t *s;

        if (!value)
                return -EINVAL;
        s = json_string(value);
        if (!s)
                return -EINVAL; /* NULL or not UTF-8 */
        return json_object_set_new(o, key, s) < 0 ? -ENOMEM : 0;
}

static int repo_to_json(const LockRepo *r, bool checked, json_t **ret) {
        json_t *o = json_object(), *keys = NULL;
        int k = 0;

        if (!o)
                return -ENOMEM;
        k = json_add_string(o, "id", r->id);
        if (k >= 0)
                k = json_add_string(o, "baseurl", r->baseurl);
        if (k >= 0)
                k = json_add_string(o, "repomd_sha256", r->repomd_sha256);
        if (k >= 0 && r->repomd_key)
                k = json_add_string(o, "repomd_key", r->repomd_key);
        if (k >= 0 && r->mirrors) {
                json_t *m = json_array();
                if (!m || json_object_set_new(o, "mirrors", m) < 0)
                        k = -ENOMEM;
                for (char **u = r->mirrors; k >= 0 && *u; u++)
                        k = json_array_append_new(m, json_string(*u)) < 0 ? -EINVAL : 0;
        }
        if (k >= 0 && checked) {
                if (json_object_set_new(o, "gpgcheck", json_boolean(r->gpgcheck)) < 0 ||
                    json_object_set_new(o, "keys", keys = json_array()) < 0 || !keys)
                        k = -ENOMEM;
                for (char **f = r->keys; k >= 0 && f && *f; f++)
                        k = json_array_append_new(keys, json_string(*f)) < 0 ? -EINVAL : 0;
        }
        if (k < 0) {
                json_decref(o);
                return k;
        }
        *ret = o;
        return 0;
}

static int package_to_json(const LockPackage *p, bool checked, json_t **ret) {
        json_t *o = json_object();
        int k;

        if (!o)
                return -ENOMEM;
        if (p->size > (uint64_t) INT64_MAX) {
                json_decref(o);
                return -ERANGE;
        }
        k = json_add_string(o, "name", p->name);
        if (k >= 0)
                k = json_add_string(o, "epoch", p->epoch ? p->epoch : "0");
        if (k >= 0)
                k = json_add_string(o, "version", p->version);
        if (k >= 0)
                k = json_add_string(o, "release", p->release);
        if (k >= 0)
                k = json_add_string(o, "arch", p->arch);
        if (k >= 0)
                k = json_add_string(o, "repo", p->repo_id);
        if (k >= 0)
                k = json_add_string(o, "location", p->location);
        if (k >= 0)
                k = json_add_string(o, "sha256", p->sha256);
        if (k >= 0 && json_object_set_new(o, "size", json_integer((json_int_t) p->size)) < 0)
                k = -ENOMEM;
        if (k >= 0 && checked && p->key_id)
                k = json_add_string(o, "key_id", p->key_id);
        if (k < 0) {
                json_decref(o);
                return k;
        }
        *ret = o;
        return 0;
}

static json_t *strv_to_json(char **l) {
        json_t *a = json_array();

        for (; a && l && *l; l++)
                if (json_array_append_new(a, json_string(*l)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/* "modules" and "groups": what the resolution was asked beyond package
 * names. Absent when there is none, so older locks read and hash alike. */
static int resolution_to_json(const Lock *l, json_t *o) {
        if (l->n_modules > 0) {
                json_t *a = json_array();

                if (!a || json_object_set_new(o, "modules", a) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < l->n_modules; i++) {
                        const LockModule *m = &l->modules[i];
                        json_t *item = json_pack("{s:s, s:s, s:b}", "name", m->name, "stream", m->stream, "default",
                                                 m->is_default);

                        if (!item || json_array_append_new(a, item) < 0)
                                return -ENOMEM;
                        if (m->profile && json_object_set_new(item, "profile", json_string(m->profile)) < 0)
                                return -ENOMEM;
                        if (m->required_by &&
                            json_object_set_new(item, "required_by", json_string(m->required_by)) < 0)
                                return -ENOMEM;
                }
        }
        if (l->n_groups > 0) {
                json_t *a = json_array();

                if (!a || json_object_set_new(o, "groups", a) < 0)
                        return -ENOMEM;
                for (size_t i = 0; i < l->n_groups; i++) {
                        const LockGroup *g = &l->groups[i];
                        json_t *item = json_pack("{s:s, s:o*, s:o*}", "request", g->request, "ids",
                                                 strv_to_json(g->ids), "packages", strv_to_json(g->packages));

                        if (!item || json_array_append_new(a, item) < 0)
                                return -ENOMEM;
                }
        }
        return 0;
}

static int lock_to_json_full(const Lock *l, bool checked, json_t **ret) {
        json_t *o = NULL, *requested = NULL, *repos = NULL, *packages = NULL, *item;
        int r = -ENOMEM;

        o = json_object();
        requested = json_array();
        repos = json_array();
        packages = json_array();
        if (!o || !requested || !repos || !packages)
                goto fail;
        for (char **s = l->requested; s && *s; s++)
                if (json_array_append_new(requested, json_string(*s)) < 0)
                        goto fail;
        for (size_t i = 0; i < l->n_repos; i++) {
                r = repo_to_json(&l->repos[i], checked, &item);
                if (r < 0)
                        goto fail;
                r = -ENOMEM;
                if (json_array_append_new(repos, item) < 0)
                        goto fail;
        }
        for (size_t i = 0; i < l->n_packages; i++) {
                r = package_to_json(&l->packages[i], checked, &item);
                if (r < 0)
                        goto fail;
                r = -ENOMEM;
                if (json_array_append_new(packages, item) < 0)
                        goto fail;
        }
        r = json_add_string(o, "arch", l->arch);
        if (r < 0)
                goto fail;
        r = -ENOMEM;
        if (json_object_set_new(o, "format", json_integer(checked ? LOCK_FORMAT : LOCK_FORMAT_UNSIGNED)) < 0)
                goto fail;
        /* The _new setters take the reference even when they fail. */
        if (json_object_set_new(o, "requested", requested) < 0) {
                requested = NULL;
                goto fail;
        }
        requested = NULL;
        if (json_object_set_new(o, "repos", repos) < 0) {
                repos = NULL;
                goto fail;
        }
        repos = NULL;
        if (json_object_set_new(o, "packages", packages) < 0) {
                packages = NULL;
                goto fail;
        }
        packages = NULL;
        if (resolution_to_json(l, o) < 0)
                goto fail;
        *ret = o;
        return 0;

fail:
        json_decref(packages);
        json_decref(repos);
        json_decref(requested);
        json_decref(o);
        return r;
}

int lock_to_json(const Lock *l, json_t **ret) {
        return lock_to_json_full(l, true, ret);
}

int lock_to_json_unchecked(const Lock *l, json_t **ret) {
        return lock_to_json_full(l, false, ret);
}

/* ---- from JSON ---- */

/* Every complaint about the input names its source ("lock 'x.lock'") first. */
#define lock_error(src, fmt, ...) log_error_errno(-EINVAL, "%s: " fmt, src, ##__VA_ARGS__)

/* printable ASCII without whitespace */
static bool token_valid(const char *s, const char *extra_forbidden) {
        if (isempty(s) || strlen(s) > 256)
                return false;
        for (const char *p = s; *p; p++)
                if (!isascii(*p) || !isgraph(*p) || strchr(extra_forbidden, *p))
                        return false;
        return true;
}

/* A requested package as a definition has it: "NAME", or "NAME OP
 * VERSION" with single spaces (definition.h). */
static bool request_valid(const char *s) {
        static const char *const ops[] = { "=", "<", "<=", ">", ">=" };
        _cleanup_free_ char *copy = NULL;
        char *op, *version;

        if (isempty(s) || strlen(s) > 256)
                return false;
        if (!strchr(s, ' '))
                return token_valid(s, "<=>");
        copy = strdup(s);
        if (!copy)
                return false;
        op = strchr(copy, ' ');
        *op++ = 0;
        version = strchr(op, ' ');
        if (!version)
                return false;
        *version++ = 0;
        if (!token_valid(copy, "<=>") || !token_valid(version, "<=>"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                if (streq(op, ops[i]))
                        return true;
        return false;
}

static bool epoch_valid(const char *s) {
        if (isempty(s) || strlen(s) > 10)
                return false;
        for (const char *p = s; *p; p++)
                if (!isdigit(*p))
                        return false;
        return true;
}

static bool arch_valid(const char *s) {
        if (isempty(s) || strlen(s) > 64)
                return false;
        for (const char *p = s; *p; p++)
                if (!isascii(*p) || !(isalnum(*p) || *p == '_'))
                        return false;
        return true;
}

/* Relative, no empty/"."/".." components, no control characters, ends in .rpm. */
static bool location_valid(const char *s) {
        const char *c;

        if (isempty(s) || strlen(s) > 4096 || s[0] == '/' || !endswith(s, ".rpm"))
                return false;
        for (const char *p = s; *p; p++)
                if (!isascii(*p) || !isgraph(*p) || *p == '\\')
                        return false;
        for (c = s;;) {
                size_t n = strcspn(c, "/");
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
                if (!c[n])
                        break;
                c += n + 1;
        }
        return true;
}

static bool baseurl_valid(const char *s) {
        if (!token_valid(s, ""))
                return false;
        return startswith(s, "file:///") || startswith(s, "http://") || startswith(s, "https://");
}

/* Returns a copy of the string member key of o, logging what is wrong in the
 * context `what` (e.g. "package 'foo'", NULL at the top level) otherwise. */
static int get_string(const char *src, const json_t *o, const char *key, const char *what, char **ret) {
        json_t *v = json_object_get(o, key);
        char *s;

        if (!v)
                return lock_error(src, "%s%sfield '%s' is missing", strempty(what), what ? ": " : "", key);
        if (!json_is_string(v))
                return lock_error(src, "%s%sfield '%s' is not a string", strempty(what), what ? ": " : "", key);
        s = strdup(json_string_value(v));
        if (!s)
                return log_oom();
        *ret = s;
        return 0;
}

static int check_keys(const char *src, const json_t *o, const char *const *allowed, const char *what) {
        const char *key;
        json_t *v;

        json_object_foreach((json_t *) o, key, v) {
                bool known = false;
                for (const char *const *a = allowed; *a; a++)
                        if (streq(*a, key))
                                known = true;
                if (!known)
                        return lock_error(src, "%s%sunknown field '%s'", strempty(what), what ? ": " : "", key);
        }
        return 0;
}

/* lowercase hex digits, n of them */
static bool hex_valid(const char *s, size_t n) {
        if (strlen(s) != n)
                return false;
        for (const char *p = s; *p; p++)
                if (!isdigit(*p) && !(*p >= 'a' && *p <= 'f'))
                        return false;
        return true;
}

/* "gpgcheck" and "keys" of a format 2 repo. */
static int repo_keys_from_json(const char *src, const json_t *o, const char *what, LockRepo *r) {
        json_t *gpgcheck = json_object_get(o, "gpgcheck"), *keys = json_object_get(o, "keys"), *v;
        size_t i;

        if (!json_is_boolean(gpgcheck))
                return lock_error(src, "%s: field 'gpgcheck' is %s", what, gpgcheck ? "not a boolean" : "missing");
        r->gpgcheck = json_is_true(gpgcheck);
        if (!json_is_array(keys))
                return lock_error(src, "%s: field 'keys' is %s", what, keys ? "not an array" : "missing");
        if (json_array_size(keys) > 64)
                return lock_error(src, "%s: more than 64 'keys'", what);
        r->keys = calloc(1, sizeof(char *));
        if (!r->keys)
                return log_oom();
        json_array_foreach(keys, i, v) {
                const char *fp = json_string_value(v);

                if (!fp || !(hex_valid(fp, 40) || hex_valid(fp, 64)))
                        return lock_error(src, "%s: keys[%zu] is not a key fingerprint (40 or 64 lowercase hex digits)",
                                          what, i);
                if (strv_extend(&r->keys, fp) < 0)
                        return log_oom();
        }
        if (!r->gpgcheck && json_array_size(keys) > 0)
                return lock_error(src, "%s: 'keys' of a repository with gpgcheck off", what);
        return 0;
}

/* The optional "mirrors" and "repomd_key" of a repo. */
static int repo_mirrors_from_json(const char *src, const json_t *o, const char *what, LockRepo *r) {
        json_t *mirrors = json_object_get(o, "mirrors"), *v;
        size_t i;
        int k;

        if (json_object_get(o, "repomd_key")) {
                k = get_string(src, o, "repomd_key", what, &r->repomd_key);
                if (k < 0)
                        return k;
                if (!hex_valid(r->repomd_key, 40) && !hex_valid(r->repomd_key, 64))
                        return lock_error(src, "%s: 'repomd_key' is not a key fingerprint (40 or 64 lowercase hex "
                                               "digits)",
                                          what);
        }
        if (!mirrors)
                return 0;
        if (!json_is_array(mirrors) || json_array_size(mirrors) == 0 || json_array_size(mirrors) > 256)
                return lock_error(src, "%s: 'mirrors' is not an array of 1 to 256 URLs", what);
        r->mirrors = calloc(1, sizeof(char *));
        if (!r->mirrors)
                return log_oom();
        json_array_foreach(mirrors, i, v) {
                const char *u = json_string_value(v);

                if (!u || !baseurl_valid(u))
                        return lock_error(src, "%s: mirrors[%zu] is not an absolute file://, http:// or https:// URL",
                                          what, i);
                if (strv_extend(&r->mirrors, u) < 0)
                        return log_oom();
        }
        if (!strv_contains(r->mirrors, r->baseurl))
                return lock_error(src, "%s: 'baseurl' is not one of its 'mirrors'", what);
        return 0;
}

static int repo_from_json(const char *src, const json_t *o, size_t index, int format, LockRepo *r) {
        static const char *const keys_v1[] = { "id", "baseurl", "repomd_sha256", "mirrors", "repomd_key", NULL };
        static const char *const keys[] = { "id",      "baseurl",    "repomd_sha256", "gpgcheck",
                                            "keys",    "mirrors",    "repomd_key",    NULL };
        char what[320];
        int k;

        snprintf(what, sizeof(what), "repos[%zu]", index);
        if (!json_is_object(o))
                return lock_error(src, "%s is not an object", what);
        k = get_string(src, o, "id", what, &r->id);
        if (k < 0)
                return k;
        if (!token_valid(r->id, "/"))
                return lock_error(src, "%s: invalid 'id' \"%s\"", what, r->id);
        snprintf(what, sizeof(what), "repo '%s'", r->id);
        k = check_keys(src, o, format == LOCK_FORMAT_UNSIGNED ? keys_v1 : keys, what);
        if (k < 0)
                return k;
        k = get_string(src, o, "baseurl", what, &r->baseurl);
        if (k < 0)
                return k;
        if (!baseurl_valid(r->baseurl))
                return lock_error(src,
                                       "%s: 'baseurl' \"%s\" is not an absolute file://, http:// or "
                                       "https:// URL",
                                       what, r->baseurl);
        k = get_string(src, o, "repomd_sha256", what, &r->repomd_sha256);
        if (k < 0)
                return k;
        if (!sha256_hex_valid(r->repomd_sha256))
                return lock_error(src, "%s: 'repomd_sha256' is not a sha256 (64 lowercase hex digits)",
                                       what);
        k = repo_mirrors_from_json(src, o, what, r);
        if (k < 0)
                return k;
        return format == LOCK_FORMAT_UNSIGNED ? 0 : repo_keys_from_json(src, o, what, r);
}

static int package_from_json(const char *src, const json_t *o, size_t index, const Lock *l, int format,
                             LockPackage *p) {
        static const char *const keys_v1[] = { "name", "epoch",    "version", "release", "arch",
                                                "repo", "location", "sha256",  "size",    NULL };
        static const char *const keys[] = { "name", "epoch",    "version", "release", "arch",
                                             "repo", "location", "sha256",  "size",    "key_id", NULL };
        const LockRepo *repo;
        char what[320];
        json_t *size;
        int k;

        snprintf(what, sizeof(what), "packages[%zu]", index);
        if (!json_is_object(o))
                return lock_error(src, "%s is not an object", what);
        k = get_string(src, o, "name", what, &p->name);
        if (k < 0)
                return k;
        if (!token_valid(p->name, "/"))
                return lock_error(src, "%s: invalid 'name' \"%s\"", what, p->name);
        snprintf(what, sizeof(what), "package '%s'", p->name);
        k = check_keys(src, o, format == LOCK_FORMAT_UNSIGNED ? keys_v1 : keys, what);
        if (k < 0)
                return k;

        k = get_string(src, o, "epoch", what, &p->epoch);
        if (k < 0)
                return k;
        if (!epoch_valid(p->epoch))
                return lock_error(src, "%s: 'epoch' \"%s\" is not a number", what, p->epoch);
        k = get_string(src, o, "version", what, &p->version);
        if (k < 0)
                return k;
        if (!token_valid(p->version, "/-:"))
                return lock_error(src, "%s: invalid 'version' \"%s\"", what, p->version);
        k = get_string(src, o, "release", what, &p->release);
        if (k < 0)
                return k;
        if (!token_valid(p->release, "/-:"))
                return lock_error(src, "%s: invalid 'release' \"%s\"", what, p->release);
        k = get_string(src, o, "arch", what, &p->arch);
        if (k < 0)
                return k;
        if (!arch_valid(p->arch))
                return lock_error(src, "%s: invalid 'arch' \"%s\"", what, p->arch);
        k = get_string(src, o, "repo", what, &p->repo_id);
        if (k < 0)
                return k;
        repo = lock_find_repo(l, p->repo_id);
        if (!repo)
                return lock_error(src, "%s: 'repo' \"%s\" is not one of the lock's repos", what,
                                       p->repo_id);
        k = get_string(src, o, "location", what, &p->location);
        if (k < 0)
                return k;
        if (!location_valid(p->location))
                return lock_error(src,
                                       "%s: 'location' \"%s\" must be a relative path to an .rpm file "
                                       "without empty, '.' or '..' components",
                                       what, p->location);
        k = get_string(src, o, "sha256", what, &p->sha256);
        if (k < 0)
                return k;
        if (!sha256_hex_valid(p->sha256))
                return lock_error(src, "%s: 'sha256' is not a sha256 (64 lowercase hex digits)",
                                       what);
        size = json_object_get(o, "size");
        if (!size)
                return lock_error(src, "%s: field 'size' is missing", what);
        if (!json_is_integer(size) || json_integer_value(size) <= 0)
                return lock_error(src, "%s: 'size' must be a positive integer", what);
        p->size = (uint64_t) json_integer_value(size);
        if (json_object_get(o, "key_id")) {
                k = get_string(src, o, "key_id", what, &p->key_id);
                if (k < 0)
                        return k;
                if (!hex_valid(p->key_id, 16))
                        return lock_error(src, "%s: 'key_id' is not a key ID (16 lowercase hex digits)", what);
                if (!repo->gpgcheck)
                        return lock_error(src, "%s: 'key_id' but repo '%s' has gpgcheck off", what, repo->id);
        }
        return 0;
}

/* An array of strings, each valid by check; NULL-terminated copy. */
static int strv_from_json(const char *src, const json_t *a, const char *what, char ***ret) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t i;
        json_t *v;

        if (!l)
                return log_oom();
        if (!json_is_array(a))
                return lock_error(src, "%s is %s", what, a ? "not an array" : "missing");
        json_array_foreach(a, i, v) {
                /* names, or "(NAME if REQUIRED)" with spaces */
                if (!json_is_string(v) || isempty(json_string_value(v)) || strlen(json_string_value(v)) > 512)
                        return lock_error(src, "%s[%zu] is not a string", what, i);
                if (strv_extend(&l, json_string_value(v)) < 0)
                        return log_oom();
        }
        *ret = TAKE_PTR(l);
        return 0;
}

static int resolution_from_json(const char *src, const json_t *j, Lock *l) {
        static const char *const module_keys[] = { "name", "stream", "profile", "default", "required_by", NULL };
        static const char *const group_keys[] = { "request", "ids", "packages", NULL };
        json_t *modules = json_object_get(j, "modules"), *groups = json_object_get(j, "groups"), *v;
        size_t i;
        int k;

        if (modules && !json_is_array(modules))
                return lock_error(src, "field 'modules' is not an array");
        if (groups && !json_is_array(groups))
                return lock_error(src, "field 'groups' is not an array");
        l->modules = calloc(MAX(json_array_size(modules), 1u), sizeof(LockModule));
        l->groups = calloc(MAX(json_array_size(groups), 1u), sizeof(LockGroup));
        if (!l->modules || !l->groups)
                return log_oom();
        json_array_foreach(modules, i, v) {
                LockModule *m = &l->modules[l->n_modules++];
                _cleanup_free_ char *what = strdup_printf("modules[%zu]", i);
                json_t *d, *p;

                if (!what)
                        return log_oom();
                if (!json_is_object(v))
                        return lock_error(src, "%s is not an object", what);
                k = check_keys(src, v, module_keys, what);
                if (k >= 0)
                        k = get_string(src, v, "name", what, &m->name);
                if (k >= 0)
                        k = get_string(src, v, "stream", what, &m->stream);
                if (k < 0)
                        return k;
                p = json_object_get(v, "profile");
                if (p && (!json_is_string(p) || !(m->profile = strdup(json_string_value(p)))))
                        return json_is_string(p) ? log_oom() : lock_error(src, "%s: 'profile' is not a string", what);
                p = json_object_get(v, "required_by");
                if (p && (!json_is_string(p) || !(m->required_by = strdup(json_string_value(p)))))
                        return json_is_string(p) ? log_oom()
                                                 : lock_error(src, "%s: 'required_by' is not a string", what);
                d = json_object_get(v, "default");
                if (!json_is_boolean(d))
                        return lock_error(src, "%s: 'default' is %s", what, d ? "not a boolean" : "missing");
                m->is_default = json_is_true(d);
                if (!token_valid(m->name, ":/") || !token_valid(m->stream, ":/") ||
                    (m->profile && !token_valid(m->profile, ":/")))
                        return lock_error(src, "%s: invalid module name, stream or profile", what);
        }
        json_array_foreach(groups, i, v) {
                LockGroup *g = &l->groups[l->n_groups++];
                _cleanup_free_ char *what = strdup_printf("groups[%zu]", i), *w_ids = NULL, *w_pkgs = NULL;

                if (!what)
                        return log_oom();
                if (!json_is_object(v))
                        return lock_error(src, "%s is not an object", what);
                k = check_keys(src, v, group_keys, what);
                if (k >= 0)
                        k = get_string(src, v, "request", what, &g->request);
                if (k < 0)
                        return k;
                if (!startswith(g->request, "@") || !strv_contains(l->requested, g->request))
                        return lock_error(src, "%s: 'request' is not one of the requested groups", what);
                w_ids = strdup_printf("%s.ids", what);
                w_pkgs = strdup_printf("%s.packages", what);
                if (!w_ids || !w_pkgs)
                        return log_oom();
                k = strv_from_json(src, json_object_get(v, "ids"), w_ids, &g->ids);
                if (k >= 0)
                        k = strv_from_json(src, json_object_get(v, "packages"), w_pkgs, &g->packages);
                if (k < 0)
                        return k;
        }
        return 0;
}

static int lock_from_json_full(const json_t *j, const char *src, Lock **ret) {
        static const char *const keys[] = { "format", "arch", "requested", "repos", "packages", "modules", "groups",
                                            NULL };
        _cleanup_lock_free_ Lock *l = NULL;
        json_t *format, *requested, *repos, *packages, *v;
        json_int_t fmt;
        size_t i;
        int k;

        if (!json_is_object(j))
                return lock_error(src, "not a JSON object");
        format = json_object_get(j, "format");
        if (!format)
                return lock_error(src, "field 'format' is missing");
        fmt = json_is_integer(format) ? json_integer_value(format) : 0;
        if (fmt != LOCK_FORMAT && fmt != LOCK_FORMAT_UNSIGNED)
                return lock_error(src, "unsupported 'format' (this slipway reads formats %d and %d)",
                                  LOCK_FORMAT_UNSIGNED, LOCK_FORMAT);
        k = check_keys(src, j, keys, NULL);
        if (k < 0)
                return k;

        l = calloc(1, sizeof(*l));
        if (!l)
                return log_oom();
        k = get_string(src, j, "arch", NULL, &l->arch);
        if (k < 0)
                return k;
        if (!arch_valid(l->arch))
                return lock_error(src, "invalid 'arch' \"%s\"", l->arch);

        requested = json_object_get(j, "requested");
        if (!json_is_array(requested))
                return lock_error(src, "field 'requested' is %s", requested ? "not an array" : "missing");
        l->requested = calloc(1, sizeof(char *));
        if (!l->requested)
                return log_oom();
        json_array_foreach(requested, i, v) {
                if (!json_is_string(v) || !request_valid(json_string_value(v)))
                        return lock_error(src, "requested[%zu] is not a package name or 'NAME OP VERSION'", i);
                if (strv_extend(&l->requested, json_string_value(v)) < 0)
                        return log_oom();
        }

        repos = json_object_get(j, "repos");
        if (!json_is_array(repos))
                return lock_error(src, "field 'repos' is %s", repos ? "not an array" : "missing");
        l->repos = calloc(MAX(json_array_size(repos), 1u), sizeof(LockRepo));
        if (!l->repos)
                return log_oom();
        json_array_foreach(repos, i, v) {
                l->n_repos++;
                k = repo_from_json(src, v, i, (int) fmt, &l->repos[i]);
                if (k < 0)
                        return k;
                for (size_t o = 0; o < i; o++)
                        if (streq(l->repos[o].id, l->repos[i].id))
                                return lock_error(src, "repo '%s' is listed twice", l->repos[i].id);
        }

        packages = json_object_get(j, "packages");
        if (!json_is_array(packages))
                return lock_error(src, "field 'packages' is %s",
                                       packages ? "not an array" : "missing");
        l->packages = calloc(MAX(json_array_size(packages), 1u), sizeof(LockPackage));
        if (!l->packages)
                return log_oom();
        json_array_foreach(packages, i, v) {
                l->n_packages++;
                k = package_from_json(src, v, i, l, (int) fmt, &l->packages[i]);
                if (k < 0)
                        return k;
        }
        k = resolution_from_json(src, j, l);
        if (k < 0)
                return k;

        *ret = TAKE_PTR(l);
        return 0;
}

int lock_from_json(const json_t *j, Lock **ret) {
        return lock_from_json_full(j, "lock", ret);
}

static int lock_write_full(const Lock *l, bool checked, const char *path) {
        _cleanup_free_ char *text = NULL;
        json_t *j = NULL;
        int r;

        r = lock_to_json_full(l, checked, &j);
        if (r < 0)
                return r;
        text = json_dumps(j, JSON_SORT_KEYS | JSON_INDENT(2));
        json_decref(j);
        if (!text)
                return -ENOMEM;
        /* json_dumps() leaves out the final newline; files end with one. */
        {
                size_t n = strlen(text);
                char *t = realloc(text, n + 2);
                if (!t)
                        return -ENOMEM;
                text = t;
                text[n] = '\n';
                text[n + 1] = 0;
        }
        return write_file_atomic(path, text, strlen(text), 0644);
}

int lock_write(const Lock *l, const char *path) {
        return lock_write_full(l, true, path);
}

int lock_write_unchecked(const Lock *l, const char *path) {
        return lock_write_full(l, false, path);
}

int lock_read(const char *path, Lock **ret) {
        _cleanup_free_ char *text = NULL, *src = NULL;
        json_error_t error;
        size_t size;
        json_t *j;
        int r;

        r = read_full_file(path, LOCK_FILE_MAX, &text, &size);
        if (r == -ENOENT)
                return r;
        if (r < 0)
                return log_error_errno(r, "cannot read lock '%s': %m", path);
        j = json_loadb(text, size, JSON_REJECT_DUPLICATES, &error);
        if (!j)
                return log_error_errno(-EINVAL, "lock '%s':%d:%d: %s", path, error.line, error.column, error.text);
        src = strdup_printf("lock '%s'", path);
        if (!src) {
                json_decref(j);
                return log_oom();
        }
        r = lock_from_json_full(j, src, ret);
        json_decref(j);
        return r;
}
