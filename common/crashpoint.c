#include <pthread.h>
#include <signal.h>

#include "crashpoint.h"
#include "log.h"
#include "util.h"

/* Whether spec (NAME[:N]) matches the hits-th pass through name. */
static bool matches(const char *spec, const char *name, unsigned hits) {
        const char *colon;
        size_t n;
        uint64_t want = 1;

        if (!spec)
                return false;
        colon = strchr(spec, ':');
        n = colon ? (size_t) (colon - spec) : strlen(spec);
        if (strlen(name) != n || strncmp(spec, name, n) != 0)
                return false;
        if (colon && safe_atou64(colon + 1, &want) < 0)
                return false;
        return hits == want;
}

void crashpoint(const char *name) {
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static unsigned hits[64];
        static const char *names[64];
        unsigned hit;
        size_t i;

        if (!getenv("SLIPWAY_CRASH_AT") && !getenv("SLIPWAY_PAUSE_AT"))
                return;
        pthread_mutex_lock(&lock);
        for (i = 0; i < 64 && names[i] && !streq(names[i], name); i++)
                ;
        if (i == 64) {
                pthread_mutex_unlock(&lock);
                return;
        }
        names[i] = name;
        hit = ++hits[i];
        pthread_mutex_unlock(&lock);
        if (matches(getenv("SLIPWAY_PAUSE_AT"), name, hit)) {
                log_warning("pause point '%s' (hit %u): stopping", name, hit);
                raise(SIGSTOP);
        }
        if (matches(getenv("SLIPWAY_CRASH_AT"), name, hit)) {
                log_warning("crash point '%s' (hit %u): killing myself", name, hit);
                raise(SIGKILL);
        }
}
