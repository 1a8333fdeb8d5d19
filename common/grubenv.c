/* GRUB's environment block: parse, format, and the in-place rewrite that
 * GRUB's save_env does too. */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "crashpoint.h"
#include "fileio.h"
#include "grubenv.h"
#include "util.h"

void grubenv_release(GrubEnv *env) {
        if (!env)
                return;
        for (size_t i = 0; i < env->n; i++) {
                free(env->names[i]);
                free(env->values[i]);
        }
        free(env->names);
        free(env->values);
        *env = (GrubEnv) {};
}

static bool name_valid(const char *name) {
        return name && *name && !strpbrk(name, "=\n\\") && name[0] != '#';
}

static ssize_t find(const GrubEnv *env, const char *name) {
        for (size_t i = 0; i < env->n; i++)
                if (streq(env->names[i], name))
                        return (ssize_t) i;
        return -1;
}

const char *grubenv_get(const GrubEnv *env, const char *name) {
        ssize_t i = find(env, name);

        return i < 0 ? NULL : env->values[i];
}

int grubenv_set(GrubEnv *env, const char *name, const char *value) {
        ssize_t i;
        char *v, *nm, **names, **values;

        if (!name_valid(name))
                return -EINVAL;
        i = find(env, name);
        if (!value) {
                if (i < 0)
                        return 0;
                free(env->names[i]);
                free(env->values[i]);
                memmove(env->names + i, env->names + i + 1, (env->n - (size_t) i - 1) * sizeof(char *));
                memmove(env->values + i, env->values + i + 1, (env->n - (size_t) i - 1) * sizeof(char *));
                env->n--;
                return 0;
        }
        v = strdup(value);
        if (!v)
                return -ENOMEM;
        if (i >= 0) {
                free(env->values[i]);
                env->values[i] = v;
                return 0;
        }
        nm = strdup(name);
        names = nm ? realloc(env->names, (env->n + 1) * sizeof(char *)) : NULL;
        if (names)
                env->names = names;
        values = names ? realloc(env->values, (env->n + 1) * sizeof(char *)) : NULL;
        if (!values) {
                free(v);
                free(nm);
                return -ENOMEM;
        }
        env->values = values;
        env->names[env->n] = nm;
        env->values[env->n] = v;
        env->n++;
        return 0;
}

int grubenv_parse(const char *data, size_t n, GrubEnv *ret) {
        GrubEnv env = {};
        const char *p, *end = data + n;
        int r = 0;

        if (n != GRUBENV_SIZE || memcmp(data, GRUBENV_HEADER, strlen(GRUBENV_HEADER)) != 0)
                return -EBADMSG;
        for (p = data + strlen(GRUBENV_HEADER); p < end && r >= 0;) {
                const char *eq, *nl;
                _cleanup_free_ char *name = NULL, *value = NULL;
                size_t k = 0;

                if (*p == '#') {
                        /* A comment, or the padding: to the end of the line. */
                        nl = memchr(p, '\n', (size_t) (end - p));
                        p = nl ? nl + 1 : end;
                        continue;
                }
                eq = memchr(p, '=', (size_t) (end - p));
                nl = memchr(p, '\n', (size_t) (end - p));
                if (!eq || (nl && nl < eq)) {
                        r = -EBADMSG;
                        break;
                }
                name = strndup(p, (size_t) (eq - p));
                value = malloc((size_t) (end - eq));
                if (!name || !value) {
                        r = -ENOMEM;
                        break;
                }
                /* The value runs to the first line break not escaped. */
                for (p = eq + 1; p < end && *p != '\n'; p++) {
                        if (*p == '\\' && p + 1 < end)
                                p++;
                        value[k++] = *p;
                }
                value[k] = 0;
                if (p >= end) {
                        r = -EBADMSG;
                        break;
                }
                p++;
                r = grubenv_set(&env, name, value);
        }
        if (r < 0) {
                grubenv_release(&env);
                return r == -EINVAL ? -EBADMSG : r;
        }
        *ret = env;
        return 0;
}

