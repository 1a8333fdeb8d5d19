/* slipctl files list|show|add|set|delete|history|diff|render: the host
 * file sets (docs/host-files.md). */
#include <inttypes.h>
#include <time.h>

#include "ctl.h"
#include "fileio.h"
#include "log.h"
#include "table.h"
#include "util.h"

/* The largest local file add and set read: the server's cap on a file. */
#define LOCAL_FILE_MAX (256 * 1024)
/* Lines of a file diff shows line by line; longer ones are summed up. */
#define DIFF_LINES_MAX 4000

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

static int64_t num(json_t *o, const char *key) {
        return (int64_t) json_integer_value(json_object_get(o, key));
}

/* Prints reply as JSON (--json) and drops it; 1 when it did. */
static int json_out(Ctl *ctl, json_t *reply, int *ret) {
        if (!ctl->json)
                return 0;
        *ret = ctl_print_json(reply);
        json_decref(reply);
        return 1;
}

int ctl_files_list(Ctl *ctl, char **args _unused_) {
        static const char *const headers[] = { "NAME", "VERSION", "LIVE",    "DIGEST", "SELECTOR",
                                               "FILES", "ROLLOUT", "CHANGED", "BY" };
        _cleanup_table_free_ Table *t = NULL;
        json_t *reply = NULL, *s;
        int64_t now = (int64_t) time(NULL);
        size_t i, held = 0;
        int r;

        r = ctl_call(ctl, "GET", "/v1/files", NULL, &reply, "cannot list the file sets");
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        t = table_new(ELEMENTSOF(headers), headers);
        if (!t) {
                json_decref(reply);
                return log_oom();
        }
        json_array_foreach(json_object_get(reply, "file_sets"), i, s) {
                _cleanup_free_ char *sel = json_inline(json_object_get(s, "selector"));
                char version[32], live[48], rollout[48], digest[13], files[24], changed[32];

                /* A deletion held back shows the live version's files */
                snprintf(version, sizeof version, "%lld%s", (long long) num(s, "version"),
                         json_is_true(json_object_get(s, "deleted")) ? " deleted" : "");
                /* The version hosts get without a pin; a newer one is held
                 * back until a rollout moves it. */
                if (!json_is_integer(json_object_get(s, "live")))
                        snprintf(live, sizeof live, "none");
                else
                        snprintf(live, sizeof live, "%lld", (long long) num(s, "live"));
                if (num(s, "pinned") > 0)
                        snprintf(live + strlen(live), sizeof live - strlen(live), " (%lld pinned)",
                                 (long long) num(s, "pinned"));
                held += num(s, "live") != num(s, "version");
                if (json_is_integer(json_object_get(s, "rollout")))
                        snprintf(rollout, sizeof rollout, "%lld", (long long) num(s, "rollout"));
                else
                        snprintf(rollout, sizeof rollout, "-");
                snprintf(digest, sizeof digest, "%.12s", strempty(str(s, "digest")));
                snprintf(files, sizeof files, "%zu", json_array_size(json_object_get(s, "files")));
                format_ago(changed, sizeof changed, num(s, "created"), now);
                r = table_add_row(t, (const char *const[]) { str(s, "name"), version, live, digest,
                                                              sel && *sel ? sel : "(all hosts)", files, rollout,
                                                              changed, str(s, "actor") });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        r = table_print_listing(t, r, "no file sets");
        if (r >= 0)
                printf("\nA change is live on every host at once; one made with --hold (LIVE older than VERSION)\n"
                       "reaches hosts only through a rollout: slipctl rollout start --files NAME%s.\n",
                       held ? "" : " (none is held now)");
        return r;
}

/* GET /v1/files/NAME[?version=V]; version NULL: the newest. */
static int get_version(Ctl *ctl, const char *name, const char *version, json_t **ret) {
        _cleanup_free_ char *path = NULL, *what = strdup_printf("cannot read file set '%s'", name);
        uint64_t v;

        if (version && (safe_atou64(version, &v) < 0 || v == 0))
                return log_error_errno(-EINVAL, "'%s' is not a version number (files history %s)", version, name);
        if (version) {
                _cleanup_free_ char *suffix = strdup_printf("?version=%" PRIu64, v);
                path = suffix ? ctl_path("/v1/files/", name, suffix) : NULL;
        } else
                path = ctl_path("/v1/files/", name, NULL);
        if (!path || !what)
                return log_oom();
        return ctl_call(ctl, "GET", path, NULL, ret, what);
}

/* Prints a file: its path, mode, owner, set, then its content indented. */
static void file_print(json_t *f) {
        _cleanup_free_ char *path = text_safe(str(f, "path"));
        const char *content = strempty(str(f, "content"));

        if (str(f, "set"))
                printf("--- %s  mode %s  owner %s  from %s version %lld\n", path ? path : "?", str(f, "mode"),
                       str(f, "owner"), str(f, "set"), (long long) num(f, "version"));
        else
                printf("--- %s  mode %s  owner %s\n", path ? path : "?", str(f, "mode"), str(f, "owner"));
        while (*content) {
                const char *e = strchrnul(content, '\n');
                _cleanup_free_ char *line = strndup(content, (size_t) (e - content));
                _cleanup_free_ char *safe = line ? text_safe(line) : NULL;
                printf("    %s\n", safe ? safe : "?");
                content = *e ? e + 1 : e;
        }
}

int ctl_files_show(Ctl *ctl, char **args) {
        _cleanup_free_ char *sel = NULL;
        json_t *reply = NULL, *f;
        char when[40];
        size_t i;
        int r;

        r = get_version(ctl, args[0], args[1], &reply);
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        sel = json_inline(json_object_get(reply, "selector"));
        field_print("name", "%s", str(reply, "name"));
        field_print("version", "%lld", (long long) num(reply, "version"));
        field_print("digest", "%s", str(reply, "digest"));
        field_print("selector", "%s", sel && *sel ? sel : "(all hosts)");
        field_print("changed", "%s by %s", format_time(when, sizeof when, num(reply, "created")), str(reply, "actor"));
        json_array_foreach(json_object_get(reply, "files"), i, f)
                file_print(f);
        json_decref(reply);
        return 0;
}

/* A file argument "PATH[:MODE[:UID:GID]]=LOCAL" as the API's file object:
 * LOCAL's content goes as the template. */
static int file_arg(const char *arg, json_t **ret) {
        _cleanup_free_ char *spec = NULL, *data = NULL;
        _cleanup_strv_free_ char **parts = NULL;
        const char *eq = strchr(arg, '=');
        size_t size = 0;
        json_t *f;
        int r;

        if (!eq || eq == arg || !eq[1])
                return log_error_errno(-EINVAL, "'%s': expected PATH[:MODE[:UID:GID]]=LOCAL-FILE", arg);
        spec = strndup(arg, (size_t) (eq - arg));
        if (!spec)
                return log_oom();
        r = read_full_file(eq + 1, LOCAL_FILE_MAX, &data, &size);
        if (r == -EFBIG)
                return log_error_errno(r, "'%s': over %d bytes", eq + 1, LOCAL_FILE_MAX);
        if (r < 0)
                return log_error_errno(r, "cannot read '%s': %m", eq + 1);
        if (strlen(data) != size)
                return log_error_errno(-EINVAL, "'%s' holds a NUL byte: host files are text", eq + 1);
        char *colon = strchr(spec, ':'), *owner = NULL;
        if (colon) {
                *colon = 0;
                owner = strchr(colon + 1, ':');
                if (owner)
                        *owner++ = 0;
        }
        f = json_pack("{s:s, s:s}", "path", spec, "content", data);
        if (!f)
                return log_error_errno(-EINVAL, "'%s' is not UTF-8 text", eq + 1);
        if ((colon && json_object_set_new(f, "mode", json_string(colon + 1)) < 0) ||
            (owner && json_object_set_new(f, "owner", json_string(owner)) < 0)) {
                json_decref(f);
                return log_oom();
        }
        *ret = f;
        return 0;
}

/* files add NAME FILE... and files set NAME [FILE...]. */
static int files_write(Ctl *ctl, char **args, bool create) {
        _cleanup_free_ char *what = strdup_printf("cannot %s file set '%s'", create ? "add" : "change", args[0]);
        _cleanup_free_ char *path = NULL, *name = text_safe(args[0]);
        json_t *body = NULL, *files = json_array(), *reply = NULL, *current = NULL;
        int r = 0;

        if (!what || !files || !name) {
                json_decref(files);
                return log_oom();
        }
        for (size_t i = 1; args[i] && r >= 0; i++) {
                json_t *f = NULL;
                r = file_arg(args[i], &f);
                if (r >= 0 && json_array_append_new(files, f) < 0)
                        r = log_oom();
        }
        if (r < 0) {
                json_decref(files);
                return r;
        }
        if (!create) {
                /* What is not given stays as it is: the selector, and the
                 * files when none are given. */
                r = get_version(ctl, args[0], NULL, &current);
                if (r < 0) {
                        json_decref(files);
                        return r;
                }
                if (json_array_size(files) == 0) {
                        json_decref(files);
                        files = json_incref(json_object_get(current, "files"));
                }
        }
        body = json_pack("{s:o, s:O?, s:b}", "files", files, "selector",
                         ctl->opt.selector ? ctl->opt.selector : json_object_get(current, "selector"), "hold",
                         ctl->opt.hold);
        json_decref(current);
        if (!body)
                return log_oom();
        if (create && json_object_set_new(body, "name", json_string(args[0])) < 0) {
                json_decref(body);
                return log_oom();
        }
        path = create ? strdup("/v1/files") : ctl_path("/v1/files/", args[0], NULL);
        if (!path) {
                json_decref(body);
                return log_oom();
        }
        r = ctl_call(ctl, create ? "POST" : "PUT", path, body, &reply, what);
        json_decref(body);
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        printf("file set %s: version %lld, digest %.12s, %zu files\n", name, (long long) num(reply, "version"),
               strempty(str(reply, "digest")), json_array_size(json_object_get(reply, "files")));
        if (ctl->opt.hold)
                printf("held back: hosts keep the live version until a rollout moves it (slipctl rollout start "
                       "--files %s@%lld)\n",
                       name, (long long) num(reply, "version"));
        else
                printf("live: every host the set selects gets it now\n");
        json_decref(reply);
        return 0;
}

int ctl_files_add(Ctl *ctl, char **args) {
        return files_write(ctl, args, true);
}

int ctl_files_set(Ctl *ctl, char **args) {
        return files_write(ctl, args, false);
}

int ctl_files_delete(Ctl *ctl, char **args) {
        _cleanup_free_ char *base = ctl_path("/v1/files/", args[0], NULL);
        _cleanup_free_ char *path = base && ctl->opt.hold ? strdup_printf("%s?hold=1", base) : strdup(strempty(base));
        _cleanup_free_ char *what = strdup_printf("cannot delete file set '%s'", args[0]);
        _cleanup_free_ char *name = text_safe(args[0]);
        json_t *reply = NULL;
        int r;

        if (!path || !what || !name)
                return log_oom();
        r = ctl_call(ctl, "DELETE", path, NULL, &reply, what);
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        printf("deleted file set %s (version %lld)%s\n", name, (long long) num(reply, "version"),
               ctl->opt.hold ? ": held back until a rollout moves it" : "");
        json_decref(reply);
        return 0;
}

int ctl_files_history(Ctl *ctl, char **args) {
        static const char *const headers[] = { "VERSION", "DIGEST", "CHANGE", "WHEN", "BY" };
        _cleanup_free_ char *path = ctl_path("/v1/files/", args[0], "/history");
        _cleanup_free_ char *what = strdup_printf("cannot read the history of file set '%s'", args[0]);
        _cleanup_table_free_ Table *t = table_new(ELEMENTSOF(headers), headers);
        json_t *reply = NULL, *v;
        size_t i;
        int r;

        if (!path || !what || !t)
                return log_oom();
        r = ctl_call(ctl, "GET", path, NULL, &reply, what);
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        json_array_foreach(json_object_get(reply, "versions"), i, v) {
                char version[24], digest[13], when[40];

                snprintf(version, sizeof version, "%lld", (long long) num(v, "version"));
                snprintf(digest, sizeof digest, "%.12s", strempty(str(v, "digest")));
                format_time(when, sizeof when, num(v, "created"));
                r = table_add_row(t, (const char *const[]) {
                                             version, digest,
                                             json_is_true(json_object_get(v, "deleted")) ? "deleted"
                                             : i == 0                                    ? "added"
                                                                                         : "changed",
                                             when, str(v, "actor") });
                if (r < 0)
                        break;
        }
        json_decref(reply);
        if (r < 0)
                return log_oom();
        table_print(t, stdout, true, NULL);
        return 0;
}

/* Splits text into lines (without their newlines); NULL when out of
 * memory. */
static char **lines_split(const char *text) {
        char **l = NULL;

        for (const char *p = text; *p;) {
                const char *e = strchrnul(p, '\n');
                char *line = strndup(p, (size_t) (e - p));
                if (!line || strv_consume(&l, line) < 0) {
                        strv_free(l);
                        return NULL;
                }
                p = *e ? e + 1 : e;
        }
        return l ? l : calloc(1, sizeof(char *));
}

static void line_print(char sign, const char *line) {
        _cleanup_free_ char *safe = text_safe(line);
        printf("%c%s\n", sign, safe ? safe : "?");
}

/* Prints the lines that differ between a and b: a longest common
 * subsequence, then "-" for a's lines not in it and "+" for b's, a
 * removal before the addition that takes its place. */
static int lines_diff(const char *a, const char *b) {
        _cleanup_strv_free_ char **la = lines_split(a), **lb = lines_split(b);
        _cleanup_free_ uint32_t *lcs = NULL;
        size_t na, nb, i = 0, j = 0;

        if (!la || !lb)
                return -ENOMEM;
        na = strv_length(la);
        nb = strv_length(lb);
        if (na > DIFF_LINES_MAX || nb > DIFF_LINES_MAX) {
                printf("  (%zu lines before, %zu after: too long to compare here)\n", na, nb);
                return 0;
        }
        lcs = calloc((na + 1) * (nb + 1), sizeof *lcs);
        if (!lcs)
                return -ENOMEM;
#define L(x, y) lcs[(x) * (nb + 1) + (y)]
        for (size_t x = na; x-- > 0;)
                for (size_t y = nb; y-- > 0;)
                        L(x, y) = streq(la[x], lb[y]) ? L(x + 1, y + 1) + 1 : MAX(L(x + 1, y), L(x, y + 1));
        while (i < na || j < nb) {
                if (i < na && j < nb && streq(la[i], lb[j])) {
                        i++;
                        j++;
                } else if (i < na && (j == nb || L(i + 1, j) >= L(i, j + 1)))
                        line_print('-', la[i++]);
                else
                        line_print('+', lb[j++]);
        }
#undef L
        return 0;
}

static json_t *file_find(json_t *set, const char *path) {
        json_t *f;
        size_t i;

        json_array_foreach(json_object_get(set, "files"), i, f)
                if (streq_ptr(str(f, "path"), path))
                        return f;
        return NULL;
}

/* The differences between two versions of a set (a may be NULL: empty). */
static int set_diff(json_t *a, json_t *b) {
        _cleanup_free_ char *sa = json_inline(json_object_get(a, "selector"));
        _cleanup_free_ char *sb = json_inline(json_object_get(b, "selector"));
        json_t *f;
        size_t i;
        int r;

        if (!streq_ptr(sa, sb))
                printf("selector: %s -> %s\n", sa && *sa ? sa : "(all hosts)", sb && *sb ? sb : "(all hosts)");
        json_array_foreach(json_object_get(a, "files"), i, f)
                if (!file_find(b, str(f, "path"))) {
                        _cleanup_free_ char *p = text_safe(str(f, "path"));
                        printf("removed %s\n", p ? p : "?");
                }
        json_array_foreach(json_object_get(b, "files"), i, f) {
                _cleanup_free_ char *p = text_safe(str(f, "path"));
                json_t *old = file_find(a, str(f, "path"));

                if (!old) {
                        printf("added %s (mode %s, owner %s)\n", p ? p : "?", str(f, "mode"), str(f, "owner"));
                        r = lines_diff("", strempty(str(f, "content")));
                } else if (!streq_ptr(str(old, "content"), str(f, "content")) ||
                           !streq_ptr(str(old, "mode"), str(f, "mode")) ||
                           !streq_ptr(str(old, "owner"), str(f, "owner"))) {
                        printf("changed %s", p ? p : "?");
                        if (!streq_ptr(str(old, "mode"), str(f, "mode")))
                                printf(" (mode %s -> %s)", str(old, "mode"), str(f, "mode"));
                        if (!streq_ptr(str(old, "owner"), str(f, "owner")))
                                printf(" (owner %s -> %s)", str(old, "owner"), str(f, "owner"));
                        printf("\n");
                        r = lines_diff(strempty(str(old, "content")), strempty(str(f, "content")));
                } else
                        r = 0;
                if (r < 0)
                        return log_oom();
        }
        return 0;
}

int ctl_files_diff(Ctl *ctl, char **args) {
        json_t *a = NULL, *b = NULL;
        char prev[24];
        int r;

        /* No version: the newest against the one before; one: that one
         * against the newest; two: the first against the second. */
        r = get_version(ctl, args[0], args[1] ? args[2] : NULL, &b);
        if (r < 0)
                return r;
        if (!args[1]) {
                if (num(b, "version") > 1) {
                        snprintf(prev, sizeof prev, "%lld", (long long) num(b, "version") - 1);
                        r = get_version(ctl, args[0], prev, &a);
                }
        } else
                r = get_version(ctl, args[0], args[1], &a);
        if (r >= 0 && ctl->json) {
                json_t *j = json_pack("{s:O?, s:O}", "from", a, "to", b);
                r = j ? ctl_print_json(j) : log_oom();
                json_decref(j);
        } else if (r >= 0) {
                printf("file set %s: version %lld -> %lld\n", str(b, "name"), a ? (long long) num(a, "version") : 0LL,
                       (long long) num(b, "version"));
                r = set_diff(a, b);
        }
        json_decref(a);
        json_decref(b);
        return r;
}

int ctl_files_render(Ctl *ctl, char **args) {
        _cleanup_free_ char *path = ctl_path("/v1/hosts/", args[0], "/files");
        _cleanup_free_ char *what = strdup_printf("cannot render the files of host '%s'", args[0]);
        json_t *reply = NULL, *f;
        size_t i;
        int r;

        if (!path || !what)
                return log_oom();
        r = ctl_call(ctl, "GET", path, NULL, &reply, what);
        if (r < 0 || json_out(ctl, reply, &r))
                return r;
        field_print("host", "%s", str(reply, "host"));
        field_print("digest", "%s", str(reply, "digest"));
        field_print("files", "%zu", json_array_size(json_object_get(reply, "files")));
        json_array_foreach(json_object_get(reply, "files"), i, f)
                file_print(f);
        json_decref(reply);
        return 0;
}
