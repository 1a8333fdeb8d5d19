/* Fuzzes GRUB's environment block: what parses formats back to a block that
 * parses to the same variables. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grubenv.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char block[GRUBENV_SIZE], in[GRUBENV_SIZE];
        GrubEnv env = {}, back = {};

        /* Short inputs become a block: the header, the bytes, '#' padding. */
        if (size + strlen(GRUBENV_HEADER) <= GRUBENV_SIZE) {
                memcpy(in, GRUBENV_HEADER, strlen(GRUBENV_HEADER));
                memcpy(in + strlen(GRUBENV_HEADER), data, size);
                memset(in + strlen(GRUBENV_HEADER) + size, '#', GRUBENV_SIZE - strlen(GRUBENV_HEADER) - size);
                data = (const uint8_t *) in;
                size = GRUBENV_SIZE;
        }
        if (grubenv_parse((const char *) data, size, &env) < 0)
                return 0;
        if (grubenv_format(&env, block, NULL) == 0) {
                if (grubenv_parse(block, GRUBENV_SIZE, &back) < 0 || back.n != env.n)
                        abort();
                for (size_t i = 0; i < env.n; i++)
                        if (!streq(back.names[i], env.names[i]) || !streq(back.values[i], env.values[i]))
                                abort();
                grubenv_release(&back);
        }
        grubenv_release(&env);
        return 0;
}
