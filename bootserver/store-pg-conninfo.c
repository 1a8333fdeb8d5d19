/* PostgreSQL connection strings without a connection: checked with libpq's
 * own parser, and told in messages without their password. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-driver.h"
#include "util.h"

/* The settings that say where the state is; the others (password first
 * of all) stay out of messages. */
static const char *const described[] = { "host", "hostaddr", "port", "dbname", "user" };

/* A quoted word of libpq's reason is kept when it cannot be a secret: an
 * option's name, or one character ("="). Anything else may be a piece of
 * the string (a password libpq could not decode). */
static bool quoted_harmless(const char *s, size_t n) {
        if (n <= 1)
                return true;
        if (n > 32)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
                        return false;
        return true;
}

/* libpq's reason on one line, with the quoted words that may come from
 * the string replaced. */
static char *reason_redacted(const char *msg) {
        size_t n = strlen(msg), o = 0;
        char *out = malloc(n * 2 + 16);

        if (!out)
                return NULL;
        for (const char *p = msg; *p;) {
                const char *end = *p == '"' ? strchr(p + 1, '"') : NULL;

                if (end) {
                        size_t len = (size_t) (end - p - 1);

                        if (quoted_harmless(p + 1, len)) {
                                memcpy(out + o, p, len + 2);
                                o += len + 2;
                        } else {
                                memcpy(out + o, "\"...\"", strlen("\"...\""));
                                o += strlen("\"...\"");
                        }
                        p = end + 1;
                        continue;
                }
                out[o++] = *p == '\n' || *p == '\r' ? ' ' : *p;
                p++;
        }
        while (o > 0 && out[o - 1] == ' ')
                o--;
        out[o] = '\0';
        return out;
}

int pg_conninfo_check(const char *conninfo, char **ret_why) {
        char *err = NULL;
        PQconninfoOption *opts = PQconninfoParse(conninfo, &err);

        if (opts) {
                PQconninfoFree(opts);
                return 0;
        }
        if (!err)
                return -ENOMEM;
        if (ret_why) {
                *ret_why = reason_redacted(err);
                if (!*ret_why) {
                        PQfreemem(err);
                        return -ENOMEM;
                }
        }
        PQfreemem(err);
        return -EINVAL;
}

/* Appends " key=value" to *buf, quoting a value libpq would need quoted. */
static int append_setting(char **buf, const char *key, const char *val) {
        bool quote = !*val || strpbrk(val, " '\\");
        char *next = strdup_printf("%s %s=%s%s%s", *buf, key, quote ? "'" : "", val, quote ? "'" : "");

        if (!next)
                return -ENOMEM;
        free(*buf);
        *buf = next;
        return 0;
}

char *pg_conninfo_describe(const char *conninfo) {
        PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
        char *buf = strdup("PostgreSQL");

        if (!opts || !buf) {
                PQconninfoFree(opts);
                return buf;
        }
        for (size_t i = 0; i < sizeof described / sizeof described[0]; i++)
                for (PQconninfoOption *o = opts; o->keyword; o++)
                        if (o->val && streq(o->keyword, described[i]) && append_setting(&buf, o->keyword, o->val) < 0) {
                                free(buf);
                                PQconninfoFree(opts);
                                return NULL;
                        }
        PQconninfoFree(opts);
        return buf;
}
