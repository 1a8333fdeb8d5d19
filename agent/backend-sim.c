/* The sim backend: a host made of files. DIR/root-a and DIR/root-b are the
 * slots, DIR/esp the ESP, DIR/firmware.json what the emulated firmware last
 * booted, DIR/no-auto the slot that carries the GPT no-auto mark (missing:
 * neither does). A reboot runs the firmware emulator (systemd-boot's selection and
 * counting, agent/firmware.c; or, with the GRUB back end, the grub.cfg that
 * slipway-build writes, run by agent/grubfirmware.c) and restarts the agent
 * in place; `power-on` does the same after a simulated power cut. */
#include <fcntl.h>
#include <time.h>
#include <jansson.h>
#include <sys/stat.h>

#include "agent.h"
#include "cycle.h"
#include "fileio.h"
#include "firmware.h"
#include "grubcfg.h"
#include "grubfirmware.h"
#include "loaderentry.h"
#include "log.h"
#include "util.h"

static char *sim_path(Agent *a, const char *name) {
        return path_join(a->config.sim_dir, name);
}

static int sim_init(Agent *a) {
        _cleanup_free_ char *entries = NULL;
        int r;

        entries = strdup_printf("%s/esp/" LOADER_ENTRIES_DIR, a->config.sim_dir);
        if (!entries)
                return -ENOMEM;
        r = mkdir_p(entries, 0755);
        if (r < 0)
                return r;
        if (a->boot == &boot_grub) {
                /* What slipway-build puts on a GRUB disk. */
                _cleanup_free_ char *cfg = strdup_printf("%s/esp/slipway/grub.cfg", a->config.sim_dir), *text = NULL;
                if (!cfg)
                        return -ENOMEM;
                if (!path_exists(cfg)) {
                        r = grubcfg_generate(&(GrubCfgOptions) { .name = "sim" }, &text);
                        if (r >= 0)
                                r = mkdir_parents(cfg, 0755);
                        if (r >= 0)
                                r = write_file_atomic(cfg, text, strlen(text), 0644);
                        if (r < 0)
                                return r;
                }
        }
        for (const char *s = "ab"; *s; s++) {
                _cleanup_free_ char *name = strdup_printf("root-%c", *s), *p = name ? sim_path(a, name) : NULL;
                _cleanup_close_ int fd = -1;

                if (!p)
                        return -ENOMEM;
                fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0)
                        return negative_errno();
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return negative_errno();
                if ((uint64_t) st.st_size < a->config.sim_slot_size && ftruncate(fd, (off_t) a->config.sim_slot_size) < 0)
                        return negative_errno();
        }
        return 0;
}

static int sim_booted(Agent *a, char *ret_slot, char **ret_entry, char *ret_boot_id) {
        _cleanup_free_ char *p = sim_path(a, "firmware.json"), *data = NULL;
        const char *slot, *entry;
        json_t *j;
        int r;

        if (!p)
                return -ENOMEM;
        r = read_full_file(p, 65536, &data, NULL);
        if (r == -ENOENT) {
                /* Never booted anything: a blank machine runs from slot a's side. */
                *ret_slot = 'a';
                *ret_entry = NULL;
                snprintf(ret_boot_id, 33, "blank");
                return 0;
        }
        if (r < 0)
                return r;
        j = json_loads(data, 0, NULL);
        slot = json_string_value(json_object_get(j, "slot"));
        entry = json_string_value(json_object_get(j, "entry"));
        if (!slot || (!streq(slot, "a") && !streq(slot, "b"))) {
                json_decref(j);
                return -EBADMSG;
        }
        *ret_slot = slot[0];
        *ret_entry = entry ? strdup(entry) : NULL;
        snprintf(ret_boot_id, 33, "%s", strempty(json_string_value(json_object_get(j, "boot_id"))));
        json_decref(j);
        return 0;
}

