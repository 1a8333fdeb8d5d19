/* slipway-build: image definition + YUM repositories in, a signed,
 * reproducible, bootable image out. */
#include <getopt.h>
#include <sys/stat.h>
#include <time.h>

#include "apiclient.h"
#include "build.h"
#include "definition.h"
#include "fileio.h"
#include "image.h"
#include "log.h"
#include "lock.h"
#include "push.h"
#include "resolve.h"
#include "sign.h"
#include "store.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

typedef struct Globals {
        const char *store;
        const char *cache;
        bool json;
} Globals;

static void help(void) {
        printf("Usage: slipway-build [OPTIONS] COMMAND ...\n"
               "\n"
               "Bake RPM sets into versioned, immutable, signed OS images.\n"
               "\n"
               "Commands:\n"
               "  build DEFINITION        resolve, install and publish an image into the store\n"
               "  check DEFINITION        load and validate a definition, without building\n"
               "  resolve DEFINITION      resolve the packages, write the lock and print their NEVRAs;\n"
               "                          installs nothing\n"
               "  keygen PRIVATE PUBLIC   make an Ed25519 signing key pair (PEM)\n"
               "  list                    list the images in the store\n"
               "  inspect IMAGE           show an image's packages, artifacts and sizes\n"
               "  verify IMAGE            check the signature and every artifact's hash\n"
               "  export IMAGE DIR        write the manifest, signature and artifacts to DIR\n"
               "  push URL IMAGE          upload the blobs a bootserver lacks and publish the image there\n"
               "\n"
               "IMAGE is an image ID (or a prefix of 8+ digits), NAME:VERSION, or NAME (newest).\n"
               "\n"
               "Global options:\n"
               "  --store DIR        image store (env SLIPWAY_STORE; default /var/lib/slipway/store,\n"
               "                     or ~/.local/share/slipway/store when not root)\n"
               "  --cache DIR        download and metadata cache (env SLIPWAY_CACHE; default\n"
               "                     /var/cache/slipway, or ~/.cache/slipway when not root)\n"
               "  --json             machine-readable output for list and inspect\n"
               "  -v, --verbose      debug messages\n"
               "  -q, --quiet        errors only\n"
               "  -h, --help         this help\n"
               "  --version          print the version\n"
               "\n"
               "build options:\n"
               "  --version-override=V, --image-version=V   set the image version (overrides [image] version;\n"
               "                     for check too)\n"
               "  --key FILE         Ed25519 private key (env SLIPWAY_SIGNING_KEY; default\n"
               "                     /etc/slipway/signing.key)\n"
               "  --lock FILE        lock file (default: NAME.lock beside the definition; for resolve too)\n"
               "  --locked           build from the lock alone, without resolving\n"
               "  --no-disk          skip the GPT disk image\n"
               "  --parallel N       concurrent downloads (default 4)\n"
               "  --workdir DIR      staging area (default CACHE/work)\n"
               "  --keep-workdir     keep the staging root after the build\n"
               "  --force            rebuild even when the inputs are unchanged\n"
               "  --timings          print the time of each build phase (one line on stderr)\n"
               "  --guestfs-accel=auto|kvm|tcg  libguestfs appliance acceleration (default auto:\n"
               "                     KVM when a probe boot shows it runs guests, else TCG)\n"
               "\n"
               "verify options:\n"
               "  --key FILE|DIR     public key, or a directory of *.pub keys (default /etc/slipway/keys)\n"
               "\n"
               "push options:\n"
               "  --token TOKEN      the bootserver's admin token (env SLIPWAY_TOKEN)\n"
               "  --token-file FILE  read the admin token from the first line of FILE\n"
               "  --ca-file FILE     PEM certificates to verify an https bootserver (env SLIPWAY_CA_FILE)\n"
               "  --replicas-timeout SEC  wait this long for the image to reach the bootservers' replicas\n"
               "                     (default 600; 0: do not wait)\n"
               "\n"
               "SOURCE_DATE_EPOCH fixes every timestamp; the same lock and epoch give the same bytes.\n"
               "See slipway-build(1).\n");
}

