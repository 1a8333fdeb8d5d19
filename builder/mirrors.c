#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"
#include "mirrors.h"
#include "util.h"

typedef struct Mirror {
        char *url;
        char *failure; /* why it was skipped; NULL while it is usable */
        int error;     /* and its errno */
} Mirror;

struct Mirrors {
        char *repo_id;
        char *label; /* "'ID'" or "'ID' (NAME)", for errors */
        char **urls; /* NULL-terminated view of the mirrors' URLs, for mirrors_urls() */
        Mirror *mirrors;
        size_t n;
        HttpOptions opts;
        MetalinkRepomd metalink;
        bool has_metalink;
        bool metadata; /* from a definition (mirrors_load): its failures are remembered */
};

/* ---- mirrorlist and metalink ---- */

static bool url_usable(const char *u) {
        return startswith(u, "file:///") || startswith(u, "http://") || startswith(u, "https://");
}

/* A copy of u without trailing slashes. */
static char *base_url(const char *u, size_t len) {
        while (len > 8 && u[len - 1] == '/')
                len--;
        return strndup(u, len);
}

int mirrorlist_parse(const char *text, char ***ret) {
        _cleanup_strv_free_ char **urls = calloc(1, sizeof(char *));
        const char *p = text;

        if (!urls)
                return -ENOMEM;
        while (*p) {
                const char *eol = strchrnul(p, '\n'), *s = p, *e = eol;

                p = *eol ? eol + 1 : eol;
                while (s < e && (*s == ' ' || *s == '\t'))
                        s++;
                while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
                        e--;
                if (s == e || *s == '#')
                        continue;
                {
                        _cleanup_free_ char *u = strndup(s, (size_t) (e - s));

                        if (!u)
                                return -ENOMEM;
                        if (!url_usable(u) || strpbrk(u, " \t"))
                                continue;
                        if (strv_length(urls) >= MIRRORS_MAX)
                                break;
                        if (strv_consume(&urls, base_url(u, strlen(u))) < 0)
                                return -ENOMEM;
                }
        }
        if (!urls[0])
                return -EBADMSG;
        *ret = TAKE_PTR(urls);
        return 0;
}

void metalink_repomd_release(MetalinkRepomd *m) {
        strv_free(m->hash_types);
        strv_free(m->hashes);
        *m = (MetalinkRepomd) {};
}

static bool node_is(const xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && streq((const char *) n->name, name);
}

static char *node_text(xmlNode *n) {
        xmlChar *c = xmlNodeGetContent(n);
        char *s, *t;
        size_t len;

        if (!c)
                return NULL;
        s = (char *) c;
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
                s++;
        len = strlen(s);
        while (len > 0 && strchr(" \t\n\r", s[len - 1]))
                len--;
        t = strndup(s, len);
        xmlFree(c);
        return t;
}

static long node_prop_long(xmlNode *n, const char *name, long dflt) {
        xmlChar *v = xmlGetProp(n, (const xmlChar *) name);
        uint64_t u;
        long r = dflt;

        if (v && safe_atou64((const char *) v, &u) >= 0 && u <= 1000000)
                r = (long) u;
        xmlFree(v);
        return r;
}

typedef struct PrefUrl {
        char *url;
        long preference;
        size_t order;
} PrefUrl;

static int pref_cmp(const void *a, const void *b) {
        const PrefUrl *x = a, *y = b;

        if (x->preference != y->preference)
                return x->preference > y->preference ? -1 : 1;
        return x->order < y->order ? -1 : x->order > y->order;
}

