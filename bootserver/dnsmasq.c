#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "dnsmasq.h"
#include "fileio.h"
#include "log.h"
#include "util.h"

#define USEC_PER_SEC 1000000ULL
#define RESTART_DELAY_FIRST_USEC (1 * USEC_PER_SEC)
#define RESTART_DELAY_MAX_USEC (30 * USEC_PER_SEC)
/* An instance that ran this long before dying starts the backoff afresh. */
#define RESTART_RESET_USEC (60 * USEC_PER_SEC)
#define STOP_TIMEOUT_USEC (5 * USEC_PER_SEC)
/* dnsmasq's own floor for a lease (it raises shorter ones silently). */
#define LEASE_MIN_SEC 120
/* Where dnsmasq lives on Debian, for a daemon whose PATH lacks the sbin dirs. */
#define SBIN_DIRS "/usr/sbin:/sbin"
#define CHILD_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

struct Dnsmasq {
        DhcpConfig config;     /* defaults filled in */
        char *text;            /* the configuration of the instance that runs or is due to; NULL: none */
        char *program;         /* dnsmasq_path resolved when the current instance was spawned */
        char *pid_file;        /* where its pid is recorded */
        bool stopped;          /* dnsmasq_stop() was called, and no dnsmasq_start() since */
        pid_t pid;             /* 0: not running */
        uint64_t spawned_usec; /* when pid was spawned */
        uint64_t restart_usec; /* when a dead instance is due again; 0: nothing scheduled */
        uint64_t delay_usec;   /* the delay before the next restart after a death */
        unsigned restarts;
};

static const char *const mode_names[_DHCP_MODE_MAX] = {
        [DHCP_MODE_OFF] = "off",
        [DHCP_MODE_PROXY] = "proxy",
        [DHCP_MODE_FULL] = "full",
};

DhcpMode dhcp_mode_from_string(const char *s) {
        for (int i = 0; s && i < _DHCP_MODE_MAX; i++)
                if (streq(s, mode_names[i]))
                        return i;
        return _DHCP_MODE_INVALID;
}

const char *dhcp_mode_to_string(DhcpMode m) {
        return m >= 0 && m < _DHCP_MODE_MAX ? mode_names[m] : NULL;
}

void dhcp_config_release(DhcpConfig *c) {
        if (!c)
                return;
        free(c->interface);
        free(c->range);
        free(c->tftp_root);
        free(c->boot_url);
        free(c->dnsmasq_path);
        free(c->run_dir);
        *c = (DhcpConfig) { .mode = DHCP_MODE_OFF };
}

static int strdup_maybe(const char *s, char **ret) {
        *ret = s ? strdup(s) : NULL;
        return s && !*ret ? -ENOMEM : 0;
}

