/* Boot Loader Spec entries with boot counting. bootentry.h has the naming
 * decision and the crash-safety rules; systemd-boot 252 is the reference for
 * what counts as an entry, how its counter is parsed and how the menu is
 * ordered. */

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "bootentry.h"
#include "fileio.h"
#include "loaderentry.h"
#include "log.h"
#include "manifest.h"
#include "util.h"

#define TMP_PREFIX ".tmp-"
#define ENTRY_SIZE_MAX (64 * 1024)

/* ASCII only: ids are compared the same whatever the locale. */
static bool ascii_digit(char c) {
        return c >= '0' && c <= '9';
}
static bool ascii_alpha(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* Parses one or more decimal digits at *p, at most max, and moves *p past
 * them. */
static int parse_decimal(const char **p, unsigned long long max, unsigned long long *ret) {
        const char *s = *p;
        unsigned long long v = 0;

        if (!ascii_digit(*s))
                return -EINVAL;
        for (; ascii_digit(*s); s++) {
                v = v * 10 + (unsigned long long) (*s - '0');
                if (v > max)
                        return -ERANGE;
        }
        *p = s;
        *ret = v;
        return 0;
}

/* gen and version of "slipway-<gen>-<version>"; gen 0 and no version for
 * any other id. The generation is written without leading zeros: an id is
 * exactly what loader_entry_id() makes of its gen and version, or foreign
 * ("slipway-02-2.0" would otherwise be a second generation 2). */
static int parse_id(const char *id, unsigned *ret_gen, char **ret_version) {
        const char *p = startswith(id, LOADER_ENTRY_PREFIX);
        unsigned long long gen;
        char *v;

        *ret_gen = 0;
        *ret_version = NULL;
        if (!p || *p == '0' || parse_decimal(&p, UINT_MAX, &gen) < 0 || gen == 0 || *p != '-' ||
            !image_version_valid(p + 1))
                return 0;
        v = strdup(p + 1);
        if (!v)
                return -ENOMEM;
        *ret_gen = (unsigned) gen;
        *ret_version = v;
        return 0;
}

int bootentry_parse_file_name(const char *file, BootEntry *ret) {
        _cleanup_free_ char *copy = NULL, *id = NULL, *version = NULL;
        unsigned long long left = 0, done = 0;
        size_t n = strlen(file);
        bool counter = false;
        unsigned gen;
        char *plus;
        int r;

        /* What systemd-boot skips in loader/entries: hidden files, "auto-*"
         * and anything not ending in ".conf". */
        if (n <= strlen(LOADER_ENTRY_SUFFIX) || n > NAME_MAX || !endswith(file, LOADER_ENTRY_SUFFIX))
                return -EINVAL;
        if (file[0] == '.' || startswith(file, "auto-") || strchr(file, '/'))
                return -EINVAL;

        id = strndup(file, n - strlen(LOADER_ENTRY_SUFFIX));
        if (!id)
                return -ENOMEM;
        /* The counter follows the last '+': "+LEFT" or "+LEFT-DONE". */
        plus = strrchr(id, '+');
        if (plus) {
                const char *p = plus + 1;

                if (parse_decimal(&p, INT_MAX, &left) < 0)
                        return -EINVAL;
                if (*p == '-') {
                        p++;
                        if (parse_decimal(&p, INT_MAX, &done) < 0)
                                return -EINVAL;
                }
                if (*p != '\0')
                        return -EINVAL;
                *plus = '\0';
                counter = true;
        }
        if (isempty(id))
                return -EINVAL;

        r = parse_id(id, &gen, &version);
        if (r < 0)
                return r;
        copy = strdup(file);
        if (!copy)
                return -ENOMEM;

        *ret = (BootEntry) {
                .file = TAKE_PTR(copy),
                .id = TAKE_PTR(id),
                .gen = gen,
                .version = TAKE_PTR(version),
                .tries_left = counter ? (int) left : -1,
                .tries_done = counter ? (int) done : 0,
        };
        return 0;
}

void bootentry_release(BootEntry *e) {
        if (!e)
                return;
        free(e->file);
        free(e->id);
        free(e->version);
        free(e->kernel);
        *e = (BootEntry) { .tries_left = -1 };
}

static int strdup_or_null(const char *s, char **ret) {
        if (!s) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

int bootentry_copy(const BootEntry *src, BootEntry *ret) {
        _cleanup_(bootentry_release) BootEntry c = {
                .gen = src->gen,
                .slot = src->slot,
                .tries_left = src->tries_left,
                .tries_done = src->tries_done,
        };

        if (strdup_or_null(src->file, &c.file) < 0 || strdup_or_null(src->id, &c.id) < 0 ||
            strdup_or_null(src->version, &c.version) < 0 || strdup_or_null(src->kernel, &c.kernel) < 0)
                return -ENOMEM;
        *ret = c;
        c = (BootEntry) {};
        return 0;
}

void bootentries_free(BootEntry *e, size_t n) {
        if (!e)
                return;
        for (size_t i = 0; i < n; i++)
                bootentry_release(&e[i]);
        free(e);
}

bool bootentry_is_bad(const BootEntry *e) {
        return e->tries_left == 0;
}

unsigned bootentries_next_gen(const BootEntry *e, size_t n) {
        unsigned max = 0;

        for (size_t i = 0; i < n; i++)
                max = MAX(max, e[i].gen);
        return max + 1;
}

static bool version_char(char c) {
        return ascii_digit(c) || ascii_alpha(c) || c == '~' || c == '-' || c == '^' || c == '.';
}

/* The UAPI version format rules: a string is a run of numeric and
 * alphabetic segments, each optionally prefixed by '~' (older than
 * anything, even the end), '-' (version-release separator), '^' (patch
 * level) or '.' (point release); other characters only separate segments.
 * Numeric segments compare by value and are newer than alphabetic ones; of
 * two strings that agree up to where one ends, the longer is newer. */
int bootentry_verscmp(const char *a, const char *b) {
        static const char prefixes[] = { '-', '^', '.' };

        a = strempty(a);
        b = strempty(b);
        for (;;) {
                const char *ea, *eb;

                while (*a && !version_char(*a))
                        a++;
                while (*b && !version_char(*b))
                        b++;

                if (*a == '~' || *b == '~') {
                        if (*a != *b)
                                return *a == '~' ? -1 : 1;
                        a++;
                        b++;
                }
                if (!*a || !*b)
                        return (*a != '\0') - (*b != '\0');

                /* A segment with a prefix is older than one without, and
                 * '-' older than '^' older than '.'. */
                for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
                        if (*a == prefixes[i] || *b == prefixes[i]) {
                                if (*a != *b)
                                        return *a == prefixes[i] ? -1 : 1;
                                a++;
                                b++;
                        }

                if (ascii_digit(*a) || ascii_digit(*b)) {
                        size_t la, lb;
                        int r;

                        for (ea = a; ascii_digit(*ea); ea++)
                                ;
                        for (eb = b; ascii_digit(*eb); eb++)
                                ;
                        if ((ea == a) != (eb == b))
                                return ea == a ? -1 : 1;
                        while (*a == '0')
                                a++;
                        while (*b == '0')
                                b++;
                        la = (size_t) (ea - a);
                        lb = (size_t) (eb - b);
                        if (la != lb)
                                return la < lb ? -1 : 1;
                        r = memcmp(a, b, la);
                        if (r != 0)
                                return r < 0 ? -1 : 1;
                } else {
                        size_t la, lb;

                        for (ea = a; ascii_alpha(*ea); ea++)
                                ;
                        for (eb = b; ascii_alpha(*eb); eb++)
                                ;
                        la = (size_t) (ea - a);
                        lb = (size_t) (eb - b);
                        for (size_t i = 0; i < MIN(la, lb); i++) {
                                char ca = ascii_lower(a[i]), cb = ascii_lower(b[i]);
                                if (ca != cb)
                                        return ca < cb ? -1 : 1;
                        }
                        if (la != lb)
                                return la < lb ? -1 : 1;
                }
                a = ea;
                b = eb;
        }
}

static int cmp_int(int a, int b) {
        return (a > b) - (a < b);
}

int bootentry_compare(const BootEntry *a, const BootEntry *b) {
        int r;

        r = cmp_int(a->tries_left == 0, b->tries_left == 0);
        if (r != 0)
                return r;
        /* systemd-boot 252's id is the lowercased file name, counter and
         * ".conf" included; the counter only matters between names that
         * agree up to it, which our unique generations rule out. */
        r = -bootentry_verscmp(a->file, b->file);
        if (r != 0)
                return r;
        if (a->tries_left >= 0 && b->tries_left >= 0) {
                r = -cmp_int(a->tries_left, b->tries_left);
                if (r != 0)
                        return r;
                r = cmp_int(a->tries_done, b->tries_done);
                if (r != 0)
                        return r;
        }
        /* Not in systemd-boot: a total order, so that the result never
         * depends on readdir order. */
        return strcmp(a->file, b->file);
}

static int compare_qsort(const void *a, const void *b) {
        return bootentry_compare(a, b);
}

void bootentries_sort(BootEntry *e, size_t n) {
        if (n > 1)
                qsort(e, n, sizeof(*e), compare_qsort);
}

/* Reads "linux" and the slot from "options" the way systemd-boot splits
 * lines: key, blanks, value; '#' starts a comment; "options" may repeat. */
static int parse_content(BootEntry *e, char *content) {
        char *line = content;

        while (line && *line) {
                char *next = strchr(line, '\n'), *key, *value, *end;

                if (next)
                        *next++ = '\0';
                key = line + strspn(line, " \t\r");
                line = next;
                if (*key == '\0' || *key == '#')
                        continue;
                value = key + strcspn(key, " \t");
                if (*value == '\0')
                        continue;
                *value++ = '\0';
                value += strspn(value, " \t");
                end = value + strlen(value);
                while (end > value && strchr(" \t\r", end[-1]))
                        *--end = '\0';

                if (streq(key, "linux")) {
                        free(e->kernel);
                        e->kernel = strdup(value);
                        if (!e->kernel)
                                return -ENOMEM;
                } else if (streq(key, "options")) {
                        /* The last slipway.slot= wins, as on the kernel
                         * command line. */
                        for (char *w = value; *w;) {
                                size_t len = strcspn(w, " \t");
                                const char *v = startswith(w, LOADER_SLOT_KEY);

                                if (v && (size_t) (v - w) <= len) {
                                        size_t vlen = len - (size_t) (v - w);
                                        e->slot = vlen == 1 && (*v == 'a' || *v == 'b') ? *v : 0;
                                }
                                w += len;
                                w += strspn(w, " \t");
                        }
                }
        }
        return 0;
}

/* Loads dir/name into ret. Returns 1 when it is an entry, 0 when it is
 * not one (or vanished meanwhile), or a negative errno. */
static int load_one(const char *dir, const char *name, BootEntry *ret) {
        _cleanup_(bootentry_release) BootEntry e = { .tries_left = -1 };
        _cleanup_free_ char *path = NULL, *content = NULL;
        struct stat st;
        int r;

        r = bootentry_parse_file_name(name, &e);
        if (r == -EINVAL)
                return 0;
        if (r < 0)
                return r;
        path = path_join(dir, name);
        if (!path)
                return -ENOMEM;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (!S_ISREG(st.st_mode))
                return 0;
        r = read_full_file(path, ENTRY_SIZE_MAX, &content, NULL);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_debug_errno(r, "failed to read boot entry '%s': %m", path);
        r = parse_content(&e, content);
        if (r < 0)
                return r;
        *ret = e;
        e = (BootEntry) {};
        return 1;
}

typedef struct EntryList {
        BootEntry *e;
        size_t n;
} EntryList;

static void entry_list_done(EntryList *l) {
        bootentries_free(l->e, l->n);
}

int bootentries_load(const char *esp_dir, BootEntry **ret, size_t *ret_n) {
        _cleanup_(entry_list_done) EntryList l = {};
        _cleanup_free_ char *dir = path_join(esp_dir, LOADER_ENTRIES_DIR);
        _cleanup_closedir_ DIR *d = NULL;
        size_t alloc = 0;

        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret = NULL;
                *ret_n = 0;
                return 0;
        }
        for (;;) {
                BootEntry e = {};
                struct dirent *de;
                int r;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno != 0)
                                return negative_errno();
                        break;
                }
                if (l.n == alloc) {
                        size_t na = alloc ? alloc * 2 : 8;
                        BootEntry *ne = reallocarray(l.e, na, sizeof(*ne));
                        if (!ne)
                                return -ENOMEM;
                        l.e = ne;
                        alloc = na;
                }
                r = load_one(dir, de->d_name, &e);
                if (r < 0)
                        return r;
                if (r > 0)
                        l.e[l.n++] = e;
        }
        bootentries_sort(l.e, l.n);
        if (l.n == 0) {
                free(l.e);
                l.e = NULL;
        }
        *ret = TAKE_PTR(l.e);
        *ret_n = l.n;
        l.n = 0;
        return 0;
}

