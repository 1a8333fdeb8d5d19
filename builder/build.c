#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "bootfiles.h"
#include "build.h"
#include "crashpoint.h"
#include "disk.h"
#include "fetch.h"
#include "fileio.h"
#include "hash.h"
#include "image.h"
#include "initramfs.h"
#include "install.h"
#include "lock.h"
#include "log.h"
#include "manifest.h"
#include "progress.h"
#include "resolve.h"
#include "rootfs.h"
#include "sigcheck.h"
#include "sign.h"
#include "store.h"
#include "toolversion.h"
#include "util.h"

#ifndef SLIPWAY_VERSION
#define SLIPWAY_VERSION "0.1"
#endif

typedef struct Artifact {
        const char *type;
        char *path;
        const char *fstype;
        char sha256[65];
        uint64_t size;
} Artifact;

/* Fails early, before any long work, when the signing key cannot sign. */
static int check_signing_key(const char *key_path) {
        uint8_t sig[ED25519_SIG_SIZE];
        int r;

        if (isempty(key_path))
                return log_error_errno(-ENOKEY, "no signing key given (--key or SLIPWAY_SIGNING_KEY)");
        r = sign_data(key_path, "probe", 5, sig);
        if (r == -ENOENT)
                return log_error_errno(r, "signing key '%s' does not exist (create one with 'slipway-build keygen')",
                                       key_path);
        if (r == -EBADMSG)
                return log_error_errno(r, "signing key '%s' is not an Ed25519 private key in PEM form", key_path);
        if (r < 0)
                return log_error_errno(r, "cannot use signing key '%s': %m", key_path);
        return 0;
}

/* The lock must match what the definition asks for, or --locked would
 * silently build something else. */
static int check_lock_matches(const ImageDef *def, const Lock *lock, const char *lock_path) {
        if (!streq_ptr(def->arch, lock->arch))
                return log_error_errno(-EINVAL, "lock '%s' is for %s, the definition for %s", lock_path,
                                       strempty(lock->arch), def->arch);
        if (strv_length(def->packages) != strv_length(lock->requested))
                goto mismatch;
        for (char **p = def->packages; *p; p++)
                if (!strv_contains(lock->requested, *p))
                        goto mismatch;
        /* The streams enabled: each [modules] enable entry is a module the
         * lock has as enabled, not default or required, and the other way
         * round; no stream of a disabled module is active. */
        {
                size_t enabled = 0;

                for (size_t i = 0; i < lock->n_modules; i++) {
                        const LockModule *m = &lock->modules[i];
                        _cleanup_free_ char *entry = NULL;

                        if (strv_contains(def->modules_disable, m->name))
                                goto mismatch;
                        if (m->is_default || m->required_by)
                                continue;
                        enabled++;
                        entry = m->profile ? strdup_printf("%s:%s/%s", m->name, m->stream, m->profile)
                                           : strdup_printf("%s:%s", m->name, m->stream);
                        if (!entry)
                                return log_oom();
                        if (!strv_contains(def->modules, entry))
                                goto mismatch;
                }
                if (enabled != strv_length(def->modules))
                        goto mismatch;
        }
        return 0;
mismatch:
        return log_error_errno(-EINVAL,
                               "lock '%s' was resolved for a different package list or module streams than '%s'; "
                               "build without --locked to resolve again",
                               lock_path, def->path);
}

/* The lock as an image carries it (in its manifest and its build key):
 * without the repositories' mirror lists, which mirror managers change at
 * will and which say where the packages were found, not what they are. */
static int lock_to_image_json(const Lock *lock, bool checked, json_t **ret) {
        json_t *j = NULL, *repo;
        size_t i;
        int r;

        r = checked ? lock_to_json(lock, &j) : lock_to_json_unchecked(lock, &j);
        if (r < 0)
                return r;
        json_array_foreach(json_object_get(j, "repos"), i, repo)
                (void) json_object_del(repo, "mirrors");
        *ret = j;
        return 0;
}