int dhcp_config_copy(const DhcpConfig *c, DhcpConfig *ret) {
        DhcpConfig n = { .mode = c->mode };

        if (strdup_maybe(c->interface, &n.interface) < 0 || strdup_maybe(c->range, &n.range) < 0 ||
            strdup_maybe(c->tftp_root, &n.tftp_root) < 0 || strdup_maybe(c->boot_url, &n.boot_url) < 0 ||
            strdup_maybe(c->dnsmasq_path, &n.dnsmasq_path) < 0 || strdup_maybe(c->run_dir, &n.run_dir) < 0) {
                dhcp_config_release(&n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static const char *tftp_root(const DhcpConfig *c) {
        return c->tftp_root ? c->tftp_root : DHCP_TFTP_ROOT_DEFAULT;
}

static const char *dnsmasq_path(const DhcpConfig *c) {
        return c->dnsmasq_path ? c->dnsmasq_path : DHCP_DNSMASQ_PATH_DEFAULT;
}

/* Sets *ret_error (when asked for) and returns -EINVAL, or -ENOMEM. */
_printf_(2, 3) static int invalid(char **ret_error, const char *format, ...) {
        va_list ap;
        char *s;
        int k;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, format);
        k = vasprintf(&s, format, ap);
        va_end(ap);
        if (k < 0)
                return -ENOMEM;
        free(*ret_error);
        *ret_error = s;
        return -EINVAL;
}

/* What a value in dnsmasq's configuration may hold: printable ASCII without
 * the characters its parser gives a meaning to (a comma separates, quotes and
 * backslashes escape, '#' may start a comment) and without spaces. */
static bool conf_value_ok(const char *s) {
        for (; *s; s++)
                if (*s <= ' ' || *s > '~' || strchr(",\"#\\", *s))
                        return false;
        return true;
}

/* Linux's own rules (at most 15 bytes, no '/', ':' or spaces), narrowed to
 * what interface names are in practice, so nothing reaches dnsmasq that it
 * would read as a wildcard or a list. */
static bool interface_name_ok(const char *s) {
        size_t n = strlen(s);

        if (n == 0 || n > 15 || streq(s, ".") || streq(s, ".."))
                return false;
        for (; *s; s++)
                if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
                    !strchr("-_.", *s))
                        return false;
        return true;
}

typedef struct Range {
        char start[INET_ADDRSTRLEN]; /* proxy: the subnet */
        char end[INET_ADDRSTRLEN];   /* full only */
        char netmask[INET_ADDRSTRLEN];
        char lease[24];
} Range;

static bool parse_ipv4(const char *s, uint32_t *ret) {
        struct in_addr a;

        if (inet_pton(AF_INET, s, &a) != 1)
                return false;
        *ret = ntohl(a.s_addr);
        return true;
}

static void format_ipv4(uint32_t a, char buf[INET_ADDRSTRLEN]) {
        struct in_addr in = { .s_addr = htonl(a) };

        inet_ntop(AF_INET, &in, buf, INET_ADDRSTRLEN);
}

static bool netmask_ok(uint32_t m) {
        return m != 0 && (m | (m - 1)) == UINT32_MAX;
}

/* dnsmasq's lease times: seconds, or a number with s, m, h, d or w, or
 * "infinite". */
static bool lease_time_ok(const char *s) {
        static const struct {
                char suffix;
                uint64_t sec;
        } units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 'w', 604800 } };
        char digits[16];
        uint64_t n, unit = 1;
        size_t len = strlen(s);

        if (streq(s, "infinite"))
                return true;
        if (len == 0 || len >= sizeof(digits))
                return false;
        memcpy(digits, s, len + 1);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (digits[len - 1] == units[i].suffix) {
                        unit = units[i].sec;
                        digits[len - 1] = 0;
                }
        if (!digits[0] || strspn(digits, "0123456789") != strlen(digits) || safe_atou64(digits, &n) < 0)
                return false;
        return n <= UINT32_MAX && n * unit >= LEASE_MIN_SEC;
}

/* Splits the range setting on commas into at most max fields. Returns the
 * number of fields, or -E2BIG when there are more. */
static int split_fields(char *s, char **fields, int max) {
        int n = 0;

        for (char *p = s; p;) {
                if (n == max)
                        return -E2BIG;
                fields[n++] = strsep(&p, ",");
        }
        return n;
}

static int parse_range_full(const char *value, Range *ret, char **ret_error) {
        static const char form[] = "START,END[,NETMASK][,LEASETIME]";
        _cleanup_free_ char *copy = strdup(value);
        char *f[4];
        uint32_t start, end, mask = 0;
        Range r = {};
        int n, i = 2;

        if (!copy)
                return -ENOMEM;
        n = split_fields(copy, f, ELEMENTSOF(f));
        if (n < 0)
                return invalid(ret_error, "range '%s' has too many fields for %s", value, form);
        if (n < 2)
                return invalid(ret_error, "range '%s' is not %s", value, form);
        if (!parse_ipv4(f[0], &start))
                return invalid(ret_error, "range '%s': '%s' is not an IPv4 address", value, f[0]);
        if (!parse_ipv4(f[1], &end))
                return invalid(ret_error, "range '%s': '%s' is not an IPv4 address", value, f[1]);
        if (start > end)
                return invalid(ret_error, "range '%s': the start %s comes after the end %s", value, f[0], f[1]);
        if (i < n && parse_ipv4(f[i], &mask)) {
                if (!netmask_ok(mask))
                        return invalid(ret_error, "range '%s': '%s' is not a netmask", value, f[i]);
                if ((start & mask) != (end & mask))
                        return invalid(ret_error, "range '%s': %s and %s are not in one subnet with netmask %s",
                                       value, f[0], f[1], f[i]);
                format_ipv4(mask, r.netmask);
                i++;
        }
        if (i < n) {
                if (!lease_time_ok(f[i]))
                        return invalid(ret_error,
                                       "range '%s': '%s' is neither a netmask nor a lease time (seconds, or a "
                                       "number with m, h, d or w, at least 2m; or 'infinite')",
                                       value, f[i]);
                snprintf(r.lease, sizeof(r.lease), "%s", f[i]);
                i++;
        }
        if (i < n)
                return invalid(ret_error, "range '%s' has too many fields for %s", value, form);
        format_ipv4(start, r.start);
        format_ipv4(end, r.end);
        *ret = r;
        return 0;
}

