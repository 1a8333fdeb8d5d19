#include <assert.h>
#include <pthread.h>

#include "fileio.h"
#include "http.h"
#include "log.h"
#include "util.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_result;

static void global_init_once(void) {
        global_result = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

int http_global_init(void) {
        if (pthread_once(&global_once, global_init_once) != 0)
                return -EIO;
        return global_result;
}

CURL *http_easy_new(const char *url, const HttpOptions *opts, char errbuf[CURL_ERROR_SIZE]) {
        CURL *c;
        bool ok = true;

        if (http_global_init() < 0)
                return NULL;
        c = curl_easy_init();
        if (!c)
                return NULL;
        errbuf[0] = 0;

#define SET(opt, val) ok = ok && curl_easy_setopt(c, opt, val) == CURLE_OK
        SET(CURLOPT_URL, url);
        SET(CURLOPT_ERRORBUFFER, errbuf);
        SET(CURLOPT_USERAGENT, HTTP_USER_AGENT);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_PROTOCOLS_STR, "file,http,https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, 10L);
        SET(CURLOPT_FAILONERROR, 1L);
        SET(CURLOPT_CONNECTTIMEOUT, HTTP_CONNECT_TIMEOUT_SEC);
        SET(CURLOPT_LOW_SPEED_LIMIT, opts && opts->low_speed_limit > 0 ? opts->low_speed_limit : 1L);
        SET(CURLOPT_LOW_SPEED_TIME, opts && opts->low_speed_time > 0 ? opts->low_speed_time : HTTP_LOW_SPEED_TIME_SEC);
        if (opts && opts->timeout_sec > 0)
                SET(CURLOPT_TIMEOUT, opts->timeout_sec);
        if (opts && opts->ca_file)
                SET(CURLOPT_CAINFO, opts->ca_file);
#undef SET
        if (!ok) {
                curl_easy_cleanup(c);
                return NULL;
        }
        return c;
}

static int code_to_errno(CURLcode code, long status) {
        switch (code) {
        case CURLE_OK:
                return 0;
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
        case CURLE_COULDNT_CONNECT:
                return -EHOSTUNREACH;
        case CURLE_HTTP_RETURNED_ERROR:
                return status == 404 || status == 410 ? -ENOENT : -EPROTO;
        case CURLE_FILE_COULDNT_READ_FILE:
        case CURLE_REMOTE_FILE_NOT_FOUND:
                return -ENOENT;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_FILESIZE_EXCEEDED:
                return -EFBIG;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_WRITE_ERROR:
                return -EIO;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_PARTIAL_FILE:
        case CURLE_GOT_NOTHING:
                return -ECONNRESET;
        case CURLE_ABORTED_BY_CALLBACK:
                return -ECANCELED;
        default:
                return -EPROTO;
        }
}

int http_result(CURL *c, CURLcode code, int write_error, const char *errbuf, HttpError *ret_error) {
        long status = 0;
        int r;

        if (c)
                (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (code == CURLE_OK)
                r = 0;
        else if (code == CURLE_WRITE_ERROR && write_error < 0)
                r = write_error;
        else
                r = code_to_errno(code, status);

        if (ret_error) {
                ret_error->status = status;
                if (r == 0)
                        ret_error->message[0] = 0;
                else if (code == CURLE_WRITE_ERROR && write_error == -EFBIG)
                        snprintf(ret_error->message, sizeof(ret_error->message), "larger than expected");
                else if (code == CURLE_WRITE_ERROR && write_error < 0)
                        snprintf(ret_error->message, sizeof(ret_error->message), "cannot write: %s",
                                 strerror(-write_error));
                else if (!isempty(errbuf))
                        snprintf(ret_error->message, sizeof(ret_error->message), "%s", errbuf);
                else
                        snprintf(ret_error->message, sizeof(ret_error->message), "%s", curl_easy_strerror(code));
        }
        return r;
}

typedef struct Sink {
        int fd;         /* >= 0: write here */
        char *buf;      /* else: grow this buffer */
        size_t buf_alloc;
        uint64_t size;
        uint64_t max; /* 0 = no cap */
        Sha256 *hash;
        int error;
} Sink;

static size_t sink_write(char *data, size_t size, size_t nmemb, void *userdata) {
        Sink *s = userdata;
        size_t n = size * nmemb;
        int r;

        if (s->max > 0 && n > s->max - s->size) {
                s->error = -EFBIG;
                return 0;
        }
        if (s->fd >= 0) {
                r = loop_write(s->fd, data, n);
                if (r < 0) {
                        s->error = r;
                        return 0;
                }
        } else {
                if (s->size + n + 1 > s->buf_alloc) {
                        size_t na = MAX(s->buf_alloc * 2, s->size + n + 1);
                        char *nb;
                        if (na < 4096)
                                na = 4096;
                        nb = realloc(s->buf, na);
                        if (!nb) {
                                s->error = -ENOMEM;
                                return 0;
                        }
                        s->buf = nb;
                        s->buf_alloc = na;
                }
                memcpy(s->buf + s->size, data, n);
                s->buf[s->size + n] = 0;
        }
        if (s->hash)
                sha256_update(s->hash, data, n);
        s->size += n;
        return n;
}

static int fetch_into_sink(const char *url, Sink *sink, const HttpOptions *opts, HttpError *ret_error) {
        char errbuf[CURL_ERROR_SIZE];
        CURLcode code;
        CURL *c;
        int r;

        c = http_easy_new(url, opts, errbuf);
        if (!c) {
                if (ret_error) {
                        ret_error->status = 0;
                        snprintf(ret_error->message, sizeof(ret_error->message), "cannot set up libcurl");
                }
                return -ENOMEM;
        }
        code = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
        if (code == CURLE_OK)
                code = curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
        if (code == CURLE_OK && sink->max > 0)
                code = curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) sink->max);
        if (code == CURLE_OK)
                code = curl_easy_perform(c);
        r = http_result(c, code, sink->error, errbuf, ret_error);
        curl_easy_cleanup(c);
        if (r < 0)
                log_debug_errno(r, "fetching '%s' failed: %m", url);
        return r;
}

int http_fetch_to_fd(const char *url, int fd, uint64_t max_bytes, Sha256 *hash, const HttpOptions *opts,
                     uint64_t *ret_size, HttpError *ret_error) {
        Sink sink = { .fd = fd, .max = max_bytes, .hash = hash };
        int r;

        assert(fd >= 0);
        r = fetch_into_sink(url, &sink, opts, ret_error);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = sink.size;
        return 0;
}

int http_fetch_to_memory(const char *url, size_t max_bytes, const HttpOptions *opts, char **ret_data,
                         size_t *ret_size, HttpError *ret_error) {
        Sink sink = { .fd = -1, .max = max_bytes };
        int r;

        r = fetch_into_sink(url, &sink, opts, ret_error);
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
