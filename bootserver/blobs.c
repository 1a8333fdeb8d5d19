#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "blobs.h"
#include "blobstore.h"
#include "server.h"
#include "fileio.h"
#include "hash.h"
#include "log.h"
#include "util.h"
#include "store-sqlite.h"

struct BlobWriter {
        char hex[65];
        BlobstoreWriter *w;
};

char *blob_path(const Server *s, const char *hex) {
        char *p = NULL;

        return blobstore_path(s->state_dir, hex, &p) < 0 ? NULL : p;
}

int blob_writer_new(Server *s, const char *hex, BlobWriter **ret) {
        BlobWriter *w;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        r = blobstore_writer_new(s->state_dir, hex, &w->w);
        if (r < 0) {
                free(w);
                return r;
        }
        memcpy(w->hex, hex, 65);
        *ret = w;
        return 0;
}

int blob_writer_write(BlobWriter *w, const void *data, size_t n) {
        return blobstore_writer_write(w->w, data, n);
}

void blob_writer_abort(BlobWriter *w) {
        if (!w)
                return;
        blobstore_writer_free(w->w);
        free(w);
}

static int record(Server *s, const char *hex, uint64_t size, const char *actor) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_store_tx_ StoreTx *tx = NULL;
        json_t *detail;
        int r;

        r = store_tx_begin(s->store, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = db_prepare(store_tx_sqlite(tx), "INSERT OR IGNORE INTO blobs (sha256, size, created) VALUES (?, ?, ?)", &st);
        if (r >= 0) {
                sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
                sqlite3_bind_int64(st, 2, (sqlite3_int64) size);
                sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
                r = db_errno(sqlite3_step(st));
        }
        if (r >= 0 && sqlite3_changes(store_tx_sqlite(tx)) > 0) {
                detail = json_pack("{s:I}", "size", (json_int_t) size);
                r = audit_log(tx, actor, "blob.upload", hex, detail);
                json_decref(detail);
        }
        if (r >= 0)
                r = store_tx_commit(&tx);
        return r;
}

int blob_writer_commit(Server *s, BlobWriter *w, const char *actor, bool *ret_created) {
        uint64_t size = 0;
        int r, made;

        made = blobstore_writer_commit(TAKE_PTR(w->w), NULL, &size);
        if (made == -EBADMSG)
                log_debug("blob upload: the bytes are not %s", w->hex);
        /* A blob that was there already: the catalog must know it too. */
        r = made < 0 ? made : record(s, w->hex, size, actor);
        blob_writer_abort(w);
        if (r >= 0)
                *ret_created = made > 0;
        return r;
}

int blobs_present(const char *state_dir, StoreTx *tx, const char *hex, uint64_t size_check) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *path = NULL;
        struct stat sb;
        int r;

        if (blobstore_path(state_dir, hex, &path) < 0)
                return 0;
        /* The file decides, as for GET and HEAD; a file that lost its row
         * (a crash between rename and commit) gets it back. */
        if (stat(path, &sb) < 0)
                return 0;
        if (size_check != UINT64_MAX && (uint64_t) sb.st_size != size_check)
                return 0;
        r = db_prepare(db, "INSERT OR IGNORE INTO blobs (sha256, size, created) VALUES (?, ?, ?)", &st);
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64) sb.st_size);
        sqlite3_bind_int64(st, 3, (sqlite3_int64) time(NULL));
        r = db_errno(sqlite3_step(st));
        return r < 0 ? r : 1;
}

