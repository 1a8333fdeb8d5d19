/* Package signatures, checked the way dnf does with gpgcheck = 1, but
 * against each repository's own keys only: a key listed for one repository
 * does not vouch for packages of another, and the build host's rpmdb keys
 * play no part.
 *
 * librpm does the cryptography. rpmReadPackageFile() with a keyring of the
 * repository's keys answers OK for a good signature, FAIL for a bad one and
 * NOKEY for a key not in the keyring, but also OK for a package that has no
 * signature at all; so the package is read twice: once with digests only, to
 * see whether it is signed and by which key, then with signatures on. */

#include <inttypes.h>
#include <limits.h>
#include <rpm/header.h>
#include <rpm/rpmbase64.h>
#include <rpm/rpmkeyring.h>
#include <rpm/rpmlib.h>
#include <rpm/rpmlog.h>
#include <rpm/rpmpgp.h>
#include <rpm/rpmtd.h>
#include <rpm/rpmts.h>

#include "curleasy.h"
#include "librpm.h"
#include "log.h"
#include "sigcheck.h"
#include "util.h"

/* A key file holds a few KiB; a large one is not a key file. */
#define KEY_FILE_MAX (1024U * 1024U)
/* Keys (with subkeys) one repository may list. */
#define KEYS_MAX 64U

#define ARMOR_BEGIN "-----BEGIN PGP PUBLIC KEY BLOCK-----"

typedef struct SigKey {
        char fingerprint[SIGCHECK_FINGERPRINT_SIZE];
        char **key_ids; /* the key's own and its subkeys' */
} SigKey;

struct RepoKeys {
        char *repo;
        bool gpgcheck;
        unsigned timeout; /* the repository's transfer limits (RepoDef) */
        uint64_t minrate;
        rpmKeyring keyring;
        SigKey *keys;
        size_t n_keys;
};

struct Trust {
        RepoKeys **repos;
        size_t n_repos;
};

/* ---- librpm handles ---- */

static void pubkey_freep(rpmPubkey *k) {
        if (*k)
                rpmPubkeyFree(*k);
}

static void digparams_freep(pgpDigParams *p) {
        if (*p)
                pgpDigParamsFree(*p);
}

static void key_id_hex(const uint8_t *id, char ret[SIGCHECK_KEY_ID_SIZE]) {
        hex_encode(id, 8, ret);
}

/* ---- keys ---- */

RepoKeys *repo_keys_free(RepoKeys *k) {
        if (!k)
                return NULL;
        for (size_t i = 0; i < k->n_keys; i++)
                strv_free(k->keys[i].key_ids);
        free(k->keys);
        if (k->keyring)
                rpmKeyringFree(k->keyring);
        free(k->repo);
        free(k);
        return NULL;
}

const char *repo_keys_repo(const RepoKeys *k) {
        return k->repo;
}

bool repo_keys_gpgcheck(const RepoKeys *k) {
        return k->gpgcheck;
}

void repo_keys_transfer_limits(const RepoKeys *k, unsigned *ret_timeout, uint64_t *ret_minrate) {
        *ret_timeout = k ? k->timeout : 0;
        *ret_minrate = k ? k->minrate : 0;
}

const char *repo_keys_fingerprint(const RepoKeys *k, const char *key_id) {
        for (size_t i = 0; i < k->n_keys; i++)
                if (strv_contains(k->keys[i].key_ids, key_id))
                        return k->keys[i].fingerprint;
        return NULL;
}

/* Adds one certificate (a public key packet and what follows it: user IDs,
 * signatures, subkeys). */
