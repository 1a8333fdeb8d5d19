#include <curl/curl.h>
#include <fcntl.h>
#include <inttypes.h>
#include <rpm/header.h>
#include <rpm/rpmcrypto.h>
#include <rpm/rpmio.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmlog.h>
#include <rpm/rpmpgp.h>
#include <rpm/rpmtd.h>
#include <rpm/rpmts.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "fetch.h"
#include "fileio.h"
#include "hash.h"
#include "curleasy.h"
#include "librpm.h"
#include "log.h"
#include "mirrors.h"
#include "sigcheck.h"
#include "util.h"

/* The cache: cache_dir/rpms/<sha256>.rpm. A file gets that name only after its
 * sha256 matched the lock, librpm accepted its digests and its signature
 * passed its repository's gpgcheck, and only by an atomic rename; so a cached
 * file's bytes are trusted by its name, and only its size is checked against
 * the lock (a stat, not a re-hash). This keeps a rebuild from an unchanged
 * lock fast however large the packages are; librpm checks the payload digests
 * again when it installs them. Its signature is checked again on every build
 * (a header read): the file may have entered the cache under other keys, or
 * from a repository with gpgcheck off.
 *
 * A download goes to cache_dir/rpms/<sha256>.rpm.part first. A mirror that
 * fails mid-way leaves the bytes it sent, and the next mirror continues from
 * there with a Range request; a build killed mid-download leaves the file,
 * and the next build continues it the same way. The whole file's sha256 is
 * checked either way. A .part file is locked while a build writes it. */

static void *mfree(void *p) {
        free(p);
        return NULL;
}

/* ---- RPM verification ---- */

static inline uint32_t be32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

/* The offset of the main header: the 96-byte lead, then the signature
 * header (16-byte intro, 16 bytes per index entry, data), padded to 8. */
static int main_header_offset(int fd, off_t *ret) {
        static const uint8_t magic[4] = { 0x8e, 0xad, 0xe8, 0x01 };
        uint8_t intro[16];
        uint64_t il, dl;

        if (pread(fd, intro, sizeof(intro), 96) != (ssize_t) sizeof(intro) || memcmp(intro, magic, 4) != 0)
                return -EBADMSG;
        il = be32(intro + 8);
        dl = be32(intro + 12);
        if (il > 0xffff || dl > 64 * 1024 * 1024)
                return -EBADMSG;
        *ret = (off_t) (96 + ((16 + il * 16 + dl + 7) & ~(uint64_t) 7));
        return 0;
}

/* Hashes fd from offset to its end with an rpm hash algorithm; returns the
 * digest (lowercase hex, caller frees). */
static int digest_from(int fd, off_t offset, int algo, char **ret_hex) {
        uint8_t buf[64 * 1024];
        DIGEST_CTX ctx;
        void *hex = NULL;

        ctx = rpmDigestInit(algo, RPMDIGEST_NONE);
        if (!ctx)
                return -EOPNOTSUPP;
        for (;;) {
                ssize_t n = pread(fd, buf, sizeof(buf), offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = negative_errno();
                        rpmDigestFinal(ctx, NULL, NULL, 0);
                        return r;
                }
                if (n == 0)
                        break;
                rpmDigestUpdate(ctx, buf, (size_t) n);
                offset += n;
        }
        rpmDigestFinal(ctx, &hex, NULL, 1);
        if (!hex)
                return -ENOMEM;
        *ret_hex = hex;
        return 0;
}

/* Checks what rpmReadPackageFile() does not read: the payload. Packages from
 * rpm >= 4.14 carry a digest of the compressed payload; older ones only the
 * MD5 over header and payload, which we check instead. */
