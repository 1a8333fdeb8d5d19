/* The [dhcp] settings: their modes, validation, and the dnsmasq
 * configuration rendered from them. dnsmasq.c runs and supervises the
 * process. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "dnsmasq.h"
#include "log.h"
#include "util.h"

/* dnsmasq's own floor for a lease (it raises shorter ones silently). */
#define LEASE_MIN_SEC 120
/* Where dnsmasq lives on Debian, for a daemon whose PATH lacks the sbin dirs. */
#define SBIN_DIRS "/usr/sbin:/sbin"

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

int dnsmasq_find_program(const char *name, char **ret) {
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
        r = dnsmasq_find_program(dnsmasq_path(c), &program);
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
                "%s"
                "dhcp-range=%s,%s%s%s%s%s\n"
                "%s"
                "# Keep the boot file in its own field: some PXE ROMs do not read overloaded options.\n"
                "dhcp-no-override\n"
                "\n",
                c->other_servers ? "# dnsmasq hands out this part of the network's addresses; other servers the rest.\n"
                                 : "# dnsmasq is the DHCP server of this network.\n",
                r->start, r->end, r->netmask[0] ? "," : "", r->netmask, r->lease[0] ? "," : "", r->lease,
                c->other_servers ? "" : "dhcp-authoritative\n");
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

_Static_assert(DHCP_ADDRESS_MAX == INET_ADDRSTRLEN, "DHCP_ADDRESS_MAX is INET_ADDRSTRLEN");

bool dhcp_boot_url_address(const char *url, char ret[static DHCP_ADDRESS_MAX]) {
        const char *p = strstr(url, "://");
        struct in_addr a;
        char host[INET_ADDRSTRLEN];
        size_t n;

        p = p ? p + 3 : url;
        n = strcspn(p, ":/?#");
        if (n == 0 || n >= sizeof(host))
                return false;
        memcpy(host, p, n);
        host[n] = '\0';
        if (inet_pton(AF_INET, host, &a) != 1)
                return false;
        return inet_ntop(AF_INET, &a, ret, DHCP_ADDRESS_MAX) != NULL;
}

static void render_proxy(FILE *f, const DhcpConfig *c, const Range *r) {
        char next[DHCP_ADDRESS_MAX];
        bool has_next = dhcp_boot_url_address(c->boot_url, next);

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
                "# iPXE finds the URL in the proxy offer itself. It takes a proxy offer\n"
                "# for one with boot information only when it names a next server too\n"
                "# (otherwise it asks on port 4011, and ignores an answer without one):\n"
                "# the boot URL's address.\n"
                "dhcp-boot=tag:ipxe,%s%s%s\n"
                "\n"
                "# Firmware gets iPXE from a PXE boot menu of one entry, which boots at once.\n"
                "# dnsmasq's x86-64_EFI is client architecture 7 and BC_EFI is 9: both x86-64 UEFI.\n"
                "pxe-service=tag:!ipxe,x86PC,\"Slipway iPXE (BIOS)\"," DHCP_BOOT_FILE_BIOS "\n"
                "pxe-service=tag:!ipxe,x86-64_EFI,\"Slipway iPXE (UEFI)\"," DHCP_BOOT_FILE_EFI "\n"
                "pxe-service=tag:!ipxe,BC_EFI,\"Slipway iPXE (UEFI)\"," DHCP_BOOT_FILE_EFI "\n",
                c->boot_url, has_next ? ",," : "", has_next ? next : "");
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
