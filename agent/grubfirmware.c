/* The GRUB emulator (grubfirmware.h): a small interpreter of the script
 * language subset that common/grubcfg.c writes. */
#include <ctype.h>
#include <fcntl.h>
#include <string.h>

#include "fileio.h"
#include "grubenv.h"
#include "grubfirmware.h"
#include "log.h"
#include "util.h"

#define MAX_ENTRIES 8

typedef struct Interp {
        const char *esp;
        char **lines;
        size_t n;
        GrubEnv vars;
        char *ids[MAX_ENTRIES];
        size_t body[MAX_ENTRIES][2]; /* first line, line of the closing brace */
        size_t n_entries;
} Interp;

/* The first bare word of a line, for finding block ends. */
static bool first_word_is(const char *line, const char *w) {
        size_t k = strlen(w);

        line += strspn(line, " \t");
        return strncmp(line, w, k) == 0 && (!line[k] || strchr(" \t;", line[k]));
}

static int append_var(const Interp *p, const char **s, char **buf, size_t *len) {
        const char *v, *q = *s + 1;
        char name[64];
        size_t k = 0;
        bool brace = *q == '{';

        if (brace)
                q++;
        while ((isalnum((unsigned char) *q) || *q == '_') && k < sizeof name - 1)
                name[k++] = *q++;
        name[k] = 0;
        if (brace && *q++ != '}')
                return -EBADMSG;
        v = grubenv_get(&p->vars, name);
        if (v) {
                size_t vl = strlen(v);
                char *nb = realloc(*buf, *len + vl + 1);
                if (!nb)
                        return -ENOMEM;
                memcpy(nb + *len, v, vl + 1);
                *buf = nb;
                *len += vl;
        }
        *s = q;
        return 0;
}

static int append_char(char **buf, size_t *len, char c) {
        char *nb = realloc(*buf, *len + 2);

        if (!nb)
                return -ENOMEM;
        nb[(*len)++] = c;
        nb[*len] = 0;
        *buf = nb;
        return 0;
}

/* Splits line into words, expanding variables as GRUB does (in double
 * quotes and bare words, not in single quotes); ';' is a word of its own. */
static int split(const Interp *p, const char *s, char ***ret) {
        _cleanup_(strv_freep) char **words = NULL;
        int r = 0;

        for (;;) {
                _cleanup_free_ char *w = NULL;
                size_t len = 0;
                bool quoted = false;

                s += strspn(s, " \t");
                if (!*s || *s == '#')
                        break;
                if (*s == ';') {
                        s++;
                        r = strv_extend(&words, ";");
                        if (r < 0)
                                return r;
                        continue;
                }
                while (*s && !strchr(" \t;", *s) && r >= 0) {
                        if (*s == '"') {
                                quoted = true;
                                for (s++; *s && *s != '"' && r >= 0;) {
                                        if (*s == '$')
                                                r = append_var(p, &s, &w, &len);
                                        else {
                                                if (*s == '\\' && s[1])
                                                        s++;
                                                r = append_char(&w, &len, *s++);
                                        }
                                }
                                if (*s != '"')
                                        return -EBADMSG;
                                s++;
                        } else if (*s == '\'') {
                                const char *e = strchr(s + 1, '\'');
                                quoted = true;
                                if (!e)
                                        return -EBADMSG;
                                for (s++; s < e && r >= 0; s++)
                                        r = append_char(&w, &len, *s);
                                s = e + 1;
                        } else if (*s == '$')
                                r = append_var(p, &s, &w, &len);
                        else
                                r = append_char(&w, &len, *s++);
                }
                if (r < 0)
                        return r;
                if (!w && quoted && !(w = strdup("")))
                        return -ENOMEM;
                if (w) {
                        r = strv_consume(&words, TAKE_PTR(w));
                        if (r < 0)
                                return r;
                }
        }
        if (!words && !(words = calloc(1, sizeof(char *))))
                return -ENOMEM;
        *ret = TAKE_PTR(words);
        return 0;
}

/* "(esp)/x" to ESP/x; caller frees. NULL for another device. */
static char *host_path(const Interp *p, const char *grub_path) {
        const char *rest = startswith(grub_path, "(esp)");

        return rest && rest[0] == '/' ? path_join(p->esp, rest) : NULL;
}