static int verify_payload(Header h, const char *path, off_t payload_offset, char *reason, size_t reason_size) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *got = NULL;
        struct rpmtd_s td;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();

        if (headerGet(h, RPMTAG_PAYLOADDIGEST, &td, HEADERGET_MINMEM)) {
                _cleanup_free_ char *expected = NULL;
                const char *s = rpmtdGetString(&td);
                int algo = (int) headerGetNumber(h, RPMTAG_PAYLOADDIGESTALGO);

                expected = s ? strdup(s) : NULL;
                rpmtdFreeData(&td);
                if (!expected)
                        return -ENOMEM;
                r = digest_from(fd, payload_offset, algo ? algo : PGPHASHALGO_SHA256, &got);
                if (r < 0) {
                        snprintf(reason, reason_size, "cannot compute the payload digest: %s", strerror(-r));
                        return -EBADMSG;
                }
                if (strcasecmp(got, expected) != 0) {
                        snprintf(reason, reason_size, "payload digest mismatch");
                        return -EBADMSG;
                }
                return 0;
        }

        if (headerGet(h, RPMTAG_SIGMD5, &td, HEADERGET_MINMEM)) {
                char expected[2 * 16 + 1] = "";
                off_t header_offset;

                if (td.count == 16)
                        hex_encode(td.data, 16, expected);
                rpmtdFreeData(&td);
                r = main_header_offset(fd, &header_offset);
                if (r >= 0)
                        r = digest_from(fd, header_offset, PGPHASHALGO_MD5, &got);
                if (r < 0 || !streq(got, expected)) {
                        snprintf(reason, reason_size, "header+payload MD5 digest mismatch");
                        return -EBADMSG;
                }
                return 0;
        }

        snprintf(reason, reason_size, "no payload digest");
        return -EBADMSG;
}

static bool header_matches(Header h, const LockPackage *p, char *reason, size_t reason_size) {
        const char *name = headerGetString(h, RPMTAG_NAME), *version = headerGetString(h, RPMTAG_VERSION),
                   *release = headerGetString(h, RPMTAG_RELEASE), *arch = headerGetString(h, RPMTAG_ARCH);
        uint64_t epoch = headerIsEntry(h, RPMTAG_EPOCH) ? headerGetNumber(h, RPMTAG_EPOCH) : 0, want_epoch = 0;

        if (!isempty(p->epoch) && safe_atou64(p->epoch, &want_epoch) < 0)
                want_epoch = UINT64_MAX;
        if (streq_ptr(name, p->name) && streq_ptr(version, p->version) && streq_ptr(release, p->release) &&
            streq_ptr(arch, p->arch) && epoch == want_epoch)
                return true;
        if (epoch == 0)
                snprintf(reason, reason_size, "its header says %s-%s-%s.%s", strempty(name), strempty(version),
                         strempty(release), strempty(arch));
        else
                snprintf(reason, reason_size, "its header says %s-%" PRIu64 ":%s-%s.%s", strempty(name), epoch,
                         strempty(version), strempty(release), strempty(arch));
        return false;
}

/* Verifies path as an RPM; when expected is not NULL its header must carry
 * that NEVRA. reason gets a short explanation of a failure. */
static int verify_rpm(const char *path, const LockPackage *expected, char *reason, size_t reason_size) {
        _cleanup_(rpmts_freep) rpmts ts = NULL;
        _cleanup_(header_freep) Header h = NULL;
        _cleanup_(rpm_fclosep) FD_t fd = NULL;
        off_t payload_offset;
        int r, old_mask;
        rpmRC rc;

        reason[0] = 0;
        r = librpm_init();
        if (r < 0) {
                snprintf(reason, reason_size, "cannot read the rpm configuration");
                return r;
        }
        ts = rpmtsCreate();
        if (!ts)
                return -ENOMEM;
        /* Digests only: the signature is sigcheck_package()'s, against the
         * keys of the package's own repository. */
        rpmtsSetVSFlags(ts, RPMVSF_MASK_NOSIGNATURES);
        fd = Fopen(path, "r.ufdio");
        if (!fd || Ferror(fd)) {
                snprintf(reason, reason_size, "cannot open it");
                return -EBADMSG;
        }
        /* librpm would print its own complaint; ours names the package. */
        old_mask = rpmlogSetMask(RPMLOG_UPTO(RPMLOG_EMERG));
        rc = rpmReadPackageFile(ts, fd, path, &h);
        rpmlogSetMask(old_mask);
        switch (rc) {
        case RPMRC_OK:
        case RPMRC_NOTTRUSTED:
        case RPMRC_NOKEY:
                break;
        case RPMRC_NOTFOUND:
                snprintf(reason, reason_size, "not an RPM package");
                return -EBADMSG;
        default:
                snprintf(reason, reason_size, "damaged header or header digest mismatch");
                return -EBADMSG;
        }
        if (!h) {
                snprintf(reason, reason_size, "no header");
                return -EBADMSG;
        }
        payload_offset = Ftell(fd);
        if (payload_offset <= 0) {
                snprintf(reason, reason_size, "cannot find the payload");
                return -EBADMSG;
        }
        r = verify_payload(h, path, payload_offset, reason, reason_size);
        if (r < 0)
                return r == -EBADMSG ? r : (snprintf(reason, reason_size, "%s", strerror(-r)), -EBADMSG);
        if (expected && !header_matches(h, expected, reason, reason_size))
                return -EBADMSG;
        return 0;
}

