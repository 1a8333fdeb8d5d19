#include <stddef.h>

#include "audit.h"
#include "enroll.h"
#include "hosts.h"
#include "images.h"
#include "ipxe.h"
#include "log.h"
#include "store-hosts.h"
#include "util.h"

IpxeScript ipxe_decide(const Host *h, const BootImage *b) {
        if (h->installed && streq_ptr(h->boot, "disk"))
                return IPXE_LOCAL;
        if (!h->image || !b)
                return IPXE_WAIT;
        /* An image without kernel + initrd cannot be network-booted. */
        if (!b->kernel || !b->initrd)
                return IPXE_WAIT;
        return streq_ptr(h->boot, "live") ? IPXE_LIVE : IPXE_INSTALL;
}

void ipxe_decision_release(IpxeDecision *d) {
        if (!d)
                return;
        boot_image_release(&d->boot);
        *d = (IpxeDecision) {};
}

/* The host's default image when it has none: assigned as an operator's
 * assignment would be, audited as by "default-image" at time now. */
static int assign_default(StoreTx *tx, Host *h, const char *default_image, uint64_t now) {
        char image[65];
        json_t *detail;
        int r;

        if (!default_image || images_resolve(tx, default_image, image) < 0)
                return 0;
        h->image = strdup(image);
        if (!h->image)
                return -ENOMEM;
        r = store_host_assign(tx, h->id, image, NULL, false);
        if (r < 0)
                return r;
        detail = json_pack("{s:s, s:s}", "image", image, "ref", default_image);
        r = audit_log_at(tx, (int64_t) now, "default-image", "host.assign", h->id, detail);
        json_decref(detail);
        return r;
}

int ipxe_boot(StoreTx *tx, const IpxePolicy *p, const char *mac, const char *uuid, const char *address, uint64_t now,
              IpxeDecision *ret) {
        _cleanup_(host_release) Host h = {};
        _cleanup_(ipxe_decision_release) IpxeDecision d = {};
        bool is_new;
        int r;

        r = hosts_ensure(tx, mac, uuid, now, "pxe", d.host, &is_new);
        if (r >= 0)
                r = store_host_pxe_seen(tx, d.host, now);
        if (r >= 0)
                r = store_host_get(tx, d.host, &h);
        if (r == -ENOENT)
                r = -EIO;
        if (r >= 0 && !h.image)
                r = assign_default(tx, &h, p->default_image, now);
        if (r < 0)
                return r;
        if (h.image && !(h.installed && streq_ptr(h.boot, "disk"))) {
                snprintf(d.image, sizeof d.image, "%s", h.image);
                r = store_boot_image(tx, h.image, &d.boot);
                if (r < 0)
                        return r;
        }
        d.script = ipxe_decide(&h, d.image[0] ? &d.boot : NULL);
        if (d.script == IPXE_INSTALL) {
                r = enroll_issue(tx, p->state_dir, d.host, mac, address, p->enroll_ttl, now, d.enroll);
                if (r < 0)
                        return r;
                if (r == ENROLL_HELD)
                        d.script = IPXE_HELD;
        }
        *ret = d;
        d = (IpxeDecision) {};
        return 0;
}

/* Whether url can go into the list: one word of the command line, one item
 * of the list. */
static bool list_item_ok(const char *url) {
        return !isempty(url) && !strpbrk(url, ", \t\n\"");
}

/* Whether a and b are one URL, trailing slashes aside (the agent drops
 * them, and refuses a list that names a server twice). */
static bool same_url(const char *a, const char *b) {
        size_t na = strlen(a), nb = strlen(b);

        while (na > 0 && a[na - 1] == '/')
                na--;
        while (nb > 0 && b[nb - 1] == '/')
                nb--;
        return na == nb && memcmp(a, b, na) == 0;
}

char *ipxe_server_list(const char *self, const Instance *l, size_t n, int64_t stale_ms) {
        const char *picked[IPXE_SERVERS_MAX];
        size_t k = 0, len = 0;
        char *out, *p;

        if (list_item_ok(self)) {
                picked[k++] = self;
                len = strlen(self);
        }
        for (size_t i = 0; i < n && k < IPXE_SERVERS_MAX; i++) {
                bool seen = false;

                if (l[i].heartbeat_age > stale_ms || !list_item_ok(l[i].url))
                        continue;
                for (size_t j = 0; j < k && !seen; j++)
                        seen = same_url(picked[j], l[i].url);
                if (seen || len + (k > 0) + strlen(l[i].url) > IPXE_SERVERS_LEN_MAX)
                        continue;
                len += (k > 0) + strlen(l[i].url);
                picked[k++] = l[i].url;
        }
        p = out = malloc(len + 1);
        if (!out)
                return NULL;
        for (size_t j = 0; j < k; j++)
                p = stpcpy(stpcpy(p, j > 0 ? "," : ""), picked[j]);
        *p = '\0';
        return out;
}
