/* iPXE script templates: the built-in ones, {{name}} rendering and the
 * check of a template file (ipxe-template.h). */
#include <stddef.h>

#include "ipxe-template.h"
#include "util.h"

#define RETRY                                                                                  \
        ":retry\n"                                                                             \
        "echo Slipway: boot failed, asking {{server}} again in 10 s\n"                         \
        "sleep 10\n"                                                                           \
        "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n"

static const char *const builtin[_IPXE_SCRIPT_MAX] = {
        [IPXE_INSTALL] = "#!ipxe\n"
                         "# slipway: install {{name}} {{version}} on {{host}} ({{mac}})\n"
                         "echo Slipway: installing {{name}} {{version}} on {{host}}\n"
                         "kernel {{kernel_url}} initrd=initrd.img {{cmdline}} slipway.mode=install "
                         "slipway.server={{servers}} slipway.host={{host}} slipway.mac={{mac}} slipway.enroll={{enroll}} "
                         "slipway.image={{image}} || goto retry\n"
                         "initrd --name initrd.img {{initrd_url}} || goto retry\n"
                         "boot || goto retry\n" RETRY,
        [IPXE_LOCAL] = "#!ipxe\n"
                       "# slipway: {{host}} ({{mac}}) is installed: boot its disk\n"
                       "echo Slipway: {{host}} boots from its disk\n"
                       "iseq ${platform} efi && goto efi ||\n"
                       "sanboot --no-describe --drive 0x80 || goto retry\n"
                       ":efi\n"
                       "# leaving iPXE hands the machine back to the firmware's next boot option\n"
                       "exit 1\n" RETRY,
        [IPXE_LIVE] = "#!ipxe\n"
                      "# slipway: live boot of {{name}} {{version}} on {{host}} ({{mac}})\n"
                      "echo Slipway: live boot of {{name}} {{version}}\n"
                      "kernel {{kernel_url}} initrd=initrd.img {{cmdline}} slipway.mode=live "
                      "slipway.server={{servers}} slipway.host={{host}} slipway.image={{image}} "
                      "slipway.signature={{signature}} slipway.rootfs={{rootfs_url}} || goto retry\n"
                      "initrd --name initrd.img {{initrd_url}} || goto retry\n"
                      "boot || goto retry\n" RETRY,
        [IPXE_WAIT] = "#!ipxe\n"
                      "# slipway: no image for {{host}} ({{mac}})\n"
                      "echo Slipway: no image is assigned to {{host}} ({{mac}}); asking again in 30 s\n"
                      "sleep 30\n"
                      "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n" RETRY,
        [IPXE_HELD] = "#!ipxe\n"
                      "# slipway: the install secret of {{host}} ({{mac}}) was issued to another client\n"
                      "echo Slipway: {{host}} ({{mac}}) is to be installed, but its enrollment secret went to another "
                      "client\n"
                      "echo Slipway: an operator revokes it by assigning the image to the host again; asking again in 30 s\n"
                      "sleep 30\n"
                      "chain --replace {{server}}/boot/ipxe?mac={{mac}}&uuid={{uuid}} || goto retry\n" RETRY,
        [IPXE_CHAIN] = "#!ipxe\n"
                       "chain --replace {{server}}/boot/ipxe?mac=${mac}&uuid=${uuid}\n",
};

static const char *const script_names[_IPXE_SCRIPT_MAX] = {
        [IPXE_INSTALL] = "install", [IPXE_LOCAL] = "local", [IPXE_LIVE] = "live",
        [IPXE_WAIT] = "wait",       [IPXE_HELD] = "held",     [IPXE_CHAIN] = "chain",
};

const char *ipxe_builtin(IpxeScript s) {
        return s < _IPXE_SCRIPT_MAX ? builtin[s] : NULL;
}

const char *ipxe_script_to_string(IpxeScript s) {
        return s < _IPXE_SCRIPT_MAX ? script_names[s] : NULL;
}

static const char *var_lookup(const IpxeVars *v, const char *name, size_t n, bool *ret_known) {
        static const struct {
                const char *name;
                size_t offset;
        } names[] = {
#define V(f) { #f, offsetof(IpxeVars, f) }
                V(server),  V(servers),    V(mac),        V(uuid),       V(host),       V(image),
                V(signature), V(name),     V(version),    V(kernel_url), V(initrd_url), V(rootfs_url),
                V(cmdline), V(enroll),
#undef V
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strlen(names[i].name) == n && memcmp(names[i].name, name, n) == 0) {
                        const char *val = *(const char *const *) ((const char *) v + names[i].offset);

                        *ret_known = true;
                        return !val && names[i].offset == offsetof(IpxeVars, servers) ? v->server : val;
                }
        *ret_known = false;
        return NULL;
}

/* ipxe_render(), and the offset in template of what it could not render. */
static int render(const char *template, const IpxeVars *v, char **ret, char **ret_bad, size_t *ret_offset) {
        _cleanup_free_ char *out = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&out, &size);
        if (!f)
                return -ENOMEM;
        for (const char *p = template; *p;) {
                const char *open = strstr(p, "{{"), *close;
                bool known;

                if (!open) {
                        fputs(p, f);
                        break;
                }
                fwrite(p, 1, (size_t) (open - p), f);
                *ret_offset = (size_t) (open - template);
                close = strstr(open + 2, "}}");
                if (!close) {
                        fclose(f);
                        if (ret_bad)
                                *ret_bad = strdup("{{ without }}");
                        return -EINVAL;
                }
                const char *val = var_lookup(v, open + 2, (size_t) (close - open - 2), &known);
                if (!known) {
                        fclose(f);
                        if (ret_bad)
                                *ret_bad = strndup(open, (size_t) (close - open + 2));
                        return -EINVAL;
                }
                fputs(strempty(val), f);
                p = close + 2;
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

int ipxe_render(const char *template, const IpxeVars *v, char **ret, char **ret_bad) {
        size_t offset;

        return render(template, v, ret, ret_bad, &offset);
}

int ipxe_template_check(const char *template, unsigned *ret_line, char **ret_why) {
        _cleanup_free_ char *out = NULL, *bad = NULL;
        size_t offset = 0;
        unsigned line = 1;
        int r;

        if (!startswith(template, "#!ipxe")) {
                *ret_line = 1;
                *ret_why = strdup("does not start with #!ipxe, so iPXE would not run it as a script");
                return *ret_why ? -EINVAL : -ENOMEM;
        }
        r = render(template, &(IpxeVars) {}, &out, &bad, &offset);
        if (r != -EINVAL)
                return r;
        for (size_t i = 0; i < offset; i++)
                line += template[i] == '\n';
        *ret_line = line;
        *ret_why = streq_ptr(bad, "{{ without }}") ? strdup("'{{' without '}}'")
                                                   : strdup_printf("unknown placeholder %s", strempty(bad));
        return *ret_why ? -EINVAL : -ENOMEM;
}
