#include <fcntl.h>
#include <fnmatch.h>
#include <solv/bitmap.h>
#include <solv/chksum.h>
#include <solv/pool.h>
#include <solv/pool_parserpmrichdep.h>
#include <solv/poolarch.h>
#include <solv/repo.h>
#include <solv/repo_repomdxml.h>
#include <solv/repo_rpmmd.h>
#include <solv/solv_xfopen.h>
#include <solv/solver.h>
#include <solv/transaction.h>
#include <stdio.h>
#include <sys/stat.h>

#include "comps.h"
#include "fileio.h"
#include "hash.h"
#include "curleasy.h"
#include "log.h"
#include "mirrors.h"
#include "modules.h"
#include "resolve.h"
#include "sigcheck.h"
#include "util.h"

/* repomd.xml lists a handful of files; a large one is not a repository. */
#define REPOMD_MAX (8U * 1024U * 1024U)
/* Cap for a metadata file whose size repomd.xml does not give. */
#define METADATA_MAX (4ULL * 1024 * 1024 * 1024)

/* One file listed in repomd.xml (primary, filelists). */
typedef struct MetaFile {
        char *location; /* relative to the baseurl */
        char *checksum; /* hex */
        Id checksum_type;
        uint64_t size; /* 0 when repomd.xml does not say */
} MetaFile;

typedef struct RepoState {
        const RepoDef *def;
        Repo *repo;
        char repomd_sha256[SHA256_HEX_SIZE];
        char *cache_dir; /* cache_dir/repodata/<repomd sha256> */
        MetaFile filelists;
        bool has_filelists;
        Mirrors *mirrors;    /* where its metadata comes from */
        size_t repomd_mirror; /* the mirror that served repomd.xml */
        RepoKeys *keys;      /* with repo_gpgcheck: the keys repomd.xml must be signed with */
        char *repomd_key;    /* the fingerprint of the key that signed repomd.xml, or NULL */
} RepoState;

static void meta_file_release(MetaFile *m) {
        free(m->location);
        free(m->checksum);
}

static void unlink_and_freep(char **p) {
        if (*p) {
                (void) unlink(*p);
                free(*p);
        }
}
#define _cleanup_unlink_free_ _cleanup_(unlink_and_freep)

static void pool_freep(Pool **p) {
        if (*p)
                pool_free(*p);
}

static void solver_freep(Solver **s) {
        if (*s)
                solver_free(*s);
}

static void transaction_freep(Transaction **t) {
        if (*t)
                transaction_free(*t);
}

static void queue_freep(Queue *q) {
        queue_free(q);
}

/* Checksums a file with any digest libsolv knows (repomd may use sha512 or sha1). */
static int file_checksum_hex(const char *path, Id type, char **ret_hex) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *hex = NULL;
        const unsigned char *bin;
        char buf[64 * 1024];
        Chksum *c;
        int len = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        c = solv_chksum_create(type);
        if (!c)
                return -EOPNOTSUPP;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();
                        solv_chksum_free(c, NULL);
                        return r;
                }
                if (n == 0)
                        break;
                solv_chksum_add(c, buf, (int) n);
        }
        bin = solv_chksum_get(c, &len);
        hex = malloc((size_t) len * 2 + 1);
        if (!hex) {
                solv_chksum_free(c, NULL);
                return -ENOMEM;
        }
        hex_encode(bin, (size_t) len, hex);
        solv_chksum_free(c, NULL);
        *ret_hex = TAKE_PTR(hex);
        return 0;
}

static int checksum_matches(const char *path, const MetaFile *m) {
        _cleanup_free_ char *hex = NULL;
        int r;

        r = file_checksum_hex(path, m->checksum_type, &hex);
        if (r < 0)
                return r;
        return strcasecmp(hex, m->checksum) == 0;
}

/* A signature file is small. */
#define REPOMD_SIG_MAX (64U * 1024U)

/* Checks repomd.xml as a mirror served it: against the metalink's size and
 * checksums, and with repo_gpgcheck its detached signature (repomd.xml.asc
 * from the same mirror) against the repository's keys. */
static int check_repomd(const char *url, const char *data, size_t size, void *userdata, char *reason,
                        size_t reason_size) {
        RepoState *rs = userdata;
        const MetalinkRepomd *ml = mirrors_metalink_repomd(rs->mirrors);
        _cleanup_free_ char *sig_url = NULL, *sig = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";
        size_t sig_size = 0;
        HttpError e = {};
        int r;

        if (ml) {
                r = metalink_repomd_check(ml, data, size, reason, reason_size);
                if (r < 0)
                        return r;
        }
        if (!rs->keys)
                return 0;
        sig_url = strdup_printf("%s.asc", url);
        if (!sig_url)
                return -ENOMEM;
        r = http_fetch_to_memory(sig_url, REPOMD_SIG_MAX, mirrors_http_options(rs->mirrors), &sig, &sig_size, &e);
        if (r == -ENOENT) {
                snprintf(reason, reason_size, "repomd.xml is not signed (no repomd.xml.asc), and repo_gpgcheck is on");
                return -EBADMSG;
        }
        if (r < 0) {
                snprintf(reason, reason_size, "cannot fetch repomd.xml.asc: %s", e.message);
                return r;
        }
        r = sigcheck_detached(rs->keys, data, size, sig, sig_size, key_id, reason, reason_size);
        if (r < 0)
                return r;
        free(rs->repomd_key);
        rs->repomd_key = strdup(repo_keys_fingerprint(rs->keys, key_id));
        if (!rs->repomd_key)
                return -ENOMEM;
        log_debug("repository '%s': repomd.xml from %s signed by key %s", rs->def->id, url, rs->repomd_key);
        return 0;
}

