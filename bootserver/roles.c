#include "roles.h"
#include "util.h"

static const char *const names[_ROLE_MAX] = {
        [ROLE_VIEWER] = "viewer",
        [ROLE_OPERATOR] = "operator",
        [ROLE_ADMIN] = "admin",
};

const char *role_to_string(Role r) {
        return r >= 0 && r < _ROLE_MAX ? names[r] : NULL;
}

Role role_from_string(const char *s) {
        for (Role r = 0; s && r < _ROLE_MAX; r++)
                if (streq(names[r], s))
                        return r;
        return _ROLE_INVALID;
}
