#include <assert.h>

#include "fileio.h"
#include "http.h"
#include "log.h"
#include "util.h"

typedef struct Sink {
        int fd;         /* >= 0: write here */
        char *buf;      /* else: grow this buffer */
        size_t buf_alloc;
        uint64_t size;
        Sha256 *hash;
} Sink;

static int sink_write(const void *data, size_t n, void *userdata) {
        Sink *s = userdata;
        int r;

        if (s->fd >= 0) {
                r = loop_write(s->fd, data, n);
                if (r < 0)
                        return r;
        } else {
                if (s->size + n + 1 > s->buf_alloc) {
                        size_t na = MAX(MAX(s->buf_alloc * 2, s->size + n + 1), (size_t) 4096);
                        char *nb = realloc(s->buf, na);

                        if (!nb)
                                return -ENOMEM;
                        s->buf = nb;
                        s->buf_alloc = na;
                }
                memcpy(s->buf + s->size, data, n);
                s->buf[s->size + n] = 0;
        }
        if (s->hash)
                sha256_update(s->hash, data, n);
        s->size += n;
        return 0;
}

static int fetch_into_sink(const char *url, Sink *sink, uint64_t max, const HttpOptions *opts,
                           HttpError *ret_error) {
        HttpRequest req = { .method = "GET", .url = url, .on_body = sink_write, .userdata = sink,
                            .body_max = max, .fail_on_error = true, .follow_redirects = true, .opts = opts };
        HttpReply reply;
        int r;

        r = http_exchange(&req, &reply);
        if (ret_error) {
                ret_error->status = reply.status;
                if (r == -EFBIG)
                        snprintf(ret_error->message, sizeof(ret_error->message), "larger than expected");
                else if (r < 0 && reply.failed_at == HTTP_STAGE_CALLBACK)
                        snprintf(ret_error->message, sizeof(ret_error->message), "cannot write: %s", strerror(-r));
                else
                        snprintf(ret_error->message, sizeof(ret_error->message), "%s", r < 0 ? reply.message : "");
        }
        if (r < 0)
                log_debug_errno(r, "fetching '%s' failed: %m", url);
        return r;
}

int http_fetch_to_fd(const char *url, int fd, uint64_t max_bytes, Sha256 *hash, const HttpOptions *opts,
                     uint64_t *ret_size, HttpError *ret_error) {
        Sink sink = { .fd = fd, .hash = hash };
        int r;

        assert(fd >= 0);
        r = fetch_into_sink(url, &sink, max_bytes, opts, ret_error);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = sink.size;
        return 0;
}

int http_fetch_to_memory(const char *url, size_t max_bytes, const HttpOptions *opts, char **ret_data,
                         size_t *ret_size, HttpError *ret_error) {
        Sink sink = { .fd = -1 };
        int r;

        r = fetch_into_sink(url, &sink, max_bytes, opts, ret_error);
        if (r >= 0 && !sink.buf) {
                /* An empty body: still hand out a valid string. */
                sink.buf = strdup("");
                if (!sink.buf)
                        r = -ENOMEM;
        }
        if (r < 0) {
                free(sink.buf);
                return r;
        }
        *ret_data = sink.buf;
        if (ret_size)
                *ret_size = sink.size;
        return 0;
}