/* Downloads repodata/repomd.xml from the first good mirror, keeps its
 * sha256 and adds it to the repo. */
static int load_repomd(RepoState *rs) {
        const RepoDef *rd = rs->def;
        _cleanup_free_ char *data = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t size;
        int r;

        r = mirrors_fetch_memory(rs->mirrors, "repodata/repomd.xml", REPOMD_MAX, check_repomd, rs, &data, &size,
                                 &rs->repomd_mirror);
        if (r < 0)
                return r;
        sha256_buffer_hex(data, size, rs->repomd_sha256);

        f = fmemopen(data, size, "r");
        if (!f)
                return log_oom();
        if (repo_add_repomdxml(rs->repo, f, 0) != 0)
                return log_error_errno(-EBADMSG, "repository '%s': cannot parse %s/repodata/repomd.xml: %s", rd->id,
                                       mirrors_urls(rs->mirrors)[rs->repomd_mirror], pool_errstr(rs->repo->pool));
        log_debug("repository '%s': repomd.xml sha256 %s", rd->id, rs->repomd_sha256);
        return 0;
}

/* Finds the entry of type `what` ("primary", "filelists") in repomd.xml.
 * Returns 1 and fills ret when present, 0 when not listed. */
static int repomd_find(RepoState *rs, const char *what, MetaFile *ret) {
        Pool *pool = rs->repo->pool;
        const char *location = NULL, *checksum = NULL;
        uint64_t size = 0;
        Dataiterator di;
        Id type = 0;

        dataiterator_init(&di, pool, rs->repo, SOLVID_META, REPOSITORY_REPOMD_TYPE, what, SEARCH_STRING);
        dataiterator_prepend_keyname(&di, REPOSITORY_REPOMD);
        if (dataiterator_step(&di)) {
                dataiterator_setpos_parent(&di);
                location = pool_lookup_str(pool, SOLVID_POS, REPOSITORY_REPOMD_LOCATION);
                checksum = pool_lookup_checksum(pool, SOLVID_POS, REPOSITORY_REPOMD_CHECKSUM, &type);
                size = pool_lookup_num(pool, SOLVID_POS, REPOSITORY_REPOMD_SIZE, 0);
        }
        dataiterator_free(&di);
        if (!location)
                return 0;
        if (!checksum || !type)
                return log_error_errno(-EBADMSG, "repository '%s': repomd.xml gives no checksum for %s",
                                       rs->def->id, what);
        *ret = (MetaFile) {
                .location = strdup(location),
                .checksum = strdup(checksum),
                .checksum_type = type,
                .size = size,
        };
        if (!ret->location || !ret->checksum) {
                meta_file_release(ret);
                return log_oom();
        }
        return 1;
}

/* The file name a metadata file gets in the cache: the last component of its
 * location, which must be an ordinary name. */
static const char *meta_file_name(const MetaFile *m) {
        const char *slash = strrchr(m->location, '/');
        const char *name = slash ? slash + 1 : m->location;

        if (isempty(name) || streq(name, ".") || streq(name, "..") || strstr(m->location, "..") ||
            m->location[0] == '/')
                return NULL;
        return name;
}

typedef struct MetaCheck {
        const MetaFile *file;
        const char *tmp;
} MetaCheck;

static int check_meta_file(const char *url, const char *data, size_t size, void *userdata, char *reason,
                           size_t reason_size) {
        const MetaCheck *c = userdata;
        int r;

        (void) url;
        (void) data;
        (void) size;
        r = checksum_matches(c->tmp, c->file);
        if (r < 0) {
                snprintf(reason, reason_size, "cannot checksum the download: %s", strerror(-r));
                return r;
        }
        if (r == 0) {
                snprintf(reason, reason_size, "does not match its %s checksum in repomd.xml",
                         solv_chksum_type2str(c->file->checksum_type));
                return -EBADMSG;
        }
        return 0;
}

/* Makes cache_dir/<name> hold the verified metadata file, downloading it
 * unless a copy with the right checksum is there already. */