static int add_cert(RepoKeys *k, const uint8_t *pkt, size_t len) {
        _cleanup_(pubkey_freep) rpmPubkey key = NULL;
        _cleanup_free_ uint8_t *fp = NULL;
        _cleanup_strv_free_ char **ids = NULL;
        rpmPubkey *subkeys;
        pgpKeyID_t id;
        char hex[SIGCHECK_FINGERPRINT_SIZE], kid[SIGCHECK_KEY_ID_SIZE];
        size_t fplen = 0;
        int n_subkeys = 0, r = 0;
        SigKey *n;

        key = rpmPubkeyNew(pkt, len);
        if (!key || pgpPubkeyFingerprint(pkt, len, &fp, &fplen) < 0 || (fplen != 20 && fplen != 32) ||
            pgpPubkeyKeyID(pkt, len, id) < 0)
                return -EBADMSG;
        hex_encode(fp, fplen, hex);
        for (size_t i = 0; i < k->n_keys; i++)
                if (streq(k->keys[i].fingerprint, hex))
                        return 0; /* listed twice */
        if (k->n_keys >= KEYS_MAX)
                return -E2BIG;

        key_id_hex(id, kid);
        if (strv_extend(&ids, kid) < 0)
                return -ENOMEM;
        if (rpmKeyringAddKey(k->keyring, key) < 0)
                return -EBADMSG;
        subkeys = rpmGetSubkeys(key, &n_subkeys);
        for (int i = 0; i < n_subkeys; i++) {
                const uint8_t *sid = pgpDigParamsSignID(rpmPubkeyPgpDigParams(subkeys[i]));

                if (r >= 0 && sid) {
                        key_id_hex(sid, kid);
                        if (strv_extend(&ids, kid) < 0)
                                r = -ENOMEM;
                        else if (rpmKeyringAddKey(k->keyring, subkeys[i]) < 0)
                                r = -EBADMSG;
                }
                rpmPubkeyFree(subkeys[i]);
        }
        free(subkeys);
        if (r < 0)
                return r;

        n = realloc(k->keys, sizeof(SigKey) * (k->n_keys + 1));
        if (!n)
                return -ENOMEM;
        k->keys = n;
        memcpy(k->keys[k->n_keys].fingerprint, hex, sizeof(hex));
        k->keys[k->n_keys++].key_ids = TAKE_PTR(ids);
        return 0;
}

/* Adds every certificate of a run of binary OpenPGP packets. */
static int add_certs(RepoKeys *k, const uint8_t *pkts, size_t len) {
        size_t off = 0;
        int r;

        while (off < len) {
                size_t cert_len = 0;

                if (pgpPubKeyCertLen(pkts + off, len - off, &cert_len) < 0 || cert_len == 0 ||
                    cert_len > len - off)
                        return -EBADMSG;
                r = add_cert(k, pkts + off, cert_len);
                if (r < 0)
                        return r;
                off += cert_len;
        }
        return len > 0 ? 0 : -EBADMSG;
}

/* data (NUL-terminated) holds ASCII-armored key blocks, or binary packets. */
static int add_key_file(RepoKeys *k, const char *data, size_t size) {
        const char *p = strstr(data, ARMOR_BEGIN);
        int r;

        if (!p)
                return add_certs(k, (const uint8_t *) data, size);
        for (; p; p = strstr(p + 1, ARMOR_BEGIN)) {
                _cleanup_free_ uint8_t *pkts = NULL;
                size_t len = 0;

                if (pgpParsePkts(p, &pkts, &len) != PGPARMOR_PUBKEY)
                        return -EBADMSG;
                r = add_certs(k, pkts, len);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The definition's location of repo, for messages: "file:line: " or "". */
static void repo_where(const RepoDef *repo, const char *file, char *buf, size_t size) {
        if (repo->file)
                file = repo->file;
        if (file && repo->line > 0)
                snprintf(buf, size, "%s:%u: ", file, repo->line);
        else if (file)
                snprintf(buf, size, "%s: ", file);
        else
                buf[0] = 0;
}

int repo_keys_load(const RepoDef *repo, const char *file, RepoKeys **ret) {
        _cleanup_repo_keys_free_ RepoKeys *k = NULL;
        char where[PATH_MAX + 16];
        int r;

        repo_where(repo, file, where, sizeof(where));
        r = librpm_init();
        if (r < 0)
                return log_error_errno(r, "cannot read the rpm configuration");
        /* image_def_load() refuses this too; a RepoDef made by hand may not. */
        if (repo->gpgcheck && strv_length(repo->gpgkeys) == 0)
                return log_error_errno(-EINVAL, "%srepository '%s' has gpgcheck on but no gpgkey", where, repo->id);
        k = calloc(1, sizeof(*k));
        if (!k)
                return log_oom();
        k->repo = strdup(repo->id);
        k->gpgcheck = repo->gpgcheck;
        k->timeout = repo->timeout;
        k->minrate = repo->minrate;
        k->keyring = rpmKeyringNew();
        if (!k->repo || !k->keyring)
                return log_oom();

        for (char **url = repo->gpgkeys; url && *url; url++) {
                _cleanup_free_ char *data = NULL;
                HttpError e = {};
                size_t size = 0;

                r = http_fetch_to_memory(*url, KEY_FILE_MAX, NULL, &data, &size, &e);
                if (r == -EFBIG)
                        return log_error_errno(-EBADMSG, "%srepository '%s': gpgkey %s is larger than %u KiB",
                                               where, repo->id, *url, KEY_FILE_MAX / 1024);
                if (r < 0)
                        return log_error_errno(r, "%srepository '%s': cannot read gpgkey %s: %s", where, repo->id,
                                               *url, e.message);
                r = add_key_file(k, data, size);
                if (r == -E2BIG)
                        return log_error_errno(r, "%srepository '%s' lists more than %u keys", where, repo->id,
                                               KEYS_MAX);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0)
                        return log_error_errno(r, "%srepository '%s': gpgkey %s holds no OpenPGP public key librpm "
                                                  "can use",
                                               where, repo->id, *url);
        }
        for (size_t i = 0; i < k->n_keys; i++)
                log_debug("repository '%s': key %s", k->repo, k->keys[i].fingerprint);
        *ret = TAKE_PTR(k);
        return 0;
}

Trust *trust_free(Trust *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_repos; i++)
                repo_keys_free(t->repos[i]);
        free(t->repos);
        free(t);
        return NULL;
}

