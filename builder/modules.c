#include <assert.h>
#include <stdio.h>

#include "comps.h"
#include "log.h"
#include "modules.h"
#include "util.h"

/* After ours: glib redefines MIN and MAX, with an #undef first. */
#include <modulemd.h>

/* modules.yaml of a whole distribution is tens of MB. */
#define MODULES_MAX (512U * 1024U * 1024U)

/* An RPM of some stream, and the stream. */
typedef struct Artifact {
        char *nevra; /* NAME-EPOCH:VERSION-RELEASE.ARCH */
        char *stream; /* "NAME:STREAM" */
} Artifact;

typedef struct ActiveStream {
        ModuleChoice choice;
        char *label;     /* "NAME:STREAM" */
        char **artifacts; /* NEVRAs, sorted */
        char **names;     /* package names of its artifacts, sorted */
} ActiveStream;

struct Modules {
        ModulemdModuleIndexMerger *merger;
        ModulemdModuleIndex *index; /* merged, after modules_activate() */
        Artifact *all;              /* every stream's artifacts, sorted by NEVRA */
        size_t n_all;
        ActiveStream *active;
        size_t n_active;
        ModuleChoice *choices; /* copies of active[].choice, for modules_active() */
};

Modules *modules_new(void) {
        Modules *m = calloc(1, sizeof(Modules));

        if (!m)
                return NULL;
        m->merger = modulemd_module_index_merger_new();
        return m;
}

Modules *modules_free(Modules *m) {
        if (!m)
                return NULL;
        if (m->merger)
                g_object_unref(m->merger);
        if (m->index)
                g_object_unref(m->index);
        for (size_t i = 0; i < m->n_all; i++) {
                free(m->all[i].nevra);
                free(m->all[i].stream);
        }
        free(m->all);
        for (size_t i = 0; i < m->n_active; i++) {
                ActiveStream *a = &m->active[i];

                free(a->choice.name);
                free(a->choice.stream);
                free(a->choice.profile);
                free(a->choice.required_by);
                strv_free(a->choice.packages);
                free(a->label);
                strv_free(a->artifacts);
                strv_free(a->names);
        }
        free(m->active);
        free(m->choices);
        free(m);
        return NULL;
}

int modules_add_file(Modules *m, const char *path, const char *repo_id) {
        _cleanup_free_ char *data = NULL;
        g_autoptr(GPtrArray) failures = NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(ModulemdModuleIndex) index = NULL;
        size_t size;
        int r;

        r = read_decompressed(path, MODULES_MAX, &data, &size);
        if (r < 0)
                return log_error_errno(r == -EFBIG ? -EBADMSG : r, "repository '%s': cannot read its modules '%s': %m",
                                       repo_id, path);
        if (strlen(data) != size)
                return log_error_errno(-EBADMSG, "repository '%s': modules '%s' holds a NUL byte", repo_id, path);
        index = modulemd_module_index_new();
        if (!modulemd_module_index_update_from_string(index, data, FALSE, &failures, &error))
                return log_error_errno(-EBADMSG, "repository '%s': cannot parse its modules '%s': %s", repo_id, path,
                                       error ? error->message : "unknown error");
        if (failures && failures->len > 0) {
                ModulemdSubdocumentInfo *f = g_ptr_array_index(failures, 0);
                const GError *fe = modulemd_subdocument_info_get_gerror(f);

                return log_error_errno(-EBADMSG, "repository '%s': modules '%s' has a bad document: %s", repo_id, path,
                                       fe ? fe->message : "unknown error");
        }
        modulemd_module_index_merger_associate_index(m->merger, index, 0);
        return 0;
}

/* "name-[epoch:]version-release.arch" with the epoch made explicit; caller frees. */
static char *nevra_normalize(const char *s) {
        const char *dash1, *dash2 = NULL;

        /* name-version-release.arch: the last two dashes split it. */
        dash1 = strrchr(s, '-');
        if (!dash1)
                return NULL;
        for (const char *p = dash1 - 1; p > s; p--)
                if (*p == '-') {
                        dash2 = p;
                        break;
                }
        if (!dash2)
                return NULL;
        if (memchr(dash2, ':', (size_t) (dash1 - dash2)))
                return strdup(s);
        return strdup_printf("%.*s-0:%s", (int) (dash2 - s), s, dash2 + 1);
}

