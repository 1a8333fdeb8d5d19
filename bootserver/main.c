/* slipwayd: the bootserver. Image catalog, blob serving, iPXE scripts,
 * managed dnsmasq, host inventory and the agents' API. */
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "api-leases.h"
#include "replicator.h"
#include "backup.h"
#include "migrate.h"
#include "coordinator.h"
#include "store.h"
#include "fileio.h"
#include "leader.h"
#include "log.h"
#include "pipeline.h"
#include "routes.h"
#include "events.h"
#include "server.h"
#include "supervise.h"
#include "tokens.h"
#include "webhooks.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

typedef struct Args {
        const char *config_path;
        bool config_explicit;
        bool check_config;
        char **flags; /* "name", "value" pairs as given, reapplied on reload */
        char **command;
} Args;

/* Every resource's routes, in the order they are matched. */
static const Route *const routes[] = {
        metrics_routes,
        blob_routes,
        image_routes,
        host_routes,
        lease_routes,
        budget_routes,
        rollout_routes,
        fleetlock_routes,
        ipxe_routes,
        audit_routes,
        instance_routes,
        file_routes,
        ui_routes,
        whoami_routes,
        pipeline_routes,
        NULL,
};

static void help(void) {
        printf("Usage: slipwayd [OPTIONS]\n"
               "       slipwayd [OPTIONS] token create NAME [--role ROLE] | list | revoke NAME\n"
               "       slipwayd [OPTIONS] backup [--no-blobs] DIR\n"
               "       slipwayd [OPTIONS] restore DIR\n"
               "       slipwayd [OPTIONS] migrate --to CONNINFO\n"
               "\n"
               "The Slipway bootserver: image catalog, blob serving, PXE (iPXE + managed dnsmasq),\n"
               "host inventory and the agents' API.\n"
               "\n"
               "Commands:\n"
               "  (none)               run the server until SIGTERM; SIGHUP reloads the config\n"
               "  token create NAME    make an API token and print it (shown once); --role admin\n"
               "                       (the default), operator or viewer\n"
               "  token list           list the tokens' names and roles\n"
               "  token revoke NAME    remove a token\n"
               "  backup DIR           write a consistent backup of the state (database, manifest and\n"
               "                       blobs) to DIR, which must not exist or be empty; the server may\n"
               "                       be running. --no-blobs: list the blobs in the manifest only\n"
               "  restore DIR          put the backup in DIR in place as the state (the server must be\n"
               "                       stopped): checks its digests, brings in its blobs, refuses when\n"
               "                       any is missing, raises the lease epochs past the backup's\n"
               "  migrate --to CONNINFO  copy the sqlite state into the empty PostgreSQL database\n"
               "                       CONNINFO (the server must be stopped), check both sides'\n"
               "                       rows and checksums, then set [state] database to it\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE            config file (default " SERVER_CONFIG_DEFAULT_PATH ")\n"
               "  --check-config               validate the configuration and exit\n"
               "  -h, --help                   this help\n"
               "  --version                    print the version\n"
               "\n"
               "Every config key has a flag (the config file's value is overridden):\n");
        server_config_help(stdout);
        printf("\nSee slipwayd(8).\n");
}

static int parse_args(int argc, char **argv, ServerConfig *probe, Args *a) {
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i], *name, *eq, *value;
                _cleanup_free_ char *key = NULL;
                int r;

                if (streq(arg, "-h") || streq(arg, "--help")) {
                        help();
                        exit(EXIT_SUCCESS);
                }
                if (streq(arg, "--version")) {
                        printf("slipwayd %s\n", SLIPWAY_VERSION);
                        exit(EXIT_SUCCESS);
                }
                if (streq(arg, "--check-config")) {
                        a->check_config = true;
                        continue;
                }
                if (streq(arg, "-c") || streq(arg, "--config") || startswith(arg, "--config=")) {
                        if (startswith(arg, "--config="))
                                a->config_path = arg + strlen("--config=");
                        else if (i + 1 < argc)
                                a->config_path = argv[++i];
                        else
                                return log_error_errno(-EINVAL, "%s needs a file", arg);
                        a->config_explicit = true;
                        continue;
                }
                name = startswith(arg, "--");
                if (!name) {
                        /* The rest is a command. */
                        a->command = argv + i;
                        return 0;
                }
                eq = strchr(name, '=');
                key = eq ? strndup(name, (size_t) (eq - name)) : strdup(name);
                if (!key)
                        return log_oom();
                if (eq)
                        value = eq + 1;
                else if (i + 1 < argc)
                        value = argv[++i];
                else
                        return log_error_errno(-EINVAL, "--%s needs a value", key);
                r = server_config_apply_flag(probe, key, value);
                if (r < 0)
                        return r;
                if (r == 0)
                        return log_error_errno(-EINVAL, "unknown option '--%s' (see --help)", key);
                if (strv_extend(&a->flags, key) < 0 || strv_extend(&a->flags, value) < 0)
                        return log_oom();
        }
        return 0;
}