int fetch_verify_rpm(const char *path) {
        char reason[512];
        int r = verify_rpm(path, NULL, reason, sizeof(reason));

        if (r < 0)
                log_debug("'%s' is not a valid RPM: %s", path, reason);
        return r < 0 ? -EBADMSG : 0;
}

/* ---- downloads ---- */

typedef struct FetchContext FetchContext;

typedef struct Transfer {
        FetchContext *ctx;
        LockPackage *pkg;
        size_t index;      /* in lock->packages */
        Mirrors *mirrors;  /* of the package's repository */
        size_t mirror;     /* the one in use */
        CURL *easy;        /* set while running */
        char *url;
        char *tmp_path;    /* the .part file, or a temporary file when another build holds that */
        int fd;
        Sha256 *hash;
        uint64_t received; /* bytes in tmp_path, all hashed */
        uint64_t resumed_at; /* where the running attempt started */
        bool retried_whole; /* a resumed download that did not check out was fetched again whole */
        int write_error;
        char errbuf[CURL_ERROR_SIZE];
} Transfer;

struct FetchContext {
        Lock *lock;
        const Trust *trust;
        char *rpms_dir;
        Progress *progress;
        CURLM *multi;
        Transfer *transfers;
        size_t n_transfers;
        Mirrors **mirrors; /* one per lock->repos */
        char **paths;
        uint64_t items_done, items_total, bytes_done, bytes_total;
};

static void transfer_release(FetchContext *ctx, Transfer *t) {
        if (t->easy) {
                curl_multi_remove_handle(ctx->multi, t->easy);
                curl_easy_cleanup(t->easy);
                t->easy = NULL;
        }
        if (t->fd >= 0) {
                close(t->fd);
                t->fd = -1;
        }
        if (t->tmp_path) {
                (void) unlink(t->tmp_path);
                t->tmp_path = mfree(t->tmp_path);
        }
        t->hash = sha256_free(t->hash);
        t->url = mfree(t->url);
}

static void fetch_context_release(FetchContext *ctx) {
        for (size_t i = 0; i < ctx->n_transfers; i++)
                transfer_release(ctx, &ctx->transfers[i]);
        free(ctx->transfers);
        for (size_t i = 0; ctx->mirrors && i < ctx->lock->n_repos; i++)
                mirrors_free(ctx->mirrors[i]);
        free(ctx->mirrors);
        if (ctx->multi)
                curl_multi_cleanup(ctx->multi);
        strv_free(ctx->paths);
        free(ctx->rpms_dir);
}

static void report_progress(FetchContext *ctx) {
        progress_update(ctx->progress, ctx->items_done, ctx->items_total, ctx->bytes_done, ctx->bytes_total);
}