static int parse_range_proxy(const char *value, Range *ret, char **ret_error) {
        _cleanup_free_ char *copy = strdup(value);
        char *f[2];
        uint32_t subnet, mask;
        Range r = {};
        int n;

        if (!copy)
                return -ENOMEM;
        n = split_fields(copy, f, ELEMENTSOF(f));
        if (n < 0)
                return invalid(ret_error, "range '%s': proxy mode takes the subnet address, SUBNET[,NETMASK]",
                               value);
        if (!parse_ipv4(f[0], &subnet))
                return invalid(ret_error, "range '%s': '%s' is not an IPv4 address (proxy mode takes the subnet, "
                               "e.g. 10.0.0.0)", value, f[0]);
        format_ipv4(subnet, r.start);
        if (n == 2) {
                if (!parse_ipv4(f[1], &mask) || !netmask_ok(mask))
                        return invalid(ret_error, "range '%s': '%s' is not a netmask", value, f[1]);
                format_ipv4(mask, r.netmask);
        }
        *ret = r;
        return 0;
}

static int check_absolute(const char *name, const char *value, char **ret_error) {
        if (value[0] != '/')
                return invalid(ret_error, "%s '%s' must be an absolute path", name, value);
        if (!conf_value_ok(value))
                return invalid(ret_error, "%s '%s' contains a space, comma, quote, '#', '\\' or a non-ASCII "
                               "character, which dnsmasq's configuration cannot carry", name, value);
        return 0;
}

/* The half of validation that looks at c alone; fills *ret_range. On
 * -EINVAL, *at names the setting at fault. */
static int check_form(const DhcpConfig *c, Range *ret_range, DhcpSetting *at, char **ret_error) {
        const char *mode = dhcp_mode_to_string(c->mode);
        int r;

        *at = DHCP_SETTING_MODE;
        if (!mode)
                return invalid(ret_error, "mode must be one of off, proxy or full");
        if (c->mode == DHCP_MODE_OFF)
                return 0;
        *at = DHCP_SETTING_INTERFACE;
        if (isempty(c->interface))
                return invalid(ret_error, "interface is required with DHCP mode '%s'", mode);
        if (!interface_name_ok(c->interface))
                return invalid(ret_error, "interface '%s' is not a network interface name", c->interface);
        *at = DHCP_SETTING_RANGE;
        if (isempty(c->range))
                return invalid(ret_error, "range is required with DHCP mode '%s' (%s)", mode,
                               c->mode == DHCP_MODE_FULL ? "START,END[,NETMASK][,LEASETIME]"
                                                         : "the subnet address, e.g. 10.0.0.0");
        r = c->mode == DHCP_MODE_FULL ? parse_range_full(c->range, ret_range, ret_error)
                                      : parse_range_proxy(c->range, ret_range, ret_error);
        if (r < 0)
                return r;
        *at = DHCP_SETTING_BOOT_URL;
        if (isempty(c->boot_url))
                return invalid(ret_error, "boot URL is required with DHCP mode '%s' (what iPXE loads next, e.g. "
                               "http://10.0.0.1:8080/boot/ipxe)", mode);
        if (!conf_value_ok(c->boot_url))
                return invalid(ret_error, "boot URL '%s' contains a space, comma, quote, '#', '\\' or a non-ASCII "
                               "character, which dnsmasq's configuration cannot carry", c->boot_url);
        if (strlen(c->boot_url) > DHCP_BOOT_URL_MAX)
                return invalid(ret_error, "boot URL '%s' is %zu bytes long; a DHCP reply carries at most %d",
                               c->boot_url, strlen(c->boot_url), DHCP_BOOT_URL_MAX);
        *at = DHCP_SETTING_TFTP_ROOT;
        r = check_absolute("tftp-root", tftp_root(c), ret_error);
        if (r < 0)
                return r;
        *at = DHCP_SETTING_RUN_DIR;
        if (isempty(c->run_dir))
                return invalid(ret_error, "run directory is required with DHCP mode '%s'", mode);
        r = check_absolute("run directory", c->run_dir, ret_error);
        if (r < 0)
                return r;
        *at = DHCP_SETTING_DNSMASQ_PATH;
        if (c->dnsmasq_path && !c->dnsmasq_path[0])
                return invalid(ret_error, "dnsmasq (the program) is empty");
        return 0;
}