static const char *default_dir(const char *env, const char *root_dir, const char *xdg_env, const char *xdg_suffix,
                               char *buf, size_t size) {
        const char *e = getenv(env), *home;
        if (!isempty(e))
                return e;
        if (geteuid() == 0)
                return root_dir;
        e = getenv(xdg_env);
        home = getenv("HOME");
        if (!isempty(e))
                snprintf(buf, size, "%s/slipway%s", e, xdg_suffix);
        else
                snprintf(buf, size, "%s/%s/slipway%s", home ? home : ".",
                         streq(xdg_env, "XDG_CACHE_HOME") ? ".cache" : ".local/share", xdg_suffix);
        return buf;
}

enum {
        OPT_STORE = 0x100,
        OPT_CACHE,
        OPT_JSON,
        OPT_VERSION,
        OPT_IMAGE_VERSION,
        OPT_KEY,
        OPT_LOCK,
        OPT_LOCKED,
        OPT_NO_DISK,
        OPT_PARALLEL,
        OPT_WORKDIR,
        OPT_KEEP,
        OPT_FORCE,
        OPT_ACCEL,
        OPT_TOKEN,
        OPT_TOKEN_FILE,
        OPT_CA_FILE,
        OPT_REPLICAS_TIMEOUT,
        OPT_TIMINGS,
};

static const struct option options[] = {
        { "store", required_argument, NULL, OPT_STORE },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "json", no_argument, NULL, OPT_JSON },
        { "verbose", no_argument, NULL, 'v' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { "image-version", required_argument, NULL, OPT_IMAGE_VERSION },
        { "version-override", required_argument, NULL, OPT_IMAGE_VERSION },
        { "key", required_argument, NULL, OPT_KEY },
        { "lock", required_argument, NULL, OPT_LOCK },
        { "locked", no_argument, NULL, OPT_LOCKED },
        { "no-disk", no_argument, NULL, OPT_NO_DISK },
        { "parallel", required_argument, NULL, OPT_PARALLEL },
        { "workdir", required_argument, NULL, OPT_WORKDIR },
        { "keep-workdir", no_argument, NULL, OPT_KEEP },
        { "force", no_argument, NULL, OPT_FORCE },
        { "guestfs-accel", required_argument, NULL, OPT_ACCEL },
        { "token", required_argument, NULL, OPT_TOKEN },
        { "token-file", required_argument, NULL, OPT_TOKEN_FILE },
        { "ca-file", required_argument, NULL, OPT_CA_FILE },
        { "replicas-timeout", required_argument, NULL, OPT_REPLICAS_TIMEOUT },
        { "timings", no_argument, NULL, OPT_TIMINGS },
        {}
};

/* The commands and how many arguments each takes: a command given another
 * number is a usage error (exit 2), as an unknown one is. */
static const struct {
        const char *verb;
        int n_args;
        const char *usage;
} commands[] = {
        { "build", 1, "build DEFINITION" },
        { "check", 1, "check DEFINITION" },
        { "resolve", 1, "resolve DEFINITION" },
        { "keygen", 2, "keygen PRIVATE PUBLIC" },
        { "list", 0, "list" },
        { "inspect", 1, "inspect IMAGE" },
        { "verify", 1, "verify IMAGE" },
        { "export", 2, "export IMAGE DIR" },
        { "push", 2, "push URL IMAGE" },
};

typedef struct Args {
        Globals g;
        BuildOptions build;
        const char *image_version;
        const char *key;
        bool key_given;
        int quiet;
        const char *token;
        const char *token_file;
        const char *ca_file;
        uint64_t replicas_timeout;
} Args;