static size_t transfer_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Transfer *t = userdata;
        size_t n = size * nmemb;
        int r;

        /* Larger than the lock says: no need to download the rest. */
        if (n > t->pkg->size - t->received) {
                t->write_error = -EFBIG;
                return 0;
        }
        r = loop_write(t->fd, data, n);
        if (r < 0) {
                t->write_error = r;
                return 0;
        }
        sha256_update(t->hash, data, n);
        t->received += n;
        t->ctx->bytes_done += n;
        report_progress(t->ctx);
        return n;
}

/* Opens the package's .part file, locked, and hashes what it holds: the
 * download continues after it. When another build holds it, a temporary
 * file starts from nothing. */
static int transfer_open(FetchContext *ctx, Transfer *t) {
        _cleanup_free_ char *part = strdup_printf("%s.part", ctx->paths[t->index]);
        uint8_t buf[64 * 1024];
        struct stat st;
        int r;

        t->hash = sha256_new();
        if (!part || !t->hash)
                return log_oom();
        t->fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (t->fd < 0)
                return log_error_errno(negative_errno(), "cannot create '%s': %m", part);
        if (flock(t->fd, LOCK_EX | LOCK_NB) < 0) {
                close(t->fd);
                t->fd = open_tmpfile_beside(ctx->paths[t->index], &t->tmp_path);
                if (t->fd < 0) {
                        r = t->fd;
                        t->fd = -1;
                        return log_error_errno(r, "cannot create a file in '%s': %m", ctx->rpms_dir);
                }
                return 0;
        }
        t->tmp_path = TAKE_PTR(part);
        if (fstat(t->fd, &st) < 0)
                return log_error_errno(negative_errno(), "cannot stat '%s': %m", t->tmp_path);
        if ((uint64_t) st.st_size >= t->pkg->size) {
                if (ftruncate(t->fd, 0) < 0)
                        return log_error_errno(negative_errno(), "cannot truncate '%s': %m", t->tmp_path);
                return 0;
        }
        while (t->received < (uint64_t) st.st_size) {
                ssize_t n = read(t->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return log_error_errno(n < 0 ? negative_errno() : -EIO, "cannot read '%s': %m", t->tmp_path);
                sha256_update(t->hash, buf, (size_t) n);
                t->received += (uint64_t) n;
        }
        if (t->received > 0)
                ctx->bytes_done += t->received;
        return 0;
}

/* Starts (or continues, after t->received bytes) the download from the
 * first mirror that has not failed. -EHOSTUNREACH, not logged, when every
 * mirror has. */
static int transfer_start(FetchContext *ctx, Transfer *t) {
        _cleanup_free_ char *nevra = NULL;
        bool ok = true;
        int r;

        if (t->fd < 0) {
                r = transfer_open(ctx, t);
                if (r < 0)
                        return r;
        }
        for (t->mirror = 0; t->mirror < mirrors_count(t->mirrors); t->mirror++)
                if (!mirrors_failed(t->mirrors, t->mirror))
                        break;
        if (t->mirror >= mirrors_count(t->mirrors))
                return -EHOSTUNREACH;
        free(t->url);
        t->url = lock_package_url_at(t->pkg, mirrors_urls(t->mirrors)[t->mirror]);
        t->easy = http_easy_new(t->url, mirrors_http_options(t->mirrors), t->errbuf);
        t->write_error = 0;
        t->resumed_at = t->received;
        if (!t->url || !t->easy)
                return log_oom();
        ok = ok && curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, transfer_write) == CURLE_OK;
        ok = ok && curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t) == CURLE_OK;
        ok = ok && curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t) == CURLE_OK;
        if (t->received > 0)
                ok = ok && curl_easy_setopt(t->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) t->received) == CURLE_OK;
        else
                ok = ok && curl_easy_setopt(t->easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) t->pkg->size) == CURLE_OK;
        if (!ok || curl_multi_add_handle(ctx->multi, t->easy) != CURLM_OK) {
                curl_easy_cleanup(t->easy);
                t->easy = NULL;
                return log_oom();
        }
        if (t->received > 0) {
                nevra = lock_package_nevra(t->pkg);
                log_info("resuming '%s' at byte %" PRIu64 " of %" PRIu64 " from %s", strempty(nevra), t->received,
                         t->pkg->size, t->url);
        } else
                log_debug("fetching %s", t->url);
        return 0;
}