/* Reads the <file name="repomd.xml"> element of a metalink. */
static int metalink_file(xmlNode *file, PrefUrl **urls, size_t *n_urls, MetalinkRepomd *m) {
        for (xmlNode *c = file->children; c; c = c->next) {
                if (node_is(c, "size")) {
                        _cleanup_free_ char *t = node_text(c);
                        if (!t || safe_atou64(t, &m->size) < 0)
                                return -EBADMSG;
                } else if (node_is(c, "verification")) {
                        for (xmlNode *h = c->children; h; h = h->next) {
                                _cleanup_free_ char *t = NULL;
                                xmlChar *type;
                                int r;

                                if (!node_is(h, "hash"))
                                        continue;
                                type = xmlGetProp(h, (const xmlChar *) "type");
                                t = node_text(h);
                                if (!type || !t) {
                                        xmlFree(type);
                                        return -EBADMSG;
                                }
                                for (char *p = t; *p; p++)
                                        *p = (char) tolower((unsigned char) *p);
                                r = strv_extend(&m->hash_types, (const char *) type);
                                xmlFree(type);
                                if (r < 0 || strv_extend(&m->hashes, t) < 0)
                                        return -ENOMEM;
                        }
                } else if (node_is(c, "resources")) {
                        for (xmlNode *u = c->children; u; u = u->next) {
                                _cleanup_free_ char *t = NULL;
                                const char *suffix;
                                PrefUrl *nu;

                                if (!node_is(u, "url"))
                                        continue;
                                t = node_text(u);
                                if (!t)
                                        return -ENOMEM;
                                suffix = strstr(t, "/repodata/repomd.xml");
                                if (!url_usable(t) || !suffix || !streq(suffix, "/repodata/repomd.xml"))
                                        continue;
                                if (*n_urls >= MIRRORS_MAX)
                                        break;
                                nu = realloc(*urls, sizeof(PrefUrl) * (*n_urls + 1));
                                if (!nu)
                                        return -ENOMEM;
                                *urls = nu;
                                nu[*n_urls] = (PrefUrl) {
                                        .url = base_url(t, (size_t) (suffix - t)),
                                        .preference = node_prop_long(u, "preference", 0),
                                        .order = *n_urls,
                                };
                                if (!nu[(*n_urls)++].url)
                                        return -ENOMEM;
                        }
                }
        }
        return 0;
}

int metalink_parse(const char *text, size_t size, char ***ret_urls, MetalinkRepomd *ret_repomd) {
        _cleanup_strv_free_ char **out = NULL;
        MetalinkRepomd m = {};
        PrefUrl *urls = NULL;
        size_t n_urls = 0;
        bool found = false;
        xmlDoc *doc;
        xmlNode *root;
        int r = 0;

        if (size > MIRRORS_LIST_MAX || size > INT32_MAX)
                return -EBADMSG;
        /* No network, no entities, no DTD: the file is data from a mirror. */
        doc = xmlReadMemory(text, (int) size, "metalink.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return -EBADMSG;
        root = xmlDocGetRootElement(doc);
        if (!root || !node_is(root, "metalink"))
                r = -EBADMSG;
        for (xmlNode *files = root ? root->children : NULL; r >= 0 && files; files = files->next) {
                if (!node_is(files, "files"))
                        continue;
                for (xmlNode *f = files->children; r >= 0 && f; f = f->next) {
                        xmlChar *name;

                        if (!node_is(f, "file"))
                                continue;
                        name = xmlGetProp(f, (const xmlChar *) "name");
                        if (name && streq((const char *) name, "repomd.xml")) {
                                found = true;
                                r = metalink_file(f, &urls, &n_urls, &m);
                        }
                        xmlFree(name);
                }
        }
        xmlFreeDoc(doc);
        if (r >= 0 && (!found || n_urls == 0 || strv_length(m.hash_types) == 0))
                r = -EBADMSG;
        if (r >= 0) {
                qsort(urls, n_urls, sizeof(PrefUrl), pref_cmp);
                out = calloc(n_urls + 1, sizeof(char *));
                if (!out)
                        r = -ENOMEM;
                for (size_t i = 0; out && i < n_urls; i++)
                        out[i] = TAKE_PTR(urls[i].url);
        }
        for (size_t i = 0; i < n_urls; i++)
                free(urls[i].url);
        free(urls);
        if (r < 0) {
                metalink_repomd_release(&m);
                return r;
        }
        *ret_urls = TAKE_PTR(out);
        *ret_repomd = m;
        return 0;
}

int metalink_repomd_check(const MetalinkRepomd *m, const void *data, size_t size, char *reason, size_t reason_size) {
        bool checked = false;

        if (m->size > 0 && m->size != size) {
                snprintf(reason, reason_size, "repomd.xml has %zu bytes, the metalink says %" PRIu64, size, m->size);
                return -EBADMSG;
        }
        for (size_t i = 0; m->hash_types && m->hash_types[i]; i++) {
                const EVP_MD *md = EVP_get_digestbyname(m->hash_types[i]);
                unsigned char bin[EVP_MAX_MD_SIZE];
                char hex[2 * EVP_MAX_MD_SIZE + 1];
                unsigned len = 0;

                if (!md)
                        continue;
                if (EVP_Digest(data, size, bin, &len, md, NULL) != 1)
                        return -ENOMEM;
                hex_encode(bin, len, hex);
                if (!streq(hex, m->hashes[i])) {
                        snprintf(reason, reason_size, "repomd.xml does not match the metalink's %s checksum",
                                 m->hash_types[i]);
                        return -EBADMSG;
                }
                checked = true;
        }
        if (!checked) {
                snprintf(reason, reason_size, "the metalink gives no checksum of a known type for repomd.xml");
                return -EBADMSG;
        }
        return 0;
}

/* ---- the set of mirrors ---- */

Mirrors *mirrors_free(Mirrors *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n; i++) {
                free(m->mirrors[i].url);
                free(m->mirrors[i].failure);
        }
        free(m->mirrors);
        free(m->urls);
        free(m->repo_id);
        free(m->label);
        metalink_repomd_release(&m->metalink);
        free(m);
        return NULL;
}

