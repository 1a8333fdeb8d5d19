#include <pthread.h>
#include <rpm/rpmlib.h>

#include "librpm.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int config_result;

static void init_once(void) {
        config_result = rpmReadConfigFiles(NULL, NULL) == 0 ? 0 : -EIO;
}

int librpm_init(void) {
        if (pthread_once(&once, init_once) != 0)
                return -EIO;
        return config_result;
}