/* Drops what the transfer received: the next mirror starts from nothing. */
static int transfer_reset(Transfer *t) {
        sha256_free(t->hash);
        t->hash = sha256_new();
        if (!t->hash)
                return -ENOMEM;
        if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0)
                return negative_errno();
        t->ctx->bytes_done -= MIN(t->ctx->bytes_done, t->received);
        t->received = 0;
        return 0;
}

/* Checks the signature of p's file at path against its repository's keys and
 * records the key in the lock. Logs what is wrong. */
static int check_signature(FetchContext *ctx, LockPackage *p, const char *path, const char *nevra) {
        const RepoKeys *keys = trust_find(ctx->trust, p->repo_id);
        char key_id[SIGCHECK_KEY_ID_SIZE];
        int r;

        if (!keys)
                return log_error_errno(-EINVAL, "package '%s' comes from repository '%s', which the definition does "
                                                "not list",
                                       nevra, p->repo_id);
        r = sigcheck_package(keys, path, nevra, key_id);
        if (r < 0)
                return r;
        if (isempty(key_id)) {
                p->key_id = mfree(p->key_id);
                return 0;
        }
        if (p->key_id && !streq(p->key_id, key_id))
                return log_error_errno(-EBADMSG, "package '%s': the lock says key %s signed it, but key %s did", nevra,
                                       p->key_id, key_id);
        if (!p->key_id && !(p->key_id = strdup(key_id)))
                return log_oom();
        return 0;
}

/* Checks what the mirror served: 0 when the whole file is there and its
 * sha256 matches, else a negative errno with reason (the mirror's fault).
 * A transfer that broke off keeps its bytes for the next mirror; a wrong
 * size or checksum drops them. */
static int transfer_check_mirror(Transfer *t, CURLcode code, char *reason, size_t reason_size) {
        char got[SHA256_HEX_SIZE];
        HttpError e = {};
        int r, k;

        r = http_result(t->easy, code, t->write_error, t->errbuf, &e);
        if (code == CURLE_RANGE_ERROR) {
                snprintf(reason, reason_size, "cannot resume the download: %s", e.message);
                k = transfer_reset(t);
                return k < 0 ? k : -EPROTO;
        }
        if (r == -EFBIG) {
                snprintf(reason, reason_size, "larger than the %" PRIu64 " bytes the lock says", t->pkg->size);
                k = transfer_reset(t);
                return k < 0 ? k : -EBADMSG;
        }
        if (r < 0) {
                mirrors_describe_error(r, &e, reason, reason_size);
                return r;
        }
        if (t->received != t->pkg->size) {
                snprintf(reason, reason_size, "size mismatch (expected %" PRIu64 " bytes, got %" PRIu64 ")",
                         t->pkg->size, t->received);
                k = transfer_reset(t);
                return k < 0 ? k : -EBADMSG;
        }
        sha256_final_hex(t->hash, got);
        if (!streq(got, t->pkg->sha256)) {
                snprintf(reason, reason_size, "sha256 mismatch (expected %s, got %s)", t->pkg->sha256, got);
                k = transfer_reset(t);
                return k < 0 ? k : -EBADMSG;
        }
        return 0;
}

/* Checks a finished download and moves it into the cache. A mirror that
 * failed is skipped (one warning) and the download goes on from the next:
 * returns 1 then. Logs what is wrong. */