/* A digest of every input that decides the bytes of the image: the lock as
 * resolved (what checking the signatures adds to it follows from the
 * packages' bytes and the trust), what each repository trusts, the versions
 * of the tools that write the image's filesystems and disk, and the build
 * host's systemd-boot when the image brings none of its own. */
static int compute_build_key(const ImageDef *def, const BuildOptions *opts, const Lock *lock, const Trust *trust,
                             const char *key_id, json_t *tools, json_t *host_loader, char ret[65]) {
        _cleanup_free_ char *s = NULL;
        json_t *lock_json = NULL, *trust_json = NULL, *o;

        if (lock_to_image_json(lock, false, &lock_json) < 0 || trust_to_json(trust, &trust_json) < 0) {
                json_decref(lock_json);
                return -ENOMEM;
        }
        o = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:o, s:o, s:I, s:I, s:I, s:s, s:s, s:I, s:b, s:s, s:o}",
                      "builder", SLIPWAY_VERSION, "name", def->name, "version", def->version, "cmdline", def->cmdline,
                      "min_from_version", def->min_from_version, "lock", lock_json, "trust", trust_json, "esp_size",
                      (json_int_t) def->esp_size, "root_size", (json_int_t) def->root_size, "var_size",
                      (json_int_t) def->var_size, "rootfs", rootfs_type_to_string(def->rootfs_type), "rpmdb",
                      def->rpmdb_path, "epoch", (json_int_t) opts->epoch, "disk", !opts->no_disk, "key", key_id,
                      "modules", json_array());
        if (!o)
                return -ENOMEM;
        if (json_object_set(o, "tools", tools) < 0 ||
            json_object_set_new(o, "loader", json_string(boot_loader_type_to_string(def->loader))) < 0 ||
            json_object_set_new(o, "firmware", json_string(boot_firmware_to_string(def->firmware))) < 0 ||
            (host_loader && json_object_set(o, "host_loader", host_loader) < 0)) {
                json_decref(o);
                return -ENOMEM;
        }
        for (char **m = def->initramfs_modules; m && *m; m++)
                json_array_append_new(json_object_get(o, "modules"), json_string(*m));
        s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
        json_decref(o);
        if (!s)
                return -ENOMEM;
        sha256_buffer_hex(s, strlen(s), ret);
        return 0;
}

static int write_release(const char *root, const ImageDef *def) {
        _cleanup_free_ char *dir = path_join(root, "etc/slipway"), *p = NULL, *text = NULL;
        int r;

        if (!dir)
                return -ENOMEM;
        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        p = path_join(dir, "release");
        text = strdup_printf("NAME=%s\nVERSION=%s\nARCH=%s\n", def->name, def->version, def->arch);
        if (!p || !text)
                return -ENOMEM;
        return write_file_atomic(p, text, strlen(text), 0644);
}

