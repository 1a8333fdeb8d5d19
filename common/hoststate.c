#include "hoststate.h"
#include "util.h"

static const char *const host_state_names[_HOST_STATE_MAX] = {
        [HOST_REGISTERED] = "registered", [HOST_INSTALLING] = "installing", [HOST_INSTALLED] = "installed",
        [HOST_STAGING] = "staging",       [HOST_STAGED] = "staged",         [HOST_REBOOTING] = "rebooting",
        [HOST_HEALTHY] = "healthy",       [HOST_UNHEALTHY] = "unhealthy",   [HOST_ROLLED_BACK] = "rolled-back",
        [HOST_FAILED] = "failed",
};

const char *host_state_to_string(HostState s) {
        return s >= 0 && s < _HOST_STATE_MAX ? host_state_names[s] : NULL;
}

HostState host_state_from_string(const char *s) {
        for (HostState i = 0; s && i < _HOST_STATE_MAX; i++)
                if (streq(host_state_names[i], s))
                        return i;
        return _HOST_STATE_INVALID;
}

bool host_state_is_installed(HostState s) {
        return s >= 0 && s < _HOST_STATE_MAX && s != HOST_REGISTERED && s != HOST_INSTALLING && s != HOST_FAILED;
}
