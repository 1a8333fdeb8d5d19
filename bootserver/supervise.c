#include "dnsmasq.h"
#include "log.h"
#include "supervise.h"
#include "util.h"

struct Supervisor {
        Dnsmasq *dnsmasq;
};

/* The DHCP configuration of s; strings are copies the caller releases. */
static int dhcp_config_of(Server *s, DhcpConfig *ret) {
        _cleanup_free_ char *url = server_public_url(s);
        const ServerConfig *c;
        DhcpConfig d;
        int r;

        if (!url)
                return -ENOMEM;
        c = config_get(s);
        r = server_config_dhcp(c, url, &d);
        config_put(s);
        if (r < 0)
                return r;
        if (d.mode < 0) {
                dhcp_config_release(&d);
                return -EINVAL;
        }
        *ret = d;
        return 0;
}

int supervisor_new(Server *s, Supervisor **ret) {
        _cleanup_free_ char *why = NULL;
        char next[DHCP_ADDRESS_MAX];
        Supervisor *sup;
        DhcpConfig d;
        int r;

        sup = calloc(1, sizeof *sup);
        if (!sup)
                return log_oom();
        r = dhcp_config_of(s, &d);
        if (r < 0) {
                free(sup);
                return log_error_errno(r, "dhcp: bad configuration");
        }
        if (d.mode != DHCP_MODE_OFF && dhcp_config_validate(&d, NULL, &why) < 0) {
                r = log_error_errno(-EINVAL, "dhcp: %s", strempty(why));
                dhcp_config_release(&d);
                free(sup);
                return r;
        }
        r = dnsmasq_new(&d, &sup->dnsmasq);
        if (r >= 0 && d.mode != DHCP_MODE_OFF)
                r = dnsmasq_start(sup->dnsmasq);
        if (r >= 0 && d.mode != DHCP_MODE_OFF)
                log_info("dhcp: dnsmasq started in %s mode on %s (pid %d)", dhcp_mode_to_string(d.mode),
                         d.interface, (int) dnsmasq_pid(sup->dnsmasq));
        if (r >= 0 && d.mode == DHCP_MODE_PROXY && !dhcp_boot_url_address(d.boot_url, next))
                log_warning("dhcp: the boot URL '%s' names no IPv4 address, so the proxy offers to iPXE name "
                            "no next server and BIOS machines' iPXE takes none of them: give public-url this "
                            "instance's address",
                            d.boot_url);
        dhcp_config_release(&d);
        if (r < 0) {
                supervisor_free(sup);
                return log_error_errno(r, "dhcp: cannot start dnsmasq: %m");
        }
        *ret = sup;
        return 0;
}

void supervisor_reload(Supervisor *sup, Server *s) {
        _cleanup_free_ char *why = NULL;
        DhcpConfig d;
        int r;

        if (dhcp_config_of(s, &d) < 0)
                return;
        if (d.mode != DHCP_MODE_OFF && dhcp_config_validate(&d, NULL, &why) < 0)
                log_error("dhcp: %s; keeping dnsmasq as it was", strempty(why));
        else if ((r = dnsmasq_reload(sup->dnsmasq, &d)) < 0)
                log_error_errno(r, "dhcp: cannot apply the new configuration: %m");
        dhcp_config_release(&d);
}

void supervisor_tick(Supervisor *sup) {
        if (sup && sup->dnsmasq)
                (void) dnsmasq_check(sup->dnsmasq);
}

Supervisor *supervisor_free(Supervisor *sup) {
        if (!sup)
                return NULL;
        dnsmasq_free(sup->dnsmasq);
        free(sup);
        return NULL;
}
