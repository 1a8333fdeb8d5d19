#include <fcntl.h>
#include <inttypes.h>

#include "crashpoint.h"
#include "fileio.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "slot.h"
#include "util.h"

/* Progress is made durable (fdatasync, then the state) every this many
 * bytes, and when a download stops early. */
#define CHECKPOINT_BYTES (64ULL << 20)
/* libcurl's receive buffer: fewer, larger writes into the slot. */
#define RECEIVE_BUFFER (512L * 1024)

typedef struct Writer {
        Agent *a;
        int fd;
        Sha256 *hash;
        uint64_t offset;     /* next byte to write */
        uint64_t size;       /* expected total */
        uint64_t checkpoint; /* offset of the last durable checkpoint */
        int error;
} Writer;

static int checkpoint(Writer *w) {
        if (fdatasync(w->fd) < 0)
                return negative_errno();
        w->a->state.written = w->offset;
        w->checkpoint = w->offset;
        return agent_state_save(w->a->state_path, &w->a->state);
}

static size_t on_data(char *data, size_t one, size_t n, void *userdata) {
        Writer *w = userdata;
        size_t len = one * n;

        if (w->offset + len > w->size) {
                /* The server sends more than the manifest says: not our blob. */
                w->error = -EBADMSG;
                return 0;
        }
        for (size_t done = 0; done < len;) {
                ssize_t k = pwrite(w->fd, data + done, len - done, (off_t) (w->offset + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        w->error = negative_errno();
                        return 0;
                }
                done += (size_t) k;
        }
        sha256_update(w->hash, data, len);
        w->offset += len;
        crashpoint("slot-write");
        if (w->offset - w->checkpoint >= CHECKPOINT_BYTES) {
                w->error = checkpoint(w);
                if (w->error < 0)
                        return 0;
        }
        return len;
}

/* Hashes the first n bytes of fd into h. */
static int hash_prefix(int fd, uint64_t n, Sha256 *h) {
        _cleanup_free_ char *buf = malloc(1 << 20);
        uint64_t off = 0;

        if (!buf)
                return -ENOMEM;
        while (off < n) {
                ssize_t k = pread(fd, buf, (size_t) MIN((uint64_t) (1 << 20), n - off), (off_t) off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                sha256_update(h, buf, (size_t) k);
                off += (uint64_t) k;
        }
        return 0;
}

int slot_verify(Agent *a, char slot, const char *sha256, uint64_t size) {
        _cleanup_close_ int fd = -1;
        uint64_t cap;
        int r;

        r = a->backend->slot_open(a, slot, O_RDONLY, &fd, &cap);
        if (r < 0)
                return r;
        if (size > cap)
                return -EBADMSG;
        return verify_fd(fd, sha256, size);
}

int verify_fd(int fd, const char *sha256, uint64_t size) {
        _cleanup_sha256_free_ Sha256 *h = sha256_new();
        char got[65];
        int r;

        if (!h)
                return -ENOMEM;
        /* Read what is on the medium, not what the page cache remembers. */
        (void) posix_fadvise(fd, 0, (off_t) size, POSIX_FADV_DONTNEED);
        r = hash_prefix(fd, size, h);
        if (r < 0)
                return r;
        sha256_final_hex(h, got);
        return streq(got, sha256) ? 0 : -EBADMSG;
}

int slot_stage(Agent *a, char slot, const char *url, const char *sha256, uint64_t size, Error *error) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *what = strdup_printf("slot %c", slot);
        uint64_t cap;
        int r;

        if (!what)
                return error_set(error, -ENOMEM, "out of memory");
        r = a->backend->slot_open(a, slot, O_RDWR, &fd, &cap);
        if (r < 0)
                return error_set(error, r, "cannot open slot %c for writing: %m", slot);
        return stage_fd(a, fd, cap, what, url, sha256, size, error);
}

int stage_fd(Agent *a, int fd, uint64_t cap, const char *what, const char *url, const char *sha256, uint64_t size,
             Error *error) {
        char errbuf[CURL_ERROR_SIZE] = "";
        HttpOptions opts = { .ca_file = a->config.ca_file };
        _cleanup_sha256_free_ Sha256 *h = sha256_new();
        HttpError herr = {};
        Writer w = {};
        char got[65];
        long status = 0;
        CURLcode code;
        CURL *c;
        int r;

        if (!h)
                return error_set(error, -ENOMEM, "out of memory");
        if (size > cap)
                return error_set(error, -EFBIG, "the image of %" PRIu64 " bytes is larger than %s (%" PRIu64 " bytes)",
                                 size, what, cap);
        if (a->state.written > size)
                a->state.written = 0;
        w = (Writer) { .a = a, .fd = fd, .hash = h, .offset = a->state.written, .size = size,
                       .checkpoint = a->state.written };
        if (w.offset > 0) {
                log_info("%s: resuming at %" PRIu64 " of %" PRIu64 " bytes", what, w.offset, size);
                r = hash_prefix(fd, w.offset, h);
                if (r < 0)
                        return error_set(error, r, "cannot read back what %s holds: %m", what);
        }
        if (w.offset < size) {
                uint64_t from = w.offset;

                r = http_global_init();
                if (r < 0)
                        return error_set(error, r, "cannot set up libcurl");
                c = http_easy_new(url, &opts, errbuf);
                if (!c)
                        return error_set(error, -ENOMEM, "out of memory");
                curl_easy_setopt(c, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, &w);
                if (w.offset > 0)
                        curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) w.offset);
                /* The transfer first, then what on_data() recorded during it:
                 * in one call the order of the two would be unspecified. */
                code = curl_easy_perform(c);
                r = http_result(c, code, w.error, errbuf, &herr);
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                curl_easy_cleanup(c);
                if (from > 0 && (code == CURLE_RANGE_ERROR || (r >= 0 && status != 206)))
                        /* A server that ignored the Range sends the blob from
                         * byte 0 (curl stops at its 200). */
                        r = -EBADMSG;
                if (r == -EBADMSG) {
                        /* Not the blob: nothing written so far can be trusted,
                         * the next try starts over. */
                        a->state.written = 0;
                        (void) agent_state_save(a->state_path, &a->state);
                        if (w.error == -EBADMSG)
                                return error_set(error, r,
                                                 "the server sent other bytes than blob %.12s: more than its %" PRIu64
                                                 " bytes",
                                                 sha256, size);
                        return error_set(error, r,
                                         "the server sent other bytes than blob %.12s: it ignored the range from "
                                         "byte %" PRIu64,
                                         sha256, from);
                }
                if (r < 0) {
                        /* Keep what is durable for the next try. */
                        (void) checkpoint(&w);
                        return error_set(error, r, "download of %s stopped at %" PRIu64 " of %" PRIu64 " bytes: %s",
                                         url, w.offset, size, herr.message);
                }
        }
        if (w.offset != size) /* the stream ended early: the server went away */
                return error_set(error, -ECONNRESET, "download of %s ended at %" PRIu64 " of %" PRIu64 " bytes", url,
                                 w.offset, size);
        sha256_final_hex(h, got);
        if (!streq(got, sha256)) {
                a->state.written = 0;
                (void) agent_state_save(a->state_path, &a->state);
                return error_set(error, -EBADMSG, "the server sent other bytes than blob %.12s (got %.12s)", sha256,
                                 got);
        }
        r = checkpoint(&w);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0)
                return error_set(error, r, "cannot make %s durable: %m", what);
        crashpoint("slot-synced");
        r = verify_fd(fd, sha256, size);
        if (r < 0) {
                a->state.written = 0;
                (void) agent_state_save(a->state_path, &a->state);
                return error_set(error, r == -EBADMSG ? -EIO : r, "%s does not read back as blob %.12s", what, sha256);
        }
        crashpoint("slot-verified");
        return 0;
}
