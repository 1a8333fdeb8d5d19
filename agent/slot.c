#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

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
/* The slot is written in chunks of this size: writes large enough for the
 * device to take at its speed, small enough to keep the agent small. */
#define CHUNK_BYTES ((size_t) 256 << 10)
/* Chunks in the ring: one filled from the network, one being written, one
 * being read back. (A fourth to spare measured no faster.) */
#define CHUNKS 3
/* What O_DIRECT asks of offsets, lengths and buffers: the largest logical
 * block size of the disks we meet. A download starts at a multiple of it,
 * so every chunk but the last is aligned. */
#define ALIGN ((size_t) 4096)
/* The receive buffer; its bytes are copied into a chunk. */
#define RECEIVE_BUFFER (64L * 1024)

/* Staging, in three threads. The receiving thread (the body callback)
 * copies the bytes into a chunk of the ring, hashes the chunk as it fills
 * and hands it over; the writer thread writes it (O_DIRECT where the file
 * takes it); the checking thread reads the same range back from the device
 * and compares, then hands the chunk back. So the digest is of exactly the
 * bytes written, and the device is seen to return them, while it takes
 * the next chunks: no second pass. */
typedef struct Writer {
        Agent *a;
        int fd;
        Sha256 *hash;
        uint8_t *mem;        /* CHUNKS chunks, then one for reading back; ALIGN-aligned */
        uint64_t start;      /* offset of chunk 0 (a multiple of ALIGN) */
        uint64_t offset;     /* next byte received (receiving thread) */
        uint64_t size;       /* expected total */
        size_t fill;         /* bytes in the chunk being filled */

        pthread_mutex_t lock;
        pthread_cond_t cond;
        uint64_t submitted;  /* chunks handed to the writer */
        uint64_t written;    /* chunks written, handed to the checker */
        uint64_t released;   /* chunks read back and handed back */
        size_t last_len;     /* the length of the last chunk submitted */
        bool buffered[CHUNKS]; /* written through the page cache */
        bool direct;         /* fd has O_DIRECT; changed only when the checker is idle */
        bool closed;         /* no more chunks */
        atomic_int error;    /* the first error of any thread */

        /* The checking thread's own. */
        uint64_t verified;   /* bytes read back from start */
        uint64_t checkpoint; /* offset of the last durable checkpoint */
} Writer;

static int set_direct(int fd, bool on) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0)
                return negative_errno();
        flags = on ? flags | O_DIRECT : flags & ~O_DIRECT;
        return fcntl(fd, F_SETFL, flags) < 0 ? negative_errno() : 0;
}

