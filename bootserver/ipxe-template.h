/* iPXE script templates: the built-in script of each boot decision,
 * {{name}} placeholders rendered from IpxeVars, and the check of a template
 * file that --check-config runs. Depends on nothing else in slipwayd. */
#pragma once

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
        const char *server;     /* public URL, no trailing slash: where iPXE fetches from */
        /* What the booted system talks to: the public URLs of the live
         * instances, this one first, comma-separated (ipxe_server_list());
         * NULL renders server. */
        const char *servers;
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
