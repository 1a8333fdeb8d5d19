/* The bootserver's managed dnsmasq: DHCP (a full server, or proxyDHCP beside
 * the site's own DHCP server) and TFTP for PXE, configured from a DhcpConfig
 * and supervised as a child process of slipwayd.
 *
 * PXE firmware gets an iPXE binary over TFTP (ipxe.efi for x86-64 UEFI,
 * undionly.kpxe for legacy BIOS); iPXE then asks again, is recognised by its
 * user class "iPXE" (or option 175), and gets boot_url, so it chains to the
 * bootserver's HTTP script. docs/dhcp.md has the whole story. */
#pragma once

#include <sys/types.h>

#include "macro.h"

#define DHCP_TFTP_ROOT_DEFAULT "/usr/lib/ipxe"
#define DHCP_DNSMASQ_PATH_DEFAULT "dnsmasq"
/* What each kind of PXE firmware gets over TFTP. */
#define DHCP_BOOT_FILE_BIOS "undionly.kpxe"
#define DHCP_BOOT_FILE_EFI "ipxe.efi"
/* The files dnsmasq_start() writes into run_dir. */
#define DNSMASQ_CONF_FILE "dnsmasq.conf"
#define DNSMASQ_LEASE_FILE "dnsmasq.leases"
/* "PID STARTTIME BOOTID" of the running dnsmasq, so that a slipwayd started
 * after one that was killed can end the dnsmasq the other left behind. */
#define DNSMASQ_PID_FILE "dnsmasq.pid"
/* A DHCP reply carries the boot file name in a 128-byte field. */
#define DHCP_BOOT_URL_MAX 127

typedef enum DhcpMode {
        DHCP_MODE_OFF,   /* no dnsmasq at all */
        DHCP_MODE_PROXY, /* proxyDHCP: another server hands out addresses */
        DHCP_MODE_FULL,  /* dnsmasq is the DHCP server of the network */
        _DHCP_MODE_MAX,
        _DHCP_MODE_INVALID = -EINVAL,
} DhcpMode;

/* "off", "proxy", "full"; _DHCP_MODE_INVALID for anything else (or NULL). */
DhcpMode dhcp_mode_from_string(const char *s);
/* The name of m, NULL when m is out of range. */
const char *dhcp_mode_to_string(DhcpMode m);

/* The [dhcp] settings. Strings are owned by the struct (dhcp_config_release()
 * frees them); NULL means unset. */
typedef struct DhcpConfig {
        DhcpMode mode;
        char *interface;    /* required unless off */
        char *range;        /* full: "START,END[,NETMASK][,LEASETIME]"; proxy: "SUBNET[,NETMASK]", e.g. "10.0.0.0" */
        char *tftp_root;    /* absolute; holds ipxe.efi and undionly.kpxe; NULL: DHCP_TFTP_ROOT_DEFAULT */
        char *boot_url;     /* required unless off: the boot file iPXE clients get, "http://10.0.0.1:8080/boot/ipxe" */
        char *dnsmasq_path; /* NULL: "dnsmasq", looked up in PATH, then /usr/sbin and /sbin */
        char *run_dir;      /* required unless off, absolute: dnsmasq.conf and the lease file; created 0755 */
        /* full: other DHCP servers hand out other parts of the network's
         * addresses (a split range), so dnsmasq is not authoritative: it
         * leaves alone a client whose lease it does not know. */
        bool other_servers;
} DhcpConfig;

/* The setting a validation error is about. */
typedef enum DhcpSetting {
        DHCP_SETTING_MODE,
        DHCP_SETTING_INTERFACE,
        DHCP_SETTING_RANGE,
        DHCP_SETTING_BOOT_URL,
        DHCP_SETTING_TFTP_ROOT,
        DHCP_SETTING_RUN_DIR,
        DHCP_SETTING_DNSMASQ_PATH,
        _DHCP_SETTING_MAX,
} DhcpSetting;

/* Frees the strings of c and resets it to zeros (mode off). */
void dhcp_config_release(DhcpConfig *c);

/* Deep copy of c into *ret (which the caller releases). Returns 0 or -ENOMEM. */
int dhcp_config_copy(const DhcpConfig *c, DhcpConfig *ret);

/* Checks c as the daemon would use it: the mode, the interface name, the range
 * (IPv4 addresses, start not after end, a netmask that is one, a lease time
 * dnsmasq understands), boot_url (present, fits a DHCP reply, no characters a
 * dnsmasq configuration cannot carry), absolute tftp_root and run_dir, the
 * two iPXE files readable in tftp_root, and the dnsmasq program found. Mode
 * off needs nothing else. Returns 0, or -EINVAL with the setting at fault in
 * *ret_setting and one message for a person in *ret_error, naming the setting
 * and its value (either may be NULL; the caller frees the message). Other
 * negative errnos: allocation failure. */
int dhcp_config_validate(const DhcpConfig *c, DhcpSetting *ret_setting, char **ret_error);

