/* /v1/blobs: uploads (PUT) and downloads (GET and HEAD, with Range and
 * ETag) of the blobs that blobs.c keeps; a blob this instance lacks is
 * fetched from a peer that holds it first (replicator.c). */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "blobs.h"
#include "http-header.h"
#include "log.h"
#include "peers.h"
#include "replicator.h"
#include "routes.h"
#include "server.h"
#include "util.h"

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

        path = blob_path(req->server->state_dir, req->args[0]);
        if (!path)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a sha256 digest", req->args[0]);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                /* Held by a peer: copied here, verified, then served; the
                 * request waits for the copy suspended, and comes back. */
                if (!req->fetch_done) {
                        r = replicator_fetch_async(req->server, req->args[0], req);
                        if (r > 0)
                                return MHD_YES;
                        if (r == -EBUSY)
                                r = replicator_fetch(req->server, req->args[0]);
                } else
                        r = req->fetch_result;
                if (r == -ENOENT)
                        return reply_error(req, KIND_NOT_FOUND, "blob %s: not found", req->args[0]);
                if (r < 0)
                        return reply_error(req, KIND_NOT_FOUND, "blob %s: no instance that holds it could deliver it",
                                           req->args[0]);
                fd = open(path, O_RDONLY | O_CLOEXEC);
        }
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
        _cleanup_free_ char *name = NULL, *url = NULL;
        r = peers_self(req->server, &name, &url);
        if (r < 0) {
                blob_writer_abort(w);
                return reply_errno(req, r, "blob upload");
        }
        BlobSite site = { .state_dir = req->server->state_dir, .instance = name, .url = url };
        r = blob_writer_commit(req->server->store, w, &site, req->actor, (int64_t) req->now, &created);
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