int trust_load(const ImageDef *def, Trust **ret) {
        _cleanup_trust_free_ Trust *t = NULL;
        int r;

        t = calloc(1, sizeof(*t));
        if (!t || !(t->repos = calloc(MAX(def->n_repos, 1u), sizeof(RepoKeys *))))
                return log_oom();
        for (size_t i = 0; i < def->n_repos; i++) {
                r = repo_keys_load(&def->repos[i], def->path, &t->repos[t->n_repos]);
                if (r < 0)
                        return r;
                t->n_repos++;
                if (!def->repos[i].gpgcheck)
                        log_warning("repository '%s' has gpgcheck = 0: its packages are NOT checked for "
                                    "signatures",
                                    def->repos[i].id);
        }
        *ret = TAKE_PTR(t);
        return 0;
}

const RepoKeys *trust_find(const Trust *t, const char *id) {
        for (size_t i = 0; i < t->n_repos; i++)
                if (streq(t->repos[i]->repo, id))
                        return t->repos[i];
        return NULL;
}

static int fingerprint_cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int trust_to_json(const Trust *t, json_t **ret) {
        json_t *a = json_array();

        if (!a)
                return -ENOMEM;
        for (size_t i = 0; i < t->n_repos; i++) {
                const RepoKeys *k = t->repos[i];
                _cleanup_free_ const char **fps = calloc(MAX(k->n_keys, 1u), sizeof(char *));
                json_t *keys = json_array(), *o;

                if (!fps || !keys) {
                        json_decref(keys);
                        json_decref(a);
                        return -ENOMEM;
                }
                for (size_t j = 0; j < k->n_keys; j++)
                        fps[j] = k->keys[j].fingerprint;
                qsort(fps, k->n_keys, sizeof(char *), fingerprint_cmp);
                for (size_t j = 0; j < k->n_keys; j++)
                        json_array_append_new(keys, json_string(fps[j]));
                o = json_pack("{s:s, s:b, s:o}", "repo", k->repo, "gpgcheck", k->gpgcheck, "keys", keys);
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return -ENOMEM;
                }
        }
        *ret = a;
        return 0;
}

/* ---- packages ---- */

/* Reads the package's header with librpm: with signatures checked against
 * keyring, or, when keyring is NULL, with digests only. */
static rpmRC read_package(const char *path, rpmKeyring keyring, Header *ret) {
        _cleanup_(rpmts_freep) rpmts ts = NULL;
        _cleanup_(rpm_fclosep) FD_t fd = NULL;
        int old_mask;
        rpmRC rc;

        ts = rpmtsCreate();
        if (!ts)
                return RPMRC_FAIL;
        if (keyring) {
                rpmtsSetKeyring(ts, keyring);
                rpmtsSetVSFlags(ts, RPMVSF_DEFAULT);
        } else
                rpmtsSetVSFlags(ts, RPMVSF_MASK_NOSIGNATURES);
        fd = Fopen(path, "r.ufdio");
        if (!fd || Ferror(fd))
                return RPMRC_NOTFOUND;
        /* librpm would print its own complaint; ours names package and repository. */
        old_mask = rpmlogSetMask(RPMLOG_UPTO(RPMLOG_EMERG));
        rc = rpmReadPackageFile(ts, fd, path, ret);
        rpmlogSetMask(old_mask);
        return rc;
}