int grubenv_format(const GrubEnv *env, char ret[GRUBENV_SIZE], size_t *ret_used) {
        char buf[GRUBENV_SIZE];
        size_t k = strlen(GRUBENV_HEADER);

        memcpy(buf, GRUBENV_HEADER, k);
        for (size_t i = 0; i < env->n; i++) {
                size_t need = strlen(env->names[i]) + 2;

                for (const char *v = env->values[i]; *v; v++)
                        need += *v == '\\' || *v == '\n' ? 2 : 1;
                if (k + need > GRUBENV_SIZE)
                        return -E2BIG;
                k = (size_t) (stpcpy(buf + k, env->names[i]) - buf);
                buf[k++] = '=';
                for (const char *v = env->values[i]; *v; v++) {
                        if (*v == '\\' || *v == '\n')
                                buf[k++] = '\\';
                        buf[k++] = *v;
                }
                buf[k++] = '\n';
        }
        if (ret_used)
                *ret_used = k;
        memset(buf + k, '#', GRUBENV_SIZE - k);
        memcpy(ret, buf, GRUBENV_SIZE);
        return 0;
}

int grubenv_load(const char *path, GrubEnv *ret) {
        _cleanup_free_ char *data = NULL;
        size_t n;
        int r;

        r = read_full_file(path, GRUBENV_SIZE, &data, &n);
        if (r == -EFBIG)
                return -EBADMSG;
        if (r < 0)
                return r;
        return grubenv_parse(data, n, ret);
}

/* The offset just past the line of name in a formatted block, 0 when absent. */
static size_t line_end(const char *block, const char *name) {
        size_t len = strlen(name);

        for (const char *p = block; p < block + GRUBENV_SIZE;) {
                const char *nl = memchr(p, '\n', (size_t) (block + GRUBENV_SIZE - p));
                if (!nl)
                        break;
                if (strncmp(p, name, len) == 0 && p[len] == '=')
                        return (size_t) (nl - block) + 1;
                p = nl + 1;
        }
        return 0;
}

int grubenv_save(const char *path, const GrubEnv *env, const char *const *first_sector) {
        char old[GRUBENV_SIZE], new[GRUBENV_SIZE];
        _cleanup_close_ int fd = -1;
        struct stat st;
        bool valid = false;
        int r;

        r = grubenv_format(env, new, NULL);
        if (r < 0)
                return r;
        for (const char *const *n = first_sector; n && *n; n++)
                if (line_end(new, *n) > GRUBENV_SECTOR)
                        return -E2BIG;

        fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 && errno != ENOENT)
                return negative_errno();
        if (fd >= 0 && fstat(fd, &st) >= 0 && S_ISREG(st.st_mode) && st.st_size == GRUBENV_SIZE &&
            pread(fd, old, GRUBENV_SIZE, 0) == (ssize_t) GRUBENV_SIZE) {
                GrubEnv check = {};
                valid = grubenv_parse(old, GRUBENV_SIZE, &check) >= 0;
                grubenv_release(&check);
        }
        if (!valid) {
                r = write_file_atomic(path, new, GRUBENV_SIZE, 0644);
                crashpoint("grubenv-written");
                return r;
        }
        /* In place, the last sector first: the first one, which holds the
         * variables that must change together, commits. */
        for (size_t s = GRUBENV_SIZE / GRUBENV_SECTOR; s-- > 0;) {
                off_t off = (off_t) (s * GRUBENV_SECTOR);

                if (memcmp(old + off, new + off, GRUBENV_SECTOR) == 0)
                        continue;
                if (s == 0)
                        crashpoint("grubenv-first-sector");
                if (pwrite(fd, new + off, GRUBENV_SECTOR, off) != (ssize_t) GRUBENV_SECTOR)
                        return errno > 0 ? negative_errno() : -EIO;
                /* Ordered: the later sector is on the medium before the first. */
                if (s > 0 && fdatasync(fd) < 0)
                        return negative_errno();
        }
        if (fdatasync(fd) < 0)
                return negative_errno();
        crashpoint("grubenv-written");
        return 0;
}
