/* dnsmasq.c: the rendered configuration against golden files, validation
 * messages, supervision of a fake dnsmasq (a shell script: restarts with
 * backoff, reloads, stop, a dnsmasq deaf to SIGTERM, one left behind by a
 * killed slipwayd), and the real dnsmasq answering busybox udhcpc and
 * hand-made PXE requests across a veth pair between two network namespaces
 * of the test's own (root only; skipped with the reason otherwise).
 *
 * SLIPWAY_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing. */
#include "tests.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dnsmasq.h"
#include "fileio.h"
#include "log.h"
#include "process.h"
#include "util.h"

#define USEC_PER_SEC 1000000ULL
#define BOOT_URL "http://10.99.0.1:8080/boot/ipxe"

static void sleep_usec(uint64_t usec) {
        struct timespec t = { .tv_sec = (time_t) (usec / USEC_PER_SEC),
                              .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000 };

        while (nanosleep(&t, &t) < 0 && errno == EINTR)
                ;
}

/* An absolute path below the test's directory. Caller frees. */
static char *here(const char *name) {
        char cwd[PATH_MAX];

        assert_non_null(getcwd(cwd, sizeof(cwd)));
        return path_join(cwd, name);
}

static void write_file(const char *path, const char *text, mode_t mode) {
        assert_int_equal(mkdir_parents(path, 0755), 0);
        assert_int_equal(write_file_atomic(path, text, strlen(text), mode), 0);
}

/* A directory holding (empty stand-ins for) the two iPXE binaries. */
static char *fake_tftp_root(void) {
        char *dir = here("tftp");

        write_file("tftp/" DHCP_BOOT_FILE_EFI, "efi", 0644);
        write_file("tftp/" DHCP_BOOT_FILE_BIOS, "bios", 0644);
        return dir;
}

/* The source tree: $SLIPWAY_SOURCE_DIR, else what the Makefile compiled in,
 * else two levels above build/tests/test-x. */
static char *source_dir(void) {
        char exe[PATH_MAX];
        const char *e = getenv("SLIPWAY_SOURCE_DIR");

        if (e)
                return strdup(e);
#ifdef SLIPWAY_SOURCE_DIR
        return strdup(SLIPWAY_SOURCE_DIR);
#endif
        if (!realpath("/proc/self/exe", exe))
                return NULL;
        for (int i = 0; i < 3; i++) {
                char *slash = strrchr(exe, '/');
                if (!slash)
                        return NULL;
                *slash = 0;
        }
        return strdup(exe);
}

static void skip_because(const char *why) {
        print_message("skipping: %s\n", why);
        skip();
}

/* ---- rendering ---------------------------------------------------------- */

static void assert_golden(const char *text, const char *name) {
        _cleanup_free_ char *src = source_dir(), *path = NULL, *want = NULL;

        assert_non_null(src);
        path = strdup_printf("%s/tests/unit/golden/%s", src, name);
        assert_non_null(path);
        if (getenv("SLIPWAY_UPDATE_GOLDEN")) {
                write_file(path, text, 0644);
                return;
        }
        assert_int_equal(read_full_file(path, 1 << 20, &want, NULL), 0);
        if (!streq(text, want))
                fail_msg("rendered text differs from '%s':\n%s", path, text);
}

static void test_render_golden(void **state _unused_) {
        DhcpConfig c = {
                .mode = DHCP_MODE_FULL,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.100,10.0.0.200,255.255.255.0,12h",
                .boot_url = (char *) "http://10.0.0.1:8080/boot/ipxe",
                .run_dir = (char *) "/var/lib/slipway/dnsmasq",
        };
        _cleanup_free_ char *full = NULL, *split = NULL, *proxy = NULL, *text = NULL;

        assert_int_equal(dnsmasq_config_render(&c, &full), 0);
        assert_golden(full, "dnsmasq-full.conf");

        /* Half of the range beside another server: not authoritative. */
        c.range = (char *) "10.0.0.100,10.0.0.149,255.255.255.0,12h";
        c.other_servers = true;
        assert_int_equal(dnsmasq_config_render(&c, &split), 0);
        assert_golden(split, "dnsmasq-full-split.conf");
        assert_null(strstr(split, "dhcp-authoritative"));
        assert_non_null(strstr(full, "\ndhcp-authoritative\n"));
        c.other_servers = false;

        c.mode = DHCP_MODE_PROXY;
        c.range = (char *) "10.0.0.0";
        assert_int_equal(dnsmasq_config_render(&c, &proxy), 0);
        assert_golden(proxy, "dnsmasq-proxy.conf");

        /* the range is written back as parsed, optional parts left out */
        c.range = (char *) "10.0.0.0,255.255.0.0";
        c.tftp_root = (char *) "/srv/tftp";
        assert_int_equal(dnsmasq_config_render(&c, &text), 0);
        assert_non_null(strstr(text, "\ndhcp-range=10.0.0.0,proxy,255.255.0.0\n"));
        assert_non_null(strstr(text, "\ntftp-root=/srv/tftp\n"));
        free(text);
        /* a boot URL that names its host by name gives no next server */
        char next[DHCP_ADDRESS_MAX] = "";
        assert_true(dhcp_boot_url_address("http://10.0.0.1:8080/boot/ipxe", next));
        assert_string_equal(next, "10.0.0.1");
        assert_true(dhcp_boot_url_address("http://10.0.0.2/boot/ipxe", next));
        assert_string_equal(next, "10.0.0.2");
        assert_false(dhcp_boot_url_address("http://boot.example:8080/boot/ipxe", next));
        assert_false(dhcp_boot_url_address("http://[fd00::1]:8080/boot/ipxe", next));
        assert_false(dhcp_boot_url_address("http://10.0.0.256/boot/ipxe", next));
        assert_string_equal(next, "10.0.0.2");
        c.boot_url = (char *) "http://boot.example:8080/boot/ipxe";
        assert_int_equal(dnsmasq_config_render(&c, &text), 0);
        assert_non_null(strstr(text, "\ndhcp-boot=tag:ipxe,http://boot.example:8080/boot/ipxe\n"));
        free(text);
        c.boot_url = (char *) "http://10.0.0.1:8080/boot/ipxe";
        c.mode = DHCP_MODE_FULL;
        c.range = (char *) "10.0.0.10,10.0.0.20";
        assert_int_equal(dnsmasq_config_render(&c, &text), 0);
        assert_non_null(strstr(text, "\ndhcp-range=10.0.0.10,10.0.0.20\n"));
        free(text);
        c.range = (char *) "10.0.0.10,10.0.0.20,infinite";
        assert_int_equal(dnsmasq_config_render(&c, &text), 0);
        assert_non_null(strstr(text, "\ndhcp-range=10.0.0.10,10.0.0.20,infinite\n"));
        free(text);
        text = NULL;

        /* nothing to render for off, nor for what does not validate */
        c.mode = DHCP_MODE_OFF;
        assert_int_equal(dnsmasq_config_render(&c, &text), -EINVAL);
        c.mode = DHCP_MODE_FULL;
        c.interface = NULL;
        assert_int_equal(dnsmasq_config_render(&c, &text), -EINVAL);
        assert_null(text);
}

static void test_mode_names(void **state _unused_) {
        for (DhcpMode m = 0; m < _DHCP_MODE_MAX; m++)
                assert_int_equal(dhcp_mode_from_string(dhcp_mode_to_string(m)), m);
        assert_string_equal(dhcp_mode_to_string(DHCP_MODE_PROXY), "proxy");
        assert_int_equal(dhcp_mode_from_string("Full"), _DHCP_MODE_INVALID);
        assert_int_equal(dhcp_mode_from_string(NULL), _DHCP_MODE_INVALID);
        assert_null(dhcp_mode_to_string(_DHCP_MODE_MAX));
        assert_null(dhcp_mode_to_string(_DHCP_MODE_INVALID));
}

/* ---- validation --------------------------------------------------------- */

typedef struct Case {
        const char *what;
        DhcpMode mode;
        const char *interface, *range, *boot_url, *tftp_root, *run_dir, *dnsmasq_path;
        const char *message; /* NULL: valid */
        DhcpSetting setting; /* the one the message is about */
} Case;