static bool executable_file(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* Finds name: as given when it holds a '/', else in PATH, then /usr/sbin and
 * /sbin. */
static int find_program(const char *name, char **ret) {
        _cleanup_free_ char *dirs = NULL;
        const char *path = getenv("PATH");

        if (strchr(name, '/')) {
                if (!executable_file(name))
                        return -ENOENT;
                return strdup_maybe(name, ret);
        }
        dirs = strdup_printf("%s:%s", isempty(path) ? "/usr/local/bin:/usr/bin:/bin" : path, SBIN_DIRS);
        if (!dirs)
                return -ENOMEM;
        for (char *p = dirs, *dir; (dir = strsep(&p, ":"));) {
                _cleanup_free_ char *candidate = NULL;

                if (dir[0] != '/')
                        continue; /* a relative PATH entry would depend on our cwd */
                candidate = path_join(dir, name);
                if (!candidate)
                        return -ENOMEM;
                if (executable_file(candidate)) {
                        *ret = TAKE_PTR(candidate);
                        return 0;
                }
        }
        return -ENOENT;
}

int dhcp_config_validate(const DhcpConfig *c, DhcpSetting *ret_setting, char **ret_error) {
        static const char *const files[] = { DHCP_BOOT_FILE_EFI, DHCP_BOOT_FILE_BIOS };
        _cleanup_free_ char *program = NULL;
        DhcpSetting ignored, *at = ret_setting ? ret_setting : &ignored;
        Range range;
        int r;

        r = check_form(c, &range, at, ret_error);
        if (r < 0 || c->mode == DHCP_MODE_OFF)
                return r;
        *at = DHCP_SETTING_TFTP_ROOT;
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                _cleanup_free_ char *p = path_join(tftp_root(c), files[i]);
                struct stat st;

                if (!p)
                        return -ENOMEM;
                if (stat(p, &st) < 0 || !S_ISREG(st.st_mode))
                        return invalid(ret_error, "tftp-root '%s' has no %s (it needs %s and %s: install the Debian "
                                       "package ipxe, or copy them there)", tftp_root(c), files[i],
                                       DHCP_BOOT_FILE_EFI, DHCP_BOOT_FILE_BIOS);
                /* dnsmasq serves TFTP as the user nobody */
                if (!(st.st_mode & S_IROTH))
                        return invalid(ret_error, "tftp-root '%s': %s is not world-readable, and dnsmasq serves TFTP "
                                       "as the user nobody", tftp_root(c), files[i]);
        }
        *at = DHCP_SETTING_DNSMASQ_PATH;
        r = find_program(dnsmasq_path(c), &program);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return invalid(ret_error, "dnsmasq '%s' is not an executable program%s", dnsmasq_path(c),
                               strchr(dnsmasq_path(c), '/') ? ""
                                                            : " in PATH, /usr/sbin or /sbin (install dnsmasq-base)");
        return 0;
}

static void render_common(FILE *f, const DhcpConfig *c) {
        fprintf(f,
                "# dnsmasq configuration for PXE in DHCP mode %s, written by slipwayd:\n"
                "# it is rewritten on every start and reload, edits here are lost.\n"
                "\n"
                "# No DNS; DHCP and TFTP on this one interface only.\n"
                "port=0\n"
                "interface=%s\n"
                "bind-interfaces\n"
                "log-facility=-\n"
                "pid-file=\n"
                "dhcp-leasefile=%s/" DNSMASQ_LEASE_FILE "\n"
                "\n",
                dhcp_mode_to_string(c->mode), c->interface, c->run_dir);
}

/* TFTP and the tag that tells iPXE from PXE firmware. */
static void render_tftp_ipxe(FILE *f, const DhcpConfig *c) {
        fprintf(f,
                "# TFTP serves the iPXE binaries (read-only, nothing outside this root).\n"
                "enable-tftp\n"
                "tftp-root=%s\n"
                "\n"
                "# iPXE names itself in its user class and sends its own option 175.\n"
                "dhcp-userclass=set:ipxe,iPXE\n"
                "dhcp-match=set:ipxe,175\n",
                tftp_root(c));
}

static void render_full(FILE *f, const DhcpConfig *c, const Range *r) {
        render_common(f, c);
        fprintf(f,
                "# dnsmasq is the DHCP server of this network.\n"
                "dhcp-range=%s,%s%s%s%s%s\n"
                "dhcp-authoritative\n"
                "# Keep the boot file in its own field: some PXE ROMs do not read overloaded options.\n"
                "dhcp-no-override\n"
                "\n",
                r->start, r->end, r->netmask[0] ? "," : "", r->netmask, r->lease[0] ? "," : "", r->lease);
        render_tftp_ipxe(f, c);
        fprintf(f,
                "# x86-64 UEFI firmware sends client architecture 7 or 9, BIOS sends 0.\n"
                "dhcp-match=set:efi64,option:client-arch,7\n"
                "dhcp-match=set:efi64,option:client-arch,9\n"
                "\n"
                "# iPXE chains to slipwayd over HTTP; firmware first loads iPXE over TFTP.\n"
                "dhcp-boot=tag:ipxe,%s\n"
                "dhcp-boot=tag:!ipxe,tag:efi64," DHCP_BOOT_FILE_EFI "\n"
                "dhcp-boot=tag:!ipxe,tag:!efi64," DHCP_BOOT_FILE_BIOS "\n",
                c->boot_url);
}