/* Builds a configuration: defaults, the file, then the flags. What the
 * server needs to run is validated in full (at start, for --check-config and
 * on SIGHUP, alike); a token command needs only a well-formed one. */
static int config_build(const Args *a, bool to_serve, ServerConfig *ret) {
        ServerConfig c;
        int r;

        r = server_config_init(&c);
        if (r >= 0)
                r = server_config_load(&c, a->config_path, a->config_explicit);
        for (size_t i = 0; r >= 0 && a->flags && a->flags[i]; i += 2)
                r = server_config_apply_flag(&c, a->flags[i], a->flags[i + 1]);
        if (r >= 0)
                r = to_serve ? server_config_validate(&c) : server_config_check(&c);
        if (r < 0) {
                server_config_release(&c);
                return r;
        }
        *ret = c;
        return 0;
}

/* Opens the state directory's database. The serving process (serving)
 * also empties tmp/, which holds only its own unfinished uploads; a command
 * beside a running server (token) leaves them alone. */
static int open_state(Server *s, bool serving) {
        _cleanup_free_ char *dbpath = NULL;
        int r;

        s->state_dir = strdup(s->config.state_dir);
        s->blob_dir = path_join(s->config.state_dir, "blobs");
        s->tmp_dir = path_join(s->config.state_dir, "tmp");
        dbpath = path_join(s->config.state_dir, "state.db");
        if (!s->state_dir || !s->blob_dir || !s->tmp_dir || !dbpath)
                return log_oom();
        r = mkdir_p(s->state_dir, 0750);
        if (r >= 0)
                r = mkdir_p(s->blob_dir, 0755);
        if (r >= 0 && serving)
                r = rm_rf(s->tmp_dir);
        if (r >= 0)
                r = mkdir_p(s->tmp_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot set up the state directory '%s': %m", s->state_dir);
        s->seen = seen_log_new();
        if (!s->seen)
                return log_oom();
        return store_db_open(s->config.database ?: dbpath, &s->store);
}

/* Writes the last_seen of the check-ins answered by a read (seen.h). A
 * failure is logged once, and its end. */
static void flush_seen(Server *s) {
        static bool failing;
        int r = seen_log_flush(s->seen, s->store);

        if (r < 0 && !failing)
                log_warning("cannot record when hosts were last seen (kept for the next try): %s",
                            store_last_error() ?: strerror(-r));
        else if (r >= 0 && failing)
                log_info("recording when hosts were last seen again");
        failing = r < 0;
}

static void server_release(Server *s) {
        /* The waiting requests get their answer while the daemon still runs. */
        lease_waiters_stop(s);
        /* No request may stay suspended for a fetch, or an event. */
        replicator_stop(s);
        event_hub_stop(s);
        server_stop(s);
        event_hub_free(s);
        replicator_free(s);
        if (s->seen && s->store)
                flush_seen(s);
        seen_log_free(s->seen);
        store_db_free(s->store);
        server_config_release(&s->config);
        pthread_rwlock_destroy(&s->config_lock);
        free(s->state_dir);
        free(s->blob_dir);
        free(s->tmp_dir);
        free(s->public_url);
        leader_free(s->leader);
}

static int print_token(const char *name, const char *role, long long created, void *u _unused_) {
        char when[32];
        time_t t = (time_t) created;
        struct tm tm;

        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
        printf("%-24s %-8s %s UTC\n", name, role, when);
        return 0;
}

/* token create NAME [--role ROLE]: the name and the role, admin unless
 * given. */
static int token_create_args(char **cmd, const char **ret_name, Role *ret_role) {
        const char *name = NULL, *role = "admin";
        Role ro;

        for (size_t i = 2; cmd[i]; i++) {
                if (streq(cmd[i], "--role") && cmd[i + 1])
                        role = cmd[++i];
                else if (startswith(cmd[i], "--role="))
                        role = cmd[i] + strlen("--role=");
                else if (!name && !startswith(cmd[i], "-"))
                        name = cmd[i];
                else
                        return log_error_errno(-EINVAL, "usage: slipwayd token create NAME [--role admin|operator|viewer]");
        }
        if (!name || !name[0] || strlen(name) > 64)
                return log_error_errno(-EINVAL, "token name: 1 to 64 characters");
        ro = role_from_string(role);
        if (ro < 0)
                return log_error_errno(-EINVAL, "unknown role '%s': admin, operator or viewer", role);
        *ret_name = name;
        *ret_role = ro;
        return 0;
}

static int token_command(Server *s, char **cmd) {
        _cleanup_free_ char *token = NULL;
        const char *actor = getenv("USER") ? getenv("USER") : "root";
        _cleanup_free_ char *who = strdup_printf("cli:%s", actor);
        const char *name = NULL;
        Role role = ROLE_ADMIN;
        int r;

        if (!cmd[1] || (!streq(cmd[1], "list") && !cmd[2]))
                return log_error_errno(-EINVAL, "usage: slipwayd token create|list|revoke [NAME]");
        if (streq(cmd[1], "create")) {
                r = token_create_args(cmd, &name, &role);
                if (r < 0)
                        return r;
                r = tokens_create(s->store, name, role, (int64_t) time(NULL), who, &token);
                if (r == -EEXIST)
                        return log_error_errno(r, "a token called '%s' exists already", name);
                if (r < 0)
                        return log_error_errno(r, "cannot create the token '%s': %m", name);
                printf("%s\n", token);
                return 0;
        }
        if (streq(cmd[1], "revoke")) {
                r = tokens_revoke(s->store, cmd[2], (int64_t) time(NULL), who);
                if (r == -ENOENT)
                        return log_error_errno(r, "no token called '%s'", cmd[2]);
                if (r < 0)
                        return log_error_errno(r, "cannot revoke the token '%s': %m", cmd[2]);
                return 0;
        }
        if (streq(cmd[1], "list"))
                return tokens_list(s->store, print_token, NULL);
        return log_error_errno(-EINVAL, "unknown token command '%s'", cmd[1]);
}

static void print_counts(const StoreSnapshotInfo *i) {
        printf("  %" PRIu64 " hosts, %" PRIu64 " images, %" PRIu64 " rollouts, %" PRIu64 " audit entries, %" PRIu64
               " admin tokens; schema %d\n",
               i->hosts, i->images, i->rollouts, i->audit, i->tokens, i->schema_version);
}

static int backup_command(const ServerConfig *c, char **cmd) {
        _cleanup_(backup_report_release) BackupReport rep = {};
        BackupOptions o = { .database = c->database };
        const char *dir = NULL;
        char size[32], bytes[32];
        int r;

        for (size_t i = 1; cmd[i]; i++) {
                if (streq(cmd[i], "--no-blobs"))
                        o.no_blobs = true;
                else if (!dir && !startswith(cmd[i], "-"))
                        dir = cmd[i];
                else
                        return log_error_errno(-EINVAL, "usage: slipwayd backup [--no-blobs] DIR");
        }
        if (!dir)
                return log_error_errno(-EINVAL, "usage: slipwayd backup [--no-blobs] DIR");
        r = backup_create(c->state_dir, dir, &o, (int64_t) time(NULL), &rep);
        if (r == -EEXIST)
                return log_error_errno(r, "'%s' exists and is not an empty directory", dir);
        if (r == -ENOENT)
                return log_error_errno(r, "no state database in '%s'", c->state_dir);
        if (r == -ESTALE)
                return log_error_errno(r, "a blob went from '%s' while the backup was made (an image deleted "
                                       "meanwhile?); try again", c->state_dir);
        if (r < 0)
                return log_error_errno(r, "cannot back up '%s' to '%s': %m", c->state_dir, dir);
        printf("backup of '%s' in '%s':\n", c->state_dir, dir);
        print_counts(&rep.info);
        printf("  database %s, sha256 %s, lease epoch %" PRIu64 "\n", format_bytes(size, sizeof size, rep.db_size),
               rep.db_sha256, rep.info.lease_epoch);
        if (o.database)
                printf("  snapshot in %.3f s (pg_dump, custom format: %s; %s)\n", rep.snapshot.usec / 1e6,
                       rep.tool_version, rep.server_version);
        else
                printf("  snapshot in %.3f s (%" PRIu64 " pages, %u steps, the longest %.3f s, %u waits)\n",
                       rep.snapshot.usec / 1e6, rep.snapshot.pages, rep.snapshot.steps,
                       rep.snapshot.max_step_usec / 1e6, rep.snapshot.busy);
        if (o.no_blobs)
                printf("  %zu blobs listed, not kept (--no-blobs)\n", rep.info.n_blobs);
        else
                printf("  %zu blobs (%s): %zu hard-linked, %zu copied and verified\n", rep.info.n_blobs,
                       format_bytes(bytes, sizeof bytes, rep.blob_bytes), rep.linked, rep.copied);
        printf("  done in %.3f s\n", rep.usec / 1e6);
        return 0;
}

static int restore_command(const ServerConfig *c, char **cmd) {
        _cleanup_(restore_report_release) RestoreReport rep = {};
        _cleanup_close_ int lock = -1;
        _cleanup_free_ char *who = strdup_printf("cli:%s", getenv("USER") ?: "root");
        char when[32];
        struct tm tm;
        pid_t holder = 0;
        int r;

        if (!cmd[1] || cmd[2] || startswith(cmd[1], "-"))
                return log_error_errno(-EINVAL, "usage: slipwayd restore DIR");
        if (!who)
                return log_oom();
        r = mkdir_p(c->state_dir, 0750);
        if (r < 0)
                return log_error_errno(r, "cannot make the state directory '%s': %m", c->state_dir);
        r = state_lock_take(c->state_dir, &lock, &holder);
        if (r == -EBUSY)
                return log_error_errno(r, "slipwayd is running on '%s' (pid %d): stop it before a restore",
                                       c->state_dir, (int) holder);
        if (r < 0)
                return log_error_errno(r, "cannot lock the state directory '%s': %m", c->state_dir);
        r = backup_restore(c->state_dir, c->database, cmd[1], (int64_t) time(NULL), who, &rep);
        for (size_t i = 0; rep.missing && rep.missing[i]; i++)
                fprintf(stderr, "missing blob %s\n", rep.missing[i]);
        if (r < 0)
                return r;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&(time_t) { (time_t) rep.backup_created }, &tm));
        if (c->database)
                printf("restored the backup '%s' of %s UTC into the PostgreSQL database (blobs in '%s'):\n", cmd[1],
                       when, c->state_dir);
        else
                printf("restored the backup '%s' of %s UTC into '%s':\n", cmd[1], when, c->state_dir);
        print_counts(&rep.info);
        printf("  blobs: %zu there already, %zu copied from the backup and verified\n", rep.blobs_present,
               rep.blobs_copied);
        printf("  lease epoch: %" PRIu64 " in the backup, %" PRIu64 " in the replaced state, from now on above %" PRIu64
               "\n",
               rep.epoch_backup, rep.epoch_previous, rep.epoch);
        if (rep.epoch_unfinished)
                printf("  lease epoch %" PRIu64 " known to a restore that did not finish, counted too\n",
                       rep.epoch_unfinished);
        if (rep.enroll_key_restored)
                printf("  the enrollment key is the backup's (the state had none)\n");
        if (rep.leases_renumbered)
                printf("  %" PRIu64 " leases held in the backup carry new epochs\n", rep.leases_renumbered);
        if (rep.previous)
                printf("  the replaced database is kept as '%s'\n", rep.previous);
        printf("  done in %.3f s\n", rep.usec / 1e6);
        return 0;
}