/* --lock, or NAME.lock beside the definition; *ret_free holds what to free. */
static int lock_path_for(const Args *a, const ImageDef *def, const char **ret, char **ret_free) {
        _cleanup_free_ char *copy = NULL;
        char *slash;

        if (a->build.lock_path) {
                *ret = a->build.lock_path;
                return 0;
        }
        copy = strdup(def->path);
        if (!copy)
                return log_oom();
        slash = strrchr(copy, '/');
        if (slash)
                *slash = 0;
        *ret_free = strdup_printf("%s/%s.lock", slash ? copy : ".", def->name);
        if (!*ret_free)
                return log_oom();
        *ret = *ret_free;
        return 0;
}

/* Resolves as a build does and writes the lock, installing nothing. */
static int cmd_resolve(Args *a, char **argv) {
        _cleanup_image_def_free_ ImageDef *def = NULL;
        _cleanup_lock_free_ Lock *lock = NULL;
        _cleanup_free_ char *lock_default = NULL;
        const char *lock_path = NULL;
        int r;

        r = image_def_load(argv[0], a->image_version, &def);
        if (r < 0)
                return r;
        r = lock_path_for(a, def, &lock_path, &lock_default);
        if (r < 0)
                return r;
        r = resolve_packages(def, a->g.cache, NULL, &lock);
        if (r < 0)
                return r;
        r = mkdir_parents(lock_path, 0755);
        if (r >= 0)
                r = lock_write_unchecked(lock, lock_path);
        if (r < 0)
                return log_error_errno(r, "cannot write lock '%s': %m", lock_path);
        for (size_t i = 0; i < lock->n_packages; i++) {
                _cleanup_free_ char *nevra = lock_package_nevra(&lock->packages[i]);

                if (!nevra)
                        return log_oom();
                printf("%s\n", nevra);
        }
        fflush(stdout);
        if (!a->quiet)
                fprintf(stderr, "resolved %zu packages for %s into %s\n", lock->n_packages, def->name, lock_path);
        return 0;
}

static int cmd_build(Args *a, char **argv) {
        _cleanup_image_def_free_ ImageDef *def = NULL;
        _cleanup_free_ char *lock_default = NULL;
        char id[65];
        uint64_t epoch;
        int r;

        r = image_def_load(argv[0], a->image_version, &def);
        if (r < 0)
                return r;

        r = source_date_epoch(&epoch);
        if (r == -EINVAL)
                return log_error_errno(r, "SOURCE_DATE_EPOCH='%s' is not a number of seconds", getenv("SOURCE_DATE_EPOCH"));
        if (r < 0)
                epoch = (uint64_t) time(NULL);

        if (!a->build.lock_path) {
                _cleanup_free_ char *copy = strdup(def->path);
                char *slash;
                if (!copy)
                        return log_oom();
                slash = strrchr(copy, '/');
                if (slash)
                        *slash = 0;
                lock_default = strdup_printf("%s/%s.lock", slash ? copy : ".", def->name);
                if (!lock_default)
                        return log_oom();
                a->build.lock_path = lock_default;
        }
        a->build.epoch = epoch;
        a->build.key_path = a->key;
        a->build.store_dir = a->g.store;
        a->build.cache_dir = a->g.cache;
        a->build.quiet = a->quiet;

        r = build_image(def, &a->build, id);
        if (r < 0)
                return r;
        printf("%s\n", id);
        if (!a->quiet)
                fprintf(stderr, "built %s %s (%s) into %s\n", def->name, def->version, id, a->g.store);
        return 0;
}

/* Loads a definition as build does, and says what it describes. Nothing is
 * fetched: repositories are checked when a build resolves against them. */
static int cmd_check(Args *a, char **argv) {
        _cleanup_image_def_free_ ImageDef *def = NULL;
        size_t n;
        int r;

        r = image_def_load(argv[0], a->image_version, &def);
        if (r < 0)
                return r;
        n = strv_length(def->packages);
        printf("%s: %s %s, %zu package%s from %zu repositor%s\n", argv[0], def->name, def->version, n,
               n == 1 ? "" : "s", def->n_repos, def->n_repos == 1 ? "y" : "ies");
        return 0;
}