/* [ A = B ], [ A != B ], [ -z A ], [ -n A ], the words up to "then". */
static int condition(char **w, size_t n) {
        while (n > 0 && (streq(w[n - 1], "then") || streq(w[n - 1], ";")))
                n--;
        if (n < 3 || !streq(w[0], "[") || !streq(w[n - 1], "]"))
                return -EBADMSG;
        if (n == 4 && streq(w[1], "-z"))
                return !*w[2];
        if (n == 4 && streq(w[1], "-n"))
                return !!*w[2];
        if (n == 5 && streq(w[2], "="))
                return streq(w[1], w[3]);
        if (n == 5 && streq(w[2], "!="))
                return !streq(w[1], w[3]);
        return -EBADMSG;
}

static int env_command(Interp *p, char **w, size_t n, bool save) {
        _cleanup_free_ char *path = NULL;
        GrubEnv env = {};
        int r;

        if (n < 3 || (!streq(w[1], "--file") && !streq(w[1], "-f")))
                return -EBADMSG;
        path = host_path(p, w[2]);
        if (!path)
                return 0; /* no such device: GRUB reports it and goes on */
        r = grubenv_load(path, &env);
        if (r < 0) {
                log_debug("grub: %s_env: cannot read '%s': %d", save ? "save" : "load", path, r);
                return r == -ENOMEM ? r : 0;
        }
        for (size_t i = 3; i < n && r >= 0; i++) {
                const char *v = grubenv_get(save ? &p->vars : &env, w[i]);
                if (save)
                        r = grubenv_set(&env, w[i], v);
                else if (v)
                        r = grubenv_set(&p->vars, w[i], v);
        }
        if (r >= 0 && save) {
                /* GRUB writes the whole block over the file's own sectors. */
                char block[GRUBENV_SIZE];
                _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

                r = grubenv_format(&env, block, NULL);
                if (r >= 0 && (fd < 0 || pwrite(fd, block, sizeof block, 0) != (ssize_t) sizeof block))
                        r = -EIO;
        }
        grubenv_release(&env);
        return r == -EIO ? 0 : r;
}

static int run(Interp *p, size_t from, size_t to);

/* An if at line i: runs the branch whose condition holds; *ret_next gets
 * the line after its fi. */
static int run_if(Interp *p, size_t i, size_t to, size_t *ret_next) {
        size_t marks[32], n_marks = 0, depth = 0, fi = 0;
        int r;

        marks[n_marks++] = i;
        for (size_t j = i + 1; j < to; j++) {
                if (first_word_is(p->lines[j], "if"))
                        depth++;
                else if (first_word_is(p->lines[j], "fi")) {
                        if (depth == 0) {
                                fi = j;
                                break;
                        }
                        depth--;
                } else if (depth == 0 && (first_word_is(p->lines[j], "elif") || first_word_is(p->lines[j], "else"))) {
                        if (n_marks == ELEMENTSOF(marks))
                                return -EBADMSG;
                        marks[n_marks++] = j;
                }
        }
        if (!fi)
                return -EBADMSG;
        *ret_next = fi + 1;
        for (size_t m = 0; m < n_marks; m++) {
                size_t end = m + 1 < n_marks ? marks[m + 1] : fi;
                _cleanup_(strv_freep) char **w = NULL;

                if (!first_word_is(p->lines[marks[m]], "else")) {
                        r = split(p, p->lines[marks[m]], &w);
                        if (r < 0)
                                return r;
                        r = condition(w + 1, strv_length(w) - 1);
                        if (r < 0)
                                return r;
                        if (r == 0)
                                continue;
                }
                return run(p, marks[m] + 1, end);
        }
        return 0;
}