static int obtain_lock(const ImageDef *def, const BuildOptions *opts, Progress *progress, Lock **ret) {
        _cleanup_lock_free_ Lock *lock = NULL;
        int r;

        if (opts->locked) {
                r = lock_read(opts->lock_path, &lock);
                if (r < 0)
                        return r == -ENOENT ? log_error_errno(r, "lock '%s' does not exist; build once without "
                                                                 "--locked to create it",
                                                              opts->lock_path)
                                            : r;
                r = check_lock_matches(def, lock, opts->lock_path);
                if (r < 0)
                        return r;
                progress_phase(progress, "lock", "%zu packages from %s", lock->n_packages, opts->lock_path);
        } else {
                r = resolve_packages(def, opts->cache_dir, progress, &lock);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(lock);
        return 0;
}

/* Writes the lock file of a resolved build: once its packages' signatures
 * have been checked, so that it carries their keys. */
static int write_lock(const Lock *lock, const char *path) {
        int r;

        r = mkdir_parents(path, 0755);
        if (r >= 0)
                r = lock_write(lock, path);
        if (r < 0)
                return log_error_errno(r, "cannot write lock '%s': %m", path);
        return 0;
}

/* An unchanged resolved build: the lock file gets the lock the published
 * image was built from, signing keys included. */
static int write_published_lock(Store *store, const char *id, const char *path) {
        _cleanup_lock_free_ Lock *lock = NULL;
        LoadedImage img;
        int r;

        r = image_load(store, id, &img);
        if (r < 0)
                return r;
        r = img.manifest->lock ? lock_from_json(img.manifest->lock, &lock) : -EINVAL;
        image_release(&img);
        if (r < 0)
                return log_error_errno(r, "image %s carries no valid lock", id);
        return write_lock(lock, path);
}

/* Where a build spends its time: -v logs each phase as it ends, --timings
 * prints them all on one line at the end. */
#define TIMINGS_MAX 12

typedef struct Timings {
        const char *phase[TIMINGS_MAX];
        uint64_t usec[TIMINGS_MAX];
        size_t n;
        uint64_t start;
} Timings;

static void timings_put(Timings *tm, const char *phase, uint64_t usec) {
        log_debug("%s took %" PRIu64 " ms", phase, usec / 1000);
        if (tm->n < TIMINGS_MAX) {
                tm->phase[tm->n] = phase;
                tm->usec[tm->n++] = usec;
        }
}

static void timings_add(Timings *tm, const char *phase, uint64_t start_usec) {
        timings_put(tm, phase, now_usec() - start_usec);
}

/* "timings: resolve 210 ms, fetch 95 ms, ..., total 1234 ms" */
static void timings_print(const Timings *tm, const BuildOptions *opts) {
        if (!opts->timings)
                return;
        fputs("timings:", stderr);
        for (size_t i = 0; i < tm->n; i++)
                fprintf(stderr, " %s %" PRIu64 " ms,", tm->phase[i], tm->usec[i] / 1000);
        fprintf(stderr, " total %" PRIu64 " ms\n", (now_usec() - tm->start) / 1000);
}

typedef struct InitramfsJob {
        const char *root;
        const char *kver;
        char *const *modules;
        uint64_t epoch;
        const char *out_path;
        int result;
        uint64_t usec;
} InitramfsJob;

static void *initramfs_job_run(void *userdata) {
        InitramfsJob *j = userdata;
        uint64_t t = now_usec();

        j->result = initramfs_make(j->root, j->kver, j->modules, j->epoch, j->out_path);
        j->usec = now_usec() - t;
        if (j->result >= 0)
                crashpoint("initramfs");
        return NULL;
}

/* The initramfs is compressed in this process (zlib, one CPU) while mkfs
 * runs as a child (another CPU). Both only read the staging root and each
 * writes its own file, so they run side by side; neither output depends on
 * the timing. Without a thread, they run one after the other. Each logs its
 * own errors; the initramfs's comes first, as when they ran in sequence. */
static int make_initramfs_and_rootfs(const ImageDef *def, const char *root, const char *kver, uint64_t epoch,
                                     const char *uuid_seed, const char *initrd_path, const char *rootfs_path,
                                     Timings *tm) {
        InitramfsJob job = {
                .root = root,
                .kver = kver,
                .modules = def->initramfs_modules,
                .epoch = epoch,
                .out_path = initrd_path,
        };
        pthread_t thread;
        uint64_t t;
        int k, r;

        k = pthread_create(&thread, NULL, initramfs_job_run, &job);
        if (k != 0) {
                log_debug("cannot start a thread for the initramfs (%s), making it first", strerror(k));
                initramfs_job_run(&job);
                if (job.result < 0)
                        return job.result;
        }
        t = now_usec();
        r = rootfs_make(root, def->rootfs_type, epoch, uuid_seed, rootfs_path);
        timings_add(tm, "mkfs", t);
        if (r >= 0)
                crashpoint("rootfs");
        if (k == 0) {
                k = pthread_join(thread, NULL);
                assert(k == 0);
        }
        timings_put(tm, "initramfs", job.usec);
        return job.result < 0 ? job.result : r;
}

/* What a build writes into its work directory: the staging root and the
 * artifacts, with their temporary files ("<name>.tmp-XXXXXX") and the disk's
 * scratch directory ("disk.img.work-XXXXXX"). */
static bool work_entry_ours(const char *name) {
        return streq(name, "root") || startswith(name, "initrd.img") || startswith(name, "rootfs.img") ||
               startswith(name, "disk.img");
}

/* Takes the work directory for this build (an exclusive flock, waiting for
 * another build that has it) and removes what a killed build left there.
 * Returns the locked directory's fd, which the caller closes when done. */
static int work_dir_take(const char *work) {
        _cleanup_closedir_ DIR *d = NULL;
        _cleanup_close_ int fd = -1;
        struct dirent *de;
        int r;

        r = mkdir_p(work, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create the work directory '%s': %m", work);
        fd = open(work, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(negative_errno(), "cannot open the work directory '%s': %m", work);
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK)
                        return log_error_errno(negative_errno(), "cannot lock the work directory '%s': %m", work);
                log_info("waiting for another build that uses the work directory '%s' (or pass --workdir)", work);
                if (flock(fd, LOCK_EX) < 0)
                        return log_error_errno(negative_errno(), "cannot lock the work directory '%s': %m", work);
        }

        d = opendir(work);
        if (!d)
                return log_error_errno(negative_errno(), "cannot read the work directory '%s': %m", work);
        while ((de = readdir(d))) {
                _cleanup_free_ char *p = NULL;

                if (!work_entry_ours(de->d_name))
                        continue;
                p = path_join(work, de->d_name);
                if (!p)
                        return log_oom();
                r = rm_rf(p);
                if (r < 0)
                        return log_error_errno(r, "cannot remove '%s' from the work directory: %m", p);
        }
        return TAKE_FD(fd);
}

static int store_error(int r, const char *what, const char *store) {
        if (r == -ENOSPC)
                return log_error_errno(r, "store '%s' is full while writing the %s", store, what);
        return log_error_errno(r, "cannot write the %s to store '%s': %m", what, store);
}

int build_image(const ImageDef *def, const BuildOptions *opts, char ret_id[65]) {
        _cleanup_progress_free_ Progress *progress = NULL;
        _cleanup_store_free_ Store *store = NULL;
        _cleanup_lock_free_ Lock *lock = NULL;
        _cleanup_trust_free_ Trust *trust = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_strv_free_ char **rpms = NULL;
        _cleanup_free_ const RepoKeys **keys = NULL;
        _cleanup_free_ char *work = NULL, *root = NULL, *kernel = NULL, *kver = NULL, *seed = NULL,
                            *manifest_bytes = NULL;
        json_t *lock_json = NULL;
        char build_key[65], key_id[65] = "", id[65], manifest_sha[65], sig_sha[65];
        uint8_t sig[ED25519_SIG_SIZE];
        Artifact arts[4] = {};
        size_t n_arts = 0, manifest_size;
        StoreImage img = {};
        char *types[4], *shas[4];
        uint64_t sizes[4], t;
        json_t *tools = NULL, *host_loader = NULL, *boot_json = NULL;
        BootFiles boot = {};
        Timings tm = { .start = now_usec() };
        int work_fd = -1, r;

        progress = progress_new(stderr, opts->quiet);
        if (!progress)
                return log_oom();

        r = check_signing_key(opts->key_path);
        if (r < 0)
                return r;
        /* The key ID goes into the build key: another key means another signature. */
        sha256_file_hex(opts->key_path, key_id, NULL);
        /* Before any long work too: every repository's package signing keys. */
        r = trust_load(def, &trust);
        if (r < 0)
                return r;

        r = store_open(opts->store_dir, &store);
        if (r < 0)
                return log_error_errno(r, "cannot open store '%s': %m", opts->store_dir);
        /* Temporary blobs of builds killed before they renamed them. */
        r = store_clean_tmp(store);
        if (r < 0)
                log_warning_errno(r, "cannot clean '%s/tmp': %m", opts->store_dir);
        else if (r > 0)
                log_debug("removed %d temporary file(s) of an interrupted build from '%s/tmp'", r, opts->store_dir);

        t = now_usec();
        r = obtain_lock(def, opts, progress, &lock);
        timings_add(&tm, opts->locked ? "lock" : "resolve", t);
        if (r < 0)
                return r;
        crashpoint("resolve");

        t = now_usec();
        r = toolversion_probe_build(def->rootfs_type, !opts->no_disk,
                                    !opts->no_disk && def->loader == BOOT_LOADER_GRUB &&
                                            def->firmware != BOOT_FIRMWARE_UEFI,
                                    &tools);
        if (r < 0)
                goto finish;
        if (!opts->no_disk && def->loader == BOOT_LOADER_SYSTEMD_BOOT && !bootfiles_lock_has_loader(lock)) {
                r = bootfiles_host_loader_json(&host_loader);
                if (r < 0) {
                        log_error_errno(r, "cannot read the build host's '%s': %m", BOOTFILES_SYSTEMD_BOOT_PATH);
                        goto finish;
                }
        }
        timings_add(&tm, "tools", t);
        r = compute_build_key(def, opts, lock, trust, key_id, tools, host_loader, build_key);
        if (r < 0) {
                r = log_oom();
                goto finish;
        }
        log_debug("build key %s", build_key);
        if (!opts->force && store_find_by_build_key(store, build_key, &img) >= 0) {
                bool complete = store_has_blob(store, img.manifest_sha256) && store_has_blob(store, img.signature_sha256);
                if (complete && streq(img.name, def->name) && streq(img.version, def->version)) {
                        progress_phase(progress, "unchanged", "%s %s is already built from these inputs", img.name,
                                       img.version);
                        r = opts->locked ? 0 : write_published_lock(store, img.id, opts->lock_path);
                        if (r >= 0)
                                memcpy(ret_id, img.id, 65);
                        store_image_release(&img);
                        timings_print(&tm, opts);
                        goto finish;
                }
                store_image_release(&img);
        }

        t = now_usec();
        r = fetch_packages(lock, trust, opts->cache_dir, opts->parallel ? opts->parallel : 4, progress, &rpms);
        timings_add(&tm, "fetch", t);
        if (r < 0)
                goto finish;
        crashpoint("fetch");
        if (!opts->locked) {
                r = write_lock(lock, opts->lock_path);
                if (r < 0)
                        goto finish;
        }
        r = lock_to_image_json(lock, true, &lock_json);
        keys = calloc(lock->n_packages + 1, sizeof(RepoKeys *));
        if (r < 0 || !keys) {
                r = log_oom();
                goto finish;
        }
        for (size_t i = 0; i < lock->n_packages; i++)
                keys[i] = trust_find(trust, lock->packages[i].repo_id);

        work = opts->work_dir ? strdup(opts->work_dir) : path_join(opts->cache_dir, "work");
        root = work ? path_join(work, "root") : NULL;
        seed = strdup_printf("%s:%s", def->name, def->version);
        if (!work || !root || !seed) {
                r = log_oom();
                goto finish;
        }
        work_fd = work_dir_take(work);
        if (work_fd < 0) {
                r = work_fd;
                goto finish;
        }
        r = mkdir_p(root, 0755);
        if (r < 0) {
                log_error_errno(r, "cannot prepare staging root '%s': %m", root);
                goto finish;
        }

        progress_phase(progress, "install", "%zu packages into %s", lock->n_packages, root);
        t = now_usec();
        r = install_packages(root, rpms, keys, def->rpmdb_path, opts->epoch, progress);
        timings_add(&tm, "install", t);
        if (r < 0)
                goto finish;
        r = write_release(root, def);
        if (r < 0) {
                log_error_errno(r, "cannot write /etc/slipway/release: %m");
                goto finish;
        }
        crashpoint("install");
        r = kernel_find(root, &kernel, &kver);
        if (r < 0) {
                log_error_errno(r, "image '%s' has no kernel: no package installs /lib/modules/*/vmlinuz or "
                                   "/boot/vmlinuz-*",
                                def->name);
                goto finish;
        }

        arts[n_arts++] = (Artifact){ .type = "kernel", .path = strdup(kernel) };
        arts[n_arts++] = (Artifact){ .type = "initrd", .path = path_join(work, "initrd.img") };
        arts[n_arts++] = (Artifact){ .type = "rootfs",
                                     .path = path_join(work, "rootfs.img"),
                                     .fstype = rootfs_type_to_string(def->rootfs_type) };
        if (!opts->no_disk)
                arts[n_arts++] = (Artifact){ .type = "disk", .path = path_join(work, "disk.img") };
        for (size_t i = 0; i < n_arts; i++)
                if (!arts[i].path) {
                        r = log_oom();
                        goto finish;
                }

        progress_phase(progress, "artifacts", "initramfs for kernel %s, %s rootfs", kver,
                       rootfs_type_to_string(def->rootfs_type));
        t = now_usec();
        r = make_initramfs_and_rootfs(def, root, kver, opts->epoch, seed, arts[1].path, arts[2].path, &tm);
        timings_add(&tm, "artifacts", t);
        if (r < 0)
                goto finish;
        /* After the rootfs: reading the rpmdb must not touch what goes into it. */
        t = now_usec();
        r = bootfiles_find(root, def->rpmdb_path, lock, !opts->no_disk && def->loader == BOOT_LOADER_SYSTEMD_BOOT,
                           &boot);
        if (r < 0)
                goto finish;
        r = bootfiles_to_json(&boot, &boot_json);
        if (r < 0) {
                r = log_oom();
                goto finish;
        }
        timings_add(&tm, "boot", t);
        if (!opts->no_disk) {
                DiskSpec spec = {
                        .name = def->name,
                        .version = def->version,
                        .rootfs_path = arts[2].path,
                        .kernel_path = arts[0].path,
                        .initrd_path = arts[1].path,
                        .cmdline = def->cmdline,
                        .esp_size = def->esp_size,
                        .root_size = def->root_size,
                        .var_size = def->var_size,
                        .epoch = opts->epoch,
                        .uuid_seed = seed,
                        .accel = opts->accel ? opts->accel : "auto",
                        .probe_cache_dir = opts->cache_dir,
                        .loader_path = boot.files[BOOT_ROLE_SYSTEMD_BOOT].host_path,
                        .loader = def->loader,
                        .firmware = def->firmware,
                        .shim_path = boot.files[BOOT_ROLE_SHIM].host_path,
                        .grub_efi_path = boot.files[BOOT_ROLE_GRUB].host_path,
                        .grub_pc_boot_img = boot.files[BOOT_ROLE_GRUB_PC].host_path,
                };
                progress_phase(progress, "disk", "GPT: esp %llu MiB, 2 x root %llu MiB, var %llu MiB",
                               (unsigned long long) (def->esp_size >> 20), (unsigned long long) (def->root_size >> 20),
                               (unsigned long long) (def->var_size >> 20));
                t = now_usec();
                r = disk_make(&spec, arts[3].path);
                timings_add(&tm, "disk", t);
                if (r < 0)
                        goto finish;
        }

        progress_phase(progress, "publish", "into %s", opts->store_dir);
        t = now_usec();
        for (size_t i = 0; i < n_arts; i++) {
                r = store_add_file(store, arts[i].path, arts[i].sha256, &arts[i].size);
                if (r < 0) {
                        store_error(r, arts[i].type, opts->store_dir);
                        goto finish;
                }
        }

        m = manifest_new();
        if (!m) {
                r = log_oom();
                goto finish;
        }
        m->name = strdup(def->name);
        m->version = strdup(def->version);
        m->arch = strdup(def->arch);
        m->cmdline = strdup(def->cmdline);
        m->kernel_version = strdup(kver);
        m->min_from_version = def->min_from_version ? strdup(def->min_from_version) : NULL;
        m->build_time = opts->epoch;
        m->root_size = def->root_size;
        m->lock = json_incref(lock_json);
        m->tools = json_incref(tools);
        m->boot = json_incref(boot_json);
        m->loader = strdup(boot_loader_type_to_string(def->loader));
        m->firmware = strdup(boot_firmware_to_string(def->firmware));
        if (!m->loader || !m->firmware) {
                r = log_oom();
                goto finish;
        }
        if (!m->name || !m->version || !m->arch || !m->cmdline || !m->kernel_version) {
                r = log_oom();
                goto finish;
        }
        for (size_t i = 0; i < n_arts; i++) {
                r = manifest_add_artifact(m, arts[i].type, arts[i].sha256, arts[i].size, arts[i].fstype);
                if (r < 0) {
                        log_oom();
                        goto finish;
                }
        }
        r = manifest_to_bytes(m, &manifest_bytes, &manifest_size);
        if (r < 0) {
                log_oom();
                goto finish;
        }
        manifest_id(manifest_bytes, manifest_size, id);
        r = sign_data(opts->key_path, manifest_bytes, manifest_size, sig);
        if (r < 0) {
                log_error_errno(r, "cannot sign the manifest with '%s': %m", opts->key_path);
                goto finish;
        }
        crashpoint("sign");
        r = store_add_data(store, manifest_bytes, manifest_size, manifest_sha);
        if (r < 0) {
                store_error(r, "manifest", opts->store_dir);
                goto finish;
        }
        r = store_add_data(store, sig, sizeof(sig), sig_sha);
        if (r < 0) {
                store_error(r, "signature", opts->store_dir);
                goto finish;
        }

        memcpy(img.id, id, 65);
        img.name = def->name;
        img.version = def->version;
        img.arch = def->arch;
        memcpy(img.manifest_sha256, manifest_sha, 65);
        memcpy(img.signature_sha256, sig_sha, 65);
        img.build_key = build_key;
        img.created = (uint64_t) time(NULL);
        for (size_t i = 0; i < n_arts; i++) {
                types[i] = (char *) arts[i].type;
                shas[i] = arts[i].sha256;
                sizes[i] = arts[i].size;
        }
        crashpoint("publish");
        r = store_publish(store, &img, types, shas, sizes, n_arts);
        if (r == -EEXIST) {
                log_error_errno(r, "image %s %s already exists with another ID; versions are immutable, pick a new "
                                   "version",
                                def->name, def->version);
                goto finish;
        }
        if (r < 0) {
                store_error(r, "catalog entry", opts->store_dir);
                goto finish;
        }
        timings_add(&tm, "publish", t);
        progress_end(progress);
        timings_print(&tm, opts);
        memcpy(ret_id, id, 65);
        r = 0;

finish:
        if (root && !opts->keep_work)
                rm_rf(root);
        for (size_t i = 0; i < n_arts; i++) {
                if (!opts->keep_work && !streq(arts[i].type, "kernel"))
                        unlink(arts[i].path);
                free(arts[i].path);
        }
        json_decref(lock_json);
        json_decref(tools);
        json_decref(host_loader);
        json_decref(boot_json);
        bootfiles_release(&boot);
        if (work_fd >= 0)
                close(work_fd);
        return r;
}