static int transfer_finish(FetchContext *ctx, Transfer *t, CURLcode code) {
        _cleanup_free_ char *nevra = lock_package_nevra(t->pkg), *what = NULL;
        char reason[CURL_ERROR_SIZE + 256];
        int r, k;

        if (!nevra)
                return log_oom();
        r = transfer_check_mirror(t, code, reason, sizeof(reason));
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                curl_multi_remove_handle(ctx->multi, t->easy);
                curl_easy_cleanup(t->easy);
                t->easy = NULL;
                /* The bytes before the resumption may be what was wrong (a
                 * partial file of an earlier build, or of a corrupt mirror):
                 * the same mirror gets one chance to send it whole. */
                if (r == -EBADMSG && t->resumed_at > 0 && !t->retried_whole) {
                        log_debug("'%s' from %s: %s after resuming at byte %" PRIu64 "; fetching it whole", nevra,
                                  t->url, reason, t->resumed_at);
                        t->retried_whole = true;
                        k = transfer_start(ctx, t);
                        return k < 0 ? k : 1;
                }
                what = strdup_printf("'%s'", nevra);
                if (!what)
                        return log_oom();
                mirrors_mark_failed(t->mirrors, t->mirror, what, r, reason);
                k = transfer_start(ctx, t);
                if (k == -EHOSTUNREACH)
                        return mirrors_log_exhausted(t->mirrors, what, r);
                return k < 0 ? k : 1;
        }
        if (fsync(t->fd) < 0)
                return log_error_errno(negative_errno(), "cannot write '%s': %m", t->tmp_path);
        r = verify_rpm(t->tmp_path, t->pkg, reason, sizeof(reason));
        if (r < 0)
                return log_error_errno(-EBADMSG, "'%s' from %s: rejected by librpm: %s", nevra, t->url, reason);
        r = check_signature(ctx, t->pkg, t->tmp_path, nevra);
        if (r < 0)
                return r;
        if (rename(t->tmp_path, ctx->paths[t->index]) < 0)
                return log_error_errno(negative_errno(), "cannot rename '%s': %m", t->tmp_path);
        t->tmp_path = mfree(t->tmp_path);
        ctx->items_done++;
        report_progress(ctx);
        return 0;
}

/* Runs the transfers, at most `parallel` at once. On the first failure the
 * running transfers are aborted and their files removed. */
static int run_transfers(FetchContext *ctx, unsigned parallel) {
        size_t next = 0, running = 0, finished = 0;
        int r;

        while (finished < ctx->n_transfers) {
                CURLMsg *msg;
                int still, left;

                while (next < ctx->n_transfers && running < parallel) {
                        Transfer *t = &ctx->transfers[next++];

                        r = transfer_start(ctx, t);
                        if (r == -EHOSTUNREACH) {
                                /* Every mirror failed for an earlier package. */
                                _cleanup_free_ char *nevra = lock_package_nevra(t->pkg),
                                                    *what = strdup_printf("'%s'", strempty(nevra));
                                return mirrors_log_exhausted(t->mirrors, what ? what : "a package", r);
                        }
                        if (r < 0)
                                return r;
                        running++;
                }
                if (curl_multi_perform(ctx->multi, &still) != CURLM_OK)
                        return log_error_errno(-EIO, "libcurl failed");
                while ((msg = curl_multi_info_read(ctx->multi, &left))) {
                        Transfer *t = NULL;

                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &t);
                        r = transfer_finish(ctx, t, msg->data.result);
                        /* fetch_context_release() aborts the others. */
                        if (r < 0)
                                return r;
                        if (r > 0)
                                continue; /* goes on from another mirror */
                        transfer_release(ctx, t);
                        running--;
                        finished++;
                }
                if (finished < ctx->n_transfers && running > 0 &&
                    curl_multi_poll(ctx->multi, NULL, 0, 1000, NULL) != CURLM_OK)
                        return log_error_errno(-EIO, "libcurl failed");
        }
        return 0;
}

