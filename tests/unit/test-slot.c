/* stage_fd(): a blob streamed into a file from a server on loopback that
 * sends the blob, more than the blob (with a Content-Length, or without one
 * and without end), or less. Checks the error, the message for people and
 * the checkpoint in the state file that the next try starts from. The blob
 * spans several of the writer's chunks, the last one not a whole block
 * (written through the page cache). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "tests.h"

#include "hash.h"
#include "slot.h"
#include "state.h"
#include "util.h"

#define BLOB_SIZE (700u * 1024 + 17)
#define CAP (1u << 20)
/* A durable offset is a multiple of this (slot.c's ALIGN). */
#define ALIGN 4096u

typedef enum Body {
        BODY_EXACT,   /* the blob, with its Content-Length */
        BODY_LONGER,  /* the blob and 64 KiB more, with their Content-Length */
        BODY_ENDLESS, /* the blob and then bytes until the client hangs up, no Content-Length */
        BODY_SHORT,   /* the first half of the blob, then the connection closes */
} Body;

typedef struct Server {
        int listen_fd;
        pthread_t thread;
        Body body;
        const uint8_t *blob;
        bool got_range; /* the request asked for a Range */
        char url[160];
} Server;

static uint8_t blob[BLOB_SIZE];
static char blob_hex[SHA256_HEX_SIZE];

static bool send_bytes(int fd, const void *data, size_t n) {
        for (const char *p = data; n > 0;) {
                ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return false;
                p += k;
                n -= (size_t) k;
        }
        return true;
}

/* One connection: the request's headers, then the body the test chose. The
 * blob goes first and the surplus after a pause, so that the client has
 * written (and could checkpoint) the whole blob before it sees more. */
static void *server_run(void *userdata) {
        Server *s = userdata;
        char req[8192] = "", head[256];
        size_t got = 0;
        int fd;

        fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return NULL;
        while (got + 1 < sizeof(req) && !strstr(req, "\r\n\r\n")) {
                ssize_t k = recv(fd, req + got, sizeof(req) - 1 - got, 0);
                if (k <= 0)
                        break;
                got += (size_t) k;
        }
        s->got_range = strcasestr(req, "\r\nRange:") != NULL;
        size_t first = s->body == BODY_SHORT ? BLOB_SIZE / 2 : BLOB_SIZE;
        if (s->body == BODY_ENDLESS)
                snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
        else
                snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         s->body == BODY_LONGER ? (size_t) BLOB_SIZE + 65536 : (size_t) BLOB_SIZE);
        if (send_bytes(fd, head, strlen(head)) && send_bytes(fd, s->blob, first) &&
            (s->body == BODY_LONGER || s->body == BODY_ENDLESS)) {
                static const char more[65536];
                usleep(200 * 1000);
                for (unsigned i = 0; send_bytes(fd, more, sizeof(more)); i++)
                        if (s->body == BODY_LONGER || i > 100000)
                                break;
        }
        shutdown(fd, SHUT_WR);
        close(fd);
        return NULL;
}

static void server_start(Server *s, Body body) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(a);

        *s = (Server) { .body = body, .blob = blob };
        s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->listen_fd >= 0);
        assert_int_equal(bind(s->listen_fd, (struct sockaddr *) &a, sizeof(a)), 0);
        assert_int_equal(listen(s->listen_fd, 1), 0);
        assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *) &a, &len), 0);
        snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u/blobs/sha256/%s", ntohs(a.sin_port), blob_hex);
        assert_int_equal(pthread_create(&s->thread, NULL, server_run, s), 0);
}

static void server_stop(Server *s) {
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
}

/* The written offset in the state file, as a restarted agent reads it. */
static uint64_t saved_written(void) {
        AgentState st = {};
        uint64_t w;

        assert_int_equal(agent_state_load("agent.json", &st), 0);
        w = st.written;
        agent_state_release(&st);
        return w;
}

/* One download of the blob into target through a server sending body. */
static int stage_once(Agent *a, int fd, Body body, bool *ret_range, Error *error) {
        Server s;
        int r;

        server_start(&s, body);
        r = stage_fd(a, fd, CAP, "slot b", s.url, blob_hex, BLOB_SIZE, error);
        server_stop(&s);
        if (ret_range)
                *ret_range = s.got_range;
        return r;
}

