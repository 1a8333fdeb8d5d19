#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "bootentry.h"
#include "checkin.h"
#include "crashpoint.h"
#include "cycle.h"
#include "fileio.h"
#include "files.h"
#include "hash.h"
#include "health.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "manifest.h"
#include "sign.h"
#include "slot.h"
#include "util.h"

static volatile sig_atomic_t stopping;

static void on_term(int sig _unused_) {
        stopping = 1;
}

bool agent_stop_requested(void) {
        return stopping;
}

int agent_save(Agent *a) {
        int r = agent_state_save(a->state_path, &a->state);
        if (r < 0)
                log_error_errno(r, "cannot write the state file '%s': %m", a->state_path);
        return r;
}

int agent_set_report(Agent *a, HostState state, const char *message) {
        if (state_set(&a->state.reported, host_state_to_string(state)) < 0 || state_set(&a->state.message, message) < 0)
                return -ENOMEM;
        return agent_save(a);
}

void agent_note_server(Agent *a) {
        const char *url;

        if (!a->api || api_client_unreachable(a->api))
                return;
        url = api_client_url(a->api);
        if (streq_ptr(url, a->state.server_in_use))
                return;
        if (a->state.server_in_use)
                log_info("talking to %s now, not %s", url, a->state.server_in_use);
        else if (api_client_n_urls(a->api) > 1)
                log_info("talking to %s", url);
        if (state_set(&a->state.server_in_use, url) >= 0)
                (void) agent_save(a);
}

bool agent_failover(Agent *a, int r, const char *why, size_t *tried) {
        if (!a->api || !http_error_unreachable(r) || ++*tried >= api_client_n_urls(a->api))
                return false;
        api_client_failover(a->api, why);
        log_warning("%s; going on with %s", strempty(why), api_client_url(a->api));
        return true;
}

static json_t *slots_json(Agent *a) {
        json_t *o = json_object();

        for (int i = 0; i < 2; i++) {
                SlotInfo *s = &a->state.slots[i];
                char files[65];
                json_t *slot = json_pack("{s:s?, s:s?, s:b}", "image", s->image, "version", s->version, "complete",
                                         s->complete);

                /* The digest of the host files staged with the slot. */
                if (slot && s->complete && files_slot_digest(a, i == 0 ? 'a' : 'b', files) >= 0)
                        json_object_set_new(slot, "files", json_string(files));
                json_object_set_new(o, i == 0 ? "a" : "b", slot);
        }
        return o;
}

int agent_checkin(Agent *a, json_t *health, DesiredImage *ret_desired) {
        _cleanup_(checkin_reply_release) CheckinReply answer = {};
        _cleanup_json_ json_t *slots = slots_json(a), *body = NULL, *reply = NULL;
        _cleanup_free_ char *path = NULL, *id = NULL;
        SlotInfo *cur = state_slot(&a->state, a->booted_slot);
        _cleanup_error_ Error e = {};
        int r;

        if (!a->api || !a->state.host_id || !a->state.token)
                return -ENOTCONN;
        id = api_escape(a->state.host_id);
        path = id ? strdup_printf("/v1/hosts/%s/checkin", id) : NULL;
        if (!path || !slots)
                return -ENOMEM;
        const CheckinRequest req = {
                .state = a->state.reported ? host_state_from_string(a->state.reported) : HOST_HEALTHY,
                .version = cur->complete ? cur->version : NULL,
                .image = cur->complete ? cur->image : NULL,
                .booted_slot = a->booted_slot,
                .slots = slots,
                .health = health,
                .message = a->state.message,
                .failed_image = a->state.failed_image,
        };
        r = checkin_request_to_json(&req, &body, &e);
        if (r < 0)
                return log_warning_errno(r, "check-in: %s", strempty(e.message));
        r = api_client_set_token(a->api, a->state.token);
        if (r >= 0)
                r = api_request(a->api, "POST", path, body, NULL, &reply);
        agent_note_server(a);
        if (r < 0) {
                log_warning("check-in: %s", api_client_error(a->api));
                return r;
        }
        r = checkin_reply_from_json(reply, &answer, &e);
        if (r < 0)
                return log_warning_errno(r, "check-in: the server's answer: %s", strempty(e.message));
        if (answer.checkin_interval > 0 && a->config.checkin_interval == 0)
                a->checkin_interval = answer.checkin_interval;
        if (ret_desired) {
                *ret_desired = answer.desired;
                answer.desired = (DesiredImage) {};
        }
        return 0;
}

/* How long a lease request may wait at the server for a place to free up:
 * at most this, and no longer than a check-in interval. */
#define LEASE_WAIT_SEC 20u