static void migrate_progress(const char *table, uint64_t rows, bool done, void *userdata) {
        (void) userdata;
        fprintf(stderr, "migrate: %s: %" PRIu64 " rows%s\n", table, rows, done ? ", done" : " so far");
}

static int migrate_command(const ServerConfig *c, char **cmd) {
        _cleanup_(migrate_report_release) MigrateReport rep = {};
        _cleanup_close_ int lock = -1;
        const char *to = NULL;
        pid_t holder = 0;
        int r;

        for (size_t i = 1; cmd[i]; i++) {
                if (streq(cmd[i], "--to") && cmd[i + 1] && !to)
                        to = cmd[++i];
                else if (startswith(cmd[i], "--to=") && !to)
                        to = cmd[i] + strlen("--to=");
                else
                        return log_error_errno(-EINVAL, "usage: slipwayd migrate --to CONNINFO");
        }
        if (!to || !to[0])
                return log_error_errno(-EINVAL, "usage: slipwayd migrate --to CONNINFO");
        if (!path_exists(c->state_dir))
                return log_error_errno(-ENOENT, "no state directory '%s'", c->state_dir);
        r = state_lock_take(c->state_dir, &lock, &holder);
        if (r == -EBUSY)
                return log_error_errno(r, "slipwayd is running on '%s' (pid %d): stop it before a migration",
                                       c->state_dir, (int) holder);
        if (r < 0)
                return log_error_errno(r, "cannot lock the state directory '%s': %m", c->state_dir);
        r = migrate_run(c->state_dir, to, migrate_progress, NULL, &rep);
        if (r < 0)
                return r;
        printf("migrated the sqlite state of '%s' into PostgreSQL:\n", c->state_dir);
        print_counts(&rep.info);
        printf("  lease epoch %" PRIu64 "\n", rep.info.lease_epoch);
        printf("  %-20s %10s  %s\n", "table", "rows", "checksum (sqlite = PostgreSQL)");
        for (size_t i = 0; i < rep.n_tables; i++)
                printf("  %-20s %10" PRIu64 "  %.16s = %.16s\n", rep.source[i].name, rep.source[i].rows,
                       rep.source[i].sha256, rep.target[i].sha256);
        printf("  %" PRIu64 " rows copied in %.3f s, read back and compared in %.3f s; done in %.3f s\n", rep.rows,
               rep.copy_usec / 1e6, rep.verify_usec / 1e6, rep.usec / 1e6);
        printf("  the blobs stay in '%s'; next: set [state] database and start slipwayd\n", c->state_dir);
        return 0;
}