static int mirrors_add(Mirrors *m, const char *url) {
        Mirror *n;
        char **u;

        for (size_t i = 0; i < m->n; i++)
                if (streq(m->mirrors[i].url, url))
                        return 0;
        if (m->n >= MIRRORS_MAX)
                return 0;
        n = realloc(m->mirrors, sizeof(Mirror) * (m->n + 1));
        if (!n)
                return -ENOMEM;
        m->mirrors = n;
        u = realloc(m->urls, sizeof(char *) * (m->n + 2));
        if (!u)
                return -ENOMEM;
        m->urls = u;
        n[m->n] = (Mirror) { .url = strdup(url) };
        if (!n[m->n].url)
                return -ENOMEM;
        u[m->n] = n[m->n].url;
        u[++m->n] = NULL;
        return 0;
}

static Mirrors *mirrors_alloc(const char *repo_id, unsigned timeout, uint64_t minrate) {
        Mirrors *m = calloc(1, sizeof(*m));

        if (!m)
                return NULL;
        m->repo_id = strdup(repo_id);
        m->label = strdup_printf("'%s'", repo_id);
        m->urls = calloc(1, sizeof(char *));
        if (!m->repo_id || !m->label || !m->urls)
                return mirrors_free(m);
        /* dnf's defaults: a mirror below 1000 bytes/s for 30 s is too slow. */
        m->opts.low_speed_limit = minrate > 0 ? (long) MIN(minrate, (uint64_t) LONG_MAX) : 1000;
        m->opts.low_speed_time = timeout > 0 ? (long) timeout : HTTP_LOW_SPEED_TIME_SEC;
        return m;
}

int mirrors_new(const char *repo_id, char *const *urls, unsigned timeout, uint64_t minrate, Mirrors **ret) {
        Mirrors *m = mirrors_alloc(repo_id, timeout, minrate);

        if (!m)
                return -ENOMEM;
        for (char *const *u = urls; u && *u; u++)
                if (mirrors_add(m, *u) < 0) {
                        mirrors_free(m);
                        return -ENOMEM;
                }
        *ret = m;
        return 0;
}

/* Adds the mirrors a mirrorlist or metalink at url names. */
static int mirrors_add_list(Mirrors *m, const char *key, const char *url) {
        _cleanup_free_ char *text = NULL;
        _cleanup_strv_free_ char **urls = NULL;
        HttpError e = {};
        size_t size = 0;
        int r;

        r = http_fetch_to_memory(url, MIRRORS_LIST_MAX, &m->opts, &text, &size, &e);
        if (r < 0)
                return log_error_errno(r, "repository '%s': cannot fetch its %s %s: %s", m->repo_id, key, url,
                                       e.message);
        if (strstr(text, "<metalink")) {
                MetalinkRepomd ml = {};

                if (m->has_metalink)
                        return log_error_errno(-EINVAL, "repository '%s': a second metalink (%s)", m->repo_id, url);
                r = metalink_parse(text, size, &urls, &ml);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(r,
                                               "repository '%s': %s %s is not a metalink that lists repomd.xml with "
                                               "its checksum and URLs",
                                               m->repo_id, key, url);
                m->metalink = ml;
                m->has_metalink = true;
        } else {
                r = mirrorlist_parse(text, &urls);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(r, "repository '%s': %s %s lists no file://, http:// or https:// URL",
                                               m->repo_id, key, url);
        }
        for (char **u = urls; *u; u++)
                if (mirrors_add(m, *u) < 0)
                        return log_oom();
        return 0;
}