static int cache_meta_file(RepoState *rs, const MetaFile *m, char **ret_path) {
        const RepoDef *rd = rs->def;
        _cleanup_free_ char *path = NULL;
        _cleanup_unlink_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        const char *name;
        MetaCheck check;
        int r;

        name = meta_file_name(m);
        if (!name)
                return log_error_errno(-EBADMSG, "repository '%s': repomd.xml lists a bad location '%s'", rd->id,
                                       m->location);
        path = path_join(rs->cache_dir, name);
        if (!path)
                return log_oom();

        if (path_exists(path)) {
                r = checksum_matches(path, m);
                if (r > 0) {
                        log_debug("repository '%s': using cached %s", rd->id, path);
                        *ret_path = TAKE_PTR(path);
                        return 0;
                }
                log_debug("repository '%s': cached %s is stale or broken, fetching again", rd->id, path);
        }

        r = mkdir_p(rs->cache_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create '%s': %m", rs->cache_dir);
        fd = open_tmpfile_beside(path, &tmp);
        if (fd < 0)
                return log_error_errno(fd, "cannot create a file beside '%s': %m", path);
        check = (MetaCheck) { .file = m, .tmp = tmp };
        r = mirrors_fetch_fd(rs->mirrors, m->location, fd, m->size > 0 ? m->size : METADATA_MAX, check_meta_file,
                             &check, NULL);
        if (r < 0)
                return r;
        if (fsync(fd) < 0)
                return log_error_errno(negative_errno(), "cannot write '%s': %m", tmp);
        if (rename(tmp, path) < 0)
                return log_error_errno(negative_errno(), "cannot rename '%s': %m", tmp);
        free(TAKE_PTR(tmp));
        *ret_path = TAKE_PTR(path);
        return 0;
}

static int add_rpmmd(RepoState *rs, const char *path, int flags) {
        FILE *f;
        int k;

        f = solv_xfopen(path, "r");
        if (!f)
                return log_error_errno(negative_errno(), "cannot open '%s': %m", path);
        k = repo_add_rpmmd(rs->repo, f, NULL, flags);
        fclose(f);
        if (k != 0)
                return log_error_errno(-EBADMSG, "repository '%s': cannot parse '%s': %s", rs->def->id, path,
                                       pool_errstr(rs->repo->pool));
        return 0;
}

static int load_repo(RepoState *rs, const char *cache_root) {
        _cleanup_(meta_file_release) MetaFile primary = {};
        _cleanup_free_ char *path = NULL;
        int r;

        r = load_repomd(rs);
        if (r < 0)
                return r;
        rs->cache_dir = strdup_printf("%s/repodata/%s", cache_root, rs->repomd_sha256);
        if (!rs->cache_dir)
                return log_oom();
        r = repomd_find(rs, "primary", &primary);
        if (r < 0)
                return r;
        if (r == 0)
                return log_error_errno(-EBADMSG, "repository '%s' at %s: repomd.xml lists no primary metadata",
                                       rs->def->id, mirrors_urls(rs->mirrors)[rs->repomd_mirror]);
        r = repomd_find(rs, "filelists", &rs->filelists);
        if (r < 0)
                return r;
        rs->has_filelists = r > 0;

        r = cache_meta_file(rs, &primary, &path);
        if (r < 0)
                return r;
        return add_rpmmd(rs, path, 0);
}

/* Loads filelists.xml of every repo. Only needed for file dependencies
 * outside the directories primary.xml lists (/etc, *bin/); dnf does the same
 * on demand. Returns 1 when something was loaded. */
static int load_filelists(RepoState *states, size_t n) {
        bool any = false;
        int r;

        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *path = NULL;

                if (!states[i].has_filelists)
                        continue;
                r = cache_meta_file(&states[i], &states[i].filelists, &path);
                if (r < 0)
                        return r;
                r = add_rpmmd(&states[i], path, REPO_EXTEND_SOLVABLES | REPO_LOCALPOOL);
                if (r < 0)
                        return r;
                states[i].has_filelists = false;
                any = true;
        }
        if (any) {
                Pool *pool = states[0].repo->pool;
                pool_addfileprovides(pool);
                pool_createwhatprovides(pool);
        }
        return any;
}

/* Loads the repo's comps (when with_comps) and modules metadata, when its
 * repomd.xml lists them. */
static int load_groups_and_modules(RepoState *rs, bool with_comps, Comps *comps, Modules *modules) {
        static const char *const comps_types[] = { "group_gz", "group", "group_xz", "group_zst" };
        _cleanup_(meta_file_release) MetaFile group = {}, mods = {};
        int r;

        for (size_t i = 0; with_comps && i < ELEMENTSOF(comps_types); i++) {
                _cleanup_free_ char *path = NULL;

                r = repomd_find(rs, comps_types[i], &group);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                r = cache_meta_file(rs, &group, &path);
                if (r < 0)
                        return r;
                r = comps_add_file(comps, path, rs->def->id);
                if (r < 0)
                        return r;
                break;
        }
        r = repomd_find(rs, "modules", &mods);
        if (r > 0) {
                _cleanup_free_ char *path = NULL;

                r = cache_meta_file(rs, &mods, &path);
                if (r < 0)
                        return r;
                r = modules_add_file(modules, path, rs->def->id);
        }
        return r < 0 ? r : 0;
}

/* What hides packages from the solver: excludes and modular filtering.
 * hidden_by[p] names the module stream that hides solvable p, if any. */
typedef struct Filter {
        Map considered;
        const char **hidden_by;
} Filter;

static void filter_release(Filter *f) {
        map_free(&f->considered);
        free(f->hidden_by);
}

/* dnf matches exclude globs against a package's name, name.arch,
 * name-version-release, name-version-release.arch and name-epoch:… forms. */