/* The name part of a normalized NEVRA; caller frees. */
static char *nevra_name(const char *nevra) {
        const char *colon = strchr(nevra, ':'), *dash = NULL;

        if (!colon)
                return NULL;
        for (const char *p = colon; p > nevra; p--)
                if (*p == '-') {
                        dash = p;
                        break;
                }
        return dash ? strndup(nevra, (size_t) (dash - nevra)) : NULL;
}

static int artifact_compare(const void *a, const void *b) {
        return strcmp(((const Artifact *) a)->nevra, ((const Artifact *) b)->nevra);
}

static int str_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool sorted_contains(char **l, const char *s) {
        size_t n = strv_length(l);

        return n > 0 && bsearch(&s, l, n, sizeof(char *), str_compare);
}

/* The newest version of a stream (all its contexts at that version). */
static int stream_newest(ModulemdModule *mod, const char *stream, GPtrArray **ret) {
        GPtrArray *all = modulemd_module_get_all_streams(mod);
        GPtrArray *out = g_ptr_array_new();
        guint64 newest = 0;

        for (guint i = 0; i < all->len; i++) {
                ModulemdModuleStream *s = g_ptr_array_index(all, i);

                if (streq_ptr(modulemd_module_stream_get_stream_name(s), stream) &&
                    modulemd_module_stream_get_version(s) > newest)
                        newest = modulemd_module_stream_get_version(s);
        }
        for (guint i = 0; i < all->len; i++) {
                ModulemdModuleStream *s = g_ptr_array_index(all, i);

                if (streq_ptr(modulemd_module_stream_get_stream_name(s), stream) &&
                    modulemd_module_stream_get_version(s) == newest)
                        g_ptr_array_add(out, s);
        }
        if (out->len == 0) {
                g_ptr_array_unref(out);
                return -ENOENT;
        }
        *ret = out;
        return 0;
}

static int activate_one(Modules *m, const char *name, const char *stream, const char *profile, bool is_default,
                        const char *required_by) {
        ModulemdModule *mod = modulemd_module_index_get_module(m->index, name);
        g_autoptr(GPtrArray) streams = NULL;
        ActiveStream *a;
        bool profile_found = false;
        int r;

        if (!mod)
                return log_error_errno(-ENOENT, "module '%s' is in no repository's modules metadata", name);
        r = stream_newest(mod, stream, &streams);
        if (r < 0)
                return log_error_errno(r, "module '%s' has no stream '%s'", name, stream);
        a = realloc(m->active, sizeof(ActiveStream) * (m->n_active + 1));
        if (!a)
                return log_oom();
        m->active = a;
        a = &m->active[m->n_active++];
        *a = (ActiveStream) {
                .choice = { .name = strdup(name), .stream = strdup(stream), .profile = profile ? strdup(profile) : NULL,
                            .is_default = is_default, .required_by = required_by ? strdup(required_by) : NULL },
                .label = strdup_printf("%s:%s", name, stream),
                .artifacts = calloc(1, sizeof(char *)),
                .names = calloc(1, sizeof(char *)),
        };
        if (!a->choice.name || !a->choice.stream || (profile && !a->choice.profile) ||
            (required_by && !a->choice.required_by) || !a->label || !a->artifacts || !a->names)
                return log_oom();
        if (profile) {
                a->choice.packages = calloc(1, sizeof(char *));
                if (!a->choice.packages)
                        return log_oom();
        }
        for (guint i = 0; i < streams->len; i++) {
                ModulemdModuleStream *s = g_ptr_array_index(streams, i);
                g_auto(GStrv) rpms = NULL;

                if (modulemd_module_stream_get_mdversion(s) < MD_MODULESTREAM_VERSION_TWO)
                        continue;
                rpms = modulemd_module_stream_v2_get_rpm_artifacts_as_strv(MODULEMD_MODULE_STREAM_V2(s));
                for (char **p = rpms; p && *p; p++) {
                        _cleanup_free_ char *nevra = nevra_normalize(*p), *pname = NULL;

                        if (!nevra)
                                continue;
                        pname = nevra_name(nevra);
                        if (!pname || strv_extend(&a->artifacts, nevra) < 0 ||
                            (!strv_contains(a->names, pname) && strv_extend(&a->names, pname) < 0))
                                return log_oom();
                }
                if (profile) {
                        ModulemdProfile *pr =
                                modulemd_module_stream_v2_get_profile(MODULEMD_MODULE_STREAM_V2(s), profile);
                        g_auto(GStrv) pkgs = NULL;

                        if (!pr)
                                continue;
                        profile_found = true;
                        pkgs = modulemd_profile_get_rpms_as_strv(pr);
                        for (char **p = pkgs; p && *p; p++)
                                if (!strv_contains(a->choice.packages, *p) &&
                                    strv_extend(&a->choice.packages, *p) < 0)
                                        return log_oom();
                }
        }
        if (profile && !profile_found)
                return log_error_errno(-ENOENT, "module stream '%s' has no profile '%s'", a->label, profile);
        strv_sort_unique(a->artifacts);
        strv_sort_unique(a->names);
        if (a->choice.packages)
                strv_sort_unique(a->choice.packages);
        return 0;
}