int fetch_packages(Lock *lock, const Trust *trust, const char *cache_dir, unsigned parallel, Progress *progress,
                   char ***ret_paths) {
        _cleanup_(fetch_context_release) FetchContext ctx = { .lock = lock, .trust = trust, .progress = progress };
        char size_buf[32];
        int r;

        r = http_global_init();
        if (r < 0)
                return log_error_errno(r, "cannot initialise libcurl");
        r = librpm_init();
        if (r < 0)
                return log_error_errno(r, "cannot read the rpm configuration");
        for (size_t i = 0; i < lock->n_repos; i++)
                if (!trust_find(trust, lock->repos[i].id))
                        return log_error_errno(-EINVAL,
                                               "the lock names repository '%s', which the definition does not list "
                                               "(resolve again, without --locked)",
                                               lock->repos[i].id);

        ctx.mirrors = calloc(MAX(lock->n_repos, 1u), sizeof(Mirrors *));
        if (!ctx.mirrors)
                return log_oom();
        for (size_t i = 0; i < lock->n_repos; i++) {
                const LockRepo *lr = &lock->repos[i];
                char *const one[] = { lr->baseurl, NULL };
                unsigned timeout = 0;
                uint64_t minrate = 0;

                repo_keys_transfer_limits(trust_find(trust, lr->id), &timeout, &minrate);
                r = mirrors_new(lr->id, lr->mirrors ? lr->mirrors : one, timeout, minrate, &ctx.mirrors[i]);
                if (r < 0)
                        return log_oom();
                (void) mirrors_skip_failed_before(ctx.mirrors[i]);
        }
        ctx.rpms_dir = path_join(cache_dir, "rpms");
        ctx.paths = calloc(lock->n_packages + 1, sizeof(char *));
        ctx.transfers = calloc(MAX(lock->n_packages, 1u), sizeof(Transfer));
        ctx.multi = curl_multi_init();
        if (!ctx.rpms_dir || !ctx.paths || !ctx.transfers || !ctx.multi)
                return log_oom();
        r = mkdir_p(ctx.rpms_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create '%s': %m", ctx.rpms_dir);

        ctx.items_total = lock->n_packages;
        for (size_t i = 0; i < lock->n_packages; i++) {
                LockPackage *p = &lock->packages[i];
                Transfer *t;
                struct stat st;

                /* The name becomes a path: never trust it unchecked. */
                if (!sha256_hex_valid(p->sha256))
                        return log_error_errno(-EINVAL, "lock: package '%s' has an invalid sha256", p->name);
                ctx.paths[i] = strdup_printf("%s/%s.rpm", ctx.rpms_dir, p->sha256);
                if (!ctx.paths[i])
                        return log_oom();
                if (stat(ctx.paths[i], &st) >= 0 && S_ISREG(st.st_mode) && (uint64_t) st.st_size == p->size) {
                        _cleanup_free_ char *nevra = lock_package_nevra(p);

                        if (!nevra)
                                return log_oom();
                        r = check_signature(&ctx, p, ctx.paths[i], nevra);
                        if (r < 0)
                                return r;
                        ctx.items_done++;
                        continue;
                }
                t = &ctx.transfers[ctx.n_transfers++];
                *t = (Transfer) { .ctx = &ctx, .pkg = p, .index = i, .fd = -1 };
                for (size_t j = 0; j < lock->n_repos; j++)
                        if (streq(lock->repos[j].id, p->repo_id))
                                t->mirrors = ctx.mirrors[j];
                if (!t->mirrors)
                        return log_error_errno(-EINVAL, "lock: package '%s' names no known repo", p->name);
                ctx.bytes_total += p->size;
        }

        progress_phase(progress, "fetch", "%zu packages, %zu cached, %s to download", lock->n_packages,
                       lock->n_packages - ctx.n_transfers, format_bytes(size_buf, sizeof(size_buf), ctx.bytes_total));
        report_progress(&ctx);
        r = run_transfers(&ctx, parallel > 0 ? parallel : 1);
        if (r < 0)
                return r;
        if (ctx.n_transfers > 0) {
                r = fsync_path(ctx.rpms_dir);
                if (r < 0)
                        return log_error_errno(r, "cannot sync '%s': %m", ctx.rpms_dir);
        }
        r = trust_annotate_lock(trust, lock);
        if (r < 0)
                return log_error_errno(r, "cannot record the signing keys in the lock: %m");
        *ret_paths = TAKE_PTR(ctx.paths);
        return 0;
}