static void render_proxy(FILE *f, const DhcpConfig *c, const Range *r) {
        render_common(f, c);
        fprintf(f,
                "# proxyDHCP: the network's own DHCP server hands out the addresses; dnsmasq\n"
                "# answers only PXE clients (vendor class PXEClient), with boot information.\n"
                "dhcp-range=%s,proxy%s%s\n"
                "\n",
                r->start, r->netmask[0] ? "," : "", r->netmask);
        render_tftp_ipxe(f, c);
        fprintf(f,
                "\n"
                "# iPXE finds the URL in the proxy offer itself.\n"
                "dhcp-boot=tag:ipxe,%s\n"
                "\n"
                "# Firmware gets iPXE from a PXE boot menu of one entry, which boots at once.\n"
                "# dnsmasq's x86-64_EFI is client architecture 7 and BC_EFI is 9: both x86-64 UEFI.\n"
                "pxe-service=tag:!ipxe,x86PC,\"Slipway iPXE (BIOS)\"," DHCP_BOOT_FILE_BIOS "\n"
                "pxe-service=tag:!ipxe,x86-64_EFI,\"Slipway iPXE (UEFI)\"," DHCP_BOOT_FILE_EFI "\n"
                "pxe-service=tag:!ipxe,BC_EFI,\"Slipway iPXE (UEFI)\"," DHCP_BOOT_FILE_EFI "\n",
                c->boot_url);
}

int dnsmasq_config_render(const DhcpConfig *c, char **ret_text) {
        _cleanup_free_ char *error = NULL;
        char *text = NULL;
        size_t size = 0;
        DhcpSetting at;
        Range range;
        FILE *f;
        int r;

        r = check_form(c, &range, &at, &error);
        if (r < 0) {
                log_debug("cannot render the dnsmasq configuration: %s", strempty(error));
                return r;
        }
        if (c->mode == DHCP_MODE_OFF)
                return -EINVAL;
        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        if (c->mode == DHCP_MODE_FULL)
                render_full(f, c, &range);
        else
                render_proxy(f, c, &range);
        if (ferror(f) | fclose(f)) {
                free(text);
                return -ENOMEM;
        }
        *ret_text = text;
        return 0;
}

/* Our copy of c with the defaults filled in, so later comparisons see what
 * is in force. */
static int config_copy_with_defaults(const DhcpConfig *c, DhcpConfig *ret) {
        DhcpConfig n;
        int r;

        r = dhcp_config_copy(c, &n);
        if (r < 0)
                return r;
        if ((!n.tftp_root && !(n.tftp_root = strdup(DHCP_TFTP_ROOT_DEFAULT))) ||
            (!n.dnsmasq_path && !(n.dnsmasq_path = strdup(DHCP_DNSMASQ_PATH_DEFAULT)))) {
                dhcp_config_release(&n);
                return -ENOMEM;
        }
        *ret = n;
        return 0;
}

static int validate_quietly(const DhcpConfig *c) {
        _cleanup_free_ char *error = NULL;
        int r = dhcp_config_validate(c, NULL, &error);

        if (r == -EINVAL)
                log_debug("invalid DHCP configuration: %s", strempty(error));
        return r;
}

int dnsmasq_new(const DhcpConfig *c, Dnsmasq **ret) {
        Dnsmasq *d;
        int r;

        r = validate_quietly(c);
        if (r < 0)
                return r;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        r = config_copy_with_defaults(c, &d->config);
        if (r < 0) {
                free(d);
                return r;
        }
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        *ret = d;
        return 0;
}

/* Writes text to run_dir/dnsmasq.conf, atomically. */
static int write_conf(const DhcpConfig *c, const char *text) {
        _cleanup_free_ char *path = path_join(c->run_dir, DNSMASQ_CONF_FILE);
        int r;

        if (!path)
                return -ENOMEM;
        r = mkdir_p(c->run_dir, 0755);
        if (r < 0)
                return log_debug_errno(r, "failed to create '%s': %m", c->run_dir);
        r = write_file_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                return log_debug_errno(r, "failed to write '%s': %m", path);
        return 0;
}

/* The start time of pid (field 22 of /proc/pid/stat, in clock ticks since
 * boot), which tells a process from a later one with its pid. Returns 0, or
 * -ESRCH when pid is gone or a zombie. */
