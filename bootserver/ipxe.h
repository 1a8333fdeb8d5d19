/* iPXE scripts: per-host boot decisions (install, local disk, live, wait)
 * rendered from templates with {{name}} placeholders. */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "store-hosts.h"

/* The largest template file slipwayd reads. */
#define IPXE_TEMPLATE_MAX (64 * 1024)

typedef enum IpxeScript {
        IPXE_INSTALL,
        IPXE_LOCAL,
        IPXE_LIVE,
        IPXE_WAIT,
        IPXE_HELD,  /* to be installed, but its secret went to another client */
        IPXE_CHAIN, /* a client that did not say who it is: ask again with its MAC */
        _IPXE_SCRIPT_MAX,
} IpxeScript;

/* The values a template can use; NULL renders as "". */
typedef struct IpxeVars {
        const char *server;     /* public URL, no trailing slash */
        const char *mac;
        const char *uuid;
        const char *host;       /* host ID */
        const char *image;      /* image ID: the SHA-256 of its manifest blob */
        const char *signature;  /* the SHA-256 of the manifest's signature blob */
        const char *name;
        const char *version;
        const char *kernel_url;
        const char *initrd_url;
        const char *rootfs_url;
        const char *cmdline;    /* the image's kernel command line */
        const char *enroll;     /* the install boot's enrollment secret */
} IpxeVars;

/* The built-in template of a script. */
const char *ipxe_builtin(IpxeScript s);
const char *ipxe_script_to_string(IpxeScript s);

/* Replaces every {{name}} in template with its value. An unknown name is
 * -EINVAL with the name in ret_bad (static string or a copy the caller
 * frees: always caller frees). ret is caller-owned. */
int ipxe_render(const char *template, const IpxeVars *v, char **ret, char **ret_bad);

/* Checks a template as iPXE and ipxe_render() will read it: it starts with
 * "#!ipxe", and every {{name}} is closed and known. Returns 0, or -EINVAL with
 * the 1-based line at fault in *ret_line and the problem in *ret_why (caller
 * frees), or -ENOMEM. */
int ipxe_template_check(const char *template, unsigned *ret_line, char **ret_why);

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
