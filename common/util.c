#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

#include "util.h"

bool endswith(const char *s, const char *suffix) {
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

char *strdup_printf(const char *format, ...) {
        va_list ap;
        char *s;
        int r;

        va_start(ap, format);
        r = vasprintf(&s, format, ap);
        va_end(ap);
        return r < 0 ? NULL : s;
}

char *path_join(const char *a, const char *b) {
        size_t la = strlen(a);
        while (la > 1 && a[la - 1] == '/')
                la--;
        while (*b == '/')
                b++;
        return strdup_printf("%.*s/%s", (int) la, a, b);
}

char *json_escape_string(const char *s) {
        size_t n = strlen(s);
        char *out = malloc(n * 6 + 3), *o = out;
        if (!out)
                return NULL;
        *o++ = '"';
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                if (*p == '"' || *p == '\\') {
                        *o++ = '\\';
                        *o++ = (char) *p;
                } else if (*p == '\n') {
                        *o++ = '\\';
                        *o++ = 'n';
                } else if (*p < 0x20) {
                        snprintf(o, 7, "\\u%04x", *p);
                        o += 6;
                } else
                        *o++ = (char) *p;
        }
        *o++ = '"';
        *o = 0;
        return out;
}

int safe_atou64(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        if (isempty(s) || !isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int safe_atoi(const char *s, int *ret) {
        char *end;
        long v;

        if (isempty(s))
                return -EINVAL;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno == ERANGE || v > INT32_MAX || v < INT32_MIN)
                return -ERANGE;
        if (*end || isspace((unsigned char) s[0]))
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

int parse_size(const char *s, uint64_t *ret) {
        static const struct {
                char c;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 } };
        char num[32];
        size_t n = 0;
        uint64_t v;
        unsigned shift = 0;
        int r;

        if (isempty(s))
                return -EINVAL;
        while (isdigit((unsigned char) s[n]) && n < sizeof(num) - 1) {
                num[n] = s[n];
                n++;
        }
        num[n] = 0;
        if (n == 0)
                return -EINVAL;
        s += n;
        if (*s) {
                bool found = false;
                for (size_t i = 0; i < ELEMENTSOF(units); i++)
                        if (toupper((unsigned char) *s) == units[i].c) {
                                shift = units[i].shift;
                                found = true;
                        }
                if (!found)
                        return -EINVAL;
                s++;
                if (streq(s, "iB") || streq(s, "B"))
                        s += strlen(s);
                if (*s)
                        return -EINVAL;
        }
        r = safe_atou64(num, &v);
        if (r < 0)
                return r;
        if (shift && v > (UINT64_MAX >> shift))
                return -ERANGE;
        *ret = v << shift;
        return 0;
}

const char *format_bytes(char *buf, size_t size, uint64_t bytes) {
        static const char *const suffix[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        size_t i = 0;

        while (v >= 1024 && i + 1 < ELEMENTSOF(suffix)) {
                v /= 1024;
                i++;
        }
        if (i == 0)
                snprintf(buf, size, "%" PRIu64 " B", bytes);
        else
                snprintf(buf, size, "%.1f %s", v, suffix[i]);
        return buf;
}

void strv_free(char **l) {
        if (!l)
                return;
        for (char **p = l; *p; p++)
                free(*p);
        free(l);
}

size_t strv_length(char *const *l) {
        size_t n = 0;
        if (l)
                while (l[n])
                        n++;
        return n;
}

int strv_consume(char ***l, char *s) {
        size_t n;
        char **c;

        if (!s)
                return -ENOMEM;
        n = strv_length(*l);
        c = realloc(*l, sizeof(char *) * (n + 2));
        if (!c) {
                free(s);
                return -ENOMEM;
        }
        c[n] = s;
        c[n + 1] = NULL;
        *l = c;
        return 0;
}

int array_reserve(void **p, size_t *cap, size_t n, size_t size) {
        size_t c = *cap ? *cap : 8;
        void *a;

        if (n < *cap)
                return 0;
        while (c <= n)
                c *= 2;
        a = reallocarray(*p, c, size);
        if (!a)
                return -ENOMEM;
        *p = a;
        *cap = c;
        return 0;
}

void *array_push(void **p, size_t *n, size_t *cap, size_t size) {
        char *a;

        if (array_reserve(p, cap, *n, size) < 0)
                return NULL;
        a = *p;
        memset(a + *n * size, 0, size);
        return a + (*n)++ * size;
}

int strv_extend(char ***l, const char *s) {
        return strv_consume(l, strdup(s));
}

char **strv_split_words(const char *s) {
        char **l = calloc(1, sizeof(char *));
        if (!l)
                return NULL;
        while (*s) {
                size_t n;
                while (*s && (isspace((unsigned char) *s) || *s == ','))
                        s++;
                n = strcspn(s, " \t\r\n,");
                if (n == 0)
                        break;
                if (strv_consume(&l, strndup(s, n)) < 0) {
                        strv_free(l);
                        return NULL;
                }
                s += n;
        }
        return l;
}

bool strv_contains(char *const *l, const char *s) {
        if (l)
                for (; *l; l++)
                        if (streq(*l, s))
                                return true;
        return false;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int strv_sort_unique(char **l) {
        size_t n = strv_length(l), j = 0;
        if (n == 0)
                return 0;
        qsort(l, n, sizeof(char *), cmp_str);
        for (size_t i = 1; i < n; i++) {
                if (streq(l[i], l[j]))
                        free(l[i]);
                else
                        l[++j] = l[i];
        }
        l[j + 1] = NULL;
        return (int) (j + 1);
}

void hex_encode(const uint8_t *in, size_t n, char *out) {
        static const char digits[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = digits[in[i] >> 4];
                out[2 * i + 1] = digits[in[i] & 15];
        }
        out[2 * n] = 0;
}

bool sha256_hex_valid(const char *s) {
        size_t i;
        for (i = 0; s[i]; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return i == 64;
}

int source_date_epoch(uint64_t *ret) {
        const char *e = getenv("SOURCE_DATE_EPOCH");
        if (!e)
                return -ENOENT;
        return safe_atou64(e, ret) < 0 ? -EINVAL : 0;
}

uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}
