#include "images.h"
#include "manifest.h"
#include "util.h"

int images_load_manifest(const char *state_dir, const char *manifest_hex, Manifest **ret) {
        return catalog_load_manifest(state_dir, manifest_hex, ret);
}

char *images_manifest_cmdline(Manifest *m) {
        char *c = strdup(m && m->cmdline ? m->cmdline : "");
        manifest_free(m);
        return c;
}