static bool package_matches(Pool *pool, Solvable *s, char **globs) {
        const char *name = pool_id2str(pool, s->name), *evr = pool_id2str(pool, s->evr), *arch;
        _cleanup_free_ char *na = NULL, *nevr = NULL, *nevra = NULL, *ver = NULL;

        arch = pool_id2str(pool, s->arch);
        na = strdup_printf("%s.%s", name, arch);
        nevr = strdup_printf("%s-%s", name, evr);
        nevra = strdup_printf("%s-%s.%s", name, evr, arch);
        if (!na || !nevr || !nevra)
                return false;
        for (char **g = globs; g && *g; g++)
                if (fnmatch(*g, name, 0) == 0 || fnmatch(*g, na, 0) == 0 || fnmatch(*g, nevr, 0) == 0 ||
                    fnmatch(*g, nevra, 0) == 0)
                        return true;
        return false;
}

/* "name-epoch:version-release.arch", as modules.yaml writes artifacts. */
static char *solvable_nevra_with_epoch(Pool *pool, Solvable *s) {
        const char *evr = pool_id2str(pool, s->evr);

        return strdup_printf("%s-%s%s.%s", pool_id2str(pool, s->name), strchr(evr, ':') ? "" : "0:", evr,
                             pool_id2str(pool, s->arch));
}

static int filter_setup(Pool *pool, const ImageDef *def, RepoState *states, size_t n, const Modules *modules,
                        Filter *f) {
        Solvable *s;
        Id p;

        map_init(&f->considered, pool->nsolvables);
        map_setall(&f->considered);
        f->hidden_by = calloc((size_t) pool->nsolvables, sizeof(char *));
        if (!f->hidden_by)
                return log_oom();
        FOR_POOL_SOLVABLES(p) {
                const RepoDef *rd = NULL;

                s = pool->solvables + p;
                for (size_t i = 0; i < n; i++)
                        if (states[i].repo == s->repo)
                                rd = states[i].def;
                if (!rd)
                        continue;
                if (package_matches(pool, s, def->exclude) || package_matches(pool, s, rd->excludepkgs) ||
                    (rd->includepkgs && !package_matches(pool, s, rd->includepkgs))) {
                        MAPCLR(&f->considered, p);
                        continue;
                }
                if (!rd->module_hotfixes) {
                        _cleanup_free_ char *nevra = solvable_nevra_with_epoch(pool, s);

                        if (!nevra)
                                return log_oom();
                        f->hidden_by[p] = modules_hides(modules, pool_id2str(pool, s->name), nevra);
                        if (f->hidden_by[p])
                                MAPCLR(&f->considered, p);
                }
        }
        pool->considered = &f->considered;
        return 0;
}

/* A requested package: "NAME" or "NAME OP EVR" (definition.h). */
typedef struct Request {
        Id name;  /* 0 when no package or capability has the name */
        Id dep;   /* name, or the relation "name OP evr" */
        bool rel; /* dep is a relation */
} Request;

static int request_parse(Pool *pool, const char *spec, Request *ret) {
        static const struct {
                const char *op;
                int flags;
        } ops[] = {
                { "=", REL_EQ }, { "<", REL_LT }, { "<=", REL_LT | REL_EQ }, { ">", REL_GT }, { ">=", REL_GT | REL_EQ },
        };
        _cleanup_strv_free_ char **w = strv_split_words(spec);
        Request q = {};

        if (!w)
                return -ENOMEM;
        q.name = w[0] ? pool_str2id(pool, w[0], 0) : 0;
        q.dep = q.name;
        if (strv_length(w) == 3) {
                int flags = 0;

                for (size_t i = 0; i < ELEMENTSOF(ops); i++)
                        if (streq(w[1], ops[i].op))
                                flags = ops[i].flags;
                if (flags == 0)
                        return -EINVAL;
                q.rel = true;
                q.dep = q.name ? pool_rel2id(pool, q.name, pool_str2id(pool, w[2], 1), flags, 1) : 0;
        } else if (strv_length(w) != 1)
                return -EINVAL;
        *ret = q;
        return 0;
}

/* Whether anything provides what q asks for; sets *ret_by_name when a
 * package is called that (and, with a relation, has a matching version). */
static bool has_provider(Pool *pool, const Request *q, bool *ret_by_name) {
        Id p, pp;
        bool found = false;

        *ret_by_name = false;
        if (!q->dep)
                return false;
        FOR_PROVIDES(p, pp, q->dep) {
                Solvable *s = pool->solvables + p;

                if (pool->considered && !MAPTST(pool->considered, p))
                        continue;
                found = true;
                if (s->name == q->name && (!q->rel || pool_match_nevr(pool, s, q->dep)))
                        *ret_by_name = true;
        }
        return found;
}

/* The module stream whose filtering hides every provider of q, or NULL. */
static const char *hidden_by_module(Pool *pool, const Filter *f, const Request *q) {
        Id p, pp;

        if (!q->dep || !f)
                return NULL;
        FOR_PROVIDES(p, pp, q->dep)
                if (f->hidden_by[p])
                        return f->hidden_by[p];
        return NULL;
}

/* The packages that ship file path or provide it, as dnf finds them:
 * primary.xml's files first, filelists.xml only when those have none. Adds
 * an install job for them and returns 1; 0 when no package has it;
 * -EAGAIN when filelists were loaded just now (the jobs must be made
 * again: loading them rebuilds whatprovides). */