static int collect_all(Modules *m) {
        g_auto(GStrv) names = modulemd_module_index_get_module_names_as_strv(m->index);

        for (char **n = names; n && *n; n++) {
                ModulemdModule *mod = modulemd_module_index_get_module(m->index, *n);
                GPtrArray *all = modulemd_module_get_all_streams(mod);

                for (guint i = 0; i < all->len; i++) {
                        ModulemdModuleStream *s = g_ptr_array_index(all, i);
                        g_auto(GStrv) rpms = NULL;

                        if (modulemd_module_stream_get_mdversion(s) < MD_MODULESTREAM_VERSION_TWO)
                                continue;
                        rpms = modulemd_module_stream_v2_get_rpm_artifacts_as_strv(MODULEMD_MODULE_STREAM_V2(s));
                        for (char **p = rpms; p && *p; p++) {
                                Artifact *a = realloc(m->all, sizeof(Artifact) * (m->n_all + 1));

                                if (!a)
                                        return log_oom();
                                m->all = a;
                                a = &m->all[m->n_all];
                                a->nevra = nevra_normalize(*p);
                                if (!a->nevra)
                                        continue;
                                a->stream = strdup_printf("%s:%s", *n, modulemd_module_stream_get_stream_name(s));
                                if (!a->stream) {
                                        free(a->nevra);
                                        return log_oom();
                                }
                                m->n_all++;
                        }
                }
        }
        if (m->n_all > 0)
                qsort(m->all, m->n_all, sizeof(Artifact), artifact_compare);
        return 0;
}

static int active_compare(const void *a, const void *b) {
        return strcmp(((const ActiveStream *) a)->choice.name, ((const ActiveStream *) b)->choice.name);
}

static const ActiveStream *active_find(const Modules *m, const char *name) {
        for (size_t i = 0; i < m->n_active; i++)
                if (streq(m->active[i].choice.name, name))
                        return &m->active[i];
        return NULL;
}

/* Whether a requirement's stream list ("18", "20"; "-18" for all but 18;
 * empty for any) allows stream. */
static bool streams_allow(char **streams, const char *stream) {
        bool any_positive = false;

        for (char **s = streams; s && *s; s++) {
                if ((*s)[0] == '-') {
                        if (streq(*s + 1, stream))
                                return false;
                        continue;
                }
                any_positive = true;
                if (streq(*s, stream))
                        return true;
        }
        return !any_positive;
}

/* Whether the active streams meet every module requirement of deps
 * ("platform" is the distribution's, not a module: dnf matches it against
 * module_platform_id, which an image build does not have). */
static bool deps_met(const Modules *m, ModulemdDependencies *deps) {
        g_auto(GStrv) mods = modulemd_dependencies_get_runtime_modules_as_strv(deps);

        for (char **n = mods; n && *n; n++) {
                g_auto(GStrv) streams = NULL;
                const ActiveStream *a;

                if (streq(*n, "platform"))
                        continue;
                a = active_find(m, *n);
                streams = modulemd_dependencies_get_runtime_streams_as_strv(deps, *n);
                if (!a || !streams_allow(streams, a->choice.stream))
                        return false;
        }
        return true;
}