int mirrors_load(const RepoDef *rd, Mirrors **ret) {
        _cleanup_mirrors_free_ Mirrors *m = mirrors_alloc(rd->id, rd->timeout, rd->minrate);
        int r;

        if (!m)
                return log_oom();
        m->metadata = true;
        if (rd->name) {
                free(m->label);
                m->label = strdup_printf("'%s' (%s)", rd->id, rd->name);
                if (!m->label)
                        return log_oom();
        }
        for (char **u = rd->baseurls; u && *u; u++)
                if (mirrors_add(m, *u) < 0)
                        return log_oom();
        /* A RepoDef made by hand may set baseurl alone. */
        if (!rd->baseurls && rd->baseurl && mirrors_add(m, rd->baseurl) < 0)
                return log_oom();
        if (rd->mirrorlist) {
                r = mirrors_add_list(m, "mirrorlist", rd->mirrorlist);
                if (r < 0)
                        return r;
        }
        if (rd->metalink) {
                r = mirrors_add_list(m, "metalink", rd->metalink);
                if (r < 0)
                        return r;
        }
        if (m->n == 0)
                return log_error_errno(-EINVAL, "repository '%s' has no mirror", rd->id);
        for (size_t i = 0; i < m->n; i++)
                log_debug("repository '%s': mirror %s", rd->id, m->mirrors[i].url);
        *ret = TAKE_PTR(m);
        return 0;
}

char *const *mirrors_urls(const Mirrors *m) {
        return m->urls;
}

size_t mirrors_count(const Mirrors *m) {
        return m->n;
}

const MetalinkRepomd *mirrors_metalink_repomd(const Mirrors *m) {
        return m->has_metalink ? &m->metalink : NULL;
}

const HttpOptions *mirrors_http_options(const Mirrors *m) {
        return &m->opts;
}

const char *mirrors_failed(const Mirrors *m, size_t i) {
        return i < m->n ? m->mirrors[i].failure : "no such mirror";
}

/* The mirrors that failed for a definition's metadata in this process, for
 * mirrors_skip_failed_before(). A package's failure is not kept: a wrong
 * checksum there may be the lock's fault, not the mirror's. */
typedef struct {
        char *url;
        char *reason;
        int error;
} FailedBefore;
static FailedBefore *failed_before;
static size_t n_failed_before;

static void remember_failure(const char *url, const char *reason, int r) {
        FailedBefore *n;

        for (size_t i = 0; i < n_failed_before; i++)
                if (streq(failed_before[i].url, url))
                        return;
        n = realloc(failed_before, sizeof(*n) * (n_failed_before + 1));
        if (!n)
                return; /* only a second warning is lost */
        failed_before = n;
        n[n_failed_before].url = strdup(url);
        n[n_failed_before].reason = strdup(reason);
        n[n_failed_before].error = r;
        if (!n[n_failed_before].url || !n[n_failed_before].reason) {
                free(n[n_failed_before].url);
                free(n[n_failed_before].reason);
                return;
        }
        n_failed_before++;
}

size_t mirrors_skip_failed_before(Mirrors *m) {
        size_t mirror[MIRRORS_MAX], failure[MIRRORS_MAX], n_found = 0, open = 0;

        for (size_t i = 0; i < m->n; i++) {
                if (m->mirrors[i].failure)
                        continue;
                open++;
                for (size_t j = 0; j < n_failed_before; j++)
                        if (streq(failed_before[j].url, m->mirrors[i].url)) {
                                mirror[n_found] = i;
                                failure[n_found++] = j;
                                break;
                        }
        }
        if (n_found == 0 || n_found == open)
                return 0;
        for (size_t k = 0; k < n_found; k++) {
                Mirror *mi = &m->mirrors[mirror[k]];

                mi->failure = strdup(failed_before[failure[k]].reason);
                if (!mi->failure)
                        return k;
                mi->error = failed_before[failure[k]].error;
                log_debug("repository '%s': not asking mirror %s again (%s)", m->repo_id, mi->url, mi->failure);
        }
        return n_found;
}