static int file_job(Pool *pool, RepoState *states, size_t n, const char *path, Queue *jobs) {
        _cleanup_(queue_freep) Queue q;
        Dataiterator di;
        Id p, pp, id;
        int r;

        queue_init(&q);
        dataiterator_init(&di, pool, NULL, 0, SOLVABLE_FILELIST, path, SEARCH_STRING | SEARCH_FILES);
        while (dataiterator_step(&di))
                if (!pool->considered || MAPTST(pool->considered, di.solvid))
                        queue_pushunique(&q, di.solvid);
        dataiterator_free(&di);
        id = pool_str2id(pool, path, 0);
        if (id)
                FOR_PROVIDES(p, pp, id)
                        if (!pool->considered || MAPTST(pool->considered, p))
                                queue_pushunique(&q, p);
        if (q.count == 0) {
                r = load_filelists(states, n);
                if (r < 0)
                        return r;
                return r > 0 ? -EAGAIN : 0;
        }
        queue_push2(jobs, SOLVER_INSTALL | SOLVER_SOLVABLE_ONE_OF, pool_queuetowhatprovides(pool, &q));
        return 1;
}

/* "1.0-1, 2.0-1": the versions of the packages called name, for a message;
 * caller frees. */
static char *versions_of(Pool *pool, Id name) {
        _cleanup_free_ char *s = strdup("");
        Id p, pp;

        FOR_PROVIDES(p, pp, name) {
                Solvable *sv = pool->solvables + p;
                char *t;

                if (!s || sv->name != name)
                        continue;
                t = strdup_printf("%s%s%s", s, *s ? ", " : "", pool_id2str(pool, sv->evr));
                free(s);
                s = t;
        }
        return TAKE_PTR(s);
}

static char *repo_list(const RepoState *states, size_t n) {
        _cleanup_free_ char *s = strdup("");

        for (size_t i = 0; s && i < n; i++) {
                char *t = strdup_printf("%s%s%s", s, i ? ", " : "", states[i].def->id);
                free(s);
                s = t;
        }
        return TAKE_PTR(s);
}

/* Builds the job queue: install each requested package, by name when a
 * package has that name (as dnf does), else by what provides it; with a
 * version constraint, only what matches it. */
static int make_jobs(Pool *pool, RepoState *states, size_t n, const Filter *f, char **packages, char **optional,
                     Queue *jobs) {
        bool missing = false;
        int r;

again:
        queue_empty(jobs);
        /* A group's packages: skipped with a warning when no package has the
         * name (as dnf does); "(NAME if REQUIRED)" as a rich dependency. */
        for (char **spec = optional; spec && *spec; spec++) {
                Request q = {};
                bool by_name;

                if ((*spec)[0] == '(') {
                        Id dep = pool_parserpmrichdep(pool, *spec);

                        if (dep)
                                queue_push2(jobs, SOLVER_INSTALL | SOLVER_SOLVABLE_PROVIDES, dep);
                        continue;
                }
                q.name = q.dep = pool_str2id(pool, *spec, 0);
                if (!has_provider(pool, &q, &by_name) || !by_name) {
                        log_warning("no package '%s', which a requested group lists", *spec);
                        continue;
                }
                queue_push2(jobs, SOLVER_INSTALL | SOLVER_SOLVABLE_NAME, q.dep);
        }
        for (char **spec = packages; spec && *spec; spec++) {
                Request q;
                bool by_name;

                if ((*spec)[0] == '@')
                        continue;

                r = request_parse(pool, *spec, &q);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(r, "cannot read the package request '%s'", *spec);
                if ((*spec)[0] == '/' && !q.rel) {
                        r = file_job(pool, states, n, *spec, jobs);
                        if (r == -EAGAIN) {
                                missing = false;
                                goto again;
                        }
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue;
                }
                if (!has_provider(pool, &q, &by_name)) {
                        _cleanup_free_ char *repos = repo_list(states, n), *versions = NULL;
                        const char *module = hidden_by_module(pool, f, &q);

                        versions = q.rel && q.name ? versions_of(pool, q.name) : NULL;
                        if (module)
                                log_error("package '%s' is only in module stream '%s', which is not enabled (enable "
                                          "it in [modules] enable, or set module_hotfixes = 1 on a repository "
                                          "that has it outside the module)",
                                          *spec, module);
                        else if (!isempty(versions))
                                log_error("no version of '%s' matches '%s' (there: %s)", pool_id2str(pool, q.name),
                                          *spec, versions);
                        else
                                log_error("package '%s' not found in any repository (repos: %s)", *spec,
                                          strempty(repos));
                        missing = true;
                        continue;
                }
                queue_push2(jobs, SOLVER_INSTALL | (by_name ? SOLVER_SOLVABLE_NAME : SOLVER_SOLVABLE_PROVIDES), q.dep);
        }
        return missing ? -ENOENT : 0;
}

static Solver *solve(Pool *pool, const ImageDef *def, Queue *jobs, int *ret_problems) {
        Solver *solv = solver_create(pool);

        if (!solv)
                return NULL;
        /* The flags dnf's solver sets. */
        solver_set_flag(solv, SOLVER_FLAG_ALLOW_VENDORCHANGE, 1);
        solver_set_flag(solv, SOLVER_FLAG_BEST_OBEY_POLICY, 1);
        solver_set_flag(solv, SOLVER_FLAG_YUM_OBSOLETES, 1);
        solver_set_flag(solv, SOLVER_FLAG_IGNORE_RECOMMENDED, !def->install_weak_deps);
        *ret_problems = solver_solve(solv, jobs);
        return solv;
}