/* The stream of module name a requirement gets: its default stream when
 * the list allows it, else the first the list names. NULL when none. */
static const char *required_stream(const Modules *m, const char *name, char **streams) {
        ModulemdModule *mod = modulemd_module_index_get_module(m->index, name);
        ModulemdDefaults *d = mod ? modulemd_module_get_defaults(mod) : NULL;
        const char *def = NULL;

        if (d && modulemd_defaults_get_mdversion(d) == MD_DEFAULTS_VERSION_ONE)
                def = modulemd_defaults_v1_get_default_stream(MODULEMD_DEFAULTS_V1(d), NULL);
        if (def && streams_allow(streams, def))
                return def;
        for (char **s = streams; s && *s; s++)
                if ((*s)[0] != '-')
                        return *s;
        return NULL;
}

/* Makes the requirements of active stream i active, as dnf enables the
 * streams an enabled stream requires. A stream whose contexts have
 * several dependency sets needs one of them met; when none is, the first
 * is made so. Returns 1 when it activated a stream, 0 when there was
 * nothing to do, or an error. */
static int require_one(Modules *m, size_t i, char **disable) {
        ModulemdModule *mod = modulemd_module_index_get_module(m->index, m->active[i].choice.name);
        _cleanup_free_ char *label = strdup(m->active[i].label);
        g_autoptr(GPtrArray) streams = NULL;
        ModulemdDependencies *first = NULL;
        g_auto(GStrv) mods = NULL;
        int r;

        if (!label)
                return log_oom();
        if (stream_newest(mod, m->active[i].choice.stream, &streams) < 0)
                return 0;
        for (guint k = 0; k < streams->len; k++) {
                ModulemdModuleStream *s = g_ptr_array_index(streams, k);
                GPtrArray *deps;

                if (modulemd_module_stream_get_mdversion(s) < MD_MODULESTREAM_VERSION_TWO)
                        continue;
                deps = modulemd_module_stream_v2_get_dependencies(MODULEMD_MODULE_STREAM_V2(s));
                for (guint j = 0; deps && j < deps->len; j++) {
                        if (deps_met(m, g_ptr_array_index(deps, j)))
                                return 0;
                        if (!first)
                                first = g_ptr_array_index(deps, j);
                }
        }
        if (!first)
                return 0;
        mods = modulemd_dependencies_get_runtime_modules_as_strv(first);
        for (char **n = mods; n && *n; n++) {
                g_auto(GStrv) want = modulemd_dependencies_get_runtime_streams_as_strv(first, *n);
                const ActiveStream *a;
                const char *stream;

                if (streq(*n, "platform"))
                        continue;
                a = active_find(m, *n);
                if (a && streams_allow(want, a->choice.stream))
                        continue;
                if (a)
                        return log_error_errno(-EINVAL,
                                               "module stream '%s' requires another stream of module '%s' than '%s', "
                                               "which is %s",
                                               label, *n, a->label,
                                               a->choice.required_by ? "required by another stream"
                                               : a->choice.is_default ? "its default stream (enable the one it needs)"
                                                                      : "enabled");
                if (strv_contains(disable, *n))
                        return log_error_errno(-EINVAL, "module stream '%s' requires module '%s', which is disabled",
                                               label, *n);
                if (!modulemd_module_index_get_module(m->index, *n))
                        return log_error_errno(-ENOENT,
                                               "module stream '%s' requires module '%s', which is in no "
                                               "repository's modules metadata",
                                               label, *n);
                stream = required_stream(m, *n, want);
                if (!stream)
                        return log_error_errno(-EINVAL,
                                               "module stream '%s' requires module '%s', which has no default "
                                               "stream: enable the one it needs",
                                               label, *n);
                r = activate_one(m, *n, stream, NULL, false, label);
                if (r < 0)
                        return r;
                return 1;
        }
        return 0;
}

