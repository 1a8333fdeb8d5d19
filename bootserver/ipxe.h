/* iPXE scripts: per-host boot decisions (install, local disk, live, wait),
 * rendered from the templates of ipxe-template.h. */
#pragma once

#include <stdint.h>

#include "ipxe-template.h"
#include "macro.h"
#include "store-hosts.h"

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
