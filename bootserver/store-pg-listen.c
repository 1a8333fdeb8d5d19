/* The PostgreSQL driver's listener (store-pg.h): a thread with a
 * connection of its own that waits for notifications on its channels. A
 * notification is delivered when the transaction that sent it commits, so
 * nobody is woken before what it announces is durable. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "store-pg.h"
#include "util.h"

/* How long the thread waits between two attempts to connect again. */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 2000

struct PgListener {
        char *conninfo;
        char **channels;
        char *listen_sql; /* "LISTEN <channel>; LISTEN ..." */
        char *skip;
        PgNotifyFn fn;
        void *userdata;
        PgConn *conn; /* the thread's once started */
        bool listening; /* conn is up and has LISTENed */
        atomic_int backend_pid;
        int stop_pipe[2];
        pthread_t thread;
        bool started;
};

/* Connects (again) and LISTENs; the connection is lost on a failure. */
static int listener_connect(PgListener *l) {
        int r;

        if (l->conn)
                r = pg_conn_reset(l->conn);
        else
                r = pg_conn_open(l->conninfo, &l->conn, NULL);
        if (r >= 0)
                r = pg_exec(l->conn, l->listen_sql);
        l->listening = r >= 0;
        atomic_store(&l->backend_pid, r >= 0 ? pg_conn_backend_pid(l->conn) : 0);
        return r;
}

/* Waits for the socket (fd, -1: none) or the stop, at most timeout_ms (-1:
 * no limit). Returns false when the thread is to stop. */
static bool listener_wait(PgListener *l, int fd, int timeout_ms) {
        struct pollfd p[2] = { { .fd = l->stop_pipe[0], .events = POLLIN }, { .fd = fd, .events = POLLIN } };

        if (poll(p, fd >= 0 ? 2 : 1, timeout_ms) < 0 && errno != EINTR)
                log_debug("postgresql listener: poll: %m");
        return !(p[0].revents & (POLLIN | POLLHUP));
}

static void *listener_main(void *userdata) {
        PgListener *l = userdata;
        int retry_ms = RETRY_MIN_MS;
        bool lost = !l->listening; /* said so at the start */

        for (;;) {
                int n;

                if (!l->listening || !pg_conn_ok(l->conn)) {
                        if (!lost)
                                log_warning("the connection that listens for other instances' news was lost: %s",
                                            strempty(pg_last_error()));
                        lost = true;
                        if (listener_connect(l) < 0) {
                                if (!listener_wait(l, -1, retry_ms))
                                        break;
                                retry_ms = MIN(2 * retry_ms, RETRY_MAX_MS);
                                continue;
                        }
                        log_info("listening again for other instances' news (%s)", l->listen_sql);
                        lost = false;
                        retry_ms = RETRY_MIN_MS;
                        /* What was sent while no one listened is gone. */
                        l->fn(l->userdata, (1u << strv_length(l->channels)) - 1);
                }
                if (!listener_wait(l, pg_conn_socket(l->conn), -1))
                        break;
                n = pg_conn_notified(l->conn, l->skip, (const char *const *) l->channels);
                if (n < 0)
                        l->listening = false;
                else if (n > 0)
                        l->fn(l->userdata, (unsigned) n);
        }
        return NULL;
}

PgListener *pg_listener_free(PgListener *l) {
        if (!l)
                return NULL;
        if (l->started) {
                if (write(l->stop_pipe[1], "", 1) < 0)
                        log_debug("postgresql listener: cannot stop the thread: %m");
                pthread_join(l->thread, NULL);
        }
        closep(&l->stop_pipe[0]);
        closep(&l->stop_pipe[1]);
        pg_conn_free(l->conn);
        free(l->conninfo);
        strv_free(l->channels);
        free(l->listen_sql);
        free(l->skip);
        free(l);
        return NULL;
}

int pg_listener_start(const char *conninfo, const char *const *channels, const char *skip, PgNotifyFn fn,
                      void *userdata, PgListener **ret) {
        PgListener *l;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->stop_pipe[0] = l->stop_pipe[1] = -1;
        l->fn = fn;
        l->userdata = userdata;
        l->conninfo = strdup(conninfo);
        l->skip = skip ? strdup(skip) : NULL;
        if (!l->conninfo || (skip && !l->skip)) {
                pg_listener_free(l);
                return -ENOMEM;
        }
        /* One connection for every channel: one statement LISTENs on all. */
        for (size_t i = 0; channels[i]; i++) {
                char *sql = strdup_printf("%s%sLISTEN %s", strempty(l->listen_sql), l->listen_sql ? "; " : "",
                                          channels[i]);

                assert(i < 16);
                free(l->listen_sql);
                l->listen_sql = sql;
                if (!sql || strv_extend(&l->channels, channels[i]) < 0) {
                        pg_listener_free(l);
                        return -ENOMEM;
                }
        }
        if (!l->listen_sql) {
                pg_listener_free(l);
                return -EINVAL;
        }
        if (pipe2(l->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
                r = -errno;
                pg_listener_free(l);
                return r;
        }
        /* At the start, in the caller's thread, so that none is missed
         * once this returns. When the server is out of reach, the thread
         * goes on trying (and calls fn once it listens). */
        r = listener_connect(l);
        if (r < 0)
                log_warning("cannot listen for other instances' news yet (trying again): %s",
                            strempty(pg_last_error()));
        r = -pthread_create(&l->thread, NULL, listener_main, l);
        if (r < 0) {
                pg_listener_free(l);
                return r;
        }
        l->started = true;
        *ret = l;
        return 0;
}

int pg_listener_backend_pid(PgListener *l) {
        return atomic_load(&l->backend_pid);
}