/* More bytes than the blob has: not the blob. Reported as such (not as a
 * failure to write), and the checkpoint goes back to 0, so the next try
 * asks for the whole blob again and gets it. */
static void check_surplus(Body body) {
        Agent a = { .state_path = (char *) "agent.json" };
        _cleanup_close_ int fd = open("slot", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        _cleanup_error_ Error error = {}, error2 = {};
        bool range = true;

        assert_true(fd >= 0);
        assert_int_equal(stage_once(&a, fd, body, NULL, &error), -EBADMSG);
        assert_int_equal(error.code, -EBADMSG);
        assert_non_null(error.message);
        if (!strstr(error.message, "the server sent other bytes than blob") || !strstr(error.message, "more than its"))
                fail_msg("message: %s", error.message);
        assert_int_equal(a.state.written, 0);
        assert_int_equal(saved_written(), 0);

        assert_int_equal(stage_once(&a, fd, BODY_EXACT, &range, &error2), 0);
        assert_false(range);
        assert_int_equal(verify_fd(fd, blob_hex, BLOB_SIZE), 0);
        agent_state_release(&a.state);
}

static void test_longer(void **state _unused_) {
        check_surplus(BODY_LONGER);
}

static void test_endless(void **state _unused_) {
        check_surplus(BODY_ENDLESS);
}

/* Fewer bytes: the server went away. What is durable is kept and the next
 * try resumes with a Range. */
static void test_short_resumes(void **state _unused_) {
        Agent a = { .state_path = (char *) "agent.json" };
        _cleanup_close_ int fd = open("slot", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        _cleanup_error_ Error error = {}, error2 = {};
        bool range = false;

        assert_true(fd >= 0);
        assert_int_equal(stage_once(&a, fd, BODY_SHORT, NULL, &error), -ECONNRESET);
        assert_non_null(strstr(strempty(error.message), "stopped at"));
        /* What arrived, down to a whole block. */
        assert_int_equal(saved_written(), BLOB_SIZE / 2 / ALIGN * ALIGN);

        /* The exact blob to a request with a Range is not the rest of it. */
        assert_int_equal(stage_once(&a, fd, BODY_EXACT, &range, &error2), -EBADMSG);
        assert_true(range);
        assert_non_null(strstr(strempty(error2.message), "ignored the range from byte 356352"));
        assert_int_equal(saved_written(), 0);
        agent_state_release(&a.state);
}

/* The whole blob, into a file in dir (this test's directory, or /dev/shm:
 * tmpfs, as a live boot's rootfs file) over a file that held other bytes. */
static void check_exact(const char *dir) {
        Agent a = { .state_path = (char *) "agent.json" };
        _cleanup_free_ char *path = strdup_printf("%s/slot-%d", dir, (int) getpid());
        _cleanup_close_ int fd = -1;
        _cleanup_error_ Error error = {};
        uint8_t junk[4096];

        assert_non_null(path);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 && !streq(dir, "."))
                skip();
        assert_true(fd >= 0);
        memset(junk, 0x5a, sizeof(junk));
        for (size_t off = 0; off < CAP; off += sizeof(junk))
                assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t) off), (ssize_t) sizeof(junk));
        assert_int_equal(stage_once(&a, fd, BODY_EXACT, NULL, &error), 0);
        assert_int_equal(saved_written(), BLOB_SIZE);
        assert_int_equal(verify_fd(fd, blob_hex, BLOB_SIZE), 0);
        /* The flag was the writer's: the caller's descriptor is as it was. */
        assert_int_equal(fcntl(fd, F_GETFL) & O_DIRECT, 0);
        (void) unlink(path);
        agent_state_release(&a.state);
}

static void test_exact(void **state _unused_) {
        check_exact(".");
}

static void test_exact_tmpfs(void **state _unused_) {
        check_exact("/dev/shm");
}

static int group_setup(void **state _unused_) {
        uint32_t x = 2463534242u;

        for (size_t i = 0; i < sizeof(blob); i++) {
                x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                blob[i] = (uint8_t) x;
        }
        sha256_buffer_hex(blob, sizeof(blob), blob_hex);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_exact),
                test_in_dir(test_exact_tmpfs),
                test_in_dir(test_longer),
                test_in_dir(test_endless),
                test_in_dir(test_short_resumes),
        };
        return cmocka_run_group_tests(tests, group_setup, NULL);
}