/* Room for an IPv4 address in text, its NUL included (INET_ADDRSTRLEN). */
#define DHCP_ADDRESS_MAX 16

/* The next server that proxy mode gives iPXE, without which iPXE takes no
 * proxy offer: the host of url ("http://10.0.0.1:8080/boot/ipxe") when it is
 * an IPv4 address. Returns true with it in ret, false for a host name or
 * anything else (ret untouched). */
bool dhcp_boot_url_address(const char *url, char ret[static DHCP_ADDRESS_MAX]);

/* Renders the dnsmasq configuration for c into *ret_text (NUL-terminated, the
 * caller frees it). Pure: looks at no file, so it checks only the form of c
 * (the first half of dhcp_config_validate()). Returns 0, -EINVAL for a config
 * that does not validate or for mode off (there is nothing to run), or
 * -ENOMEM. */
int dnsmasq_config_render(const DhcpConfig *c, char **ret_text);

/* Finds the program name: as given when it holds a '/', else in PATH, then
 * /usr/sbin and /sbin. Returns 0 with the path in *ret, -ENOENT or -ENOMEM. */
int dnsmasq_find_program(const char *name, char **ret);

/* One supervised dnsmasq. Not thread-safe: the daemon calls all of these from
 * one long-lived thread (the child asks for SIGTERM when the thread that
 * forked it ends, PR_SET_PDEATHSIG, until dnsmasq drops root; after that
 * DNSMASQ_PID_FILE lets the next slipwayd end a dnsmasq left behind). The
 * daemon must not reap children with waitpid(-1) or set SIGCHLD to SIG_IGN:
 * dnsmasq_check() reaps this one. */
typedef struct Dnsmasq Dnsmasq;

/* Validates c (as dhcp_config_validate(), the message goes to debug) and
 * returns in *ret a Dnsmasq holding a copy of it, running nothing yet. The
 * caller frees it with dnsmasq_free(). Returns 0, -EINVAL or -ENOMEM. */
int dnsmasq_new(const DhcpConfig *c, Dnsmasq **ret);

/* Starts dnsmasq, unless the mode is off: writes run_dir/dnsmasq.conf (temp,
 * fsync, rename, fsync of the directory) and spawns
 * `dnsmasq --keep-in-foreground --conf-file=…` with stdin on /dev/null,
 * stdout and stderr on our stderr (dnsmasq logs there), every other fd
 * closed, signals at their defaults, a clean environment, in its own process
 * group. Returns 0 (also when the mode is off, or dnsmasq runs already), or a
 * negative errno when the file could not be written or dnsmasq could not be
 * executed (then nothing runs and nothing is retried). A dnsmasq that starts
 * and then exits (a missing interface, say) is dnsmasq_check()'s business.
 * Calling it in mode off is fine and cheap: nothing runs until a reload. */
int dnsmasq_start(Dnsmasq *d);

/* Replaces the configuration with a copy of c and makes dnsmasq follow it:
 * with the mode now off, stops dnsmasq; when the rendered text or the program
 * changed (or the mode was off, or nothing ran), writes the new file first,
 * then (re)starts dnsmasq with it; when nothing changed, leaves the running
 * dnsmasq alone. After dnsmasq_stop() it only stores c, for the next
 * dnsmasq_start(). Returns 1 when dnsmasq was started, restarted or stopped,
 * 0 when nothing had to change, -EINVAL when c does not validate (the old
 * configuration stays in force), or another negative errno when the new
 * dnsmasq could not be spawned (supervision retries it with the backoff). */
int dnsmasq_reload(Dnsmasq *d, const DhcpConfig *c);

/* Supervision, without blocking; the daemon calls it about once a second.
 * Reaps dnsmasq when it died (logging a warning with its exit status or
 * signal) and restarts it after a delay that starts at 1 s and doubles up to
 * 30 s, back to 1 s once an instance has run for 60 s. Returns 1 when it
 * restarted dnsmasq, 0 when there was nothing to do, or a negative errno when
 * a restart failed (logged; the next one is scheduled). */
int dnsmasq_check(Dnsmasq *d);

/* The pid of the running dnsmasq, 0 when there is none. */
pid_t dnsmasq_pid(const Dnsmasq *d);

/* How many times supervision restarted a dnsmasq that had died (restarts
 * asked for by dnsmasq_reload() are not counted). */
unsigned dnsmasq_restarts(const Dnsmasq *d);

/* Stops dnsmasq and its supervision: SIGTERM, up to 5 s for it to exit, then
 * SIGKILL; the child is reaped either way. Nothing runs again until
 * dnsmasq_start(). Returns 0. */
int dnsmasq_stop(Dnsmasq *d);

/* Stops (as dnsmasq_stop()) and frees d. Accepts NULL; returns NULL. */
Dnsmasq *dnsmasq_free(Dnsmasq *d);

static inline void dnsmasq_freep(Dnsmasq **d) {
        dnsmasq_free(*d);
}
#define _cleanup_dnsmasq_free_ _cleanup_(dnsmasq_freep)