/* Follows requirements until every active stream's are met. */
static int require_all(Modules *m, char **disable) {
        for (bool again = true; again;) {
                again = false;
                for (size_t i = 0; i < m->n_active; i++) {
                        int r = require_one(m, i, disable);

                        if (r < 0)
                                return r;
                        if (r > 0)
                                again = true;
                }
        }
        return 0;
}

int modules_activate(Modules *m, char **enable, char **disable) {
        g_autoptr(GError) error = NULL;
        g_auto(GStrv) names = NULL;
        int r;

        m->index = modulemd_module_index_merger_resolve(m->merger, &error);
        if (!m->index)
                return log_error_errno(-EINVAL, "cannot merge the repositories' modules metadata: %s",
                                       error ? error->message : "unknown error");
        if (!modulemd_module_index_upgrade_streams(m->index, MD_MODULESTREAM_VERSION_LATEST, &error))
                return log_error_errno(-EINVAL, "cannot read the repositories' module streams: %s",
                                       error ? error->message : "unknown error");
        r = collect_all(m);
        if (r < 0)
                return r;

        for (char **e = enable; e && *e; e++) {
                _cleanup_free_ char *name = NULL, *stream = NULL;
                const char *colon = strchr(*e, ':'), *slash = strchr(*e, '/');

                assert(colon);
                name = strndup(*e, (size_t) (colon - *e));
                stream = slash ? strndup(colon + 1, (size_t) (slash - colon - 1)) : strdup(colon + 1);
                if (!name || !stream)
                        return log_oom();
                r = activate_one(m, name, stream, slash ? slash + 1 : NULL, false, NULL);
                if (r < 0)
                        return r;
        }
        for (char **d = disable; d && *d; d++)
                if (!modulemd_module_index_get_module(m->index, *d))
                        return log_error_errno(-ENOENT, "module '%s' (disable) is in no repository's modules metadata",
                                               *d);
        /* What the enabled streams require comes before defaults: dnf
         * enables a required stream over its module's default. */
        r = require_all(m, disable);
        if (r < 0)
                return r;

        names = modulemd_module_index_get_module_names_as_strv(m->index);
        for (char **n = names; n && *n; n++) {
                ModulemdModule *mod = modulemd_module_index_get_module(m->index, *n);
                ModulemdDefaults *d = modulemd_module_get_defaults(mod);
                const char *stream;
                bool enabled = false;

                for (size_t i = 0; i < m->n_active; i++)
                        if (streq(m->active[i].choice.name, *n))
                                enabled = true;
                if (enabled || strv_contains(disable, *n) || !d ||
                    modulemd_defaults_get_mdversion(d) != MD_DEFAULTS_VERSION_ONE)
                        continue;
                stream = modulemd_defaults_v1_get_default_stream(MODULEMD_DEFAULTS_V1(d), NULL);
                if (!stream)
                        continue;
                r = activate_one(m, *n, stream, NULL, true, NULL);
                if (r < 0)
                        return r;
        }
        r = require_all(m, disable);
        if (r < 0)
                return r;
        if (m->n_active > 0)
                qsort(m->active, m->n_active, sizeof(ActiveStream), active_compare);
        m->choices = calloc(MAX(m->n_active, 1u), sizeof(ModuleChoice));
        if (!m->choices)
                return log_oom();
        for (size_t i = 0; i < m->n_active; i++)
                m->choices[i] = m->active[i].choice;
        return 0;
}

const char *modules_hides(const Modules *m, const char *name, const char *nevra) {
        Artifact key = { .nevra = (char *) nevra };
        const Artifact *a = NULL;

        if (m->n_all > 0)
                a = bsearch(&key, m->all, m->n_all, sizeof(Artifact), artifact_compare);
        for (size_t i = 0; i < m->n_active; i++)
                if (sorted_contains(m->active[i].artifacts, nevra))
                        return NULL;
        if (a)
                return a->stream;
        for (size_t i = 0; i < m->n_active; i++)
                if (sorted_contains(m->active[i].names, name))
                        return m->active[i].label;
        return NULL;
}

const ModuleChoice *modules_active(const Modules *m, size_t *ret_n) {
        *ret_n = m->n_active;
        return m->choices;
}
