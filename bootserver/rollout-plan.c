/* Planning and starting a rollout: the hosts its selector takes, in the
 * order that spreads each wave over the budgeted groups, cut into waves.
 * What happens to a started rollout is rollout.c's. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "coordinator.h"
#include "labels.h"
#include "images.h"
#include "log.h"
#include "rollout-files.h"
#include "rollout.h"
#include "util.h"
#include "store-rollout-files.h"
#include "store-rollouts.h"

/* rollout_spec_parse(), then the image resolved into ret_image ("" when
 * the spec moves files alone) and the file set into ret_files. -ENXIO
 * when there is no such image or set. */
static int spec_parse_resolve(StoreTx *tx, json_t *j, RolloutSpec *ret, char ret_image[65], RolloutFiles *ret_files,
                              char **ret_error) {
        RolloutSpec s;
        int r;

        r = rollout_spec_parse(j, &s, ret_error);
        if (r < 0)
                return r;
        if (s.files_name[0]) {
                r = rollout_files_resolve(tx, &s, ret_files, ret_error);
                if (r < 0)
                        return r;
        }
        ret_image[0] = 0;
        if (!s.image) {
                *ret = s;
                return 0;
        }
        r = images_resolve(tx, s.image, ret_image);
        if (r == -ENOENT)
                return rollout_spec_error(ret_error, "'image': %s: no such image", s.image) == -EINVAL ? -ENXIO : -ENOMEM;
        if (r == -EINVAL || r == -ENOTUNIQ)
                return rollout_spec_error(ret_error, "'image': %s: %s", s.image,
                                  r == -EINVAL ? "not an image reference" : "the prefix matches several images");
        if (r < 0)
                return r;
        *ret = s;
        return 0;
}

typedef struct Member {
        char id[16];
        int phase;
        /* Where it falls in its budgeted groups, 0 to 1: in the group of
         * its phase's bottleneck key, and the latest in any other. */
        double spread, spread_other;
        char *image; /* what it runs (when the catalog has it) or was last assigned */
} Member;

static int member_compare_id(const void *a, const void *b) {
        const Member *x = a, *y = b;
        if (x->phase != y->phase)
                return x->phase < y->phase ? -1 : 1;
        return strcmp(x->id, y->id);
}

static int member_compare(const void *a, const void *b) {
        const Member *x = a, *y = b;
        if (x->phase != y->phase)
                return x->phase < y->phase ? -1 : 1;
        if (x->spread != y->spread)
                return x->spread < y->spread ? -1 : 1;
        if (x->spread_other != y->spread_other)
                return x->spread_other < y->spread_other ? -1 : 1;
        return strcmp(x->id, y->id);
}

/* Spreads each phase's hosts evenly over the groups that have budgets, so
 * that every wave takes its share of each rack (or other budgeted group)
 * instead of what the host IDs happen to give: a wave lasts as long as its
 * busiest group. Per phase, the bottleneck key is the one whose group needs
 * the most turns (its hosts in the phase over the hosts it may have down).
 * A host's place in a group is (rank + 1/2) / size, ranked within the group
 * and phase in ID order; hosts go in order of their place in the
 * bottleneck key's group, then of their latest place in another. So every
 * prefix, and every wave, holds each bottleneck group's hosts to within one
 * of its share. m is sorted by phase and ID. */