/* How the refusal of a downgrade without the rollback mark begins: such an
 * image is not tried again until the server marks it a rollback. */
#define DOWNGRADE_REFUSED "refusing a downgrade"

/* Asks for (POST; renews the one held) or gives back (DELETE) the reboot
 * lease. Returns 1 when granted (epoch saved), 0 when refused (*ret_retry
 * set), negative on errors. With wait, a request waits at the server until
 * it is granted or its wait is over; after a wait the next round asks again
 * right away. */
static int lease(Agent *a, const char *method, bool wait, uint64_t *ret_retry) {
        _cleanup_free_ char *path = NULL, *id = api_escape(a->state.host_id);
        _cleanup_(lease_reply_release) LeaseReply answer = {};
        _cleanup_json_ json_t *reply = NULL, *body = NULL;
        _cleanup_error_ Error e = {};
        bool acquire = streq(method, "POST");
        uint64_t retry;
        int r;

        path = id ? strdup_printf("/v1/hosts/%s/lease", id) : NULL;
        if (!path)
                return -ENOMEM;
        if (acquire) {
                LeaseRequest req = { .wait = wait ? MIN(a->checkin_interval, LEASE_WAIT_SEC) : 0 };
                r = lease_request_to_json(&req, &body, &e);
        } else
                r = lease_release_to_json(&(LeaseRelease) { .epoch = a->state.lease_epoch }, &body, &e);
        if (r < 0)
                return log_warning_errno(r, "lease: %s", strempty(e.message));
        r = api_request(a->api, method, path, body, NULL, &reply);
        agent_note_server(a);
        if (r < 0) {
                log_warning("lease: %s", api_client_error(a->api));
                return r;
        }
        if (!acquire) {
                LeaseReleaseReply released;

                /* Given back or not (a stale epoch), the host holds none now. */
                if (lease_release_reply_from_json(reply, &released, NULL) >= 0 && !released.released)
                        log_debug("lease %" PRIu64 ": the server held none to give back", a->state.lease_epoch);
                return 1;
        }
        r = lease_reply_from_json(reply, &answer, &e);
        if (r < 0)
                return log_warning_errno(r, "lease: the server's answer: %s", strempty(e.message));
        if (answer.granted) {
                a->state.lease_epoch = answer.epoch;
                return 1;
        }
        retry = answer.waited > 0 ? 0 : answer.retry_after;
        log_info("lease refused%s%s: %s; asking again in %" PRIu64 " s", answer.waited > 0 ? " after waiting " : "",
                 answer.waited > 0 ? "at the server" : "", strempty(answer.reason), retry);
        if (ret_retry)
                *ret_retry = retry > 0 || answer.waited > 0 ? retry : 30;
        return 0;
}

char *agent_blob_url(Agent *a, const char *hex) {
        return strdup_printf("%s/blobs/sha256/%s", api_client_url(a->api), hex);
}

/* Downloads blob hex from the current server to path atomically, verifying
 * its digest; e gets what went wrong with the transfer. */
static int fetch_file_once(Agent *a, const char *hex, const char *path, HttpError *e) {
        _cleanup_free_ char *url = agent_blob_url(a, hex), *tmp = NULL;
        _cleanup_sha256_free_ Sha256 *h = sha256_new();
        HttpOptions opts = { .ca_file = a->config.ca_file };
        _cleanup_close_ int fd = -1;
        char got[65];
        int r;

        if (!url || !h)
                return -ENOMEM;
        r = mkdir_parents(path, 0755);
        if (r < 0)
                return r;
        fd = open_tmpfile_beside(path, &tmp);
        if (fd < 0)
                return fd;
        r = http_fetch_to_fd(url, fd, 1ULL << 30, h, &opts, NULL, e);
        if (r >= 0) {
                sha256_final_hex(h, got);
                if (!streq(got, hex))
                        r = -EBADMSG;
        }
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_parent_dir(path);
}

/* Downloads blob hex to path, from the next server when the current one
 * does not answer. */
static int fetch_file(Agent *a, const char *hex, const char *path) {
        size_t tried = 0;
        int r;

        for (;;) {
                HttpError e = {};

                r = fetch_file_once(a, hex, path, &e);
                if (r >= 0 || !agent_failover(a, r, e.message, &tried))
                        return r;
        }
}