/* SIGHUP: a new configuration where it can change while running. */
static void reload(Server *s, const Args *a, Supervisor *sup) {
        ServerConfig c;

        if (config_build(a, true, &c) < 0) {
                log_error("reload: the configuration has errors; keeping the old one");
                return;
        }
        if (!streq_ptr(c.listen, s->config.listen) || !streq_ptr(c.state_dir, s->config.state_dir) ||
            !streq_ptr(c.tls_cert, s->config.tls_cert) || !streq_ptr(c.tls_key, s->config.tls_key) ||
            c.threads != s->config.threads || !streq_ptr(c.instance, s->config.instance))
                log_warning("reload: listen, state-dir, tls-*, threads and instance take effect at the next start");
        if (!streq_ptr(c.database, s->config.database))
                log_warning("reload: database changed; restart slipwayd to move to it (the state stays where it is "
                            "until then)");
        /* Keep what only a restart can change. */
        free(c.listen);
        c.listen = s->config.listen ? strdup(s->config.listen) : NULL;
        free(c.state_dir);
        c.state_dir = strdup(s->config.state_dir);
        free(c.database);
        c.database = s->config.database ? strdup(s->config.database) : NULL;
        free(c.tls_cert);
        c.tls_cert = s->config.tls_cert ? strdup(s->config.tls_cert) : NULL;
        free(c.tls_key);
        c.tls_key = s->config.tls_key ? strdup(s->config.tls_key) : NULL;
        c.threads = s->config.threads;
        free(c.instance);
        c.instance = s->config.instance ? strdup(s->config.instance) : NULL;

        char *url = server_config_public_url(&c, s->port);
        pthread_rwlock_wrlock(&s->config_lock);
        server_config_release(&s->config);
        s->config = c;
        if (url) {
                free(s->public_url);
                s->public_url = url;
        }
        log_set_level(log_level_from_string(s->config.log_level));
        pthread_rwlock_unlock(&s->config_lock);
        supervisor_reload(sup, s);
        log_info("configuration reloaded");
}