/* The key ID of the package's signature. Header-only signatures come first:
 * they are what rpmReadPackageFile() checks. Returns 1 and the ID, 0 when
 * the package is not signed, -EBADMSG when a signature cannot be parsed. */
static int signature_key_id(Header h, char ret[SIGCHECK_KEY_ID_SIZE]) {
        static const rpmTagVal tags[] = { RPMTAG_RSAHEADER, RPMTAG_DSAHEADER, RPMTAG_SIGGPG, RPMTAG_SIGPGP };

        for (size_t i = 0; i < ELEMENTSOF(tags); i++) {
                _cleanup_(digparams_freep) pgpDigParams params = NULL;
                struct rpmtd_s td;
                const uint8_t *id;
                int k;

                if (!headerGet(h, tags[i], &td, HEADERGET_MINMEM))
                        continue;
                k = td.type == RPM_BIN_TYPE ? pgpPrtParams(td.data, td.count, PGPTAG_SIGNATURE, &params) : -1;
                rpmtdFreeData(&td);
                if (k < 0 || !(id = pgpDigParamsSignID(params)))
                        return -EBADMSG;
                key_id_hex(id, ret);
                return 1;
        }
        return 0;
}

int sigcheck_package(const RepoKeys *k, const char *path, const char *what, char ret_key_id[SIGCHECK_KEY_ID_SIZE]) {
        _cleanup_(header_freep) Header h = NULL, checked = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE] = "";
        rpmRC rc;
        int r;

        if (!k->gpgcheck) {
                ret_key_id[0] = 0;
                return 0;
        }
        r = librpm_init();
        if (r < 0)
                return log_error_errno(r, "cannot read the rpm configuration");

        rc = read_package(path, NULL, &h);
        if (rc != RPMRC_OK && rc != RPMRC_NOKEY && rc != RPMRC_NOTTRUSTED)
                return log_error_errno(-EBADMSG, "package '%s' from repository '%s' refused: %s", what, k->repo,
                                       rc == RPMRC_NOTFOUND ? "not an RPM package" : "damaged header");
        r = signature_key_id(h, key_id);
        if (r < 0)
                return log_error_errno(r, "package '%s' from repository '%s' refused: its signature cannot be read",
                                       what, k->repo);
        if (r == 0)
                return log_error_errno(-EBADMSG,
                                       "package '%s' from repository '%s' refused: it is not signed, and the "
                                       "repository has gpgcheck on",
                                       what, k->repo);
        if (!repo_keys_fingerprint(k, key_id))
                return log_error_errno(-ENOKEY,
                                       "package '%s' from repository '%s' refused: signed with key %s, which is "
                                       "not one of the repository's gpgkey keys",
                                       what, k->repo, key_id);

        rc = read_package(path, k->keyring, &checked);
        if (rc != RPMRC_OK)
                return log_error_errno(-EBADMSG, "package '%s' from repository '%s' refused: bad signature (key %s)",
                                       what, k->repo, key_id);
        memcpy(ret_key_id, key_id, SIGCHECK_KEY_ID_SIZE);
        return 0;
}

int trust_annotate_lock(const Trust *t, Lock *l) {
        for (size_t i = 0; i < l->n_repos; i++) {
                LockRepo *repo = &l->repos[i];
                const RepoKeys *k = trust_find(t, repo->id);
                _cleanup_strv_free_ char **fps = calloc(1, sizeof(char *));

                if (!k)
                        return -ENOENT;
                if (!fps)
                        return -ENOMEM;
                for (size_t j = 0; j < l->n_packages; j++) {
                        const LockPackage *p = &l->packages[j];
                        const char *fp;

                        if (!p->key_id || !streq(p->repo_id, repo->id))
                                continue;
                        fp = repo_keys_fingerprint(k, p->key_id);
                        if (!fp)
                                return -ENOKEY;
                        if (!strv_contains(fps, fp) && strv_extend(&fps, fp) < 0)
                                return -ENOMEM;
                }
                strv_sort_unique(fps);
                repo->gpgcheck = k->gpgcheck;
                strv_free(repo->keys);
                repo->keys = TAKE_PTR(fps);
        }
        return 0;
}

/* ---- detached signatures (repomd.xml.asc) ---- */

#define SIG_ARMOR_BEGIN "-----BEGIN PGP SIGNATURE-----"

/* Decodes the first ASCII-armored signature block of text (librpm's armor
 * reader takes public keys only): armor headers up to the first empty line,
 * then base64 up to the checksum line ("=...") or the END line. */