int agent_fetch_manifest(Agent *a, const DesiredImage *desired, Manifest **ret, Error *error) {
        const char *mhex = desired->manifest, *shex = desired->signature, *image = desired->image;
        bool rollback = desired->rollback;
        SlotInfo *cur = state_slot(&a->state, a->booted_slot);
        HttpOptions opts = { .ca_file = a->config.ca_file };
        _cleanup_free_ char *murl = NULL, *surl = NULL, *mdata = NULL, *sdata = NULL, *key = NULL;
        _cleanup_manifest_free_ Manifest *m = NULL;
        char id[65], err[256];
        size_t mn = 0, sn = 0;
        HttpError e = {};
        int r;

        /* Checked here too: a live boot's digests come from the kernel command line. */
        if (!mhex || !shex || !image || !sha256_hex_valid(mhex) || !sha256_hex_valid(shex))
                return error_set(error, -EBADMSG, "the server's desired image is malformed");
        for (size_t tried = 0;;) {
                murl = agent_blob_url(a, mhex);
                surl = agent_blob_url(a, shex);
                if (!murl || !surl)
                        return error_set(error, -ENOMEM, "out of memory");
                r = http_fetch_to_memory(murl, MANIFEST_SIZE_MAX, &opts, &mdata, &mn, &e);
                if (r >= 0)
                        r = http_fetch_to_memory(surl, 4096, &opts, &sdata, &sn, &e);
                if (r >= 0)
                        break;
                free(murl);
                free(surl);
                free(mdata);
                murl = surl = mdata = NULL;
                if (!agent_failover(a, r, e.message, &tried))
                        return error_set(error, r, "cannot fetch the manifest of %.12s: %s", image, e.message);
        }
        manifest_id(mdata, mn, id);
        if (!streq(id, mhex))
                return error_set(error, -EBADMSG, "the server sent a manifest that is not %.12s", mhex);
        r = sign_verify_dir(a->config.keys_dir, mdata, mn, (const uint8_t *) sdata, sn, &key);
        if (r < 0)
                return error_set(error, -EKEYREJECTED,
                                 "the signature of image %.12s does not verify against any key in '%s'", image,
                                 a->config.keys_dir);
        if (manifest_parse(mdata, mn, &m, err, sizeof err) < 0)
                return error_set(error, -EBADMSG, "image %.12s: %s", image, err);
        if (!streq(m->arch, a->config.arch))
                return error_set(error, -ENOEXEC, "image %s:%s is for %s, this host is %s", m->name, m->version,
                                 m->arch, a->config.arch);
        if (cur->complete && cur->version && bootentry_verscmp(m->version, cur->version) < 0 && !rollback)
                return error_set(error, -EPERM,
                                 DOWNGRADE_REFUSED " from %s to %s that the server did not mark as a rollback",
                                 cur->version, m->version);
        if (m->min_from_version && cur->complete && cur->version &&
            bootentry_verscmp(cur->version, m->min_from_version) < 0)
                return error_set(error, -EPERM, "%s:%s needs at least version %s, this host runs %s", m->name,
                                 m->version, m->min_from_version, cur->version);
        if (!manifest_find_artifact(m, "rootfs") || !manifest_find_artifact(m, "kernel") ||
            !manifest_find_artifact(m, "initrd"))
                return error_set(error, -EBADMSG, "image %s:%s lacks a rootfs, kernel or initrd", m->name,
                                 m->version);
        log_debug("manifest of %s:%s signed by %s", m->name, m->version, key);
        *ret = TAKE_PTR(m);
        return 0;
}

/* Removes the kernels and initrds on the ESP (slipway/<version>/) that no
 * boot entry uses any more, but keep's: an ESP holds about three versions,
 * and a slot that is being rewritten gives its version's files back. Only
 * files nothing can boot are removed, so a crash at any point is harmless. */
static int prune_esp(Agent *a, const char *keep) {
        _cleanup_free_ char *top = path_join(a->backend->esp_dir(a), LOADER_KERNEL_DIR);
        _cleanup_(strv_freep) char **kernels = NULL;
        struct dirent *de;
        DIR *d;
        int r;

        if (!top)
                return -ENOMEM;
        r = a->boot->kernels(a, &kernels);
        if (r < 0)
                return r;
        d = opendir(top);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((de = readdir(d))) {
                _cleanup_free_ char *prefix = NULL, *dir = NULL;
                bool used = streq(de->d_name, keep);

                struct stat st;

                /* A version is a directory; files beside them (GRUB's
                 * grub.cfg and grubenv) are not the prune's. */
                if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISDIR(st.st_mode))
                        continue;
                prefix = strdup_printf("/" LOADER_KERNEL_DIR "/%s/", de->d_name);
                if (!prefix) {
                        r = -ENOMEM;
                        break;
                }
                for (char **k = kernels; !used && *k; k++)
                        used = startswith(*k, prefix) || startswith(*k, prefix + 1);
                if (used)
                        continue;
                dir = path_join(top, de->d_name);
                if (!dir) {
                        r = -ENOMEM;
                        break;
                }
                (void) rm_rf(dir);
                log_info("ESP: removed the kernel and initrd of %s, which no entry boots", de->d_name);
        }
        closedir(d);
        return r;
}