static void test_validate(void **state _unused_) {
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *only_efi = here("only-efi"),
                            *private = here("private");
        /* "=" stands for the good value below */
        const Case cases[] = {
                { "valid full", DHCP_MODE_FULL, "=", "=", "=", "=", "=", "=", NULL, 0 },
                { "valid proxy", DHCP_MODE_PROXY, "=", "10.0.0.0", "=", "=", "=", "=", NULL, 0 },
                { "valid proxy with netmask", DHCP_MODE_PROXY, "=", "10.0.0.0,255.255.255.0", "=", "=", "=", "=",
                  NULL, 0 },
                { "off needs nothing", DHCP_MODE_OFF, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0 },
                { "bad mode", (DhcpMode) 7, "=", "=", "=", "=", "=", "=", "mode must be one of off, proxy or full",
                  DHCP_SETTING_MODE },
                { "no interface", DHCP_MODE_FULL, NULL, "=", "=", "=", "=", "=",
                  "interface is required with DHCP mode 'full'", DHCP_SETTING_INTERFACE },
                { "empty interface", DHCP_MODE_PROXY, "", "10.0.0.0", "=", "=", "=", "=",
                  "interface is required with DHCP mode 'proxy'", DHCP_SETTING_INTERFACE },
                { "bad interface", DHCP_MODE_FULL, "eth0,eth1", "=", "=", "=", "=", "=",
                  "interface 'eth0,eth1' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "interface with a ';'", DHCP_MODE_FULL, "eth1;reboot", "=", "=", "=", "=", "=",
                  "interface 'eth1;reboot' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "interface with a blank", DHCP_MODE_FULL, "eth1 eth2", "=", "=", "=", "=", "=",
                  "interface 'eth1 eth2' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "interface with a '#'", DHCP_MODE_PROXY, "eth1#x", "10.0.0.0", "=", "=", "=", "=",
                  "interface 'eth1#x' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "interface wildcard", DHCP_MODE_FULL, "eth*", "=", "=", "=", "=", "=",
                  "interface 'eth*' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "long interface", DHCP_MODE_FULL, "abcdefghijklmnop", "=", "=", "=", "=", "=",
                  "interface 'abcdefghijklmnop' is not a network interface name", DHCP_SETTING_INTERFACE },
                { "no range", DHCP_MODE_FULL, "=", NULL, "=", "=", "=", "=",
                  "range is required with DHCP mode 'full' (START,END[,NETMASK][,LEASETIME])", DHCP_SETTING_RANGE },
                { "one address", DHCP_MODE_FULL, "=", "10.0.0.5", "=", "=", "=", "=",
                  "range '10.0.0.5' is not START,END[,NETMASK][,LEASETIME]", DHCP_SETTING_RANGE },
                { "bad start", DHCP_MODE_FULL, "=", "10.0.0.x,10.0.0.9", "=", "=", "=", "=",
                  "range '10.0.0.x,10.0.0.9': '10.0.0.x' is not an IPv4 address", DHCP_SETTING_RANGE },
                { "bad end", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.256", "=", "=", "=", "=",
                  "range '10.0.0.1,10.0.0.256': '10.0.0.256' is not an IPv4 address", DHCP_SETTING_RANGE },
                { "junk after the end", DHCP_MODE_FULL, "=", "10.0.0.100,10.0.0.200junk", "=", "=", "=", "=",
                  "range '10.0.0.100,10.0.0.200junk': '10.0.0.200junk' is not an IPv4 address", DHCP_SETTING_RANGE },
                { "a blank in the range", DHCP_MODE_FULL, "=", "10.0.0.100, 10.0.0.200", "=", "=", "=", "=",
                  "range '10.0.0.100, 10.0.0.200': ' 10.0.0.200' is not an IPv4 address", DHCP_SETTING_RANGE },
                { "junk after the lease", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,12h;x", "=", "=", "=", "=",
                  "'12h;x' is neither a netmask nor a lease time", DHCP_SETTING_RANGE },
                { "reversed", DHCP_MODE_FULL, "=", "10.0.0.9,10.0.0.1", "=", "=", "=", "=",
                  "range '10.0.0.9,10.0.0.1': the start 10.0.0.9 comes after the end 10.0.0.1", DHCP_SETTING_RANGE },
                { "bad netmask", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,255.0.255.0", "=", "=", "=", "=",
                  "range '10.0.0.1,10.0.0.9,255.0.255.0': '255.0.255.0' is not a netmask", DHCP_SETTING_RANGE },
                { "two subnets", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.1.9,255.255.255.0", "=", "=", "=", "=",
                  "range '10.0.0.1,10.0.1.9,255.255.255.0': 10.0.0.1 and 10.0.1.9 are not in one subnet with "
                  "netmask 255.255.255.0", DHCP_SETTING_RANGE },
                { "bad lease", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,12x", "=", "=", "=", "=",
                  "range '10.0.0.1,10.0.0.9,12x': '12x' is neither a netmask nor a lease time", DHCP_SETTING_RANGE },
                { "short lease", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,255.255.255.0,60", "=", "=", "=", "=",
                  "'60' is neither a netmask nor a lease time (seconds, or a number with m, h, d or w, at "
                  "least 2m; or 'infinite')", DHCP_SETTING_RANGE },
                { "too many fields", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,255.255.255.0,1h,x", "=", "=", "=",
                  "=", "range '10.0.0.1,10.0.0.9,255.255.255.0,1h,x' has too many fields", DHCP_SETTING_RANGE },
                { "lease then more", DHCP_MODE_FULL, "=", "10.0.0.1,10.0.0.9,1h,255.255.255.0", "=", "=", "=",
                  "=", "has too many fields for START,END[,NETMASK][,LEASETIME]", DHCP_SETTING_RANGE },
                { "proxy with a pool", DHCP_MODE_PROXY, "=", "10.0.0.1,10.0.0.9,1h", "=", "=", "=", "=",
                  "range '10.0.0.1,10.0.0.9,1h': proxy mode takes the subnet address, SUBNET[,NETMASK]",
                  DHCP_SETTING_RANGE },
                { "proxy bad subnet", DHCP_MODE_PROXY, "=", "10.0.0", "=", "=", "=", "=",
                  "range '10.0.0': '10.0.0' is not an IPv4 address (proxy mode takes the subnet", DHCP_SETTING_RANGE },
                { "no boot URL", DHCP_MODE_FULL, "=", "=", NULL, "=", "=", "=", "boot URL is required",
                  DHCP_SETTING_BOOT_URL },
                { "boot URL with a comma", DHCP_MODE_FULL, "=", "=", "http://a/b,c", "=", "=", "=",
                  "boot URL 'http://a/b,c' contains a space, comma", DHCP_SETTING_BOOT_URL },
                { "long boot URL", DHCP_MODE_FULL, "=", "=",
                  "http://bootserver.provisioning.example.com:8080/boot/ipxe?mac=${net0/mac}&uuid=${uuid}"
                  "&serial=${serial}&manufacturer=${manufacturer}",
                  "=", "=", "=", "bytes long; a DHCP reply carries at most 127", DHCP_SETTING_BOOT_URL },
                { "relative tftp root", DHCP_MODE_FULL, "=", "=", "=", "tftp", "=", "=",
                  "tftp-root 'tftp' must be an absolute path", DHCP_SETTING_TFTP_ROOT },
                { "tftp root without undionly", DHCP_MODE_FULL, "=", "=", "=", only_efi, "=", "=",
                  "has no undionly.kpxe (it needs ipxe.efi and undionly.kpxe: install the Debian package ipxe",
                  DHCP_SETTING_TFTP_ROOT },
                { "tftp root without anything", DHCP_MODE_PROXY, "=", "10.0.0.0", "=", "/nonexistent", "=", "=",
                  "tftp-root '/nonexistent' has no ipxe.efi", DHCP_SETTING_TFTP_ROOT },
                { "unreadable boot file", DHCP_MODE_FULL, "=", "=", "=", private, "=", "=",
                  "ipxe.efi is not world-readable, and dnsmasq serves TFTP as the user nobody",
                  DHCP_SETTING_TFTP_ROOT },
                { "no run dir", DHCP_MODE_FULL, "=", "=", "=", "=", NULL, "=", "run directory is required",
                  DHCP_SETTING_RUN_DIR },
                { "relative run dir", DHCP_MODE_FULL, "=", "=", "=", "=", "run", "=",
                  "run directory 'run' must be an absolute path", DHCP_SETTING_RUN_DIR },
                { "run dir with a space", DHCP_MODE_FULL, "=", "=", "=", "=", "/run/a b", "=",
                  "run directory '/run/a b' contains a space", DHCP_SETTING_RUN_DIR },
                { "missing program", DHCP_MODE_FULL, "=", "=", "=", "=", "=", "/nonexistent/dnsmasq",
                  "dnsmasq '/nonexistent/dnsmasq' is not an executable program", DHCP_SETTING_DNSMASQ_PATH },
                { "program not in PATH", DHCP_MODE_FULL, "=", "=", "=", "=", "=", "no-such-dnsmasq-here",
                  "dnsmasq 'no-such-dnsmasq-here' is not an executable program in PATH, /usr/sbin or /sbin",
                  DHCP_SETTING_DNSMASQ_PATH },
        };

        write_file("only-efi/" DHCP_BOOT_FILE_EFI, "efi", 0644);
        write_file("private/" DHCP_BOOT_FILE_EFI, "efi", 0600);
        write_file("private/" DHCP_BOOT_FILE_BIOS, "bios", 0644);

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const Case *k = &cases[i];
#define PICK(field, good) (k->field && streq(k->field, "=") ? (char *) (good) : (char *) k->field)
                DhcpConfig c = {
                        .mode = k->mode,
                        .interface = PICK(interface, "eth1"),
                        .range = PICK(range, "10.0.0.100,10.0.0.200,255.255.255.0,12h"),
                        .boot_url = PICK(boot_url, BOOT_URL),
                        .tftp_root = PICK(tftp_root, tftp),
                        .run_dir = PICK(run_dir, run),
                        .dnsmasq_path = PICK(dnsmasq_path, "/bin/sh"),
                };
#undef PICK
                _cleanup_free_ char *error = NULL;
                DhcpSetting at = _DHCP_SETTING_MAX;
                Dnsmasq *d = NULL;
                int r = dhcp_config_validate(&c, &at, &error);

                print_message("%s: %s\n", k->what, error ? error : "valid");
                if (!k->message) {
                        assert_int_equal(r, 0);
                        assert_null(error);
                        assert_int_equal(dnsmasq_new(&c, &d), 0);
                        d = dnsmasq_free(d);
                        continue;
                }
                assert_int_equal(r, -EINVAL);
                assert_non_null(error);
                /* one message, one line, no trailing period */
                assert_null(strchr(error, '\n'));
                assert_false(endswith(error, "."));
                if (!strstr(error, k->message))
                        fail_msg("%s: got \"%s\", wanted \"%s\"", k->what, error, k->message);
                /* the setting to point the person at (slipwayd names its file and line) */
                if (at != k->setting)
                        fail_msg("%s: the error is about setting %d, wanted %d", k->what, (int) at, (int) k->setting);
                /* the caller may skip the message; dnsmasq_new refuses alike */
                assert_int_equal(dhcp_config_validate(&c, NULL, NULL), -EINVAL);
                assert_int_equal(dnsmasq_new(&c, &d), -EINVAL);
                assert_null(d);
        }
}

