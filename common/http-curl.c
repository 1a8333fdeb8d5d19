/* The libcurl back end of http.h: slipwayd, slipctl and slipway-build. */
#include <strings.h>

#include "curleasy.h"
#include "util.h"

/* One http_exchange() on libcurl: the request, the reply being filled, and
 * the first error of a callback. */
typedef struct CurlCall {
        const HttpRequest *req;
        HttpReply *reply;
        CURL *c;
        int error;
        bool final_headers; /* on_headers ran for the final answer */
        bool got_body;
        uint64_t body_size;
} CurlCall;

/* Keeps a callback's error and tells libcurl to stop (a short count). */
static size_t call_stop(CurlCall *call, int r) {
        call->error = r;
        return 0;
}

static size_t call_header(char *data, size_t size, size_t nmemb, void *userdata) {
        CurlCall *call = userdata;
        const HttpRequest *req = call->req;
        size_t n = size * nmemb;
        long status = 0;
        const char *v;

        if (n >= 9 && strncasecmp(data, "Location:", 9) == 0) {
                v = data + 9;
                v += strspn(v, " \t");
                snprintf(call->reply->location, sizeof(call->reply->location), "%.*s", (int) strcspn(v, "\r\n"), v);
        }
        if (!(n <= 2 && (data[0] == '\r' || data[0] == '\n')))
                return n;
        /* The end of one answer's headers. */
        (void) curl_easy_getinfo(call->c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || call->final_headers || (req->follow_redirects && status >= 300 && status < 400))
                return n;
        call->final_headers = true;
        call->reply->status = status;
        if (call->req->fail_on_error && status >= 300 && status < 400) {
                snprintf(call->reply->message, sizeof(call->reply->message),
                         "the server redirects to %.160s (HTTP %ld); redirects are not followed",
                         call->reply->location[0] ? call->reply->location : "elsewhere", status);
                return call_stop(call, -EPROTO);
        }
        if (call->req->on_headers) {
                int r = call->req->on_headers(status, call->req->userdata);
                if (r < 0)
                        return call_stop(call, r);
        }
        return n;
}

static size_t call_write(char *data, size_t size, size_t nmemb, void *userdata) {
        CurlCall *call = userdata;
        size_t n = size * nmemb;
        int r;

        call->got_body = true;
        if (call->req->body_max > 0 && n > call->req->body_max - call->body_size)
                return call_stop(call, -EFBIG);
        call->body_size += n;
        if (!call->req->on_body)
                return n;
        r = call->req->on_body(data, n, call->req->userdata);
        return r < 0 ? call_stop(call, r) : n;
}

static size_t call_read(char *buf, size_t size, size_t nitems, void *userdata) {
        CurlCall *call = userdata;
        ssize_t n = call->req->read(buf, size * nitems, call->req->read_userdata);

        if (n < 0) {
                call->error = (int) n;
                return CURL_READFUNC_ABORT;
        }
        return (size_t) n;
}

static int call_seek(void *userdata, curl_off_t offset, int origin) {
        CurlCall *call = userdata;

        if (origin != SEEK_SET || offset != 0 || !call->req->rewind)
                return CURL_SEEKFUNC_CANTSEEK;
        return call->req->rewind(call->req->read_userdata) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

static CURLcode call_setup(CurlCall *call, struct curl_slist **headers) {
        const HttpRequest *req = call->req;
        CURL *h = call->c;
        CURLcode code = CURLE_OK;

#define SET(opt, val)                                         \
        do {                                                  \
                if (code == CURLE_OK)                         \
                        code = curl_easy_setopt(h, opt, val); \
        } while (0)
        /* http_easy_new() takes file:// too, and redirects to http/https. */
        SET(CURLOPT_FOLLOWLOCATION, req->follow_redirects ? 1L : 0L);
        SET(CURLOPT_FAILONERROR, req->fail_on_error ? 1L : 0L);
        SET(CURLOPT_HEADERFUNCTION, call_header);
        SET(CURLOPT_HEADERDATA, call);
        SET(CURLOPT_WRITEFUNCTION, call_write);
        SET(CURLOPT_WRITEDATA, call);
        if (req->piece_size > 0)
                SET(CURLOPT_BUFFERSIZE, (long) req->piece_size);
        if (req->body_max > 0 && !streq(req->method, "HEAD"))
                SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) req->body_max);
        for (size_t i = 0; req->headers && req->headers[i]; i++) {
                struct curl_slist *l = curl_slist_append(*headers, req->headers[i]);
                if (!l)
                        return CURLE_OUT_OF_MEMORY;
                *headers = l;
        }
        SET(CURLOPT_HTTPHEADER, *headers);

        if (streq(req->method, "HEAD"))
                SET(CURLOPT_NOBODY, 1L);
        else if (req->read) {
                SET(CURLOPT_UPLOAD, 1L);
                SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->read_size);
                SET(CURLOPT_READFUNCTION, call_read);
                SET(CURLOPT_READDATA, call);
                SET(CURLOPT_SEEKFUNCTION, call_seek);
                SET(CURLOPT_SEEKDATA, call);
                if (!streq(req->method, "PUT"))
                        SET(CURLOPT_CUSTOMREQUEST, req->method);
        } else if (req->body) {
                SET(CURLOPT_POSTFIELDS, req->body);
                SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_size);
                if (!streq(req->method, "POST"))
                        SET(CURLOPT_CUSTOMREQUEST, req->method);
        } else if (streq(req->method, "GET"))
                SET(CURLOPT_HTTPGET, 1L);
        else
                SET(CURLOPT_CUSTOMREQUEST, req->method);