/* Stages the desired image: manifest, slot, kernel and initrd, entry. */
static int stage(Agent *a, const DesiredImage *desired, Error *error) {
        _cleanup_manifest_free_ Manifest *m = NULL;
        _cleanup_free_ char *url = NULL, *kpath = NULL, *ipath = NULL, *kernel_at = NULL, *initrd_at = NULL;
        const char *image = desired->image;
        const ManifestArtifact *rootfs, *kernel, *initrd;
        char target = other_slot(a->booted_slot);
        SlotInfo *ts = state_slot(&a->state, target);
        const char *esp = a->backend->esp_dir(a);
        bool resume;
        int r;

        r = agent_fetch_manifest(a, desired, &m, error);
        if (r < 0)
                return r;
        /* The slot's rootfs does not depend on the host files: other
         * files with the same image resume it all the same. */
        resume = a->state.phase == PHASE_STAGING && streq_ptr(a->state.target_image, image) &&
                 a->state.target_slot == target;
        if (!resume) {
                agent_state_clear_target(&a->state);
                a->state.phase = PHASE_STAGING;
                if (state_set(&a->state.target_image, image) < 0 || state_set(&a->state.target_version, m->version) < 0 ||
                    state_set(&a->state.target_manifest, desired->manifest) < 0 ||
                    state_set(&a->state.target_signature, desired->signature) < 0)
                        return error_set(error, -ENOMEM, "out of memory");
                a->state.target_slot = target;
                a->state.target_rollback = desired->rollback;
        }
        if (state_set(&a->state.target_files, desired->files) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        /* The slot is about to change: first nothing may boot it, then the
         * state stops calling it complete. */
        r = a->boot->drop(a, target);
        if (r < 0)
                return error_set(error, r, "cannot remove the old boot entry of slot %c: %m", target);
        crashpoint("entry-dropped");
        /* Nor may tools that find the root partition by its type (the GPT
         * no-auto mark) take the slot while it is incomplete: the running
         * slot is theirs. So it is on a disk as built; this mends a disk
         * that lacks the marks. Refused, nothing is written. */
        r = a->backend->mark_active(a, a->booted_slot);
        if (r < 0)
                return error_set(error, r, "cannot mark slot %c no-auto in the partition table: %m", target);
        if (r > 0)
                log_info("partition table: slot %c marked no-auto, slot %c for discovery", target, a->booted_slot);
        r = prune_esp(a, m->version);
        if (r < 0)
                log_warning_errno(r, "cannot tidy the ESP: %m");
        ts->complete = false;
        if (state_set(&ts->image, NULL) < 0 || state_set(&ts->version, NULL) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        r = agent_set_report(a, HOST_STAGING, NULL);
        if (r < 0)
                return r;
        (void) agent_checkin(a, NULL, NULL);

        rootfs = manifest_find_artifact(m, "rootfs");
        log_info("staging %s:%s into slot %c (%" PRIu64 " bytes)", m->name, m->version, target, rootfs->size);
        /* A server that goes away mid-download leaves its checkpoint in the
         * state: the next one (the same blob under the same path) goes on
         * from there. */
        for (size_t tried = 0;;) {
                url = agent_blob_url(a, rootfs->sha256);
                if (!url)
                        return error_set(error, -ENOMEM, "out of memory");
                r = slot_stage(a, target, url, rootfs->sha256, rootfs->size, error);
                if (r >= 0)
                        break;
                free(url);
                url = NULL;
                if (!agent_failover(a, r, error->message, &tried))
                        return r;
        }
        agent_note_server(a);

        kernel = manifest_find_artifact(m, "kernel");
        initrd = manifest_find_artifact(m, "initrd");
        kernel_at = loader_kernel_path(m->version);
        initrd_at = loader_initrd_path(m->version);
        kpath = kernel_at ? path_join(esp, kernel_at) : NULL;
        ipath = initrd_at ? path_join(esp, initrd_at) : NULL;
        if (!kpath || !ipath)
                return error_set(error, -ENOMEM, "out of memory");
        r = fetch_file(a, kernel->sha256, kpath);
        if (r >= 0)
                crashpoint("esp-kernel");
        if (r >= 0)
                r = fetch_file(a, initrd->sha256, ipath);
        if (r < 0)
                return error_set(error, r, "cannot put the kernel and initrd of %s on the ESP: %m", m->version);
        crashpoint("esp-initrd");

        /* The host files go with the slot: the boot of this slot applies
         * them, a fallback to the other applies its own. Before the entry,
         * so that a slot that can boot has its files. */
        r = files_stage(a, target, desired->files, error);
        if (r < 0)
                return r;

        /* Last: the entry, disarmed ("+0": never chosen by the firmware) until
         * a lease is granted, so that an unplanned reboot cannot take the
         * host into the new slot without the coordinator's leave. */
        r = a->boot->stage(a, target, m->name, m->version, m->cmdline);
        if (r < 0)
                return error_set(error, r, "cannot write the boot entry for %s: %m", m->version);
        crashpoint("entry-written");
        ts->complete = true;
        if (state_set(&ts->image, image) < 0 || state_set(&ts->version, m->version) < 0)
                return error_set(error, -ENOMEM, "out of memory");
        a->state.phase = PHASE_STAGED;
        r = agent_set_report(a, HOST_STAGED, NULL);
        crashpoint("staged");
        log_info("staged %s:%s in slot %c", m->name, m->version, target);
        return r;
}

/* Offers the staged target slot for the next boots; a no-op when it is. */
static int arm_entry(Agent *a) {
        return a->boot->arm(a, a->state.target_slot);
}

/* After a switch (or a fallback): slot is the one that boots for good
 * from now on, and so the one tools that discover partitions may take. A
 * failure leaves the marks of the other complete slot, which the next
 * staging mends before it writes anything; it is no reason to undo the
 * switch. */
static void mark_active(Agent *a, char slot) {
        int r = a->backend->mark_active(a, slot);

        if (r < 0)
                log_warning_errno(r, "cannot mark slot %c for discovery in the partition table: %m", slot);
        else if (r > 0)
                log_info("partition table: slot %c marked for discovery, slot %c no-auto", slot, other_slot(slot));
}

/* A failed switch: the target's entry is given up, the image remembered. */
static int give_up(Agent *a, const char *reason) {
        int r;

        if (a->state.target_slot) {
                r = a->boot->mark_bad(a, a->state.target_slot);
                if (r < 0)
                        log_error_errno(r, "cannot give up slot %c in the boot loader: %m", a->state.target_slot);
        }
        crashpoint("marked-bad");
        if (a->state.target_slot)
                mark_active(a, other_slot(a->state.target_slot));
        /* A change of files alone failed: the image is not to blame, and
         * other files with it are worth a try. A new image that failed is
         * not tried again, whatever files come with it. */
        bool files_only = a->state.target_slot &&
                          streq_ptr(a->state.target_image, state_slot(&a->state, other_slot(a->state.target_slot))->image);
        if (state_set(&a->state.failed_image, a->state.target_image) < 0 ||
            state_set(&a->state.failed_files, files_only ? a->state.target_files : NULL) < 0 ||
            state_set(&a->state.failed_reason, reason) < 0)
                return -ENOMEM;
        state_slot(&a->state, a->state.target_slot)->complete = false;
        agent_state_clear_target(&a->state);
        return agent_set_report(a, HOST_ROLLED_BACK, reason);
}

int agent_load(Agent *a) {
        int r;

        r = a->backend->init(a);
        if (r < 0)
                return log_error_errno(r, "%s backend: cannot set up: %m", a->backend->name);
        r = a->backend->booted(a, &a->booted_slot, &a->booted_entry, a->boot_id);
        if (r < 0)
                return log_error_errno(r, "cannot tell which slot booted: %m");
        r = agent_state_load(a->state_path, &a->state);
        if (r < 0)
                return log_error_errno(r, "cannot read the state file '%s': %m", a->state_path);
        /* Every JSON line from here on names the host, so that a log
         * search finds one host's lines (set before any thread logs). */
        log_set_field("host", a->state.host_id);
        log_info("booted slot %c (%s), state %s", a->booted_slot, strempty(a->booted_entry),
                 phase_to_string(a->state.phase));
        if (a->api && a->state.token && api_client_set_token(a->api, a->state.token) < 0)
                log_warning("the host token in '%s' is malformed; registering again may be needed", a->state_path);
        /* Of several servers, the one that answered last goes first. */
        if (a->api)
                (void) api_client_prefer(a->api, a->state.server_in_use);
        return 0;
}


/* Seconds since boot: the units' deadline counts from it. */
static uint64_t since_boot_usec(void) {
        struct timespec ts;

        if (clock_gettime(CLOCK_BOOTTIME, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* Runs every health check the configuration asks for (health.h). */
static int judge(Agent *a, json_t **ret_report, char **ret_failed) {
        _cleanup_strv_free_ char **units = NULL, **greenboot = NULL;
        uint64_t deadline = a->config.units_deadline * 1000000ULL, up = since_boot_usec();
        HealthConfig c = {
                .dir = a->config.health_dir,
                .timeout_sec = a->config.health_timeout,
                .no_failed_units = a->config.no_failed_units,
                .boot_complete = a->config.boot_complete,
                /* Judged later than the deadline (a late start, the sim
                 * backend's "boot"), the units get one look. */
                .units_deadline = now_usec() + (deadline > up ? deadline - up : 0),
                .log_lines = (unsigned) a->config.health_log_lines,
        };

        if (a->config.required_units && !(units = strv_split_words(a->config.required_units)))
                return -ENOMEM;
        if (a->config.greenboot_dirs && !(greenboot = strv_split_words(a->config.greenboot_dirs)))
                return -ENOMEM;
        c.required_units = units && units[0] ? units : NULL;
        c.greenboot_dirs = greenboot;
        c.greenboot_conf = greenboot ? "/etc/greenboot/greenboot.conf" : NULL;
        return health_judge(&c, ret_report, ret_failed);
}
/* Where host files go: files-root, or for the sim backend SIM_DIR/root
 * unless files-root is set. Caller frees; NULL when out of memory. */
static char *files_root(Agent *a) {
        if (a->backend == &backend_sim && streq(a->config.files_root, "/"))
                return path_join(a->config.sim_dir, "root");
        return strdup(a->config.files_root);
}

int agent_apply_files(Agent *a) {
        _cleanup_free_ char *root = files_root(a);

        if (!root)
                return log_oom();
        return files_apply(a, root);
}

int agent_start(Agent *a) {
        _cleanup_free_ char *failed = NULL;
        _cleanup_json_ json_t *report = NULL;
        bool files_failed;
        int r;

        r = agent_load(a);
        if (r < 0)
                return r;
        /* The booted slot's host files, before its checks judge it (at
         * boot, `apply-files` has put them in place already: then nothing
         * changes). */
        files_failed = agent_apply_files(a) < 0;

        if (a->state.phase == PHASE_IDLE && a->state.lease_epoch > 0 && a->api) {
                /* Back from a fallback reboot (or killed before giving it
                 * back): the host is up, the lease is not needed. */
                if (lease(a, "DELETE", false, NULL) > 0) {
                        a->state.lease_epoch = 0;
                        (void) agent_save(a);
                }
        }
        if (a->state.phase != PHASE_STAGED && a->state.phase != PHASE_REBOOTING)
                return 0;
        if (a->state.phase == PHASE_REBOOTING && streq_ptr(a->state.reboot_from, a->boot_id)) {
                /* The agent restarted, the host did not: the reboot is still to do. */
                log_info("the reboot into slot %c did not happen yet: rebooting", a->state.target_slot);
                r = arm_entry(a);
                if (r < 0)
                        return log_error_errno(r, "cannot arm the boot entry of slot %c: %m", a->state.target_slot);
                return a->backend->reboot(a);
        }
        if (a->booted_slot != a->state.target_slot) {
                if (a->state.phase != PHASE_REBOOTING)
                        return 0;
                r = a->boot->offered(a, a->state.target_slot);
                if (r == 0) {
                        /* Cut off between the lease and arming the entry: the
                         * new slot was never offered. Arm it and go. */
                        log_info("the reboot into slot %c did not happen: rebooting", a->state.target_slot);
                        r = arm_entry(a);
                        if (r < 0)
                                return log_error_errno(r, "cannot arm the boot entry of slot %c: %m",
                                                       a->state.target_slot);
                        if (state_set(&a->state.reboot_from, a->boot_id) < 0 || agent_save(a) < 0)
                                return -EIO;
                        return a->backend->reboot(a);
                }
                /* We asked for the new slot and came back in the old one:
                 * its boot counter ran out. */
                return give_up(a, "the new slot did not come up: its boot counter ran out and the "
                                  "firmware fell back");
        }

        /* Running the new slot: judge it. */
        r = agent_set_report(a, HOST_REBOOTING, NULL);
        if (r < 0)
                return r;
        /* The lease covers the checks too: renew it (the same epoch, a new
         * expiry), so a reboot and checks that together run long do not
         * outlast it. Refused means it expired: the host is quarantined
         * until it reports healthy, and judging goes on all the same. */
        if (a->api && a->state.lease_epoch) {
                uint64_t held = a->state.lease_epoch;
                r = lease(a, "POST", false, NULL);
                if (r > 0 && a->state.lease_epoch == held)
                        log_info("lease %" PRIu64 " renewed", held);
                else if (r > 0)
                        log_info("lease %" PRIu64 " had expired; now lease %" PRIu64, held, a->state.lease_epoch);
                else if (r == 0)
                        log_warning("lease %" PRIu64 " expired during the reboot", held);
                if (r > 0)
                        (void) agent_save(a);
        }
        /* What the checks may want to know about the slot they judge. */
        char slot_name[2] = { a->booted_slot, 0 };
        setenv("SLIPWAY_SLOT", slot_name, 1);
        setenv("SLIPWAY_VERSION", strempty(a->state.target_version), 1);
        setenv("SLIPWAY_IMAGE", strempty(a->state.target_image), 1);
        _cleanup_free_ char *root = files_root(a);
        if (root)
                setenv("SLIPWAY_FILES_ROOT", root, 1);
        if (files_failed) {
                r = 0;
                failed = strdup("the host files of the slot could not be applied");
                if (!failed)
                        return log_oom();
        } else
                r = judge(a, &report, &failed);
        if (r < 0)
                return log_error_errno(r, "cannot run the health checks: %m");
        if (r > 0) {
                r = a->boot->bless(a, a->booted_slot);
                if (r < 0)
                        return log_error_errno(r, "cannot bless slot %c in the boot loader: %m", a->booted_slot);
                crashpoint("blessed");
                /* After the bless: until then the old slot is the one that
                 * boots for good. A crash in between judges again. */
                mark_active(a, a->booted_slot);
                log_info("slot %c is healthy on %s: blessed", a->booted_slot, a->state.target_version);
                agent_state_clear_target(&a->state);
                r = agent_set_report(a, HOST_HEALTHY, NULL);
                if (r >= 0 && a->api) {
                        (void) agent_checkin(a, report, NULL);
                        if (lease(a, "DELETE", false, NULL) > 0) {
                                a->state.lease_epoch = 0;
                                r = agent_save(a);
                        }
                }
                return r;
        }
        _cleanup_free_ char *reason = strdup_printf("required health check failed on %s: %s",
                                                    strempty(a->state.target_version), strempty(failed));
        log_error("%s", strempty(reason));
        r = give_up(a, reason);
        if (r >= 0 && a->api)
                (void) agent_checkin(a, report, NULL);
        if (r < 0)
                return r;
        log_info("rebooting into the previous slot");
        return a->backend->reboot(a);
}

int agent_round(Agent *a) {
        _cleanup_error_ Error error = {};
        _cleanup_(desired_image_release) DesiredImage desired = {};
        const char *image;
        uint64_t retry = 0;
        int r;

        r = agent_checkin(a, NULL, &desired);
        if (r < 0)
                return (int) MIN(a->checkin_interval, 30u);
        if (a->state.phase == PHASE_IDLE && a->state.lease_epoch > 0 && lease(a, "DELETE", false, NULL) > 0) {
                /* A release that did not get through (the server was away),
                 * after a healthy switch or a fallback: an idle host needs no
                 * lease, which would hold a place in the budgets until it
                 * expired. */
                log_info("lease %" PRIu64 " given back", a->state.lease_epoch);
                a->state.lease_epoch = 0;
                (void) agent_save(a);
        }
        image = desired.image;
        /* The host files are part of what is wanted: a change of them alone
         * is staged with the image that runs, into the other slot, and goes
         * through the same lease, reboot and judgement as an image. */
        if (image && streq_ptr(image, state_slot(&a->state, a->booted_slot)->image) &&
            files_slot_has(a, a->booted_slot, desired.files)) {
                /* What runs is what is wanted: nothing to do, and an earlier
                 * failure (or an update the server gave up) is history. */
                if (a->state.phase != PHASE_IDLE || a->state.failed_image ||
                    host_state_from_string(a->state.reported) != HOST_HEALTHY) {
                        agent_state_clear_target(&a->state);
                        state_set(&a->state.failed_image, NULL);
                        state_set(&a->state.failed_files, NULL);
                        state_set(&a->state.failed_reason, NULL);
                        (void) agent_set_report(a, HOST_HEALTHY, NULL);
                }
                return (int) a->checkin_interval;
        }
        /* What failed here is not tried again: the image, with the files
         * it failed with when it was a change of files. */
        bool failed = image && streq_ptr(image, a->state.failed_image) &&
                      (!a->state.failed_files || streq_ptr(desired.files, a->state.failed_files));
        /* A downgrade refused because it was not marked a rollback is tried
         * again once the server marks it one. */
        if (failed && desired.rollback && startswith(strempty(a->state.failed_reason), DOWNGRADE_REFUSED)) {
                state_set(&a->state.failed_image, NULL);
                failed = false;
        }
        if (!image || failed)
                return (int) a->checkin_interval;
        if (a->state.failed_image) {
                state_set(&a->state.failed_image, NULL);
                state_set(&a->state.failed_files, NULL);
                state_set(&a->state.failed_reason, NULL);
        }
        if (a->state.phase == PHASE_IDLE || a->state.phase == PHASE_STAGING ||
            !streq_ptr(a->state.target_image, image) ||
            (desired.files && !streq_ptr(a->state.target_files, desired.files))) {
                r = stage(a, &desired, &error);
                if (http_error_unreachable(r)) {
                        /* The server went away mid-download: no failure of the
                         * image; the next round resumes. */
                        log_warning("staging interrupted: %s; trying again", strempty(error.message));
                        return (int) MIN(a->checkin_interval, 10u);
                }
                if (r < 0) {
                        log_error("staging failed: %s", strempty(error.message));
                        (void) agent_set_report(a, HOST_FAILED, error.message);
                        if (r == -EKEYREJECTED || r == -EPERM || r == -ENOEXEC || r == -EFBIG) {
                                /* Refused for good: do not try this image again. */
                                state_set(&a->state.failed_image, image);
                                state_set(&a->state.failed_files, NULL);
                                state_set(&a->state.failed_reason, error.message);
                                agent_state_clear_target(&a->state);
                                (void) agent_set_report(a, HOST_FAILED, error.message);
                        }
                        (void) agent_checkin(a, NULL, NULL);
                        return (int) MIN(a->checkin_interval, 10u);
                }
                (void) agent_checkin(a, NULL, NULL);
        }

        /* Staged: ask for the lease. */
        r = lease(a, "POST", true, &retry);
        if (r < 0)
                return (int) MIN(a->checkin_interval, 10u);
        if (r == 0)
                /* Keep checking in while waiting: a silent host counts as down. */
                return (int) MIN(retry, a->checkin_interval);
        a->state.phase = PHASE_REBOOTING;
        if (state_set(&a->state.reboot_from, a->boot_id) < 0)
                return -ENOMEM;
        r = agent_set_report(a, HOST_REBOOTING, NULL);
        if (r < 0)
                return r;
        (void) agent_checkin(a, NULL, NULL);
        crashpoint("before-arm");
        r = arm_entry(a);
        if (r < 0)
                return log_error_errno(r, "cannot arm the boot entry of slot %c: %m", a->state.target_slot);
        crashpoint("before-reboot");
        log_info("lease %" PRIu64 " granted: rebooting into slot %c", a->state.lease_epoch, a->state.target_slot);
        r = a->backend->reboot(a);
        if (r == 0) {
                /* A reboot command accepted the request; the host goes down soon. */
                log_info("reboot requested");
                return (int) a->checkin_interval;
        }
        return log_error_errno(r, "reboot failed: %m");
}

int agent_loop(Agent *a, bool once) {
        struct sigaction sa = { .sa_handler = on_term };

        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        /* The configuration is read at start; a HUP must not end the agent. */
        signal(SIGHUP, SIG_IGN);
        while (!stopping) {
                int wait = agent_round(a);
                if (wait < 0)
                        return wait;
                if (once)
                        break;
                for (int i = 0; i < wait * 10 && !stopping; i++) {
                        struct timespec ts = { .tv_nsec = 100 * 1000 * 1000 };
                        nanosleep(&ts, NULL);
                }
        }
        return 0;
}

int agent_register(Agent *a, const char *mac, const char *secret) {
        _cleanup_json_ json_t *body = NULL, *reply = NULL;
        int r;

        body = json_pack("{s:s, s:s}", "mac", mac, "enroll", secret);
        r = api_request(a->api, "POST", "/v1/hosts/register", body, NULL, &reply);
        if (r < 0)
                return log_error_errno(r, "registration: %s", api_client_error(a->api));
        if (state_set(&a->state.host_id, json_string_value(json_object_get(reply, "id"))) < 0 ||
            state_set(&a->state.token, json_string_value(json_object_get(reply, "token"))) < 0 ||
            state_set(&a->state.server, api_client_urls(a->api)) < 0 ||
            state_set(&a->state.server_in_use, api_client_url(a->api)) < 0)
                return -ENOMEM;
        if (!a->state.host_id || !a->state.token)
                return log_error_errno(-EBADMSG, "registration: the server's answer lacks id or token");
        log_set_field("host", a->state.host_id);
        log_info("registered as %s", a->state.host_id);
        return agent_save(a);
}