static int process_start_time(pid_t pid, unsigned long long *ret) {
        _cleanup_free_ char *path = NULL, *stat = NULL;
        unsigned long long t;
        const char *p;
        char state;

        path = strdup_printf("/proc/%d/stat", (int) pid);
        if (!path)
                return -ENOMEM;
        if (read_full_file(path, 4096, &stat, NULL) < 0)
                return -ESRCH;
        /* "pid (comm) state ppid …": comm may hold anything, even ") " */
        p = strrchr(stat, ')');
        if (!p || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                         &state, &t) != 2)
                return -EIO;
        if (state == 'Z' || state == 'X')
                return -ESRCH;
        *ret = t;
        return 0;
}

/* "PID STARTTIME BOOTID": the boot id keeps a file that survived a reboot
 * from naming whatever process has that pid and start time now. */
static char *pid_file_line(pid_t pid) {
        _cleanup_free_ char *boot_id = NULL;
        unsigned long long t;

        if (process_start_time(pid, &t) < 0 ||
            read_full_file("/proc/sys/kernel/random/boot_id", 64, &boot_id, NULL) < 0)
                return NULL;
        boot_id[strcspn(boot_id, "\n")] = 0;
        return strdup_printf("%d %llu %s\n", (int) pid, t, boot_id);
}

/* Ends the dnsmasq that run_dir/dnsmasq.pid names when it still runs: one
 * left behind by a slipwayd that was killed. (PR_SET_PDEATHSIG does not
 * cover that: dnsmasq's switch to the user nobody clears it.) It is not our
 * child, so it is watched through /proc rather than waited for. */
static void kill_stale(const DhcpConfig *c) {
        _cleanup_free_ char *path = path_join(c->run_dir, DNSMASQ_PID_FILE), *s = NULL, *line = NULL;
        unsigned long long recorded, now;
        int pid;

        if (!path || read_full_file(path, 64, &s, NULL) < 0)
                return;
        if (sscanf(s, "%d %llu", &pid, &recorded) != 2 || pid <= 1 || !(line = pid_file_line(pid)) ||
            !streq(line, s))
                return;
        log_warning("stopping dnsmasq (pid %d) left behind by an earlier slipwayd", pid);
        for (int round = 0; round < 2; round++) {
                uint64_t deadline = now_usec() + (round == 0 ? STOP_TIMEOUT_USEC : USEC_PER_SEC);

                (void) kill(pid, round == 0 ? SIGTERM : SIGKILL);
                while (process_start_time(pid, &now) == 0 && now == recorded) {
                        struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };

                        if (now_usec() >= deadline)
                                break;
                        (void) nanosleep(&pause, NULL);
                }
                if (process_start_time(pid, &now) < 0 || now != recorded)
                        return;
        }
        log_warning("dnsmasq (pid %d) left behind by an earlier slipwayd does not go away", pid);
}

/* Records pid in run_dir/dnsmasq.pid for kill_stale(). */
static void write_pid_file(Dnsmasq *d, pid_t pid) {
        _cleanup_free_ char *line = pid_file_line(pid);

        free(d->pid_file);
        d->pid_file = path_join(d->config.run_dir, DNSMASQ_PID_FILE);
        if (!d->pid_file || !line || write_file_atomic(d->pid_file, line, strlen(line), 0644) < 0)
                log_debug("cannot record dnsmasq's pid %d in '%s'", (int) pid, strempty(d->pid_file));
}

/* In the forked child: only async-signal-safe calls from here to exec. */
static _Noreturn void child_exec(const char *program, char *const *argv, char *const *envp, pid_t parent,
                                 int null_fd, int error_fd, int max_fd) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        int e;

        /* slipwayd gone, by whatever means: dnsmasq goes too */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                goto fail;
        /* ignored signals and the blocked mask survive exec; dnsmasq wants neither */
        for (int s = 1; s < NSIG; s++)
                (void) sigaction(s, &dfl, NULL);
        /* The raw call: glibc's sigprocmask() leaves its own two real-time
         * signals as they are, and a parent may have had them blocked. */
        sigemptyset(&none);
        if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, (size_t) (_NSIG / 8)) < 0)
                goto fail;
        /* a terminal's ^C is for slipwayd, which stops dnsmasq itself */
        if (setpgid(0, 0) < 0)
                goto fail;
        if (dup2(null_fd, STDIN_FILENO) < 0)
                goto fail;
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                (void) dup2(null_fd, STDOUT_FILENO);
        if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                for (int fd = 3; fd < max_fd; fd++)
                        (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
        execve(program, argv, envp);
fail:
        e = errno;
        (void) !write(error_fd, &e, sizeof(e));
        _exit(127);
}