/* The coordinator's periodic work: this instance's beat (heartbeat, and
 * the leader lease taken or renewed), then, on the instance that holds the
 * lease, expired leases and rollouts moving on. Each commits on its own and
 * checks first that this instance still holds the lease with its epoch;
 * the ticker logs a failure once. */
static void coordinate(Server *s, CoordTicker *t) {
        CoordConfig cc = server_coord_config(s);
        /* The config changes on this thread only (reload): no lock. */
        int r = leader_beat(s->leader, s->store, s->public_url, s->config.leader_ttl * 1000);

        if (r <= 0)
                return;
        if (coord_ticker_fence(t, leader_holder(s->leader), leader_epoch(s->leader)) < 0) {
                log_oom();
                return;
        }
        uint64_t t0 = now_usec(), took;
        (void) coord_ticker_run(t, s->store, &cc, (uint64_t) time(NULL));
        pipelines_tick(s->store, &cc, leader_holder(s->leader), (int64_t) leader_epoch(s->leader),
                       (uint64_t) time(NULL));
        took = now_usec() - t0;
        /* Written on this thread only: the maximum needs no compare-and-swap. */
        atomic_fetch_add(&s->metrics.tick_usec_sum, took);
        if (took > atomic_load(&s->metrics.tick_usec_max))
                atomic_store(&s->metrics.tick_usec_max, took);
        atomic_fetch_add(&s->metrics.ticks, 1);
}