int blobs_collect_garbage(StoreTx *tx, char *const *candidates, int64_t orphan_cutoff, char ***ret_removed) {
        sqlite3 *db = store_tx_sqlite(tx);
        _cleanup_stmt_ sqlite3_stmt *sel = NULL, *del = NULL;
        _cleanup_strv_free_ char **removed = NULL;
        static const char unreferenced[] =
                "sha256 NOT IN (SELECT sha256 FROM artifacts) AND sha256 NOT IN (SELECT manifest FROM images) "
                "AND sha256 NOT IN (SELECT signature FROM images)";
        _cleanup_free_ char *sql = NULL;
        int r;

        /* Orphans younger than the cutoff may belong to a push in progress. */
        sql = strdup_printf("SELECT sha256 FROM blobs WHERE %s AND (created < ?1 OR sha256 IN (SELECT value FROM "
                            "json_each(?2)))",
                            unreferenced);
        if (!sql)
                return -ENOMEM;
        r = db_prepare(db, sql, &sel);
        if (r < 0)
                return r;
        json_t *list = json_array();
        for (size_t i = 0; candidates && candidates[i]; i++)
                json_array_append_new(list, json_string(candidates[i]));
        _cleanup_free_ char *list_text = json_dumps(list, JSON_COMPACT);
        json_decref(list);
        if (!list_text)
                return -ENOMEM;
        sqlite3_bind_int64(sel, 1, orphan_cutoff);
        sqlite3_bind_text(sel, 2, list_text, -1, SQLITE_STATIC);
        while ((r = db_step(sel)) > 0) {
                r = strv_extend(&removed, (const char *) sqlite3_column_text(sel, 0));
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = db_prepare(db, "DELETE FROM blobs WHERE sha256 = ?", &del);
        for (size_t i = 0; r >= 0 && removed && removed[i]; i++) {
                sqlite3_bind_text(del, 1, removed[i], -1, SQLITE_STATIC);
                r = db_errno(sqlite3_step(del));
                sqlite3_reset(del);
        }
        if (r < 0)
                return r;
        *ret_removed = TAKE_PTR(removed);
        return 0;
}

void blobs_unlink(const Server *s, char *const *hexes) {
        for (size_t i = 0; hexes && hexes[i]; i++) {
                _cleanup_free_ char *p = blob_path(s, hexes[i]);
                if (p && unlink(p) < 0 && errno != ENOENT)
                        log_warning_errno(negative_errno(), "cannot remove blob '%s': %m", p);
        }
}

int http_range_parse(const char *h, uint64_t size, uint64_t *ret_start, uint64_t *ret_len) {
        const char *spec = h ? startswith(h, "bytes=") : NULL;
        _cleanup_free_ char *a = NULL;
        const char *dash;
        uint64_t first, last;

        if (!spec || strchr(spec, ','))
                return 0;
        dash = strchr(spec, '-');
        if (!dash)
                return 0;
        a = strndup(spec, (size_t) (dash - spec));
        if (!a)
                return 0;
        if (isempty(a)) {
                /* suffix: the last N bytes */
                if (safe_atou64(dash + 1, &last) < 0)
                        return 0;
                if (last == 0 || size == 0)
                        return -ERANGE;
                *ret_len = MIN(last, size);
                *ret_start = size - *ret_len;
                return 1;
        }
        if (safe_atou64(a, &first) < 0)
                return 0;
        if (isempty(dash + 1))
                last = size > 0 ? size - 1 : 0;
        else if (safe_atou64(dash + 1, &last) < 0 || last < first)
                return 0;
        if (first >= size)
                return -ERANGE;
        last = MIN(last, size - 1);
        *ret_start = first;
        *ret_len = last - first + 1;
        return 1;
}

static const char *skip_ows(const char *p) {
        while (*p == ' ' || *p == '\t')
                p++;
        return p;
}

/* Reads one entity-tag at p: [W/]"<etagc>*"; sets *ret_weak and the opaque
 * tag with its quotes (ret_tag, ret_len). Returns the position after it, or
 * NULL when there is none. */
static const char *entity_tag(const char *p, bool *ret_weak, const char **ret_tag, size_t *ret_len) {
        const char *q;

        *ret_weak = false;
        if (p[0] == 'W' && p[1] == '/') {
                *ret_weak = true;
                p += 2;
        }
        if (*p != '"')
                return NULL;
        for (q = p + 1; *q != '"'; q++)
                /* etagc: visible ASCII but the quote, and obs-text */
                if ((unsigned char) *q < 0x21 || *q == 0x7f)
                        return NULL;
        *ret_tag = p;
        *ret_len = (size_t) (q + 1 - p);
        return q + 1;
}

bool http_if_none_match(const char *h, const char *etag) {
        bool found = false;

        if (!h)
                return false;
        h = skip_ows(h);
        if (*h == '*')
                return *skip_ows(h + 1) == 0;
        /* #entity-tag: empty elements and spaces around commas are allowed */
        while (*h) {
                const char *tag;
                size_t n;
                bool weak;

                if (*h == ',') {
                        h = skip_ows(h + 1);
                        continue;
                }
                h = entity_tag(h, &weak, &tag, &n);
                if (!h)
                        return false;
                if (n == strlen(etag) && memcmp(tag, etag, n) == 0)
                        found = true;
                h = skip_ows(h);
                if (*h && *h != ',')
                        return false;
        }
        return found;
}

bool http_if_range(const char *h, const char *etag) {
        const char *tag;
        size_t n;
        bool weak;

        if (!h)
                return false;
        h = entity_tag(skip_ows(h), &weak, &tag, &n);
        return h && !weak && *skip_ows(h) == 0 && n == strlen(etag) && memcmp(tag, etag, n) == 0;
}

static ssize_t no_body(void *cls _unused_, uint64_t pos _unused_, char *buf _unused_, size_t max _unused_) {
        return MHD_CONTENT_READER_END_OF_STREAM;
}

/* A 304 carries no body and must not announce one: libmicrohttpd gives an
 * empty buffer "Content-Length: 0" and a reply of unknown size
 * "Transfer-Encoding: chunked", but neither to a reply of unknown size sent
 * the HTTP/1.0 way (which closes the connection after it). */
static struct MHD_Response *not_modified_response(void) {
        struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, no_body, NULL, NULL);

        if (resp && MHD_set_response_options(resp, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT, MHD_RO_END) != MHD_YES) {
                MHD_destroy_response(resp);
                return NULL;
        }
        return resp;
}

