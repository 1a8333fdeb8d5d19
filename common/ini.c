#include <ctype.h>
#include <strings.h>

#include "ini.h"
#include "util.h"

#define INI_LINE_MAX 4096

static char *strip(char *s) {
        char *e;
        while (isspace((unsigned char) *s))
                s++;
        e = s + strlen(s);
        while (e > s && isspace((unsigned char) e[-1]))
                *--e = 0;
        return s;
}

/* Cuts the comment off the end of line l, in place: a '#' after a space or
 * tab starts one. "\\#" stands for a '#' that stays (the backslash goes), so
 * that a value can hold " #"; any other backslash is kept as written. */
static void cut_comment(char *l) {
        char *w = l, prev = 0;

        for (const char *r = l; *r; r++) {
                if (r[0] == '\\' && r[1] == '#') {
                        *w++ = '#';
                        prev = *++r;
                        continue;
                }
                if (*r == '#' && (prev == ' ' || prev == '\t'))
                        break;
                prev = *w++ = *r;
        }
        *w = 0;
}

int ini_parse_string(const char *name, const char *text, IniHandler handler, void *userdata, Error *error) {
        char section[256] = "";
        unsigned line = 0;
        const char *p = text;

        while (*p) {
                char buf[INI_LINE_MAX + 1];
                size_t n = strcspn(p, "\n");
                char *l, *eq, *key, *value;
                int r;

                line++;
                if (n > INI_LINE_MAX)
                        return error_set_at(error, -EBADMSG, name, line, "line longer than %d bytes", INI_LINE_MAX);
                memcpy(buf, p, n);
                buf[n] = 0;
                p += n;
                if (*p == '\n')
                        p++;

                l = strip(buf);
                if (*l == 0 || *l == '#' || *l == ';')
                        continue;
                cut_comment(l);
                l = strip(l);

                if (*l == '[') {
                        char *end = strchr(l, ']');
                        if (!end || end[1] != 0)
                                return error_set_at(error, -EBADMSG, name, line, "malformed section header '%s'", l);
                        *end = 0;
                        l = strip(l + 1);
                        if (*l == 0 || strlen(l) >= sizeof(section))
                                return error_set_at(error, -EBADMSG, name, line, "bad section name");
                        /* Collapse inner runs of blanks so "[repo   x]" == "[repo x]". */
                        {
                                size_t j = 0;
                                for (size_t i = 0; l[i]; i++)
                                        if (!isspace((unsigned char) l[i]) || (j > 0 && section[j - 1] != ' '))
                                                section[j++] = isspace((unsigned char) l[i]) ? ' ' : l[i];
                                section[j] = 0;
                        }
                        continue;
                }

                eq = strchr(l, '=');
                if (!eq)
                        return error_set_at(error, -EBADMSG, name, line, "expected 'key = value', got '%s'", l);
                *eq = 0;
                key = strip(l);
                value = strip(eq + 1);
                if (*key == 0)
                        return error_set_at(error, -EBADMSG, name, line, "empty key");

                r = handler(name, line, section, key, value, userdata, error);
                if (r < 0) {
                        /* A handler that did not say why: the line at least. */
                        if (error && error->code == 0)
                                error_set_at(error, r, name, line, "%m");
                        return r;
                }
        }
        return 0;
}

int ini_parse_file(const char *path, IniHandler handler, void *userdata, Error *error) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        long len;

        f = fopen(path, "re");
        if (!f)
                return error_set(error, negative_errno(), "cannot open '%s': %m", path);
        /* Configuration files are small; refuse anything absurd. */
        if (fseek(f, 0, SEEK_END) < 0 || (len = ftell(f)) < 0)
                return error_set(error, negative_errno(), "cannot read '%s': %m", path);
        if (len > 1024 * 1024)
                return error_set(error, -EFBIG, "'%s' is larger than 1 MiB", path);
        rewind(f);
        text = malloc((size_t) len + 1);
        if (!text)
                return error_set(error, -ENOMEM, "out of memory");
        size = fread(text, 1, (size_t) len, f);
        if (ferror(f))
                return error_set(error, -EIO, "cannot read '%s'", path);
        text[size] = 0;
        if (memchr(text, 0, size))
                return error_set_at(error, -EBADMSG, path, 0, "contains a NUL byte");
        return ini_parse_string(path, text, handler, userdata, error);
}

int parse_boolean(const char *v) {
        static const char *const yes[] = { "1", "yes", "true", "on" };
        static const char *const no[] = { "0", "no", "false", "off" };
        for (size_t i = 0; i < ELEMENTSOF(yes); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < ELEMENTSOF(no); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        return -EINVAL;
}