/* Splits "[epoch:]version[-release]". */
static int split_evr(const char *evr, char **ret_epoch, char **ret_version, char **ret_release) {
        _cleanup_free_ char *epoch = NULL, *version = NULL, *release = NULL;
        const char *colon, *v = evr, *dash;

        colon = strchr(evr, ':');
        if (colon) {
                epoch = strndup(evr, (size_t) (colon - evr));
                v = colon + 1;
        } else
                epoch = strdup("0");
        dash = strrchr(v, '-');
        if (dash) {
                version = strndup(v, (size_t) (dash - v));
                release = strdup(dash + 1);
        } else {
                version = strdup(v);
                release = strdup("");
        }
        if (!epoch || !version || !release)
                return -ENOMEM;
        *ret_epoch = TAKE_PTR(epoch);
        *ret_version = TAKE_PTR(version);
        *ret_release = TAKE_PTR(release);
        return 0;
}

static int package_from_solvable(Pool *pool, Solvable *s, LockPackage *p) {
        const char *location, *checksum;
        const char *repo_id = s->repo->name;
        const char *nevra = pool_solvable2str(pool, s);
        unsigned medianr = 0;
        Id type = 0;
        int r;

        p->name = strdup(pool_id2str(pool, s->name));
        p->arch = strdup(pool_id2str(pool, s->arch));
        p->repo_id = strdup(repo_id);
        if (!p->name || !p->arch || !p->repo_id)
                return log_oom();
        r = split_evr(pool_id2str(pool, s->evr), &p->epoch, &p->version, &p->release);
        if (r < 0)
                return log_oom();

        if (solvable_lookup_str(s, SOLVABLE_MEDIABASE))
                return log_error_errno(-EOPNOTSUPP,
                                       "repository '%s': package '%s' has a location with xml:base, which slipway "
                                       "does not support",
                                       repo_id, nevra);
        location = solvable_lookup_location(s, &medianr);
        if (!location)
                return log_error_errno(-EBADMSG, "repository '%s': package '%s' has no location", repo_id, nevra);
        p->location = strdup(location);
        if (!p->location)
                return log_oom();

        checksum = solvable_lookup_checksum(s, SOLVABLE_CHECKSUM, &type);
        if (!checksum)
                return log_error_errno(-EBADMSG, "repository '%s': package '%s' has no checksum", repo_id, nevra);
        if (type != REPOKEY_TYPE_SHA256)
                return log_error_errno(-EOPNOTSUPP,
                                       "repository '%s': package '%s' has a %s checksum, slipway needs sha256 "
                                       "(createrepo_c --checksum sha256)",
                                       repo_id, nevra, solv_chksum_type2str(type));
        p->sha256 = strdup(checksum);
        if (!p->sha256)
                return log_oom();

        p->size = solvable_lookup_num(s, SOLVABLE_DOWNLOADSIZE, 0);
        if (p->size == 0)
                return log_error_errno(-EBADMSG, "repository '%s': package '%s' has no size", repo_id, nevra);
        return 0;
}

typedef struct Expansion Expansion;
static void expansion_move_to_lock(Expansion *e, Lock *l);

/* The lock's baseurl is the repository's first mirror, whichever served
 * repomd.xml this time, so that the same definition and mirror list make
 * the same lock; mirrors lists them all when there are several. */
static int lock_repo_set_mirrors(LockRepo *lr, const RepoState *rs) {
        char *const *urls = mirrors_urls(rs->mirrors);

        lr->baseurl = strdup(urls[0]);
        if (!lr->baseurl)
                return log_oom();
        if (mirrors_count(rs->mirrors) > 1) {
                lr->mirrors = calloc(1, sizeof(char *));
                if (!lr->mirrors)
                        return log_oom();
                for (char *const *u = urls; *u; u++)
                        if (strv_extend(&lr->mirrors, *u) < 0)
                                return log_oom();
        }
        if (rs->repomd_key && !(lr->repomd_key = strdup(rs->repomd_key)))
                return log_oom();
        return 0;
}