static int open_store_existing(const char *dir, Store **ret) {
        _cleanup_free_ char *db = path_join(dir, "catalog.db");
        int r;
        if (!db)
                return log_oom();
        if (!path_exists(db))
                return log_error_errno(-ENOENT, "no store at '%s' (build an image first, or pass --store)", dir);
        r = store_open(dir, ret);
        if (r < 0)
                return log_error_errno(r, "cannot open store '%s': %m", dir);
        return 0;
}

static int cmd_store(Args *a, const char *verb, char **argv) {
        _cleanup_store_free_ Store *s = NULL;
        int r;

        r = open_store_existing(a->g.store, &s);
        if (r < 0)
                return r;
        if (streq(verb, "list"))
                return image_list(s, a->g.json);
        if (streq(verb, "inspect"))
                return image_inspect(s, argv[0], a->g.json);
        if (streq(verb, "export"))
                return image_export(s, argv[0], argv[1]);
        return image_verify(s, argv[0], a->key_given ? a->key : "/etc/slipway/keys");
}

static int cmd_push(Args *a, char **argv) {
        _cleanup_store_free_ Store *s = NULL;
        _cleanup_free_ char *file_token = NULL;
        PushOptions o = { .quiet = a->quiet, .token = a->token, .ca_file = a->ca_file,
                          .replicas_timeout = a->replicas_timeout };
        int r;

        o.url = argv[0];
        if (a->token_file) {
                r = api_read_token_file(a->token_file, &file_token);
                if (r == -EINVAL)
                        return log_error_errno(r, "token file '%s' is empty", a->token_file);
                if (r == -EFBIG)
                        return log_error_errno(r, "token file '%s' is too large to hold a token", a->token_file);
                if (r < 0)
                        return log_error_errno(r, "cannot read the token file '%s': %m", a->token_file);
                o.token = file_token;
        }
        if (!o.token && !isempty(getenv("SLIPWAY_TOKEN")))
                o.token = getenv("SLIPWAY_TOKEN");
        if (!o.ca_file && !isempty(getenv("SLIPWAY_CA_FILE")))
                o.ca_file = getenv("SLIPWAY_CA_FILE");
        r = open_store_existing(a->g.store, &s);
        if (r < 0)
                return r;
        return push_image(s, argv[1], &o);
}

static int cmd_keygen(char **argv) {
        int r;

        r = mkdir_parents(argv[0], 0700);
        if (r >= 0)
                r = mkdir_parents(argv[1], 0755);
        if (r >= 0)
                r = sign_keygen(argv[0], argv[1]);
        if (r == -EEXIST)
                return log_error_errno(r, "'%s' or '%s' already exists; not overwriting a key", argv[0], argv[1]);
        if (r < 0)
                return log_error_errno(r, "cannot write the key pair: %m");
        printf("private key %s\npublic key  %s\n", argv[0], argv[1]);
        return 0;
}