static int spread_members(StoreTx *tx, Member *m, size_t n, json_t *budgets) {
        RolloutLabel *labels = NULL;
        size_t n_labels = 0, cap_labels;
        /* index: host ID -> member; groups: "phase key=value" -> {key, value,
         * phase, n, rank}; bottleneck: "phase" -> {key, turns}. */
        json_t *index = json_object(), *groups = json_object(), *bottleneck = json_object(), *g;
        const char *name;
        int r;

        if (!index || !groups || !bottleneck) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                json_object_set_new(index, m[i].id, json_integer((json_int_t) i));
        r = store_budgeted_labels(tx, &labels, &n_labels);
        if (r < 0)
                goto out;
        cap_labels = n_labels;
        /* The keys that only the rollout's own budgets name, each once. */
        json_object_foreach(budgets, name, g) {
                _cleanup_free_ char *key = strndup(name, strcspn(name, "="));
                const char *other;
                json_t *o;
                bool seen = false;

                if (!key) {
                        r = -ENOMEM;
                        goto out;
                }
                json_object_foreach(budgets, other, o) {
                        if (other == name)
                                break;
                        seen |= strncmp(other, key, strlen(key)) == 0 &&
                                (other[strlen(key)] == 0 || other[strlen(key)] == '=');
                }
                if (seen)
                        continue;
                r = store_key_labels_unbudgeted(tx, key, &labels, &n_labels, &cap_labels);
                if (r < 0)
                        goto out;
        }
        /* Twice over the labels: the groups' sizes per phase, then places. */
        for (int pass = 0; pass < 2; pass++) {
                for (size_t l = 0; l < n_labels; l++) {
                        json_t *ix = json_object_get(index, labels[l].host);
                        const char *key = labels[l].key;
                        const char *value = labels[l].value;
                        if (!ix)
                                continue;
                        Member *x = &m[json_integer_value(ix)];
                        _cleanup_free_ char *gname = strdup_printf("%d %s=%s", x->phase, key, value);
                        if (!gname) {
                                r = -ENOMEM;
                                goto out;
                        }
                        g = json_object_get(groups, gname);
                        if (pass == 0) {
                                if (!g)
                                        json_object_set_new(groups, gname,
                                                            g = json_pack("{s:s, s:s, s:i, s:I, s:I}", "key", key,
                                                                          "value", value, "phase", x->phase, "n",
                                                                          (json_int_t) 0, "rank", (json_int_t) 0));
                                json_object_set_new(g, "n", json_integer(json_integer_value(json_object_get(g, "n")) + 1));
                                continue;
                        }
                        json_int_t rank = json_integer_value(json_object_get(g, "rank"));
                        json_object_set_new(g, "rank", json_integer(rank + 1));
                        double place = ((double) rank + 0.5) / (double) json_integer_value(json_object_get(g, "n"));
                        char phase[16];
                        snprintf(phase, sizeof phase, "%d", x->phase);
                        if (streq_ptr(json_string_value(json_object_get(json_object_get(bottleneck, phase), "key")), key))
                                x->spread = place;
                        else
                                x->spread_other = MAX(x->spread_other, place);
                }
                if (pass > 0)
                        break;
                /* Per phase, the key of the group that needs the most turns;
                 * a tie goes to the first key by name. */
                json_object_foreach(groups, name, g) {
                        const char *key = json_string_value(json_object_get(g, "key"));
                        int64_t allowed = 0;
                        char phase[16];

                        r = coord_group_allowed(tx, key, json_string_value(json_object_get(g, "value")), budgets, &allowed);
                        if (r < 0)
                                goto out;
                        double turns = (double) json_integer_value(json_object_get(g, "n")) / (double) MAX(allowed, 1);
                        snprintf(phase, sizeof phase, "%d", (int) json_integer_value(json_object_get(g, "phase")));
                        json_t *b = json_object_get(bottleneck, phase);
                        double bt = json_real_value(json_object_get(b, "turns"));
                        if (!b || turns > bt ||
                            (turns == bt && strcmp(key, json_string_value(json_object_get(b, "key"))) < 0))
                                json_object_set_new(bottleneck, phase, json_pack("{s:s, s:f}", "key", key, "turns", turns));
                }
                r = 0;
        }
out:
        rollout_labels_free(labels, n_labels);
        json_decref(index);
        json_decref(groups);
        json_decref(bottleneck);
        return r;
}

static void members_free(Member *m, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(m[i].image);
        free(m);
}

/* Keeps of m the hosts a change of files alone can move: those the set
 * selects (at either version) that have an image to stage it with. */
static int files_members(StoreTx *tx, const RolloutFiles *f, Member *m, size_t *n) {
        size_t k = 0;

        for (size_t i = 0; i < *n; i++) {
                int r = m[i].image ? rollout_files_selects(tx, f, m[i].id) : 0;
                if (r < 0)
                        return r;
                if (r == 0) {
                        free(m[i].image);
                        continue;
                }
                m[k++] = m[i];
        }
        *n = k;
        return 0;
}

/* The hosts the spec selects, in rollout order; for files alone (f not
 * NULL), those the set selects. */
static int select_members(StoreTx *tx, const RolloutSpec *s, const RolloutFiles *f, Member **ret, size_t *ret_n) {
        _cleanup_strv_free_ char **sel = NULL;
        RolloutCandidate *v = NULL;
        Member *m = NULL;
        const char *key;
        size_t n = 0;
        json_t *x;
        int r;

        json_object_foreach(s->selector, key, x)
                if (strv_extend(&sel, key) < 0 || strv_extend(&sel, json_string_value(x)) < 0)
                        return -ENOMEM;
        /* Every selector label must match; the phase comes from the order key. */
        r = store_rollout_candidates(tx, sel, s->order_key, &v, &n);
        if (r < 0)
                return r;
        m = n > 0 ? calloc(n, sizeof *m) : NULL;
        if (n > 0 && !m) {
                rollout_candidates_free(v, n);
                return -ENOMEM;
        }
        for (size_t j = 0; j < n; j++) {
                size_t i;
                snprintf(m[j].id, sizeof m[j].id, "%s", v[j].host);
                m[j].image = TAKE_PTR(v[j].image);
                json_array_foreach(s->order_values, i, x)
                        if (v[j].order_value && streq_ptr(json_string_value(x), v[j].order_value))
                                m[j].phase = (int) i;
        }
        rollout_candidates_free(v, n);
        if (f) {
                r = files_members(tx, f, m, &n);
                if (r < 0) {
                        members_free(m, n);
                        return r;
                }
        }
        if (n > 0) {
                qsort(m, n, sizeof *m, member_compare_id);
                r = spread_members(tx, m, n, s->budgets);
                if (r < 0) {
                        members_free(m, n);
                        return r;
                }
                qsort(m, n, sizeof *m, member_compare);
        }
        *ret = m;
        *ret_n = n;
        return 0;
}

