#include <assert.h>
#include <pthread.h>

#include "curleasy.h"
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
