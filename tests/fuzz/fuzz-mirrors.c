/* Fuzzes the mirror lists a repository names: a mirrorlist and a metalink.
 * Whatever either accepts must hold only usable URLs; a metalink's
 * checksums come in pairs, and checking data against them never crashes. */
#include <stdint.h>
#include <string.h>

#include "mirrors.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_urls(char **urls) {
        if (!urls || !urls[0])
                abort();
        for (char **u = urls; *u; u++)
                if (!startswith(*u, "file:///") && !startswith(*u, "http://") && !startswith(*u, "https://"))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *text = malloc(size + 1), **urls = NULL;
        MetalinkRepomd m = {};
        char reason[256];

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        if (mirrorlist_parse(text, &urls) == 0) {
                check_urls(urls);
                strv_free(urls);
                urls = NULL;
        }
        if (metalink_parse(text, size, &urls, &m) == 0) {
                check_urls(urls);
                if (strv_length(m.hash_types) != strv_length(m.hashes) || strv_length(m.hash_types) == 0)
                        abort();
                (void) metalink_repomd_check(&m, data, size, reason, sizeof(reason));
                strv_free(urls);
                metalink_repomd_release(&m);
        }
        free(text);
        return 0;
}