/* Spawns dnsmasq with the configuration file written for d. Returns 0 once
 * dnsmasq has been executed, or the negative errno of what failed. */
static int spawn(Dnsmasq *d) {
        _cleanup_free_ char *program = NULL, *conf = NULL, *conf_arg = NULL;
        _cleanup_close_ int null_fd = -1;
        char *envp[] = { (char *) CHILD_PATH, NULL };
        char *argv[4] = {};
        int pipefd[2], e = 0, max_fd, r;
        pid_t parent = getpid(), pid;
        ssize_t n;

        assert(d->pid == 0);
        kill_stale(&d->config);
        r = find_program(d->config.dnsmasq_path, &program);
        if (r < 0)
                return log_debug_errno(r, "failed to find '%s': %m", d->config.dnsmasq_path);
        conf = path_join(d->config.run_dir, DNSMASQ_CONF_FILE);
        conf_arg = conf ? strdup_printf("--conf-file=%s", conf) : NULL;
        if (!conf_arg)
                return -ENOMEM;
        argv[0] = program;
        argv[1] = (char *) "--keep-in-foreground";
        argv[2] = conf_arg;

        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd < 0)
                return negative_errno();
        max_fd = (int) MIN(MAX(sysconf(_SC_OPEN_MAX), 1024L), 65536L);
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return negative_errno();
        pid = fork();
        if (pid < 0) {
                r = negative_errno();
                close(pipefd[0]);
                close(pipefd[1]);
                return r;
        }
        if (pid == 0)
                child_exec(program, argv, envp, parent, null_fd, pipefd[1], max_fd);
        close(pipefd[1]);
        /* EOF: the exec closed the pipe; an int: why it failed */
        do
                n = read(pipefd[0], &e, sizeof(e));
        while (n < 0 && errno == EINTR);
        close(pipefd[0]);
        if (n == (ssize_t) sizeof(e)) {
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return log_debug_errno(e > 0 ? -e : -EIO, "failed to execute '%s': %m", program);
        }
        free(d->program);
        d->program = TAKE_PTR(program);
        d->pid = pid;
        d->spawned_usec = now_usec();
        write_pid_file(d, pid);
        log_debug("started %s (pid %d) with '%s'", d->program, (int) pid, conf);
        return 0;
}

int dnsmasq_start(Dnsmasq *d) {
        _cleanup_free_ char *text = NULL;
        int r;

        d->stopped = false;
        if (d->config.mode == DHCP_MODE_OFF || d->text)
                return 0; /* nothing to run, or running (or due to restart) already */
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        r = dnsmasq_config_render(&d->config, &text);
        if (r < 0)
                return r;
        r = write_conf(&d->config, text);
        if (r < 0)
                return r;
        r = spawn(d);
        if (r < 0)
                return r;
        d->text = TAKE_PTR(text);
        return 0;
}

/* SIGTERM, a grace period, SIGKILL; reaps the child. Supervision state is
 * the caller's business. */
static void terminate(Dnsmasq *d) {
        uint64_t deadline;
        pid_t pid = d->pid;

        if (pid <= 0)
                return;
        d->pid = 0;
        if (kill(pid, SIGTERM) < 0 && errno == ESRCH) {
                /* gone already (and maybe reaped by someone else) */
                (void) waitpid(pid, NULL, WNOHANG);
                return;
        }
        deadline = now_usec() + STOP_TIMEOUT_USEC;
        for (;;) {
                struct timespec pause = { .tv_nsec = 20 * 1000 * 1000 };
                pid_t k = waitpid(pid, NULL, WNOHANG);

                if (k == pid || (k < 0 && errno != EINTR))
                        break;
                if (now_usec() >= deadline) {
                        log_warning("dnsmasq (pid %d) did not exit within %llu s of SIGTERM; killing it", (int) pid,
                                    STOP_TIMEOUT_USEC / USEC_PER_SEC);
                        (void) kill(pid, SIGKILL);
                        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                ;
                        break;
                }
                (void) nanosleep(&pause, NULL);
        }
        if (d->pid_file)
                (void) unlink(d->pid_file);
        log_debug("dnsmasq (pid %d) stopped", (int) pid);
}

int dnsmasq_stop(Dnsmasq *d) {
        terminate(d);
        d->stopped = true;
        d->restart_usec = 0;
        free(d->text);
        d->text = NULL;
        return 0;
}

Dnsmasq *dnsmasq_free(Dnsmasq *d) {
        if (!d)
                return NULL;
        dnsmasq_stop(d);
        dhcp_config_release(&d->config);
        free(d->text);
        free(d->program);
        free(d->pid_file);
        free(d);
        return NULL;
}