/* The instance's name: [server] instance, else HOST:PORT of this machine's
 * name (what a name may not hold made '-') and the bound port. Caller
 * frees. */
static char *instance_name(const Server *s) {
        char host[256] = "";
        char *name;

        if (s->config.instance)
                return strdup(s->config.instance);
        if (gethostname(host, sizeof host - 1) < 0 || !host[0])
                snprintf(host, sizeof host, "slipwayd");
        host[58] = '\0'; /* room for ":65535" within the 64 a name may have */
        for (char *p = host; *p; p++)
                if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_", *p))
                        *p = '-';
        name = strdup_printf("%s:%u", host, (unsigned) s->port);
        return name;
}

static int write_url_file(Server *s) {
        _cleanup_free_ char *path = path_join(s->state_dir, "slipwayd.url");
        _cleanup_free_ char *text = strdup_printf("%s\n", s->public_url);

        if (!path || !text)
                return -ENOMEM;
        return write_file_atomic(path, text, strlen(text), 0644);
}

int main(int argc, char **argv) {
        Server s = {};
        Args a = { .config_path = SERVER_CONFIG_DEFAULT_PATH };
        ServerConfig probe;
        Supervisor *sup = NULL;
        CoordTicker *ticker = NULL;
        _cleanup_close_ int lock = -1;
        sigset_t mask;
        int r;

        log_set_program("slipwayd");
        if (server_config_init(&probe) < 0)
                return EXIT_FAILURE;
        r = parse_args(argc, argv, &probe, &a);
        server_config_release(&probe);
        if (r < 0)
                return EXIT_FAILURE;
        r = config_build(&a, !a.command || a.check_config, &s.config);
        if (r < 0) {
                strv_free(a.flags);
                return EXIT_FAILURE;
        }
        if (a.check_config) {
                printf("%s: configuration is valid\n", a.config_explicit ? a.config_path : "slipwayd");
                server_config_release(&s.config);
                strv_free(a.flags);
                return EXIT_SUCCESS;
        }
        pthread_rwlock_init(&s.config_lock, NULL);
        log_set_level(log_level_from_string(s.config.log_level));

        if (a.command && (streq(a.command[0], "backup") || streq(a.command[0], "restore") ||
                          streq(a.command[0], "migrate"))) {
                r = streq(a.command[0], "backup")    ? backup_command(&s.config, a.command)
                    : streq(a.command[0], "restore") ? restore_command(&s.config, a.command)
                                                     : migrate_command(&s.config, a.command);
                server_release(&s);
                strv_free(a.flags);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        if (a.command) {
                if (!streq(a.command[0], "token")) {
                        log_error("unknown command '%s' (see --help)", a.command[0]);
                        r = -EINVAL;
                } else {
                        r = open_state(&s, false);
                        if (r >= 0)
                                r = token_command(&s, a.command);
                }
                server_release(&s);
                strv_free(a.flags);
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }

        log_set_json(server_config_log_json(&s.config));
        s.started_usec = now_usec();
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        sigaddset(&mask, SIGCHLD);
        /* Blocked before any thread starts, so only the main loop sees them. */
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        /* One server per state directory; a restore takes the same lock. */
        r = mkdir_p(s.config.state_dir, 0750);
        if (r < 0)
                log_error_errno(r, "cannot make the state directory '%s': %m", s.config.state_dir);
        else {
                pid_t holder = 0;

                r = state_lock_take(s.config.state_dir, &lock, &holder);
                if (r == -EBUSY)
                        log_error_errno(r, "another slipwayd (pid %d) or a restore is using '%s'", (int) holder,
                                        s.config.state_dir);
                else if (r < 0)
                        log_error_errno(r, "cannot lock the state directory '%s': %m", s.config.state_dir);
        }
        if (r >= 0)
                r = open_state(&s, true);
        if (r >= 0)
                r = server_start(&s, routes);
        if (r >= 0 && lease_waiters_start(&s) < 0)
                log_warning("cannot start the lease waiters' thread: lease requests with \"wait\" are answered at once");
        if (r >= 0 && event_hub_start(&s) < 0)
                log_warning("cannot start the event stream: GET /v1/events answers 503");
        if (r >= 0) {
                s.public_url = server_config_public_url(&s.config, s.port);
                r = s.public_url ? write_url_file(&s) : log_oom();
        }
        if (r >= 0) {
                _cleanup_free_ char *name = instance_name(&s);

                r = name ? leader_new(name, SLIPWAY_VERSION, &s.leader) : -ENOMEM;
                if (r >= 0)
                        log_set_field("instance", name);
                if (r < 0)
                        log_error_errno(r, "cannot set up the instance: %m");
        }
        /* Only a shared database has peers to copy blobs from. */
        if (r >= 0 && replicator_start(&s, s.config.database != NULL) < 0)
                log_warning("cannot start the replicator: blobs are not copied between instances");
        if (r >= 0 && webhooks_start(&s, &s.webhooks) < 0)
                log_warning("cannot start the webhooks' sender: no webhook is sent");
        if (r >= 0)
                r = supervisor_new(&s, &sup);
        if (r >= 0 && !(ticker = coord_ticker_new()))
                r = log_oom();
        if (r < 0) {
                webhooks_stop(s.webhooks);
                supervisor_free(sup);
                server_release(&s);
                s.webhooks = webhooks_free(s.webhooks);
                strv_free(a.flags);
                return EXIT_FAILURE;
        }
        if (s.config.database) {
                _cleanup_free_ char *where = store_db_describe(s.config.database);

                log_info("serving on %s (port %u) as %s, instance '%s', state in %s, blobs in '%s'", s.config.listen,
                         s.port, s.public_url, leader_name(s.leader), where ?: "PostgreSQL", s.state_dir);
        } else
                log_info("serving on %s (port %u) as %s, instance '%s', state in '%s'", s.config.listen, s.port,
                         s.public_url, leader_name(s.leader), s.state_dir);

        for (;;) {
                struct timespec tick = { .tv_sec = 1 };
                int sig = sigtimedwait(&mask, NULL, &tick);

                if (sig == SIGTERM || sig == SIGINT) {
                        log_info("stopping (%s)", strsignal(sig));
                        break;
                }
                if (sig == SIGHUP)
                        reload(&s, &a, sup);
                supervisor_tick(sup);
                flush_seen(&s);
                coordinate(&s, ticker);
        }
        /* An event being sent is cut off: the next leader sends it. */
        webhooks_stop(s.webhooks);
        /* The next instance takes over at its next beat, not at the expiry. */
        (void) leader_resign(s.leader, s.store);
        pipelines_stop();
        coord_ticker_free(ticker);
        supervisor_free(sup);
        server_release(&s);
        s.webhooks = webhooks_free(s.webhooks);
        strv_free(a.flags);
        return EXIT_SUCCESS;
}