static int pwrite_full(int fd, const uint8_t *data, size_t len, uint64_t off) {
        for (size_t done = 0; done < len;) {
                ssize_t k = pwrite(fd, data + done, len - done, (off_t) (off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                done += (size_t) k;
        }
        return 0;
}

static int pread_full(int fd, uint8_t *data, size_t len, uint64_t off) {
        for (size_t done = 0; done < len;) {
                ssize_t k = pread(fd, data + done, len - done, (off_t) (off + done));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return negative_errno();
                }
                if (k == 0)
                        return -EIO;
                done += (size_t) k;
        }
        return 0;
}

static int checkpoint(Writer *w, uint64_t offset) {
        if (fdatasync(w->fd) < 0)
                return negative_errno();
        w->a->state.written = offset;
        w->checkpoint = offset;
        return agent_state_save(w->a->state_path, &w->a->state);
}

static void set_error(Writer *w, int r) {
        int none = 0;

        (void) atomic_compare_exchange_strong(&w->error, &none, r);
}

/* Waits (lock held) until every chunk written has been read back: the
 * O_DIRECT flag, shared by the two threads, may change then. */
static void wait_checked(Writer *w) {
        while (w->released != w->written && atomic_load(&w->error) == 0)
                pthread_cond_wait(&w->cond, &w->lock);
}

static int drop_direct(Writer *w) {
        int r;

        pthread_mutex_lock(&w->lock);
        wait_checked(w);
        r = set_direct(w->fd, false);
        if (r >= 0)
                w->direct = false;
        pthread_mutex_unlock(&w->lock);
        return r;
}

/* Writes chunk k. A last chunk that is not a whole block, or a device that
 * refuses the O_DIRECT write, goes through the page cache (and the checker
 * makes the kernel write it back first). */
static int chunk_write(Writer *w, uint64_t k, size_t len) {
        const uint8_t *data = w->mem + (k % CHUNKS) * CHUNK_BYTES;
        uint64_t off = w->start + k * CHUNK_BYTES;
        int r;

        if (w->direct && len % ALIGN != 0) {
                r = drop_direct(w);
                if (r < 0)
                        return r;
        }
        r = pwrite_full(w->fd, data, len, off);
        if (r == -EINVAL && w->direct) {
                /* Blocks larger than ALIGN, or a file system that took the
                 * flag and refuses the write. */
                r = drop_direct(w);
                if (r >= 0)
                        r = pwrite_full(w->fd, data, len, off);
        }
        if (r < 0)
                return r;
        w->buffered[k % CHUNKS] = !w->direct;
        crashpoint("slot-write");
        return 0;
}

/* Reads chunk k back from the device and compares. -EIO when the device
 * returns other bytes. */
static int chunk_check(Writer *w, uint64_t k, size_t len) {
        const uint8_t *data = w->mem + (k % CHUNKS) * CHUNK_BYTES;
        uint8_t *back = w->mem + CHUNKS * CHUNK_BYTES;
        uint64_t off = w->start + k * CHUNK_BYTES;
        int r;

        if (w->buffered[k % CHUNKS]) {
                /* Written back and dropped from the page cache, so that
                 * the read comes from the device. */
                if (sync_file_range(w->fd, (off_t) off, (off_t) len,
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER) < 0)
                        return negative_errno();
                (void) posix_fadvise(w->fd, (off_t) off, (off_t) len, POSIX_FADV_DONTNEED);
        }
        r = pread_full(w->fd, back, len, off);
        if (w->buffered[k % CHUNKS])
                (void) posix_fadvise(w->fd, (off_t) off, (off_t) len, POSIX_FADV_DONTNEED);
        if (r < 0)
                return r;
        return memcmp(back, data, len) == 0 ? 0 : -EIO;
}

/* The length of chunk k (lock held). */
static size_t chunk_len(const Writer *w, uint64_t k) {
        return k + 1 == w->submitted ? w->last_len : CHUNK_BYTES;
}

static void *writer_run(void *userdata) {
        Writer *w = userdata;

        for (;;) {
                uint64_t k;
                size_t len;
                int r;

                pthread_mutex_lock(&w->lock);
                while (w->written == w->submitted && !w->closed && atomic_load(&w->error) == 0)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->written == w->submitted || atomic_load(&w->error) != 0) {
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                k = w->written;
                len = chunk_len(w, k);
                pthread_mutex_unlock(&w->lock);

                r = chunk_write(w, k, len);

                pthread_mutex_lock(&w->lock);
                if (r < 0)
                        set_error(w, r);
                else
                        w->written = k + 1;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
        }
}

static void *checker_run(void *userdata) {
        Writer *w = userdata;

        for (;;) {
                uint64_t k;
                size_t len;
                int r;

                pthread_mutex_lock(&w->lock);
                while (w->released == w->written && !(w->closed && w->written == w->submitted) &&
                       atomic_load(&w->error) == 0)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (w->released == w->written || atomic_load(&w->error) != 0) {
                        pthread_mutex_unlock(&w->lock);
                        return NULL;
                }
                k = w->released;
                len = chunk_len(w, k);
                pthread_mutex_unlock(&w->lock);

                r = chunk_check(w, k, len);
                if (r >= 0) {
                        w->verified = k * CHUNK_BYTES + len;
                        if (w->start + w->verified - w->checkpoint >= CHECKPOINT_BYTES)
                                r = checkpoint(w, w->start + w->verified);
                }

                pthread_mutex_lock(&w->lock);
                if (r < 0)
                        set_error(w, r);
                else
                        w->released = k + 1;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
        }
}

/* Hands the chunk being filled (len bytes) to the writer, and waits until
 * the next one is free. */
static int chunk_submit(Writer *w, size_t len) {
        int r;

        pthread_mutex_lock(&w->lock);
        w->last_len = len;
        w->submitted++;
        pthread_cond_broadcast(&w->cond);
        while (w->submitted - w->released >= CHUNKS && atomic_load(&w->error) == 0)
                pthread_cond_wait(&w->cond, &w->lock);
        r = atomic_load(&w->error);
        pthread_mutex_unlock(&w->lock);
        w->fill = 0;
        return r;
}

static int on_data(const void *piece, size_t len, void *userdata) {
        const uint8_t *data = piece;
        Writer *w = userdata;
        int r = atomic_load(&w->error);

        if (r != 0)
                return r;
        if (w->offset + len > w->size) {
                /* The server sends more than the manifest says: not our blob. */
                set_error(w, -EBADMSG);
                return -EBADMSG;
        }
        for (size_t done = 0; done < len;) {
                uint8_t *chunk = w->mem + (w->submitted % CHUNKS) * CHUNK_BYTES;
                size_t k = MIN(len - done, CHUNK_BYTES - w->fill);

                memcpy(chunk + w->fill, data + done, k);
                /* Hashed from the chunk, while it is in the cache: the
                 * digest is of the very bytes the writer gets. */
                sha256_update(w->hash, chunk + w->fill, k);
                w->fill += k;
                w->offset += k;
                done += k;
                if (w->fill == CHUNK_BYTES || w->offset == w->size) {
                        r = chunk_submit(w, w->fill);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* A resumed download needs the server to send the range asked for (206):
 * a 200 would be the blob from byte 0. */
static int on_headers(long status, void *userdata) {
        Writer *w = userdata;

        return w->start > 0 && status != 206 ? -EBADMSG : 0;
}

static int writer_start(Writer *w, pthread_t ret_threads[2]) {
        int r = pthread_create(&ret_threads[0], NULL, writer_run, w);

        if (r > 0)
                return -r;
        r = pthread_create(&ret_threads[1], NULL, checker_run, w);
        if (r > 0) {
                set_error(w, -r);
                pthread_mutex_lock(&w->lock);
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                pthread_join(ret_threads[0], NULL);
                return -r;
        }
        return 0;
}

/* After the transfer: the aligned part of a chunk the download left
 * unfinished goes to the writer too, then the writer finishes and stops.
 * Returns its first error. */
static int writer_finish(Writer *w, pthread_t threads[2]) {
        size_t tail = w->fill / ALIGN * ALIGN;

        if (w->offset < w->size && tail > 0 && atomic_load(&w->error) == 0) {
                w->offset -= w->fill - tail;
                (void) chunk_submit(w, tail);
        }
        pthread_mutex_lock(&w->lock);
        w->closed = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->lock);
        pthread_join(threads[0], NULL);
        pthread_join(threads[1], NULL);
        return atomic_load(&w->error);
}

/* Hashes the first n bytes of fd into h, reading them into buf (CHUNK_BYTES,
 * ALIGN-aligned; n a multiple of ALIGN when fd has O_DIRECT). */
static int hash_prefix(int fd, uint64_t n, uint8_t *buf, Sha256 *h) {
        for (uint64_t off = 0; off < n;) {
                size_t k = (size_t) MIN((uint64_t) CHUNK_BYTES, n - off);
                int r = pread_full(fd, buf, k, off);

                if (r < 0)
                        return r;
                sha256_update(h, buf, k);
                off += k;
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
        _cleanup_free_ uint8_t *buf = NULL;
        char got[65];
        int r;

        if (!h || posix_memalign((void **) &buf, ALIGN, CHUNK_BYTES) != 0)
                return -ENOMEM;
        /* Read what is on the medium, not what the page cache remembers. */
        (void) posix_fadvise(fd, 0, (off_t) size, POSIX_FADV_DONTNEED);
        r = hash_prefix(fd, size, buf, h);
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

/* Downloads from w->offset to the end into the slot, through the writer.
 * Returns 0 when the transfer ended (whole or not: the caller compares
 * w->offset with the size), or the message-ready error. */
static int download(Writer *w, const char *url, const char *what, const char *sha256, Error *error) {
        HttpOptions opts = { .ca_file = w->a->config.ca_file };
        HttpError herr = {};
        uint64_t from = w->offset;
        char range[48];
        const char *headers[] = { range, NULL };
        HttpRequest req = { .method = "GET", .url = url, .headers = from > 0 ? headers : NULL,
                            .on_headers = on_headers, .on_body = on_data, .userdata = w,
                            .piece_size = RECEIVE_BUFFER, .fail_on_error = true, .opts = &opts };
        HttpReply reply;
        pthread_t threads[2];
        int r, rw;

        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-", from);
        r = writer_start(w, threads);
        if (r < 0)
                return error_set(error, r, "cannot start writing %s: %m", what);
        /* The transfer first, then what on_data() and the writer recorded
         * during it: in one call the order of the two would be unspecified. */
        r = http_exchange(&req, &reply);
        rw = writer_finish(w, threads);
        herr.status = reply.status;
        snprintf(herr.message, sizeof(herr.message), "%s", reply.message);
        if (r < 0 && reply.failed_at == HTTP_STAGE_CALLBACK && rw < 0) {
                /* What the writer recorded is why the body was refused. */
                r = rw;
                (void) snprintf(herr.message, sizeof(herr.message), "cannot write: %s", strerror(-rw));
        }
        if (r == -EBADMSG) {
                /* Not the blob: nothing written so far can be trusted, the
                 * next try starts over. */
                w->a->state.written = 0;
                (void) agent_state_save(w->a->state_path, &w->a->state);
                if (rw == -EBADMSG)
                        return error_set(error, r,
                                         "the server sent other bytes than blob %.12s: more than its %" PRIu64 " bytes",
                                         sha256, w->size);
                return error_set(error, r,
                                 "the server sent other bytes than blob %.12s: it ignored the range from byte %" PRIu64,
                                 sha256, from);
        }
        if (rw == -EIO) {
                /* What was read back before is sound, and kept. */
                (void) checkpoint(w, w->start + w->verified);
                return error_set(error, rw, "%s does not read back as written at byte %" PRIu64, what,
                                 w->start + w->verified);
        }
        if (r >= 0 && rw < 0) {
                /* The transfer ended before the writer did. */
                r = rw;
                (void) snprintf(herr.message, sizeof(herr.message), "cannot write: %s", strerror(-rw));
        }
        /* Keep what is durable for the next try. */
        if (r < 0 || w->offset != w->size)
                (void) checkpoint(w, w->start + w->verified);
        if (r < 0)
                return error_set(error, r, "download of %s stopped at %" PRIu64 " of %" PRIu64 " bytes: %s", url,
                                 w->start + w->verified, w->size, herr.message);
        return 0;
}

static int stage(Agent *a, int fd, bool direct, uint64_t cap, const char *what, const char *url, const char *sha256,
                 uint64_t size, Error *error) {
        _cleanup_sha256_free_ Sha256 *h = sha256_new();
        _cleanup_free_ uint8_t *mem = NULL;
        Writer w = {};
        char got[65];
        int r;

        if (!h)
                return error_set(error, -ENOMEM, "out of memory");
        if (size > cap)
                return error_set(error, -EFBIG, "the image of %" PRIu64 " bytes is larger than %s (%" PRIu64 " bytes)",
                                 size, what, cap);
        if (posix_memalign((void **) &mem, ALIGN, (CHUNKS + 1) * CHUNK_BYTES) != 0)
                return error_set(error, -ENOMEM, "out of memory");
        if (a->state.written > size)
                a->state.written = 0;
        w = (Writer) { .a = a, .fd = fd, .hash = h, .mem = mem, .size = size,
                       .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
        w.direct = direct;
        /* Resume from the last durable offset, rounded down to a block:
         * the bytes before it are read back from the device and hashed. */
        w.start = w.offset = w.checkpoint = a->state.written / ALIGN * ALIGN;
        if (w.offset > 0) {
                log_info("%s: resuming at %" PRIu64 " of %" PRIu64 " bytes", what, w.offset, size);
                if (!w.direct)
                        (void) posix_fadvise(fd, 0, (off_t) w.offset, POSIX_FADV_DONTNEED);
                r = hash_prefix(fd, w.offset, mem, h);
                if (r < 0)
                        return error_set(error, r, "cannot read back what %s holds: %m", what);
        }
        if (w.offset < size) {
                r = download(&w, url, what, sha256, error);
                if (r < 0)
                        return r;
        }
        if (w.offset != size) /* the stream ended early: the server went away */
                return error_set(error, -ECONNRESET, "download of %s ended at %" PRIu64 " of %" PRIu64 " bytes", url,
                                 w.start + w.verified, size);
        sha256_final_hex(h, got);
        if (!streq(got, sha256)) {
                a->state.written = 0;
                (void) agent_state_save(a->state_path, &a->state);
                return error_set(error, -EBADMSG, "the server sent other bytes than blob %.12s (got %.12s)", sha256,
                                 got);
        }
        /* Every chunk was read back and compared as it was written, and the
         * digest is the manifest's: the device returns the blob. */
        crashpoint("slot-verified");
        r = checkpoint(&w, size);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r < 0)
                return error_set(error, r, "cannot make %s durable: %m", what);
        crashpoint("slot-synced");
        return 0;
}

int stage_fd(Agent *a, int fd, uint64_t cap, const char *what, const char *url, const char *sha256, uint64_t size,
             Error *error) {
        /* Past the page cache where the file system allows it: the bytes go
         * to the device once, and are read back from it. */
        bool direct = set_direct(fd, true) >= 0;
        int r;

        r = stage(a, fd, direct, cap, what, url, sha256, size, error);
        if (direct)
                (void) set_direct(fd, false);
        return r;
}