/* ---- supervision, with a fake dnsmasq ----------------------------------- */

/* Records each start (pid and arguments) beside its configuration file, then
 * becomes a sleep, so that what runs under the pid has nothing of the shell. */
static const char fake_dnsmasq[] = "#!/bin/sh\n"
                                   "conf=\"${2#--conf-file=}\"\n"
                                   "echo \"$$ $*\" >>\"${conf%/*}/fake-starts\"\n"
                                   "exec sleep 1000\n";

static void make_fake(const char *name) {
        write_file(name, fake_dnsmasq, 0755);
}

/* Waits until pid's command is comm (the fake has exec'd its sleep). */
static void wait_comm(pid_t pid, const char *comm) {
        _cleanup_free_ char *path = strdup_printf("/proc/%d/comm", (int) pid);
        uint64_t deadline = now_usec() + 5 * USEC_PER_SEC;

        for (;;) {
                _cleanup_free_ char *s = NULL;

                if (read_full_file(path, 256, &s, NULL) == 0) {
                        s[strcspn(s, "\n")] = 0;
                        if (streq(s, comm))
                                return;
                }
                if (now_usec() > deadline)
                        fail_msg("pid %d never became '%s'", (int) pid, comm);
                sleep_usec(10 * 1000);
        }
}

static void assert_gone(pid_t pid) {
        assert_true(pid > 0);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
}

/* The signal mask and ignored set of pid, from /proc/pid/status. */
static void proc_status_field(pid_t pid, const char *field, char *buf, size_t size) {
        _cleanup_free_ char *path = strdup_printf("/proc/%d/status", (int) pid), *s = NULL;
        const char *p;

        assert_int_equal(read_full_file(path, 1 << 16, &s, NULL), 0);
        p = strstr(s, field);
        assert_non_null(p);
        p += strlen(field);
        p += strspn(p, " \t");
        snprintf(buf, size, "%.*s", (int) strcspn(p, "\n"), p);
}

/* What the child was given: fds 0-2 only (stdin /dev/null, stdout and stderr
 * ours), a clean environment, default signals, its own process group. */