static int lock_from_transaction(const ImageDef *def, RepoState *states, size_t n, Solver *solv, Expansion *exp,
                                 Lock **ret) {
        _cleanup_(transaction_freep) Transaction *trans = NULL;
        _cleanup_lock_free_ Lock *l = NULL, *check = NULL;
        Pool *pool = solv->pool;
        json_t *j = NULL;
        int r;

        l = calloc(1, sizeof(*l));
        if (!l)
                return log_oom();
        l->arch = strdup(def->arch);
        l->requested = calloc(1, sizeof(char *));
        l->repos = calloc(MAX(n, 1u), sizeof(LockRepo));
        if (!l->arch || !l->requested || !l->repos)
                return log_oom();
        for (char **s = def->packages; s && *s; s++)
                if (strv_extend(&l->requested, *s) < 0)
                        return log_oom();
        for (size_t i = 0; i < n; i++) {
                LockRepo *lr = &l->repos[l->n_repos++];
                lr->id = strdup(states[i].def->id);
                lr->repomd_sha256 = strdup(states[i].repomd_sha256);
                if (!lr->id || !lr->repomd_sha256)
                        return log_oom();
                r = lock_repo_set_mirrors(lr, &states[i]);
                if (r < 0)
                        return r;
        }

        trans = solver_create_transaction(solv);
        if (!trans)
                return log_oom();
        l->packages = calloc(MAX((size_t) trans->steps.count, 1u), sizeof(LockPackage));
        if (!l->packages)
                return log_oom();
        for (int i = 0; i < trans->steps.count; i++) {
                Id p = trans->steps.elements[i];
                Solvable *s = pool_id2solvable(pool, p);

                if (transaction_type(trans, p, SOLVER_TRANSACTION_SHOW_ACTIVE) != SOLVER_TRANSACTION_INSTALL)
                        continue;
                r = package_from_solvable(pool, s, &l->packages[l->n_packages++]);
                if (r < 0)
                        return r;
        }
        lock_sort(l);
        expansion_move_to_lock(exp, l);

        /* What we hand out must read back: lock_from_json() checks every field. */
        r = lock_to_json_unchecked(l, &j);
        if (r < 0)
                return log_error_errno(r, "cannot represent the resolved packages as a lock: %m");
        r = lock_from_json(j, &check);
        json_decref(j);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(l);
        return 0;
}

/* The repositories of one resolution, released together. */
typedef struct RepoSet {
        RepoState *states;
        size_t n;
} RepoSet;

static void repo_set_release(RepoSet *set) {
        for (size_t i = 0; i < set->n; i++) {
                free(set->states[i].cache_dir);
                meta_file_release(&set->states[i].filelists);
                mirrors_free(set->states[i].mirrors);
                repo_keys_free(set->states[i].keys);
                free(set->states[i].repomd_key);
        }
        free(set->states);
}

/* Logs every solver problem in one message, so the user reads the whole
 * story in one place. */
static int log_problems(const ImageDef *def, Solver *solv) {
        unsigned count = solver_problem_count(solv);
        _cleanup_free_ char *text = strdup("");

        for (Id p = 1; text && p <= (Id) count; p++) {
                char *n = strdup_printf("%s%s%s", text, p > 1 ? "; " : "", solver_problem2str(solv, p));
                free(text);
                text = n;
        }
        if (!text)
                return log_oom();
        return log_error_errno(-EDEADLK, "cannot resolve the packages of image '%s' (%s): %s", def->name, def->path,
                               text);
}

/* What the definition's requests expanded to: groups into their packages,
 * module profiles into theirs; recorded in the lock. */
struct Expansion {
        char **packages;  /* def->packages and the profiles' packages */
        char **optional;  /* the groups' packages: skipped when missing */
        LockGroup *groups;
        size_t n_groups;
        LockModule *modules;
        size_t n_modules;
};

static void expansion_release(Expansion *e) {
        strv_free(e->packages);
        strv_free(e->optional);
        lock_groups_free(e->groups, e->n_groups);
        lock_modules_free(e->modules, e->n_modules);
}

static int expand_requests(const ImageDef *def, const Comps *comps, const Modules *modules, RepoState *states,
                           size_t n, Expansion *e) {
        const ModuleChoice *active;
        size_t n_active;
        int r;

        e->packages = calloc(1, sizeof(char *));
        e->optional = calloc(1, sizeof(char *));
        e->groups = calloc(MAX(strv_length(def->packages), 1u), sizeof(LockGroup));
        active = modules_active(modules, &n_active);
        e->modules = calloc(MAX(n_active, 1u), sizeof(LockModule));
        if (!e->packages || !e->optional || !e->groups || !e->modules)
                return log_oom();
        for (char **spec = def->packages; spec && *spec; spec++) {
                CompsExpansion ce = {};
                LockGroup *g;

                if ((*spec)[0] != '@') {
                        if (strv_extend(&e->packages, *spec) < 0)
                                return log_oom();
                        continue;
                }
                r = comps_expand(comps, *spec + 1, def->group_package_types, &ce);
                if (r == -ENOENT) {
                        _cleanup_free_ char *repos = repo_list(states, n);
                        return log_error_errno(r, "group '%s' is in no repository's comps (repos: %s)", *spec + 1,
                                               strempty(repos));
                }
                if (r < 0)
                        return log_oom();
                for (char **p = ce.packages; *p; p++)
                        if (!strv_contains(e->optional, *p) && strv_extend(&e->optional, *p) < 0) {
                                comps_expansion_release(&ce);
                                return log_oom();
                        }
                g = &e->groups[e->n_groups++];
                g->request = strdup(*spec);
                g->ids = TAKE_PTR(ce.groups);
                g->packages = TAKE_PTR(ce.packages);
                comps_expansion_release(&ce);
                if (!g->request)
                        return log_oom();
        }
        for (size_t i = 0; i < n_active; i++) {
                LockModule *m = &e->modules[e->n_modules++];

                m->name = strdup(active[i].name);
                m->stream = strdup(active[i].stream);
                m->profile = active[i].profile ? strdup(active[i].profile) : NULL;
                m->is_default = active[i].is_default;
                m->required_by = active[i].required_by ? strdup(active[i].required_by) : NULL;
                if (!m->name || !m->stream || (active[i].profile && !m->profile) ||
                    (active[i].required_by && !m->required_by))
                        return log_oom();
                for (char **p = active[i].packages; p && *p; p++)
                        if (!strv_contains(e->packages, *p) && strv_extend(&e->packages, *p) < 0)
                                return log_oom();
        }
        return 0;
}