/* Puts the next restart after the current delay and doubles the delay. */
static void schedule_restart(Dnsmasq *d, uint64_t now) {
        d->restart_usec = now + d->delay_usec;
        d->delay_usec = MIN(d->delay_usec * 2, RESTART_DELAY_MAX_USEC);
}

int dnsmasq_reload(Dnsmasq *d, const DhcpConfig *c) {
        _cleanup_free_ char *text = NULL;
        DhcpConfig n;
        bool same;
        int r;

        r = validate_quietly(c);
        if (r < 0)
                return r;
        if (c->mode != DHCP_MODE_OFF) {
                r = dnsmasq_config_render(c, &text);
                if (r < 0)
                        return r;
        }
        r = config_copy_with_defaults(c, &n);
        if (r < 0)
                return r;
        same = streq_ptr(d->text, text) && streq(d->config.dnsmasq_path, n.dnsmasq_path);
        dhcp_config_release(&d->config);
        d->config = n;
        if (d->stopped || same)
                return 0;

        if (!text) {
                /* the mode is off now */
                terminate(d);
                d->restart_usec = 0;
                free(d->text);
                d->text = NULL;
                return 1;
        }
        /* the new file first: when it cannot be written, the old dnsmasq runs on */
        r = write_conf(&d->config, text);
        if (r < 0)
                return r;
        terminate(d);
        free(d->text);
        d->text = TAKE_PTR(text);
        d->restart_usec = 0;
        d->delay_usec = RESTART_DELAY_FIRST_USEC;
        r = spawn(d);
        if (r < 0) {
                schedule_restart(d, now_usec());
                return r;
        }
        return 1;
}

/* "exited with status 2 (network: address in use or interface missing)",
 * "was killed by signal 9 (KILL)". */
static void describe_status(int status, char *buf, size_t size) {
        static const char *const meaning[] = {
                [1] = " (configuration)",
                [2] = " (network: address in use, interface missing, no permission)",
                [3] = " (filesystem: missing file or directory, permissions)",
                [4] = " (out of memory)",
        };

        if (status < 0)
                snprintf(buf, size, "was reaped elsewhere, its status is unknown");
        else if (WIFEXITED(status))
                snprintf(buf, size, "exited with status %d%s", WEXITSTATUS(status),
                         WEXITSTATUS(status) < (int) ELEMENTSOF(meaning) && meaning[WEXITSTATUS(status)]
                                 ? meaning[WEXITSTATUS(status)]
                                 : "");
        else if (WIFSIGNALED(status))
                snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
                         strempty(sigabbrev_np(WTERMSIG(status))));
        else
                snprintf(buf, size, "ended with wait status 0x%x", (unsigned) status);
}

int dnsmasq_check(Dnsmasq *d) {
        uint64_t now = now_usec();
        int status = -1, r;

        if (d->stopped || !d->text)
                return 0;
        if (d->pid > 0) {
                char how[128];
                pid_t k = waitpid(d->pid, &status, WNOHANG);

                if (k == 0 || (k < 0 && errno == EINTR)) {
                        if (now - d->spawned_usec >= RESTART_RESET_USEC)
                                d->delay_usec = RESTART_DELAY_FIRST_USEC;
                        return 0;
                }
                if (k < 0)
                        status = -1;
                describe_status(status, how, sizeof(how));
                if (now - d->spawned_usec >= RESTART_RESET_USEC)
                        d->delay_usec = RESTART_DELAY_FIRST_USEC;
                log_warning("dnsmasq (pid %d) %s after %llu s; restarting it in %llu s", (int) d->pid, how,
                            (unsigned long long) ((now - d->spawned_usec) / USEC_PER_SEC),
                            (unsigned long long) (d->delay_usec / USEC_PER_SEC));
                d->pid = 0;
                schedule_restart(d, now);
                return 0;
        }
        if (d->restart_usec == 0 || now < d->restart_usec)
                return 0;
        d->restart_usec = 0;
        /* the file again, in case run_dir was cleaned up under us */
        r = write_conf(&d->config, d->text);
        if (r >= 0)
                r = spawn(d);
        if (r < 0) {
                log_warning_errno(r, "failed to restart dnsmasq: %m; trying again in %llu s",
                                  (unsigned long long) (d->delay_usec / USEC_PER_SEC));
                schedule_restart(d, now);
                return r;
        }
        d->restarts++;
        log_info("dnsmasq restarted (pid %d, restart %u)", (int) d->pid, d->restarts);
        return 1;
}

pid_t dnsmasq_pid(const Dnsmasq *d) {
        return d->pid;
}

unsigned dnsmasq_restarts(const Dnsmasq *d) {
        return d->restarts;
}