#undef SET
        return code;
}

static HttpStage code_stage(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
                return HTTP_STAGE_RESOLVE;
        case CURLE_COULDNT_CONNECT:
                return HTTP_STAGE_CONNECT;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CIPHER:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_CRL_BADFILE:
                return HTTP_STAGE_TLS;
        default:
                return HTTP_STAGE_EXCHANGE;
        }
}

int http_exchange(const HttpRequest *req, HttpReply *ret) {
        char errbuf[CURL_ERROR_SIZE] = "";
        struct curl_slist *headers = NULL;
        CurlCall call = { .req = req, .reply = ret };
        curl_off_t cl = -1;
        long request_size = 0, os_errno = 0;
        CURLcode code;
        int r;

        *ret = (HttpReply) { .content_length = -1 };
        call.c = http_easy_new(req->url, req->opts, errbuf);
        if (!call.c) {
                snprintf(ret->message, sizeof(ret->message), "cannot set up libcurl");
                return -ENOMEM;
        }
        code = call_setup(&call, &headers);
        if (code == CURLE_OK)
                code = curl_easy_perform(call.c);
        (void) curl_easy_getinfo(call.c, CURLINFO_RESPONSE_CODE, &ret->status);
        if (curl_easy_getinfo(call.c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK && cl >= 0)
                ret->content_length = cl;
        ret->sent = code_stage(code) == HTTP_STAGE_EXCHANGE &&
                    curl_easy_getinfo(call.c, CURLINFO_REQUEST_SIZE, &request_size) == CURLE_OK && request_size > 0;
        if (ret->status > 0)
                ret->sent = true;
        (void) curl_easy_getinfo(call.c, CURLINFO_OS_ERRNO, &os_errno);
        ret->os_errno = (int) os_errno;

        if (code == CURLE_OK)
                r = 0;
        else if (call.error < 0 && (code == CURLE_WRITE_ERROR || code == CURLE_ABORTED_BY_CALLBACK ||
                                    code == CURLE_READ_ERROR)) {
                r = call.error;
                /* The redirect refused and the size cap are ours, not the caller's. */
                ret->failed_at = r == -EPROTO || r == -EFBIG ? HTTP_STAGE_EXCHANGE : HTTP_STAGE_CALLBACK;
                if (r == -EFBIG)
                        snprintf(ret->message, sizeof(ret->message), "the body is larger than %llu bytes",
                                 (unsigned long long) req->body_max);
        } else if (req->read && ret->status >= 400 && call.got_body)
                /* The server answered an upload early (a refusal) and
                 * closed while we still sent: its answer is what counts. */
                r = 0;
        else {
                r = http_result(call.c, code, 0, errbuf, NULL);
                ret->failed_at = code_stage(code);
                snprintf(ret->message, sizeof(ret->message), "%s", errbuf[0] ? errbuf : curl_easy_strerror(code));
        }
        if (r >= 0)
                ret->message[0] = 0;
        curl_easy_cleanup(call.c);
        curl_slist_free_all(headers);
        return r;
}