int coord_rollout_plan(StoreTx *tx, const CoordConfig *c _unused_, json_t *spec, uint64_t reboot_estimate,
                       json_t **ret_plan, char **ret_error) {
        _cleanup_(rollout_files_release) RolloutFiles files = {};
        size_t n = 0, ends[ROLLOUT_WAVES_MAX];
        char image[65];
        Member *m = NULL;
        json_t *waves;
        RolloutSpec s;
        int r;

        r = spec_parse_resolve(tx, spec, &s, image, &files, ret_error);
        if (r < 0)
                return r;
        r = select_members(tx, &s, image[0] ? NULL : &files, &m, &n);
        if (r < 0)
                return r;
        rollout_wave_ends(&s, n, ends);
        waves = json_array();
        for (size_t w = 0, i = 0; w < s.n_waves; w++) {
                json_t *hosts = json_array();
                size_t count = 0;
                for (; i < ends[w]; i++, count++)
                        json_array_append_new(hosts, json_string(m[i].id));
                json_array_append_new(waves, json_pack("{s:i, s:I, s:o}", "wave", (int) w + 1, "hosts_count",
                                                       (json_int_t) count, "hosts", hosts));
        }
        members_free(m, n);
        *ret_plan = json_pack("{s:s?, s:I, s:o, s:I, s:I}", "image", image[0] ? image : NULL, "hosts",
                              (json_int_t) n, "waves", waves, "bake", (json_int_t) s.bake, "estimate_sec",
                              (json_int_t) MIN(rollout_estimate(&s, ends, reboot_estimate), (uint64_t) INT64_MAX));
        if (*ret_plan && files.name[0])
                json_object_set_new(*ret_plan, "files",
                                    json_pack("{s:s, s:I, s:I}", "name", files.name, "version", (json_int_t) files.seq,
                                              "from", (json_int_t) files.from));
        return *ret_plan ? 0 : -ENOMEM;
}

int coord_rollout_start(StoreTx *tx, const CoordConfig *c _unused_, json_t *spec, const char *actor, uint64_t now,
                        int64_t *ret_id, char **ret_error) {
        _cleanup_(rollout_files_release) RolloutFiles files = {};
        _cleanup_free_ char *spec_text = NULL;
        size_t n = 0, ends[ROLLOUT_WAVES_MAX];
        char image[65];
        Member *m = NULL;
        int64_t id = 0;
        RolloutSpec s;
        int r;

        r = spec_parse_resolve(tx, spec, &s, image, &files, ret_error);
        if (r < 0)
                return r;
        /* The stored spec names the version it moves the set to, so that
         * it reads the same whatever comes after. */
        if (files.name[0]) {
                _cleanup_free_ char *f = strdup_printf("%s@%" PRIi64, files.name, files.seq);
                if (!f || json_object_set_new(spec, "files", json_string(f)) < 0)
                        return -ENOMEM;
        }
        r = select_members(tx, &s, image[0] ? NULL : &files, &m, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                *ret_error = strdup(image[0] ? "the selector matches no host"
                                             : "the selector and the file set's match no host with an image");
                return -ENOENT;
        }
        /* One active rollout per host: a done rollout still assigns the
         * hosts that were away when it comes back. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                int64_t busy;
                r = store_rollout_host_busy(tx, m[i].id, &busy);
                if (r > 0) {
                        *ret_error = strdup_printf("host %s is still in rollout %" PRIi64, m[i].id, busy);
                        r = -EBUSY;
                }
        }
        spec_text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
        if (r >= 0 && !spec_text)
                r = -ENOMEM;
        if (r >= 0)
                r = store_rollout_insert(tx, ROLLOUT_KIND_ROLLOUT, image[0] ? image : NULL, spec_text,
                                         (int) s.n_waves, 0, actor, now, &id);
        if (r >= 0 && files.name[0])
                r = store_rollout_set_files(tx, id, files.name, files.seq, files.from);
        rollout_wave_ends(&s, n, ends);
        /* Files alone: each host stays on the image it has. */
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = store_rollout_add_host(tx, id, m[i].id, rollout_wave_of(ends, s.n_waves, i), m[i].phase,
                                           image[0] ? image : m[i].image, m[i].image);
                if (r >= 0 && files.name[0])
                        r = rollout_files_add_host(tx, id, &files, m[i].id);
        }
        members_free(m, n);
        if (r >= 0) {
                json_t *d = json_pack("{s:O, s:I}", "spec", spec, "hosts", (json_int_t) n);
                _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
                r = audit_log_at(tx, (int64_t) now, actor, "rollout.start", target, d);
                json_decref(d);
        }
        if (r >= 0)
                *ret_id = id;
        return r;
}