static void expansion_move_to_lock(Expansion *e, Lock *l) {
        l->groups = TAKE_PTR(e->groups);
        l->n_groups = e->n_groups;
        e->n_groups = 0;
        l->modules = TAKE_PTR(e->modules);
        l->n_modules = e->n_modules;
        e->n_modules = 0;
}

static bool any_group_request(char **packages) {
        for (; packages && *packages; packages++)
                if ((*packages)[0] == '@')
                        return true;
        return false;
}

int resolve_packages(const ImageDef *def, const char *cache_dir, Progress *progress, Lock **ret) {
        _cleanup_(filter_release) Filter filter = {};
        _cleanup_(pool_freep) Pool *pool = NULL;
        _cleanup_(repo_set_release) RepoSet set = {};
        _cleanup_(queue_freep) Queue jobs;
        _cleanup_(solver_freep) Solver *solv = NULL;
        _cleanup_comps_free_ Comps *comps = NULL;
        _cleanup_modules_free_ Modules *modules = NULL;
        _cleanup_(expansion_release) Expansion exp = {};
        int problems = 0, r;

        queue_init(&jobs);
        if (def->n_repos == 0)
                return log_error_errno(-EINVAL, "image '%s' lists no repositories", def->name);
        r = http_global_init();
        if (r < 0)
                return log_error_errno(r, "cannot initialise libcurl");

        pool = pool_create();
        set.states = calloc(def->n_repos, sizeof(RepoState));
        comps = comps_new();
        modules = modules_new();
        if (!pool || !set.states || !comps || !modules)
                return log_oom();
        /* Debian builds libsolv with Debian semantics by default (noarch is
         * "all", deb version comparison); rpm-md needs rpm's. */
        if (pool_setdisttype(pool, DISTTYPE_RPM) < 0)
                return log_error_errno(-EOPNOTSUPP, "this libsolv cannot resolve RPM packages");
        pool_setarch(pool, def->arch);
        /* As dnf: what excludes and modules hide stays in whatprovides, so
         * that a message can say what hid it; the solver skips it. */
        pool_set_flag(pool, POOL_FLAG_WHATPROVIDESWITHDISABLED, 1);

        progress_phase(progress, "resolve", "%zu packages from %zu repositories", strv_length(def->packages),
                       def->n_repos);
        for (size_t i = 0; i < def->n_repos; i++) {
                RepoState *rs = &set.states[set.n++];

                rs->def = &def->repos[i];
                rs->repo = repo_create(pool, def->repos[i].id);
                if (!rs->repo)
                        return log_oom();
                /* dnf's order of preference: the lower priority number,
                 * then the lower cost; libsolv prefers the higher. */
                rs->repo->priority = -def->repos[i].priority;
                rs->repo->subpriority = -(int) MIN(def->repos[i].cost, (unsigned) INT_MAX);
                r = mirrors_load(rs->def, &rs->mirrors);
                if (r < 0)
                        return r;
                if (rs->def->repo_gpgcheck) {
                        r = repo_keys_load(rs->def, def->path, &rs->keys);
                        if (r < 0)
                                return r;
                }
                r = load_repo(rs, cache_dir);
                if (r < 0)
                        return r;
                r = load_groups_and_modules(rs, any_group_request(def->packages), comps, modules);
                if (r < 0)
                        return r;
                progress_update(progress, i + 1, def->n_repos, 0, 0);
        }
        r = modules_activate(modules, def->modules, def->modules_disable);
        if (r < 0)
                return r;
        pool_addfileprovides(pool);
        r = filter_setup(pool, def, set.states, set.n, modules, &filter);
        if (r < 0)
                return r;
        pool_createwhatprovides(pool);
        r = expand_requests(def, comps, modules, set.states, set.n, &exp);
        if (r < 0)
                return r;

        r = make_jobs(pool, set.states, set.n, &filter, exp.packages, exp.optional, &jobs);
        if (r < 0)
                return r;
        solv = solve(pool, def, &jobs, &problems);
        if (!solv)
                return log_oom();
        if (problems > 0) {
                /* A file dependency may need filelists.xml; try again with it. */
                r = load_filelists(set.states, set.n);
                if (r < 0)
                        return r;
                if (r > 0) {
                        solver_free(TAKE_PTR(solv));
                        r = make_jobs(pool, set.states, set.n, &filter, exp.packages, exp.optional, &jobs);
                        if (r < 0)
                                return r;
                        solv = solve(pool, def, &jobs, &problems);
                        if (!solv)
                                return log_oom();
                }
        }
        if (problems > 0)
                return log_problems(def, solv);

        r = lock_from_transaction(def, set.states, set.n, solv, &exp, ret);
        if (r < 0)
                return r;
        log_debug("resolved %zu packages for image '%s'", (*ret)->n_packages, def->name);
        return 0;
}