static void assert_clean_child(pid_t pid) {
        _cleanup_free_ char *fd_dir = strdup_printf("/proc/%d/fd", (int) pid),
                            *env_path = strdup_printf("/proc/%d/environ", (int) pid), *env = NULL;
        char link[PATH_MAX], ours[PATH_MAX], field[64];
        _cleanup_free_ char *l0 = strdup_printf("%s/0", fd_dir), *l1 = strdup_printf("%s/1", fd_dir),
                            *l2 = strdup_printf("%s/2", fd_dir);
        struct dirent *de;
        unsigned count = 0;
        size_t n;
        DIR *dir;
        ssize_t k;

        dir = opendir(fd_dir);
        assert_non_null(dir);
        while ((de = readdir(dir))) {
                if (de->d_name[0] == '.')
                        continue;
                if (!streq(de->d_name, "0") && !streq(de->d_name, "1") && !streq(de->d_name, "2"))
                        fail_msg("the child has fd %s open", de->d_name);
                count++;
        }
        closedir(dir);
        assert_int_equal(count, 3);
        k = readlink(l0, link, sizeof(link) - 1);
        assert_true(k > 0);
        link[k] = 0;
        assert_string_equal(link, "/dev/null");
        k = readlink("/proc/self/fd/2", ours, sizeof(ours) - 1);
        assert_true(k > 0);
        ours[k] = 0;
        for (int i = 1; i <= 2; i++) {
                k = readlink(i == 1 ? l1 : l2, link, sizeof(link) - 1);
                assert_true(k > 0);
                link[k] = 0;
                assert_string_equal(link, ours);
        }

        /* The kernel names the process after the new program before it
         * sets up that program's stack: until then environ reads empty. */
        for (uint64_t deadline = now_usec() + 5 * USEC_PER_SEC;;) {
                free(env);
                env = NULL;
                assert_int_equal(read_full_file(env_path, 1 << 16, &env, &n), 0);
                if (n > 0)
                        break;
                if (now_usec() > deadline)
                        fail_msg("pid %d has an empty environment", (int) pid);
                sleep_usec(10 * 1000);
        }
        for (size_t i = 0; i < n; i += strlen(env + i) + 1)
                if (!startswith(env + i, "PATH=") && !startswith(env + i, "PWD="))
                        fail_msg("the child's environment has '%s'", env + i);
        assert_non_null(memmem(env, n, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", 35));

        /* Signals 32 and 33 are glibc's own; whether they show as blocked or
         * ignored depends on what started the test (glibc will not touch
         * them), and dnsmasq never uses them. */
        proc_status_field(pid, "SigBlk:", field, sizeof(field));
        assert_int_equal(strtoull(field, NULL, 16) & ~0x180000000ULL, 0);
        proc_status_field(pid, "SigIgn:", field, sizeof(field));
        assert_int_equal(strtoull(field, NULL, 16) & ~0x180000000ULL, 0);
        assert_int_equal(getpgid(pid), pid);
}

/* Calls dnsmasq_check() about every 20 ms until it restarts dnsmasq; returns
 * how long that took. */
static uint64_t check_until_restarted(Dnsmasq *d) {
        uint64_t t0 = now_usec();

        for (;;) {
                int r = dnsmasq_check(d);

                assert_true(r >= 0);
                if (r == 1)
                        return now_usec() - t0;
                if (now_usec() - t0 > 10 * USEC_PER_SEC)
                        fail_msg("dnsmasq was not restarted within 10 s");
                sleep_usec(20 * 1000);
        }
}

static void test_supervise(void **state _unused_) {
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *fake = here("fake-dnsmasq"),
                            *conf_path = here("run/" DNSMASQ_CONF_FILE), *text = NULL, *on_disk = NULL,
                            *starts = NULL, *want_args = NULL, *pid_line = NULL;
        DhcpConfig c = {
                .mode = DHCP_MODE_FULL,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.100,10.0.0.200",
                .boot_url = (char *) BOOT_URL,
                .tftp_root = tftp,
                .run_dir = run,
                .dnsmasq_path = fake,
        };
        _cleanup_dnsmasq_free_ Dnsmasq *d = NULL;
        sigset_t block, saved_mask;
        struct sigaction ign = { .sa_handler = SIG_IGN }, saved_usr1;
        pid_t p1, p2, p3, p4;
        uint64_t took;
        int leak;

        make_fake("fake-dnsmasq");
        assert_int_equal(dnsmasq_new(&c, &d), 0);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_int_equal(dnsmasq_check(d), 0); /* not started: nothing to do */

        /* what a daemon has around when it starts dnsmasq: an fd without
         * O_CLOEXEC, a blocked signal, an ignored one, an environment */
        leak = open("/dev/null", O_RDONLY);
        assert_true(leak >= 0);
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGCHLD);
        assert_int_equal(sigprocmask(SIG_BLOCK, &block, &saved_mask), 0);
        assert_int_equal(sigaction(SIGUSR1, &ign, &saved_usr1), 0);
        setenv("SLIPWAY_SECRET_FOR_TEST", "x", 1);
        assert_int_equal(dnsmasq_start(d), 0);
        unsetenv("SLIPWAY_SECRET_FOR_TEST");
        assert_int_equal(sigaction(SIGUSR1, &saved_usr1, NULL), 0);
        assert_int_equal(sigprocmask(SIG_SETMASK, &saved_mask, NULL), 0);
        close(leak);

        p1 = dnsmasq_pid(d);
        assert_true(p1 > 0);
        assert_int_equal(dnsmasq_start(d), 0); /* already started */
        assert_int_equal(dnsmasq_pid(d), p1);
        wait_comm(p1, "sleep");
        assert_clean_child(p1);
        assert_int_equal(read_full_file("run/" DNSMASQ_PID_FILE, 256, &pid_line, NULL), 0);
        assert_int_equal(strtol(pid_line, NULL, 10), p1);

        /* the file is the rendered text, and the fake was told where it is */
        assert_int_equal(dnsmasq_config_render(&c, &text), 0);
        assert_int_equal(read_full_file(conf_path, 1 << 20, &on_disk, NULL), 0);
        assert_string_equal(on_disk, text);
        assert_int_equal(read_full_file("run/fake-starts", 4096, &starts, NULL), 0);
        want_args = strdup_printf("%d --keep-in-foreground --conf-file=%s\n", (int) p1, conf_path);
        assert_string_equal(starts, want_args);
        assert_int_equal(dnsmasq_check(d), 0);
        assert_int_equal(dnsmasq_pid(d), p1);
        assert_int_equal(dnsmasq_restarts(d), 0);

        /* killed: reaped, restarted after 1 s, then after 2 s */
        assert_int_equal(kill(p1, SIGKILL), 0);
        took = check_until_restarted(d);
        assert_true(took >= 900 * 1000);
        p2 = dnsmasq_pid(d);
        assert_true(p2 > 0);
        assert_int_not_equal(p2, p1);
        assert_gone(p1);
        assert_int_equal(dnsmasq_restarts(d), 1);
        wait_comm(p2, "sleep");
        assert_int_equal(kill(p2, SIGKILL), 0);
        took = check_until_restarted(d);
        assert_true(took >= 1900 * 1000);
        p3 = dnsmasq_pid(d);
        assert_int_not_equal(p3, p2);
        assert_gone(p2);
        assert_int_equal(dnsmasq_restarts(d), 2);

        /* the same configuration again: dnsmasq keeps running */
        assert_int_equal(dnsmasq_reload(d, &c), 0);
        assert_int_equal(dnsmasq_pid(d), p3);

        /* a changed one: the file first, then a new dnsmasq */
        c.range = (char *) "10.0.0.100,10.0.0.150";
        assert_int_equal(dnsmasq_reload(d, &c), 1);
        p4 = dnsmasq_pid(d);
        assert_true(p4 > 0);
        assert_int_not_equal(p4, p3);
        assert_gone(p3);
        free(on_disk);
        assert_int_equal(read_full_file(conf_path, 1 << 20, &on_disk, NULL), 0);
        assert_non_null(strstr(on_disk, "\ndhcp-range=10.0.0.100,10.0.0.150\n"));
        assert_int_equal(dnsmasq_restarts(d), 2); /* asked for, not counted */

        /* one that does not validate changes nothing */
        c.range = (char *) "10.0.0.150,10.0.0.100";
        assert_int_equal(dnsmasq_reload(d, &c), -EINVAL);
        assert_int_equal(dnsmasq_pid(d), p4);
        c.range = (char *) "10.0.0.100,10.0.0.150";

        /* off stops it, and supervision leaves it stopped; back on starts it */
        c.mode = DHCP_MODE_OFF;
        assert_int_equal(dnsmasq_reload(d, &c), 1);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_gone(p4);
        assert_int_equal(dnsmasq_check(d), 0);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_int_equal(dnsmasq_reload(d, &c), 0);
        c.mode = DHCP_MODE_FULL;
        assert_int_equal(dnsmasq_reload(d, &c), 1);
        p4 = dnsmasq_pid(d);
        assert_true(p4 > 0);

        /* stop: no child left, not even a zombie, and nothing restarts */
        assert_int_equal(dnsmasq_stop(d), 0);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_false(path_exists("run/" DNSMASQ_PID_FILE));
        assert_gone(p4);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(dnsmasq_check(d), 0);
        assert_int_equal(dnsmasq_pid(d), 0);

        /* stopped, a reload only stores the configuration */
        c.range = (char *) "10.0.0.100,10.0.0.120";
        assert_int_equal(dnsmasq_reload(d, &c), 0);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_int_equal(dnsmasq_start(d), 0);
        free(on_disk);
        assert_int_equal(read_full_file(conf_path, 1 << 20, &on_disk, NULL), 0);
        assert_non_null(strstr(on_disk, "\ndhcp-range=10.0.0.100,10.0.0.120\n"));
        p4 = dnsmasq_pid(d);
        d = dnsmasq_free(d);
        assert_gone(p4);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

/* A dnsmasq that cannot be executed fails dnsmasq_start() itself, and leaves
 * nothing behind. */
static void test_start_fails(void **state _unused_) {
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *fake = here("broken-dnsmasq");
        DhcpConfig c = {
                .mode = DHCP_MODE_PROXY,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.0",
                .boot_url = (char *) BOOT_URL,
                .tftp_root = tftp,
                .run_dir = run,
                .dnsmasq_path = fake,
        };
        _cleanup_dnsmasq_free_ Dnsmasq *d = NULL;

        write_file("broken-dnsmasq", "#!/nonexistent/interpreter\n", 0755);
        assert_int_equal(dnsmasq_new(&c, &d), 0);
        assert_int_equal(dnsmasq_start(d), -ENOENT);
        assert_int_equal(dnsmasq_pid(d), 0);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_int_equal(dnsmasq_check(d), 0); /* not started: no retries */
        assert_int_equal(dnsmasq_pid(d), 0);

        /* gone after dnsmasq_new() */
        make_fake("broken-dnsmasq");
        assert_int_equal(dnsmasq_start(d), 0);
        assert_true(dnsmasq_pid(d) > 0);
        assert_int_equal(dnsmasq_stop(d), 0);
        assert_int_equal(unlink("broken-dnsmasq"), 0);
        assert_int_equal(dnsmasq_start(d), -ENOENT);

}

/* A dnsmasq deaf to SIGTERM gets SIGKILL after 5 s. */
static void test_stop_escalates(void **state _unused_) {
        static const char deaf[] = "#!/bin/sh\n"
                                   "trap '' TERM\n"
                                   "exec sleep 1000\n";
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *fake = here("deaf-dnsmasq");
        DhcpConfig c = {
                .mode = DHCP_MODE_FULL,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.100,10.0.0.200",
                .boot_url = (char *) BOOT_URL,
                .tftp_root = tftp,
                .run_dir = run,
                .dnsmasq_path = fake,
        };
        _cleanup_dnsmasq_free_ Dnsmasq *d = NULL;
        uint64_t t0, took;
        pid_t pid;

        write_file("deaf-dnsmasq", deaf, 0755);
        assert_int_equal(dnsmasq_new(&c, &d), 0);
        assert_int_equal(dnsmasq_start(d), 0);
        pid = dnsmasq_pid(d);
        wait_comm(pid, "sleep");
        t0 = now_usec();
        assert_int_equal(dnsmasq_stop(d), 0);
        took = now_usec() - t0;
        assert_true(took >= 5 * USEC_PER_SEC);
        assert_true(took < 8 * USEC_PER_SEC);
        assert_gone(pid);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
}

/* Running, not a zombie. */
static bool alive(pid_t pid) {
        _cleanup_free_ char *path = strdup_printf("/proc/%d/stat", (int) pid), *s = NULL;
        const char *p;

        if (read_full_file(path, 4096, &s, NULL) < 0 || !(p = strrchr(s, ')')))
                return false;
        return p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

/* A slipwayd killed with SIGKILL leaves its dnsmasq behind: PR_SET_PDEATHSIG
 * does not hold once dnsmasq has switched to the user nobody, which the fake
 * does too. The next slipwayd ends it before starting its own. */
static void test_stale_instance(void **state _unused_) {
        static const char dropping[] = "#!/bin/sh\n"
                                       "exec setpriv --reuid=65534 --regid=65534 --clear-groups sleep 1000\n";
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *fake = here("dropping-dnsmasq"),
                            *line = NULL;
        DhcpConfig c = {
                .mode = DHCP_MODE_FULL,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.100,10.0.0.200",
                .boot_url = (char *) BOOT_URL,
                .tftp_root = tftp,
                .run_dir = run,
                .dnsmasq_path = fake,
        };
        _cleanup_dnsmasq_free_ Dnsmasq *d = NULL;
        pid_t daemon, stale;
        int status;

        if (geteuid() != 0)
                skip_because("changing to the user nobody needs root");
        write_file("dropping-dnsmasq", dropping, 0755);
        daemon = fork();
        assert_true(daemon >= 0);
        if (daemon == 0) {
                /* the earlier slipwayd: starts dnsmasq, waits for it to become
                 * nobody, and dies without a word */
                Dnsmasq *early = NULL;
                _cleanup_free_ char *path = NULL;

                if (dnsmasq_new(&c, &early) < 0 || dnsmasq_start(early) < 0)
                        _exit(1);
                path = strdup_printf("/proc/%d/status", (int) dnsmasq_pid(early));
                for (int i = 0; i < 500; i++) {
                        _cleanup_free_ char *st = NULL;

                        if (path && read_full_file(path, 1 << 16, &st, NULL) == 0 && strstr(st, "\nUid:\t65534"))
                                _exit(0);
                        sleep_usec(10 * 1000);
                }
                _exit(2);
        }
        assert_int_equal(waitpid(daemon, &status, 0), daemon);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_int_equal(read_full_file("run/" DNSMASQ_PID_FILE, 256, &line, NULL), 0);
        assert_int_equal(safe_atoi(strndupa(line, strcspn(line, " ")), &stale), 0);
        sleep_usec(100 * 1000);
        assert_true(alive(stale)); /* outlived its parent */

        assert_int_equal(dnsmasq_new(&c, &d), 0);
        assert_int_equal(dnsmasq_start(d), 0);
        assert_false(alive(stale));
        assert_true(dnsmasq_pid(d) > 0);
        assert_int_not_equal(dnsmasq_pid(d), stale);
        /* a pid file naming a process that is gone is left alone */
        d = dnsmasq_free(d);
        assert_int_equal(write_file_atomic("run/" DNSMASQ_PID_FILE, line, strlen(line), 0644), 0);
        assert_int_equal(dnsmasq_new(&c, &d), 0);
        assert_int_equal(dnsmasq_start(d), 0);
        assert_true(dnsmasq_pid(d) > 0);
}

/* Mode off runs nothing; a reload to a mode that is on starts dnsmasq,
 * whether or not dnsmasq_start() was called in mode off. */
static void test_off_and_on(void **state _unused_) {
        _cleanup_free_ char *tftp = fake_tftp_root(), *run = here("run"), *fake = here("fake-dnsmasq");
        DhcpConfig c = {
                .mode = DHCP_MODE_OFF,
                .interface = (char *) "eth1",
                .range = (char *) "10.0.0.0",
                .boot_url = (char *) BOOT_URL,
                .tftp_root = tftp,
                .run_dir = run,
                .dnsmasq_path = fake,
        };
        _cleanup_dnsmasq_free_ Dnsmasq *d = NULL;
        pid_t pid;

        make_fake("fake-dnsmasq");
        for (int call_start = 0; call_start <= 1; call_start++) {
                c.mode = DHCP_MODE_OFF;
                assert_int_equal(dnsmasq_new(&c, &d), 0);
                if (call_start)
                        assert_int_equal(dnsmasq_start(d), 0);
                assert_int_equal(dnsmasq_pid(d), 0);
                assert_int_equal(dnsmasq_check(d), 0);
                assert_false(path_exists("run/" DNSMASQ_CONF_FILE));
                assert_int_equal(dnsmasq_reload(d, &c), 0);
                assert_int_equal(dnsmasq_pid(d), 0);

                c.mode = DHCP_MODE_PROXY;
                assert_int_equal(dnsmasq_reload(d, &c), 1);
                pid = dnsmasq_pid(d);
                assert_true(pid > 0);
                assert_true(path_exists("run/" DNSMASQ_CONF_FILE));
                assert_int_equal(dnsmasq_start(d), 0); /* runs already */
                assert_int_equal(dnsmasq_pid(d), pid);
                assert_int_equal(dnsmasq_reload(d, &c), 0);
                assert_int_equal(dnsmasq_pid(d), pid);
                d = dnsmasq_free(d);
                assert_gone(pid);
                assert_int_equal(rm_rf("run"), 0);
        }
}

/* ---- the real dnsmasq, in network namespaces ---------------------------- */

/* The test process moves between three network namespaces: its original
 * one, "server" (s0, 10.99.0.1/24, dnsmasq) and "client" (c0, DHCP clients).
 * Both new ones vanish with their last reference, so nothing is left behind
 * whatever happens. */
typedef struct Net {
        int orig_ns, server_ns, client_ns;
        Dnsmasq *dnsmasq;
        pid_t site_pid; /* the "other" DHCP server in proxy mode */
} Net;

static Net net = { -1, -1, -1, NULL, 0 };

static void net_enter(int ns) {
        assert_int_equal(setns(ns, CLONE_NEWNET), 0);
}

static int net_teardown(void **state) {
        net.dnsmasq = dnsmasq_free(net.dnsmasq);
        if (net.site_pid > 0) {
                kill(net.site_pid, SIGTERM);
                waitpid(net.site_pid, NULL, 0);
                net.site_pid = 0;
        }
        if (net.orig_ns >= 0 && setns(net.orig_ns, CLONE_NEWNET) < 0)
                return -1;
        for (int *fd = &net.orig_ns; fd <= &net.client_ns; fd++)
                if (*fd >= 0) {
                        close(*fd);
                        *fd = -1;
                }
        return test_dir_teardown(state);
}

/* Runs argv in namespace ns (the client's or the server's), waiting for it.
 * Returns its exit status; *ret_err (if given) gets its stderr. */
static int run_in(int ns, char *const *argv, char *const *env_set, char **ret_err) {
        int r;

        net_enter(ns);
        r = spawn_capture(argv, NULL, env_set, ret_err);
        net_enter(net.server_ns);
        return r;
}

/* Runs a setup command; a failure means this machine cannot do namespaces. */
static void setup_cmd(int ns, char *const *argv) {
        _cleanup_free_ char *err = NULL, *why = NULL;
        int r = run_in(ns, argv, NULL, &err);

        if (r == 0)
                return;
        why = strdup_printf("'%s %s %s' failed (%d): %s", argv[0], argv[1], argv[2], r, strempty(err));
        skip_because(why);
}

static bool interface_running(const char *name) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        struct ifreq ifr = {};

        assert_true(fd >= 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        return ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_RUNNING);
}

/* Builds the namespaces and the veth pair s0 (server, 10.99.0.1/24) - c0
 * (client, no address yet); skips the test when that is not possible. */
static void net_setup(void) {
        _cleanup_free_ char *peer_ns = NULL;
        uint64_t deadline;

        if (geteuid() != 0)
                skip_because("network namespaces need root");
        if (access("/usr/lib/ipxe/" DHCP_BOOT_FILE_BIOS, R_OK) < 0 ||
            access("/usr/lib/ipxe/" DHCP_BOOT_FILE_EFI, R_OK) < 0)
                skip_because("/usr/lib/ipxe lacks the iPXE binaries (Debian package ipxe)");
        if (spawn_capture((char *const[]) { "busybox", "true", NULL }, NULL, NULL, NULL) != 0)
                skip_because("no busybox (Debian package busybox-static) for udhcpc and tftp");
        net.orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        assert_true(net.orig_ns >= 0);
        if (unshare(CLONE_NEWNET) < 0)
                skip_because("unshare(CLONE_NEWNET) failed");
        net.client_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        assert_true(net.client_ns >= 0);
        assert_int_equal(unshare(CLONE_NEWNET), 0);
        net.server_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        assert_true(net.server_ns >= 0);

        /* ip opens the namespace by this path, so our fd needs no inheriting */
        peer_ns = strdup_printf("/proc/%d/fd/%d", (int) getpid(), net.client_ns);
        setup_cmd(net.server_ns,
                  (char *const[]) { "ip", "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns",
                                    peer_ns, NULL });
        setup_cmd(net.server_ns, (char *const[]) { "ip", "addr", "add", "10.99.0.1/24", "dev", "s0", NULL });
        setup_cmd(net.server_ns, (char *const[]) { "ip", "link", "set", "s0", "up", NULL });
        setup_cmd(net.server_ns, (char *const[]) { "ip", "link", "set", "lo", "up", NULL });
        setup_cmd(net.client_ns, (char *const[]) { "ip", "link", "set", "lo", "up", NULL });
        setup_cmd(net.client_ns, (char *const[]) { "ip", "link", "set", "c0", "up", NULL });
        deadline = now_usec() + 5 * USEC_PER_SEC;
        while (!interface_running("s0")) {
                if (now_usec() > deadline)
                        fail_msg("s0 did not come up");
                sleep_usec(10 * 1000);
        }
}

/* Waits until n sockets are bound to UDP port in the server namespace. */
static void wait_udp_port(unsigned port, unsigned n) {
        uint64_t deadline = now_usec() + 5 * USEC_PER_SEC;
        char needle[16];

        snprintf(needle, sizeof(needle), ":%04X ", port);
        for (;;) {
                _cleanup_free_ char *s = NULL;
                unsigned found = 0;

                assert_int_equal(read_full_file("/proc/net/udp", 1 << 20, &s, NULL), 0);
                for (char *line = strchr(s, '\n'); line; line = strchr(line + 1, '\n')) {
                        /* "  sl  local_address rem_address ...": the first address is ours */
                        char *local = strchr(line, ':');
                        if (local && (local = strchr(local + 1, ':')) && startswith(local, needle))
                                found++;
                }
                if (found >= n)
                        return;
                if (dnsmasq_check(net.dnsmasq) != 0 || dnsmasq_pid(net.dnsmasq) == 0)
                        fail_msg("dnsmasq died while starting (its messages are above)");
                if (now_usec() > deadline)
                        fail_msg("nothing listens on UDP port %u after 5 s", port);
                sleep_usec(20 * 1000);
        }
}

/* The udhcpc script: keeps what "bound" says and configures the address, so
 * that TFTP and PXE requests can follow. */
static const char udhcpc_script[] = "#!/bin/sh\n"
                                    "[ \"$1\" = bound ] || exit 0\n"
                                    "env >\"$UDHCPC_RESULT\"\n"
                                    "ip addr flush dev \"$interface\"\n"
                                    "ip addr add \"$ip/$mask\" dev \"$interface\"\n";

typedef struct Lease {
        char ip[INET_ADDRSTRLEN], siaddr[INET_ADDRSTRLEN];
        char boot_file[256];
} Lease;

/* Runs busybox udhcpc in the client namespace with the extra options (-x
 * OPT:VAL) given, and returns what its script saw. */
static void udhcpc(const char *const *extra, Lease *ret) {
        _cleanup_free_ char *script = here("udhcpc.sh"), *result = here("udhcpc.env"), *env_result = NULL,
                            *err = NULL, *env = NULL;
        const char *argv[32] = { "busybox", "udhcpc", "-i", "c0", "-f", "-n", "-q", "-T", "1", "-t", "10",
                                 "-s",      script };
        size_t n = 13;
        int r;

        write_file("udhcpc.sh", udhcpc_script, 0755);
        (void) unlink(result);
        for (; extra && *extra; extra++) {
                assert_true(n + 3 < ELEMENTSOF(argv));
                argv[n++] = "-x";
                argv[n++] = *extra;
        }
        env_result = strdup_printf("UDHCPC_RESULT=%s", result);
        r = run_in(net.client_ns, (char *const *) argv, (char *const[]) { env_result, NULL }, &err);
        if (r != 0)
                fail_msg("udhcpc failed (%d):\n%s", r, strempty(err));
        assert_int_equal(read_full_file(result, 1 << 16, &env, NULL), 0);
        *ret = (Lease) {};
        for (char *line = env, *next; line && *line; line = next) {
                const char *v;

                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                if ((v = startswith(line, "ip=")))
                        snprintf(ret->ip, sizeof(ret->ip), "%s", v);
                else if ((v = startswith(line, "siaddr=")))
                        snprintf(ret->siaddr, sizeof(ret->siaddr), "%s", v);
                else if ((v = startswith(line, "boot_file=")))
                        snprintf(ret->boot_file, sizeof(ret->boot_file), "%s", v);
        }
        print_message("udhcpc: ip %s, siaddr %s, boot_file '%s'\n", ret->ip, ret->siaddr, ret->boot_file);
}

static void assert_ip_in_range(const char *ip, const char *first, const char *last) {
        struct in_addr a, lo, hi;

        assert_int_equal(inet_pton(AF_INET, ip, &a), 1);
        assert_int_equal(inet_pton(AF_INET, first, &lo), 1);
        assert_int_equal(inet_pton(AF_INET, last, &hi), 1);
        if (ntohl(a.s_addr) < ntohl(lo.s_addr) || ntohl(a.s_addr) > ntohl(hi.s_addr))
                fail_msg("%s is outside %s-%s", ip, first, last);
}

static void start_module(DhcpMode mode, const char *range) {
        _cleanup_free_ char *run = here("run"), *error = NULL;
        DhcpConfig c = {
                .mode = mode,
                .interface = (char *) "s0",
                .range = (char *) range,
                .boot_url = (char *) BOOT_URL,
                .run_dir = run,
        };

        if (dhcp_config_validate(&c, NULL, &error) < 0)
                skip_because(error);
        assert_int_equal(dnsmasq_new(&c, &net.dnsmasq), 0);
        assert_int_equal(dnsmasq_start(net.dnsmasq), 0);
}

/* Fetches name from the server by TFTP in the client namespace and compares
 * it with the file in /usr/lib/ipxe. */
static void assert_tftp(const char *name) {
        _cleanup_free_ char *local = here(name), *got = NULL, *want = NULL, *err = NULL, *src = NULL;
        size_t got_size, want_size;
        int r;

        r = run_in(net.client_ns,
                   (char *const[]) { "busybox", "tftp", "-g", "-b", "1400", "-r", (char *) name, "-l", local,
                                     "10.99.0.1", NULL },
                   NULL, &err);
        if (r != 0)
                fail_msg("tftp of '%s' failed (%d): %s", name, r, strempty(err));
        src = path_join("/usr/lib/ipxe", name);
        assert_int_equal(read_full_file(local, 8 << 20, &got, &got_size), 0);
        assert_int_equal(read_full_file(src, 8 << 20, &want, &want_size), 0);
        assert_int_equal(got_size, want_size);
        assert_memory_equal(got, want, want_size);
}

static void test_real_full(void **state _unused_) {
        _cleanup_free_ char *leases = NULL;
        Lease l;

        net_setup();
        start_module(DHCP_MODE_FULL, "10.99.0.100,10.99.0.199,255.255.255.0,1h");
        wait_udp_port(67, 1);

        /* plain udhcpc sends no client architecture: a BIOS client. The
         * first lease waits for dnsmasq's ping check (about 3 s). */
        udhcpc(NULL, &l);
        assert_ip_in_range(l.ip, "10.99.0.100", "10.99.0.199");
        assert_string_equal(l.siaddr, "10.99.0.1");
        assert_string_equal(l.boot_file, DHCP_BOOT_FILE_BIOS);
        assert_int_equal(read_full_file("run/" DNSMASQ_LEASE_FILE, 1 << 16, &leases, NULL), 0);
        assert_non_null(strstr(leases, l.ip));

        /* and TFTP serves both binaries (ipxe.efi is a symlink on Debian) */
        assert_tftp(DHCP_BOOT_FILE_BIOS);
        assert_tftp(DHCP_BOOT_FILE_EFI);

        /* client architecture 7 and 9 (option 93): x86-64 UEFI */
        udhcpc((const char *const[]) { "0x5d:0007", NULL }, &l);
        assert_string_equal(l.boot_file, DHCP_BOOT_FILE_EFI);
        assert_string_equal(l.siaddr, "10.99.0.1");
        udhcpc((const char *const[]) { "0x5d:0009", NULL }, &l);
        assert_string_equal(l.boot_file, DHCP_BOOT_FILE_EFI);

        /* user class (option 77) "iPXE", from BIOS or UEFI: the HTTP URL */
        udhcpc((const char *const[]) { "0x4d:69505845", NULL }, &l);
        assert_string_equal(l.boot_file, BOOT_URL);
        udhcpc((const char *const[]) { "0x5d:0007", "0x4d:69505845", NULL }, &l);
        assert_string_equal(l.boot_file, BOOT_URL);
        /* iPXE's own option 175 alone says the same */
        udhcpc((const char *const[]) { "0xaf:150101", NULL }, &l);
        assert_string_equal(l.boot_file, BOOT_URL);
}

/* ---- a PXE client by hand, for proxy mode ---- */

#define BOOTP_MIN 300
#define OPT_OFFSET 240

typedef struct Reply {
        uint8_t type; /* option 53 */
        uint32_t xid;
        struct in_addr yiaddr, siaddr, server_id;
        char file[129];
        char vendor[256];  /* option 60 */
        uint8_t pxe[256];  /* option 43 */
        size_t pxe_len;
        bool has_pxe;
} Reply;

typedef struct Probe {
        int fd;
        uint8_t mac[6];
        struct in_addr ip; /* what udhcpc configured */
} Probe;

/* A UDP socket on c0 port 68, as a PXE ROM's stack would have. */
static void probe_open(Probe *p, const char *ip) {
        struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(68) };
        struct ifreq ifr = {};
        int one = 1;

        net_enter(net.client_ns);
        p->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        net_enter(net.server_ns);
        assert_true(p->fd >= 0);
        assert_int_equal(setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
        assert_int_equal(setsockopt(p->fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)), 0);
        assert_int_equal(setsockopt(p->fd, SOL_SOCKET, SO_BINDTODEVICE, "c0", 3), 0);
        assert_int_equal(bind(p->fd, (struct sockaddr *) &any, sizeof(any)), 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "c0");
        assert_int_equal(ioctl(p->fd, SIOCGIFHWADDR, &ifr), 0);
        memcpy(p->mac, ifr.ifr_hwaddr.sa_data, 6);
        assert_int_equal(inet_pton(AF_INET, ip, &p->ip), 1);
}

static size_t put_option(uint8_t *b, size_t at, uint8_t code, const void *data, size_t len) {
        assert_true(at + 2 + len < 512);
        b[at] = code;
        b[at + 1] = (uint8_t) len;
        memcpy(b + at + 2, data, len);
        return at + 2 + len;
}

/* Sends a DHCP message as PXE firmware does: vendor class PXEClient, client
 * architecture arch, a UUID; ciaddr set (for requests to port 4011) or not;
 * optionally a user class and a PXE boot item (option 43, suboption 71). */
static void probe_send(Probe *p, const char *to, unsigned port, uint8_t type, uint32_t xid, bool ciaddr,
                       uint16_t arch, const char *user_class, const uint8_t boot_item[4]) {
        static const char vendor[] = "PXEClient:Arch:00000:UNDI:002001";
        static const uint8_t cookie[4] = { 99, 130, 83, 99 }, undi[3] = { 1, 2, 1 },
                             params[] = { 1, 3, 43, 60, 66, 67, 128, 129, 130 };
        uint8_t b[512] = {}, uuid[17] = { 0, 0x5c, 0x1d, 0xd1, 0xe5 }, a[2] = { arch >> 8, arch & 0xff };
        struct sockaddr_in dest = { .sin_family = AF_INET, .sin_port = htons(port) };
        uint16_t flags = htons(0x8000);
        size_t at = OPT_OFFSET;

        b[0] = 1; /* BOOTREQUEST */
        b[1] = 1; /* ethernet */
        b[2] = 6;
        memcpy(b + 4, &xid, 4);
        if (ciaddr)
                memcpy(b + 12, &p->ip, 4);
        else
                memcpy(b + 10, &flags, 2); /* no address yet: replies by broadcast */
        memcpy(b + 28, p->mac, 6);
        memcpy(b + 236, cookie, 4);
        at = put_option(b, at, 53, &type, 1);
        at = put_option(b, at, 60, vendor, strlen(vendor));
        at = put_option(b, at, 93, a, 2);
        at = put_option(b, at, 94, undi, 3);
        at = put_option(b, at, 97, uuid, sizeof(uuid));
        at = put_option(b, at, 55, params, sizeof(params));
        if (user_class)
                at = put_option(b, at, 77, user_class, strlen(user_class));
        if (boot_item) {
                uint8_t item[6] = { 71, 4 };
                memcpy(item + 2, boot_item, 4);
                at = put_option(b, at, 43, item, sizeof(item));
        }
        b[at++] = 255;
        assert_int_equal(inet_pton(AF_INET, to, &dest.sin_addr), 1);
        assert_int_equal(sendto(p->fd, b, MAX(at, (size_t) BOOTP_MIN), 0, (struct sockaddr *) &dest, sizeof(dest)),
                         (ssize_t) MAX(at, (size_t) BOOTP_MIN));
}

static bool parse_reply(const uint8_t *b, size_t n, Reply *ret) {
        Reply r = {};

        if (n < OPT_OFFSET || b[0] != 2 || memcmp(b + 236, (const uint8_t[]) { 99, 130, 83, 99 }, 4) != 0)
                return false;
        memcpy(&r.xid, b + 4, 4);
        memcpy(&r.yiaddr, b + 16, 4);
        memcpy(&r.siaddr, b + 20, 4);
        memcpy(r.file, b + 108, 128);
        for (size_t at = OPT_OFFSET; at < n && b[at] != 255;) {
                uint8_t code = b[at], len;

                if (code == 0) {
                        at++;
                        continue;
                }
                if (at + 2 > n || at + 2 + b[at + 1] > n)
                        return false;
                len = b[at + 1];
                if (code == 53 && len == 1)
                        r.type = b[at + 2];
                else if (code == 54 && len == 4)
                        memcpy(&r.server_id, b + at + 2, 4);
                else if (code == 60)
                        memcpy(r.vendor, b + at + 2, len);
                else if (code == 43) {
                        memcpy(r.pxe, b + at + 2, len);
                        r.pxe_len = len;
                        r.has_pxe = true;
                }
                at += 2 + (size_t) len;
        }
        *ret = r;
        return true;
}

/* Receives replies to xid for up to 3 s: the proxy's (vendor class
 * PXEClient) into *proxy, the site server's (an address) into *site. */
static void probe_receive(Probe *p, uint32_t xid, Reply *proxy, bool *got_proxy, Reply *site, bool *got_site) {
        uint64_t deadline = now_usec() + 3 * USEC_PER_SEC;

        *got_proxy = false;
        if (got_site)
                *got_site = false;
        while (!*got_proxy || (got_site && !*got_site)) {
                struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
                uint64_t now = now_usec();
                uint8_t b[1500];
                ssize_t n;
                Reply r;

                if (now >= deadline)
                        return;
                if (poll(&pfd, 1, (int) ((deadline - now) / 1000) + 1) <= 0)
                        continue;
                n = recv(p->fd, b, sizeof(b), 0);
                if (n <= 0 || !parse_reply(b, (size_t) n, &r) || r.xid != xid)
                        continue;
                if (startswith(r.vendor, "PXEClient")) {
                        *proxy = r;
                        *got_proxy = true;
                } else if (got_site && r.yiaddr.s_addr != 0) {
                        *site = r;
                        *got_site = true;
                }
        }
}

/* The first boot item type in a PXE boot menu (option 43, suboption 9). */
static bool pxe_menu_first(const Reply *r, uint8_t ret_type[2], char *ret_text, size_t size) {
        for (size_t at = 0; at + 2 <= r->pxe_len && r->pxe[at] != 255;) {
                uint8_t code = r->pxe[at], len = r->pxe[at + 1];

                if (at + 2 + len > r->pxe_len)
                        return false;
                if (code == 9 && len >= 3 && 3 + r->pxe[at + 4] <= len) {
                        memcpy(ret_type, r->pxe + at + 2, 2);
                        snprintf(ret_text, size, "%.*s", r->pxe[at + 4], (const char *) r->pxe + at + 5);
                        return true;
                }
                at += 2 + (size_t) len;
        }
        return false;
}

static void assert_addr(struct in_addr a, const char *want) {
        char buf[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &a, buf, sizeof(buf));
        assert_string_equal(buf, want);
}

/* Starts a plain DHCP server beside ours on s0, as a site's own would be:
 * no PXE, no ping check (it is not what is under test). */
static void start_site_server(void) {
        _cleanup_free_ char *leases = here("site.leases"), *lease_arg = NULL;
        char *argv[] = { "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
                         "--interface=s0", "--bind-interfaces", "--log-facility=-", "--pid-file=",
                         "--dhcp-range=10.99.0.150,10.99.0.199,1h", "--no-ping", NULL, NULL };

        lease_arg = strdup_printf("--dhcp-leasefile=%s", leases);
        argv[10] = lease_arg;
        net.site_pid = fork();
        assert_true(net.site_pid >= 0);
        if (net.site_pid == 0) {
                execvp("dnsmasq", argv);
                execv("/usr/sbin/dnsmasq", argv);
                _exit(127);
        }
}

static void test_real_proxy(void **state _unused_) {
        uint8_t item[4] = {};
        char menu[64];
        Reply proxy, site;
        bool got_proxy, got_site;
        Probe p = { .fd = -1 };
        Lease l;

        net_setup();
        start_module(DHCP_MODE_PROXY, "10.99.0.0");
        start_site_server();
        wait_udp_port(67, 2);
        wait_udp_port(4011, 1);

        /* a client that is not PXE gets its address from the site's server,
         * and nothing from the proxy */
        udhcpc(NULL, &l);
        assert_ip_in_range(l.ip, "10.99.0.150", "10.99.0.199");
        assert_string_equal(l.boot_file, "");

        probe_open(&p, l.ip);

        /* BIOS PXE firmware: the site's server offers an address, the proxy a
         * boot menu; the menu item, asked for on port 4011, is undionly.kpxe */
        probe_send(&p, "255.255.255.255", 67, 1, 0x5011b105, false, 0, NULL, NULL);
        probe_receive(&p, 0x5011b105, &proxy, &got_proxy, &site, &got_site);
        assert_true(got_site);
        assert_true(got_proxy);
        assert_ip_in_range(inet_ntoa(site.yiaddr), "10.99.0.150", "10.99.0.199");
        assert_int_equal(proxy.type, 2); /* DHCPOFFER */
        assert_addr(proxy.server_id, "10.99.0.1");
        assert_true(proxy.has_pxe);
        assert_true(pxe_menu_first(&proxy, item, menu, sizeof(menu)));
        assert_string_equal(menu, "Slipway iPXE (BIOS)");
        probe_send(&p, "10.99.0.1", 4011, 3, 0x5011b106, true, 0, NULL, item);
        probe_receive(&p, 0x5011b106, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_int_equal(proxy.type, 5); /* DHCPACK */
        assert_string_equal(proxy.file, DHCP_BOOT_FILE_BIOS);
        assert_addr(proxy.siaddr, "10.99.0.1");

        /* x86-64 UEFI firmware: sent on to port 4011, where it gets ipxe.efi */
        probe_send(&p, "255.255.255.255", 67, 1, 0x5011e707, false, 7, NULL, NULL);
        probe_receive(&p, 0x5011e707, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_int_equal(proxy.type, 2);
        assert_addr(proxy.siaddr, "10.99.0.1");
        assert_string_equal(proxy.file, "");
        probe_send(&p, "10.99.0.1", 4011, 3, 0x5011e708, true, 7, NULL, NULL);
        probe_receive(&p, 0x5011e708, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_int_equal(proxy.type, 5);
        assert_string_equal(proxy.file, DHCP_BOOT_FILE_EFI);
        assert_addr(proxy.siaddr, "10.99.0.1");
        probe_send(&p, "10.99.0.1", 4011, 3, 0x5011e909, true, 9, NULL, NULL);
        probe_receive(&p, 0x5011e909, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_string_equal(proxy.file, DHCP_BOOT_FILE_EFI);

        /* iPXE, loaded by either: the URL, in the proxy offer itself, with
         * a next server, without which iPXE takes the offer for one that has
         * no boot information and asks on port 4011 instead, where it
         * ignores an answer without one too */
        probe_send(&p, "255.255.255.255", 67, 1, 0x5011a000, false, 0, "iPXE", NULL);
        probe_receive(&p, 0x5011a000, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_string_equal(proxy.file, BOOT_URL);
        assert_addr(proxy.siaddr, "10.99.0.1");
        probe_send(&p, "255.255.255.255", 67, 1, 0x5011a007, false, 7, "iPXE", NULL);
        probe_receive(&p, 0x5011a007, &proxy, &got_proxy, NULL, NULL);
        assert_true(got_proxy);
        assert_string_equal(proxy.file, BOOT_URL);
        assert_addr(proxy.siaddr, "10.99.0.1");
        close(p.fd);
}

#define net_test(f) cmocka_unit_test_setup_teardown(f, test_dir_setup, net_teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                test_in_dir(test_render_golden), test_in_dir(test_mode_names), test_in_dir(test_validate),
                test_in_dir(test_supervise),     test_in_dir(test_start_fails),
                test_in_dir(test_off_and_on),    test_in_dir(test_stop_escalates),
                test_in_dir(test_stale_instance),
                net_test(test_real_full),
                net_test(test_real_proxy),
        };

        log_set_level(LOG_LEVEL_WARNING);
        return cmocka_run_group_tests_name("dnsmasq", tests, NULL, NULL);
}