static enum MHD_Result handle_blob_get(Request *req) {
        _cleanup_free_ char *path = NULL, *etag = NULL;
        _cleanup_close_ int fd = -1;
        struct MHD_Response *resp;
        struct stat st;
        const char *range;
        uint64_t start = 0, len;
        unsigned status = 200;
        char cr[96];
        int r;

        path = blob_path(req->server, req->args[0]);
        if (!path)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a sha256 digest", req->args[0]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return reply_error(req, KIND_NOT_FOUND, "blob %s: not found", req->args[0]);
                return reply_errno(req, negative_errno(), "blob");
        }
        if (fstat(fd, &st) < 0)
                return reply_errno(req, negative_errno(), "blob");
        etag = strdup_printf("\"%s\"", req->args[0]);
        if (!etag)
                return MHD_NO;
        len = (uint64_t) st.st_size;
        if (http_if_none_match(request_header(req, "If-None-Match"), etag)) {
                resp = not_modified_response();
                status = 304;
        } else {
                range = request_header(req, "Range");
                /* A validator that does not match strongly: the whole blob. */
                if (range && request_header(req, "If-Range") && !http_if_range(request_header(req, "If-Range"), etag))
                        range = NULL;
                r = http_range_parse(range, (uint64_t) st.st_size, &start, &len);
                if (r == -ERANGE) {
                        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long) st.st_size);
                        req->reply_header[0] = "Content-Range";
                        req->reply_header[1] = cr;
                        return reply_error(req, KIND_RANGE_NOT_SATISFIABLE, "range \"%s\" is outside the blob of %llu bytes",
                                           range, (unsigned long long) st.st_size);
                }
                if (r > 0) {
                        status = 206;
                        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long) start,
                                 (unsigned long long) (start + len - 1), (unsigned long long) st.st_size);
                }
                resp = MHD_create_response_from_fd_at_offset64(len, fd, start);
                if (resp)
                        TAKE_FD(fd);
                if (resp && status == 206)
                        MHD_add_response_header(resp, "Content-Range", cr);
                if (streq(req->method, "GET")) {
                        req->blob_bytes = len;
                        atomic_fetch_add(&req->server->metrics.blob_requests, 1);
                }
        }
        if (!resp)
                return MHD_NO;
        MHD_add_response_header(resp, "ETag", etag);
        MHD_add_response_header(resp, "Cache-Control", "public, max-age=31536000, immutable");
        MHD_add_response_header(resp, "Accept-Ranges", "bytes");
        if (status != 304)
                MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
        return reply_response(req, status, resp);
}

static enum MHD_Result handle_blob_put(Request *req) {
        BlobWriter *w = TAKE_PTR(req->blob);
        bool created = false;
        int r;

        if (req->blob_error < 0) {
                r = req->blob_error;
                blob_writer_abort(w);
                return reply_errno(req, r, "blob upload");
        }
        r = blob_writer_commit(req->server, w, req->actor, &created);
        if (r == -EBADMSG)
                return reply_error(req, KIND_DIGEST_MISMATCH, "the uploaded bytes do not hash to %s", req->args[0]);
        if (r < 0)
                return reply_errno(req, r, "blob upload");
        return reply_json(req, created ? 201 : 200,
                          json_pack("{s:s, s:b}", "sha256", req->args[0], "created", created));
}

const Route blob_routes[] = {
        { "GET", "blobs/sha256/*", AUTH_PUBLIC, BODY_NONE, handle_blob_get },
        { "HEAD", "blobs/sha256/*", AUTH_PUBLIC, BODY_NONE, handle_blob_get },
        { "PUT", "v1/blobs/sha256/*", AUTH_ADMIN, BODY_BLOB, handle_blob_put },
        {},
};