static int dearmor_signature(const char *text, uint8_t **ret, size_t *ret_len) {
        const char *p = strstr(text, SIG_ARMOR_BEGIN), *body, *end;
        _cleanup_free_ char *b64 = NULL;
        void *out = NULL;
        size_t n = 0, len = 0;

        if (!p)
                return -EBADMSG;
        p = strchr(p, '\n');
        if (!p)
                return -EBADMSG;
        /* armor headers ("Version: ..."), then an empty line */
        body = p + 1;
        for (const char *l = body; *l;) {
                const char *eol = strchrnul(l, '\n');
                bool blank = true;

                for (const char *c = l; c < eol; c++)
                        if (*c != ' ' && *c != '\t' && *c != '\r')
                                blank = false;
                if (blank) {
                        body = *eol ? eol + 1 : eol;
                        break;
                }
                if (!strchr(l, ':') || strchr(l, ':') > eol) {
                        body = l; /* no headers and no empty line */
                        break;
                }
                l = *eol ? eol + 1 : eol;
        }
        end = strstr(body, "-----END PGP SIGNATURE-----");
        if (!end)
                return -EBADMSG;
        b64 = malloc((size_t) (end - body) + 1);
        if (!b64)
                return -ENOMEM;
        for (const char *c = body; c < end; c++) {
                /* the CRC line ends the data */
                if (*c == '=' && (c == body || c[-1] == '\n'))
                        break;
                if (*c != '\n' && *c != '\r' && *c != ' ' && *c != '\t')
                        b64[n++] = *c;
        }
        b64[n] = 0;
        if (n == 0 || rpmBase64Decode(b64, &out, &len) != 0 || len == 0) {
                free(out);
                return -EBADMSG;
        }
        *ret = out;
        *ret_len = len;
        return 0;
}

int sigcheck_detached(const RepoKeys *k, const void *data, size_t size, const char *sig, size_t sig_size,
                      char ret_key_id[SIGCHECK_KEY_ID_SIZE], char *reason, size_t reason_size) {
        _cleanup_(digparams_freep) pgpDigParams params = NULL;
        _cleanup_free_ uint8_t *pkts = NULL;
        _cleanup_free_ char *text = NULL;
        char key_id[SIGCHECK_KEY_ID_SIZE];
        const uint8_t *id;
        size_t len = 0;
        DIGEST_CTX ctx;
        rpmRC rc;
        int r;

        r = librpm_init();
        if (r < 0) {
                snprintf(reason, reason_size, "cannot read the rpm configuration");
                return r;
        }
        /* The armor is read as a string. */
        text = malloc(sig_size + 1);
        if (!text)
                return -ENOMEM;
        memcpy(text, sig, sig_size);
        text[sig_size] = 0;
        if (strstr(text, SIG_ARMOR_BEGIN)) {
                r = dearmor_signature(text, &pkts, &len);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        snprintf(reason, reason_size, "the signature's armor cannot be read");
                        return -EBADMSG;
                }
        } else {
                pkts = malloc(MAX(sig_size, 1u));
                if (!pkts)
                        return -ENOMEM;
                memcpy(pkts, sig, sig_size);
                len = sig_size;
        }
        if (len == 0 || pgpPrtParams(pkts, len, PGPTAG_SIGNATURE, &params) < 0 || !params ||
            !(id = pgpDigParamsSignID(params))) {
                snprintf(reason, reason_size, "not an OpenPGP signature");
                return -EBADMSG;
        }
        key_id_hex(id, key_id);
        memcpy(ret_key_id, key_id, SIGCHECK_KEY_ID_SIZE);
        if (!repo_keys_fingerprint(k, key_id)) {
                snprintf(reason, reason_size, "signed with key %s, which is not one of the repository's gpgkey keys",
                         key_id);
                return -ENOKEY;
        }
        ctx = rpmDigestInit(pgpDigParamsAlgo(params, PGPVAL_HASHALGO), RPMDIGEST_NONE);
        if (!ctx) {
                snprintf(reason, reason_size, "signature by key %s uses an unknown hash", key_id);
                return -EBADMSG;
        }
        rpmDigestUpdate(ctx, data, size);
        rc = rpmKeyringVerifySig(k->keyring, params, ctx);
        rpmDigestFinal(ctx, NULL, NULL, 0);
        if (rc != RPMRC_OK) {
                snprintf(reason, reason_size, "bad signature (key %s)", key_id);
                return -EBADMSG;
        }
        return 0;
}