static int sim_slot_open(Agent *a, char slot, int flags, int *ret_fd, uint64_t *ret_size) {
        _cleanup_free_ char *name = strdup_printf("root-%c", slot), *p = name ? sim_path(a, name) : NULL;
        int fd;

        if (!p)
                return -ENOMEM;
        if ((flags & O_ACCMODE) != O_RDONLY && slot == a->booted_slot)
                return -EBUSY;
        fd = open(p, flags | O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        *ret_fd = fd;
        *ret_size = a->config.sim_slot_size;
        return 0;
}

static const char *sim_esp_dir(Agent *a) {
        if (!a->backend_data)
                a->backend_data = sim_path(a, "esp");
        return a->backend_data;
}

static int sim_mark_active(Agent *a, char slot) {
        _cleanup_free_ char *p = sim_path(a, "no-auto"), *data = NULL;
        char want[] = { other_slot(slot), '\n', 0 };
        int r;

        if (!p)
                return -ENOMEM;
        r = read_full_file(p, 64, &data, NULL);
        if (r < 0 && r != -ENOENT)
                return r;
        if (r >= 0 && streq(data, want))
                return 0;
        r = write_file_atomic(p, want, 2, 0644);
        return r < 0 ? r : 1;
}

/* 32 random hex digits (and NUL, of 65). */
static int token_hex(char ret[65]) {
        uint8_t b[32];
        _cleanup_close_ int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return negative_errno();
        if (read(fd, b, sizeof b) != (ssize_t) sizeof b)
                return -EIO;
        hex_encode(b, sizeof b, ret);
        return 0;
}

/* The firmware: picks and counts an entry, records what it booted. */
int sim_firmware_boot(Agent *a);
int sim_firmware_boot(Agent *a) {
        _cleanup_free_ char *p = sim_path(a, "firmware.json"), *text = NULL;
        BootEntry e = {};
        char slot[2] = "a";
        int r;

        if (!p)
                return -ENOMEM;
        if (a->boot == &boot_grub) {
                char *id = NULL;
                r = grub_firmware_boot(sim_esp_dir(a), "/slipway/grub.cfg", &slot[0], &id);
                e.file = id;
                e.slot = slot[0];
        } else
                r = firmware_boot(sim_esp_dir(a), &e);
        if (r == -ENOENT) {
                log_warning("sim firmware: no boot entry; the host stays blank");
                (void) unlink(p);
                return 0;
        }
        if (r < 0)
                return r;
        slot[0] = e.slot ? e.slot : 'a';
        char boot_id[65];
        r = token_hex(boot_id);
        if (r < 0) {
                bootentry_release(&e);
                return r;
        }
        boot_id[32] = 0;
        json_t *j = json_pack("{s:s, s:s, s:s}", "slot", slot, "entry", e.file, "boot_id", boot_id);
        text = json_dumps(j, JSON_SORT_KEYS);
        json_decref(j);
        log_info("sim firmware: booting %s (slot %s)", e.file, slot);
        bootentry_release(&e);
        if (!text)
                return -ENOMEM;
        return write_file_atomic(p, text, strlen(text), 0644);
}

static int sim_reboot(Agent *a) {
        int r = sim_firmware_boot(a);

        if (r < 0)
                return r;
        if (a->config.sim_reboot_time > 0) {
                /* Down, as a real host is while it reboots: no check-ins. */
                struct timespec ts = { .tv_sec = (time_t) a->config.sim_reboot_time };
                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
        if (agent_stop_requested()) {
                /* Asked to stop during the round: the host has rebooted, but
                 * the agent is not started again (a re-exec would forget
                 * the request and run on). */
                log_info("sim: asked to stop: not restarting the agent");
                return 0;
        }
        log_info("sim: restarting the agent");
        fflush(NULL);
        execv("/proc/self/exe", a->argv);
        return negative_errno();
}

const Backend backend_sim = {
        .name = "sim",
        .init = sim_init,
        .booted = sim_booted,
        .slot_open = sim_slot_open,
        .esp_dir = sim_esp_dir,
        .mark_active = sim_mark_active,
        .reboot = sim_reboot,
};
