/* iPXE scripts: per-host boot decisions (install, local disk, live, wait),
 * rendered from the templates of ipxe-template.h. */
#pragma once

#include <stdint.h>

#include "ipxe-template.h"
#include "macro.h"
#include "store-hosts.h"
#include "store-instances.h"

/* What a host boots: the script for host h, given the catalog's answer b
 * for its assigned image (NULL when it has none). IPXE_INSTALL still needs
 * its enrollment secret (ipxe_boot() gets it, or turns it into IPXE_HELD). */
IpxeScript ipxe_decide(const Host *h, const BootImage *b);

/* The settings a boot decision depends on. */
typedef struct IpxePolicy {
        const char *default_image; /* image reference for hosts without one, or NULL */
        const char *state_dir;     /* where the enrollment key is */
        uint64_t enroll_ttl;       /* seconds an install secret lives */
} IpxePolicy;

/* A boot decision and what its script needs. */
typedef struct IpxeDecision {
        IpxeScript script;
        char host[HOST_ID_MAX];
        char image[65]; /* "" when the script boots none */
        BootImage boot; /* the image's names and artifacts */
        char enroll[65]; /* IPXE_INSTALL: the enrollment secret */
} IpxeDecision;

void ipxe_decision_release(IpxeDecision *d);

/* With the lock held, in a write transaction: registers host mac (uuid may
 * be NULL) if it is new, records the firmware's request at now as
 * pxe_seen (never as last_seen: firmware looping on a script is no sign
 * that the host's system runs), assigns the default image to a host
 * without one, and decides what it boots from address, issuing the
 * install secret. ret is the caller's to release. */
int ipxe_boot(StoreTx *tx, const IpxePolicy *p, const char *mac, const char *uuid, const char *address, uint64_t now,
              IpxeDecision *ret);

/* At most this many URLs, and this many characters, in a boot script's
 * server list: the kernel's command line is 2048 bytes on x86 and holds
 * the image's own options besides. */
#define IPXE_SERVERS_MAX 8
#define IPXE_SERVERS_LEN_MAX 1024

/* The servers a booted host is told of ({{servers}}): self first, then the
 * url of each instance of l (n of them) that beat at most stale_ms ago, in
 * l's order, each once, comma-separated, as many as IPXE_SERVERS_MAX and
 * IPXE_SERVERS_LEN_MAX allow. A URL with a comma or a space, which would
 * break the list or the command line, is left out. Caller frees; NULL when
 * out of memory. */
char *ipxe_server_list(const char *self, const Instance *l, size_t n, int64_t stale_ms);