void mirrors_mark_failed(Mirrors *m, size_t i, const char *what, int r, const char *reason) {
        bool others = false;

        if (i >= m->n || m->mirrors[i].failure)
                return;
        m->mirrors[i].failure = strdup(reason);
        m->mirrors[i].error = r;
        if (m->metadata)
                remember_failure(m->mirrors[i].url, reason, r);
        for (size_t j = 0; j < m->n; j++)
                if (!m->mirrors[j].failure)
                        others = true;
        /* The last one is named by the error that follows. */
        if (others)
                log_warning("repository '%s': skipping mirror %s (%s: %s)", m->repo_id, m->mirrors[i].url, what,
                            reason);
}

int mirrors_log_exhausted(const Mirrors *m, const char *what, int r) {
        _cleanup_free_ char *list = strdup("");

        if (m->n == 1) {
                const Mirror *only = &m->mirrors[0];

                if (http_error_unreachable(only->error))
                        return log_error_errno(r, "repository %s at %s is unreachable (%s: %s)", m->label,
                                               only->url, what, strempty(only->failure));
                return log_error_errno(r, "repository %s at %s: %s: %s", m->label, only->url, what,
                                       strempty(only->failure));
        }

        for (size_t i = 0; list && i < m->n; i++) {
                char *n = strdup_printf("%s%s%s: %s", list, i ? "; " : "", m->mirrors[i].url,
                                        m->mirrors[i].failure ? m->mirrors[i].failure : "not tried");
                free(list);
                list = n;
        }
        if (!list)
                return log_oom();
        return log_error_errno(r, "repository %s: no mirror could serve %s: %s", m->label, what, list);
}

void mirrors_describe_error(int r, const HttpError *e, char *reason, size_t reason_size) {
        if (r == -EFBIG)
                snprintf(reason, reason_size, "larger than expected");
        else if (r == -ETIMEDOUT)
                snprintf(reason, reason_size, "timed out or too slow: %s", e->message);
        else if (r == -EHOSTUNREACH)
                snprintf(reason, reason_size, "unreachable: %s", e->message);
        else if (r == -ENOENT)
                snprintf(reason, reason_size, "not found: %s", e->message);
        else
                snprintf(reason, reason_size, "%s", e->message);
}

/* The one loop of both fetches: fd < 0 fetches into memory. */
static int mirrors_fetch(Mirrors *m, const char *path, int fd, uint64_t max, MirrorCheck check, void *userdata,
                         char **ret_data, size_t *ret_size, size_t *ret_mirror) {
        int last = -EHOSTUNREACH;

        for (size_t i = 0; i < m->n; i++) {
                _cleanup_free_ char *url = NULL, *data = NULL;
                char reason[CURL_ERROR_SIZE + 128] = "";
                HttpError e = {};
                uint64_t size64 = 0;
                size_t size = 0;
                int r;

                if (m->mirrors[i].failure)
                        continue;
                url = path_join(m->mirrors[i].url, path);
                if (!url)
                        return log_oom();
                if (fd >= 0) {
                        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                                return log_error_errno(negative_errno(), "cannot truncate a download: %m");
                        r = http_fetch_to_fd(url, fd, max, NULL, &m->opts, &size64, &e);
                        size = (size_t) size64;
                } else
                        r = http_fetch_to_memory(url, (size_t) max, &m->opts, &data, &size, &e);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        mirrors_describe_error(r, &e, reason, sizeof(reason));
                else if (check) {
                        r = check(url, data, size, userdata, reason, sizeof(reason));
                        if (r == -ENOMEM)
                                return log_oom();
                }
                if (r < 0) {
                        last = r == -EFBIG ? -EBADMSG : r;
                        mirrors_mark_failed(m, i, path, r, reason);
                        continue;
                }
                if (ret_data)
                        *ret_data = TAKE_PTR(data);
                if (ret_size)
                        *ret_size = size;
                if (ret_mirror)
                        *ret_mirror = i;
                return 0;
        }
        return mirrors_log_exhausted(m, path, last);
}

int mirrors_fetch_memory(Mirrors *m, const char *path, size_t max, MirrorCheck check, void *userdata,
                         char **ret_data, size_t *ret_size, size_t *ret_mirror) {
        return mirrors_fetch(m, path, -1, max, check, userdata, ret_data, ret_size, ret_mirror);
}

int mirrors_fetch_fd(Mirrors *m, const char *path, int fd, uint64_t max, MirrorCheck check, void *userdata,
                     size_t *ret_mirror) {
        return mirrors_fetch(m, path, fd, max, check, userdata, NULL, NULL, ret_mirror);
}