int main(int argc, char *argv[]) {
        char store_buf[4096], cache_buf[4096];
        Args a = { .replicas_timeout = 600 };
        const char *verb;
        int c, r;

        log_set_program("slipway-build");
        a.key = getenv("SLIPWAY_SIGNING_KEY");
        if (isempty(a.key))
                a.key = "/etc/slipway/signing.key";
        a.build.accel = getenv("SLIPWAY_GUESTFS_ACCEL");

        while ((c = getopt_long(argc, argv, "vqh", options, NULL)) >= 0) {
                switch (c) {
                case OPT_STORE:
                        a.g.store = optarg;
                        break;
                case OPT_CACHE:
                        a.g.cache = optarg;
                        break;
                case OPT_JSON:
                        a.g.json = true;
                        break;
                case 'v':
                        log_set_level(LOG_LEVEL_DEBUG);
                        break;
                case 'q':
                        a.quiet = 1;
                        break;
                case 'h':
                        help();
                        return 0;
                case OPT_VERSION:
                        printf("slipway-build %s\n", SLIPWAY_VERSION);
                        return 0;
                case OPT_IMAGE_VERSION:
                        a.image_version = optarg;
                        break;
                case OPT_KEY:
                        a.key = optarg;
                        a.key_given = true;
                        break;
                case OPT_LOCK:
                        a.build.lock_path = optarg;
                        break;
                case OPT_LOCKED:
                        a.build.locked = true;
                        break;
                case OPT_NO_DISK:
                        a.build.no_disk = true;
                        break;
                case OPT_PARALLEL: {
                        int n;
                        if (safe_atoi(optarg, &n) < 0 || n < 1 || n > 64)
                                return log_error_errno(-EINVAL, "--parallel: expected 1..64, got '%s'", optarg), 2;
                        a.build.parallel = (unsigned) n;
                        break;
                }
                case OPT_WORKDIR:
                        a.build.work_dir = optarg;
                        break;
                case OPT_KEEP:
                        a.build.keep_work = true;
                        break;
                case OPT_FORCE:
                        a.build.force = true;
                        break;
                case OPT_TIMINGS:
                        a.build.timings = true;
                        break;
                case OPT_ACCEL:
                        if (!streq(optarg, "auto") && !streq(optarg, "kvm") && !streq(optarg, "tcg"))
                                return log_error_errno(-EINVAL, "--guestfs-accel: expected auto, kvm or tcg, got '%s'",
                                                       optarg), 2;
                        a.build.accel = optarg;
                        break;
                case OPT_TOKEN:
                        a.token = optarg;
                        break;
                case OPT_TOKEN_FILE:
                        a.token_file = optarg;
                        break;
                case OPT_CA_FILE:
                        a.ca_file = optarg;
                        break;
                case OPT_REPLICAS_TIMEOUT:
                        if (safe_atou64(optarg, &a.replicas_timeout) < 0 || a.replicas_timeout > 7 * 24 * 3600)
                                return log_error_errno(-EINVAL, "--replicas-timeout: expected 0..604800 seconds, got '%s'",
                                                       optarg), 2;
                        break;
                default:
                        return 2;
                }
        }
        if (optind >= argc) {
                help();
                return 2;
        }
        if (!a.g.store)
                a.g.store = default_dir("SLIPWAY_STORE", "/var/lib/slipway/store", "XDG_DATA_HOME", "/store",
                                        store_buf, sizeof(store_buf));
        if (!a.g.cache)
                a.g.cache = default_dir("SLIPWAY_CACHE", "/var/cache/slipway", "XDG_CACHE_HOME", "", cache_buf,
                                        sizeof(cache_buf));

        /* GNU getopt permutes, so options may also follow the command. */
        verb = argv[optind++];
        argv += optind;
        argc -= optind;
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                if (!streq(verb, commands[i].verb))
                        continue;
                if (argc != commands[i].n_args) {
                        log_error("usage: slipway-build %s (see --help)", commands[i].usage);
                        return 2;
                }
                break;
        }
        if (a.token && a.token_file) {
                log_error("--token and --token-file cannot be used together");
                return 2;
        }

        if (streq(verb, "build"))
                r = cmd_build(&a, argv);
        else if (streq(verb, "check"))
                r = cmd_check(&a, argv);
        else if (streq(verb, "resolve"))
                r = cmd_resolve(&a, argv);
        else if (streq(verb, "keygen"))
                r = cmd_keygen(argv);
        else if (streq(verb, "push"))
                r = cmd_push(&a, argv);
        else if (streq(verb, "list") || streq(verb, "inspect") || streq(verb, "verify") || streq(verb, "export"))
                r = cmd_store(&a, verb, argv);
        else if (streq(verb, "help")) {
                help();
                r = 0;
        } else {
                log_error("unknown command '%s' (see --help)", verb);
                return 2;
        }
        return r < 0 ? 1 : 0;
}