static int run(Interp *p, size_t from, size_t to) {
        int r;

        for (size_t i = from; i < to;) {
                _cleanup_(strv_freep) char **w = NULL;
                size_t n;

                if (first_word_is(p->lines[i], "if")) {
                        r = run_if(p, i, to, &i);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = split(p, p->lines[i], &w);
                if (r < 0)
                        return r;
                n = strv_length(w);
                if (n == 0) {
                        i++;
                        continue;
                }
                if (streq(w[0], "menuentry")) {
                        size_t end = i + 1;
                        while (end < to && !first_word_is(p->lines[end], "}"))
                                end++;
                        if (end == to || n < 4 || !streq(w[n - 1], "{") || p->n_entries == MAX_ENTRIES)
                                return -EBADMSG;
                        for (size_t k = 2; k + 1 < n; k++)
                                if (streq(w[k], "--id") && !(p->ids[p->n_entries] = strdup(w[k + 1])))
                                        return -ENOMEM;
                        p->body[p->n_entries][0] = i + 1;
                        p->body[p->n_entries][1] = end;
                        p->n_entries++;
                        i = end + 1;
                        continue;
                }
                if (streq(w[0], "set") && n == 2) {
                        char *eq = strchr(w[1], '=');
                        if (!eq)
                                return -EBADMSG;
                        *eq = 0;
                        r = grubenv_set(&p->vars, w[1], eq + 1);
                } else if (streq(w[0], "search")) {
                        const char *var = NULL, *file = NULL;
                        bool by_file = false;
                        for (size_t k = 1; k < n; k++) {
                                if (startswith(w[k], "--set="))
                                        var = w[k] + 6;
                                else if (streq(w[k], "--file"))
                                        by_file = true;
                                else if (w[k][0] != '-')
                                        file = w[k];
                        }
                        _cleanup_free_ char *hp = by_file && file ? path_join(p->esp, file) : NULL;
                        r = var && (!by_file || (hp && path_exists(hp))) ? grubenv_set(&p->vars, var, "esp") : 0;
                } else if (streq(w[0], "load_env") || streq(w[0], "save_env"))
                        r = env_command(p, w, n, streq(w[0], "save_env"));
                else if (streq(w[0], "insmod"))
                        r = 0;
                else
                        return log_debug_errno(-EBADMSG, "grub: unknown command '%s'", w[0]);
                if (r < 0)
                        return r;
                i++;
        }
        return 0;
}

/* Boots entry e: its linux and initrd must be there. */
static int boot_entry(Interp *p, size_t e, char *ret_slot) {
        char slot = 0;
        int r;

        for (size_t i = p->body[e][0]; i < p->body[e][1]; i++) {
                _cleanup_(strv_freep) char **w = NULL;
                _cleanup_free_ char *path = NULL;
                size_t n;

                r = split(p, p->lines[i], &w);
                if (r < 0)
                        return r;
                n = strv_length(w);
                if (n == 0)
                        continue;
                if (!streq(w[0], "linux") && !streq(w[0], "initrd"))
                        return -EBADMSG;
                path = n > 1 ? host_path(p, w[1]) : NULL;
                if (!path || !path_exists(path))
                        return log_debug_errno(-ENOENT, "grub: file not found: '%s'", n > 1 ? w[1] : "");
                for (size_t k = 2; k < n; k++) {
                        const char *v = startswith(w[k], "slipway.slot=");
                        if (v && (*v == 'a' || *v == 'b') && !v[1])
                                slot = *v;
                }
        }
        if (!slot)
                return -EBADMSG;
        *ret_slot = slot;
        return 0;
}

int grub_firmware_boot(const char *esp_dir, const char *cfg_path, char *ret_slot, char **ret_id) {
        _cleanup_free_ char *path = path_join(esp_dir, cfg_path), *text = NULL;
        Interp p = { .esp = esp_dir };
        const char *def;
        char slot = 0;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_full_file(path, 1 << 20, &text, NULL);
        if (r < 0)
                return r;
        for (char *s = text, *nl; *s; s = nl + 1) {
                nl = strchrnul(s, '\n');
                bool last = !*nl;
                *nl = 0;
                r = strv_extend(&p.lines, s);
                if (r < 0)
                        goto out;
                p.n++;
                if (last)
                        break;
        }
        r = run(&p, 0, p.n);
        if (r < 0)
                goto out;
        def = grubenv_get(&p.vars, "default");
        r = -ENOENT;
        for (size_t e = 0; e < p.n_entries; e++)
                if (def && streq_ptr(p.ids[e], def)) {
                        r = boot_entry(&p, e, &slot);
                        if (r >= 0 && ret_id && !(*ret_id = strdup(def)))
                                r = -ENOMEM;
                        if (r >= 0)
                                *ret_slot = slot;
                        break;
                }
out:
        strv_free(p.lines);
        grubenv_release(&p.vars);
        for (size_t e = 0; e < p.n_entries; e++)
                free(p.ids[e]);
        return r;
}