/* -EEXIST when dir holds an entry for id under a name other than file. */
static int check_id_unused(const char *dir, const char *id, const char *file) {
        _cleanup_closedir_ DIR *d = opendir(dir);
        struct dirent *de;

        if (!d)
                return negative_errno();
        while ((errno = 0, de = readdir(d))) {
                _cleanup_(bootentry_release) BootEntry e = { .tries_left = -1 };
                int r = bootentry_parse_file_name(de->d_name, &e);

                if (r == -EINVAL)
                        continue;
                if (r < 0)
                        return r;
                if (streq(e.id, id) && !streq(e.file, file))
                        return -EEXIST;
        }
        return errno != 0 ? negative_errno() : 0;
}

/* Writes data to a new file dir/file through a temporary file that neither
 * systemd-boot nor bootentries_load() reads. */
static int write_entry_file(const char *dir, const char *file, const char *data) {
        _cleanup_free_ char *tmp = strdup_printf("%s/" TMP_PREFIX "%s.XXXXXX", dir, file);
        _cleanup_free_ char *path = path_join(dir, file);
        _cleanup_close_ int fd = -1;
        int r;

        if (!tmp || !path)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return negative_errno();
        r = loop_write(fd, data, strlen(data));
        /* FAT refuses a mode it cannot store; its mount options decide then. */
        if (r >= 0)
                (void) fchmod(fd, 0644);
        if (r >= 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        return fsync_path(dir);
}

int bootentry_write(const char *esp_dir, unsigned gen, const char *name, const char *version, char slot,
                    const char *cmdline, int tries, char **ret_file) {
        _cleanup_free_ char *id = NULL, *file = NULL, *dir = NULL, *content = NULL;
        int r;

        if (gen == 0)
                return -EINVAL;
        r = loader_entry_body(name, version, slot, cmdline, &content);
        if (r < 0)
                return r;
        id = loader_entry_id(gen, version);
        file = id ? loader_entry_file_name(id, tries < 0 ? -1 : tries, 0) : NULL;
        dir = path_join(esp_dir, LOADER_ENTRIES_DIR);
        if (!file || !dir)
                return -ENOMEM;

        r = mkdir_p(dir, 0755);
        if (r < 0)
                return r;
        r = check_id_unused(dir, id, file);
        if (r < 0)
                return r;
        r = write_entry_file(dir, file, content);
        if (r < 0)
                return r;
        if (ret_file)
                *ret_file = TAKE_PTR(file);
        return 0;
}

int bootentry_rename(const char *esp_dir, const BootEntry *e, int tries_left, int tries_done) {
        _cleanup_free_ char *name = loader_entry_file_name(e->id, tries_left, tries_done);
        _cleanup_free_ char *dir = path_join(esp_dir, LOADER_ENTRIES_DIR), *from = NULL, *to = NULL;

        if (!name || !dir)
                return -ENOMEM;
        if (streq(name, e->file))
                return 0;
        from = path_join(dir, e->file);
        to = path_join(dir, name);
        if (!from || !to)
                return -ENOMEM;
        if (rename(from, to) < 0)
                return negative_errno();
        return fsync_path(dir);
}

int bootentry_bless(const char *esp_dir, const BootEntry *e) {
        if (e->tries_left < 0)
                return 0;
        return bootentry_rename(esp_dir, e, -1, 0);
}

int bootentry_mark_bad(const char *esp_dir, const BootEntry *e) {
        return bootentry_rename(esp_dir, e, 0, e->tries_done);
}

int bootentry_remove(const char *esp_dir, const BootEntry *e) {
        _cleanup_free_ char *dir = path_join(esp_dir, LOADER_ENTRIES_DIR), *path = NULL;

        if (!dir)
                return -ENOMEM;
        path = path_join(dir, e->file);
        if (!path)
                return -ENOMEM;
        if (unlink(path) < 0)
                return negative_errno();
        return fsync_path(dir);
}

int bootentries_remove_stale(const char *esp_dir) {
        _cleanup_free_ char *dir = path_join(esp_dir, LOADER_ENTRIES_DIR);
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        int n = 0, r;

        if (!dir)
                return -ENOMEM;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((errno = 0, de = readdir(d))) {
                if (!startswith(de->d_name, TMP_PREFIX))
                        continue;
                if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
                        if (errno == ENOENT)
                                continue;
                        return negative_errno();
                }
                n++;
        }
        if (errno != 0)
                return negative_errno();
        if (n > 0) {
                r = fsync_path(dir);
                if (r < 0)
                        return r;
        }
        return n;
}
