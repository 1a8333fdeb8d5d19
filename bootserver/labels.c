#include <ctype.h>
#include <string.h>

#include "labels.h"

bool label_valid(const char *s) {
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > LABEL_MAX)
                return false;
        for (; *s; s++)
                if (!isalnum((unsigned char) *s) && !strchr("._-", *s))
                        return false;
        return true;
}
