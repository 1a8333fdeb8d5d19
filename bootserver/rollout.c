/* Rollouts: a set of hosts moved to an image in waves. The waves only say
 * who may start; the reboot leases (coordinator.c) say who may go down. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "audit.h"
#include "coordinator.h"
#include "labels.h"
#include "images.h"
#include "json.h"
#include "log.h"
#include "rollout-files.h"
#include "rollout.h"
#include "util.h"
#include "store-rollout-files.h"
#include "store-rollouts.h"

static int rollout_set_state(StoreTx *tx, int64_t id, RolloutState state, const char *reason, const char *actor,
                             uint64_t now) {
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        bool final = state == ROLLOUT_DONE || state == ROLLOUT_ABORTED;
        json_t *d;
        int r;

        r = store_rollout_set_state(tx, id, state, reason, final, now);
        if (r < 0)
                return r;
        d = json_pack("{s:s, s:s?}", "state", rollout_state_to_string(state), "reason", reason);
        r = audit_log_at(tx, (int64_t) now, actor,
                         state == ROLLOUT_RUNNING  ? "rollout.resume"
                         : state == ROLLOUT_PAUSED ? "rollout.pause"
                         : state == ROLLOUT_DONE   ? "rollout.done"
                                                   : "rollout.abort",
                         target, d);
        json_decref(d);
        return r;
}

/* Host h of rollout id is skipped at now: its message and the audit log say
 * why. */
static int skip_host(StoreTx *tx, int64_t id, const char *h, const char *why, const char *actor, uint64_t now) {
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *d;
        int r;

        if (!target)
                return -ENOMEM;
        r = store_rollout_skip_host(tx, id, h, why);
        if (r < 0)
                return r;
        log_warning("rollout %" PRIi64 ": host %s skipped: %s", id, h, why);
        d = json_pack("{s:s, s:s}", "host", h, "reason", why);
        r = d ? audit_log_at(tx, (int64_t) now, actor, "rollout.skip", target, d) : -ENOMEM;
        json_decref(d);
        return r;
}

/* Why host h cannot be sent to image target (which the catalog has when
 * known), or NULL when it can; caller frees. */
static char *unassignable(const char *target, bool known, int64_t busy_in) {
        if (!known)
                return strdup_printf("its image %.12s is not in the catalog (unknown or deleted)", strempty(target));
        if (busy_in > 0)
                return strdup_printf("it is in rollout %" PRIi64, busy_in);
        return NULL;
}

/* The new rollback nid of rollout id skips the hosts it cannot send back:
 * those whose previous image the catalog does not have (a check-in may
 * name any image; an image may have been deleted before that was
 * refused), and those another rollout has taken on since. */
static int rollback_skip_unassignable(StoreTx *tx, int64_t nid, int64_t id, const char *actor, uint64_t now) {
        RolloutBackHost *v = NULL;
        size_t n = 0;
        int r;

        /* Read first, then written: the rows are the ones being read. */
        r = store_rollout_back_hosts(tx, nid, id, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                _cleanup_free_ char *why = unassignable(v[i].target, v[i].known, v[i].busy_in);
                if (why)
                        r = skip_host(tx, nid, v[i].host, why, actor, now);
        }
        rollout_back_hosts_free(v, n);
        return r;
}

static int rollout_rollback(StoreTx *tx, int64_t id, const char *actor, uint64_t now, const char *reason,
                            int64_t *ret_new) {
        _cleanup_(rollout_release) Rollout row = {};
        _cleanup_free_ char *target = NULL;
        int64_t nid;
        int r;

        r = store_rollout_get(tx, id, &row);
        if (r < 0)
                return r;
        r = store_rollout_insert(tx, ROLLOUT_KIND_ROLLBACK, NULL, row.spec, row.n_waves, id, actor, now, &nid);
        if (r < 0)
                return r;
        /* A rollback of a change of files moves the set back: from the
         * version the rollout went to, to the one it came from. */
        {
                _cleanup_free_ char *files = NULL;
                int64_t seq = 0, from = 0;
                r = store_rollout_files(tx, id, &files, &seq, &from);
                if (r > 0)
                        r = store_rollout_set_files(tx, nid, files, from, seq);
                if (r < 0)
                        return r;
        }
        /* The hosts the rollout touched go back to what they ran, in the same waves. */
        r = store_rollout_add_rollback_hosts(tx, nid, id);
        if (r >= 0)
                r = rollback_skip_unassignable(tx, nid, id, actor, now);
        if (r >= 0) {
                _cleanup_free_ char *why = strdup_printf("rolled back by rollout %" PRIi64 "%s%s", nid,
                                                         reason ? ": " : "", strempty(reason));
                r = rollout_set_state(tx, id, ROLLOUT_ABORTED, why, actor, now);
        }
        target = strdup_printf("rollout %" PRIi64, nid);
        if (r >= 0) {
                json_t *d = json_pack("{s:I, s:s?}", "rollback_of", (json_int_t) id, "reason", reason);
                r = audit_log_at(tx, (int64_t) now, actor, "rollout.rollback", target, d);
                json_decref(d);
        }
        if (r >= 0 && ret_new)
                *ret_new = nid;
        return r;
}

int coord_rollout_action(StoreTx *tx, int64_t id, const char *action, const char *actor, uint64_t now,
                         int64_t *ret_new_id, char **ret_error) {
        _cleanup_(rollout_release) Rollout row = {};
        RolloutState state;
        int r;

        r = store_rollout_get(tx, id, &row);
        if (r < 0)
                return r;
        state = row.state;
        if (streq(action, "pause")) {
                if (state != ROLLOUT_RUNNING)
                        goto refused;
                return rollout_set_state(tx, id, ROLLOUT_PAUSED, "paused by an operator", actor, now);
        }
        if (streq(action, "resume")) {
                if (state != ROLLOUT_PAUSED)
                        goto refused;
                /* Resuming accepts the failures so far: the threshold counts
                 * only those that come after. */
                r = store_rollout_ack_failures(tx, id);
                return r < 0 ? r : rollout_set_state(tx, id, ROLLOUT_RUNNING, NULL, actor, now);
        }
        if (streq(action, "abort")) {
                /* A done rollout is closed by an abort: it can no longer be
                 * rolled back, so the images it would go back to may be
                 * deleted (coord_image_users()). */
                if (state == ROLLOUT_ABORTED)
                        goto refused;
                r = store_rollout_skip_pending(tx, id);
                /* Hosts on the way that did not arrive want what they ran again. */
                if (r >= 0)
                        r = store_rollout_revert_unfinished(tx, id);
                /* And the files they had, when it moves a set. */
                if (r >= 0)
                        r = rollout_files_revert(tx, id);
                return r < 0 ? r : rollout_set_state(tx, id, ROLLOUT_ABORTED, "aborted by an operator", actor, now);
        }
        if (streq(action, "rollback")) {
                if (state == ROLLOUT_ABORTED)
                        goto refused;
                return rollout_rollback(tx, id, actor, now, "asked by an operator", ret_new_id);
        }
        *ret_error = strdup_printf("unknown action '%s' (pause, resume, abort, rollback)", action);
        return -EINVAL;
refused:
        *ret_error = strdup_printf("rollout %" PRIi64 " is %s: cannot %s it", id, rollout_state_to_string(state), action);
        return -EBUSY;
}

/* Assigns the pending hosts that may start: in a wave up to max_wave,
 * reachable, and no reachable unfinished host of an earlier phase (the
 * earliest such phase is computed once, not once per pending host). At most
 * c->assign_per_tick of them: the rest wait for the next ticks, and keep
 * their wave open meanwhile. */
static int assign_ready(StoreTx *tx, const CoordConfig *c, int64_t id, bool rollback, const char *files, int max_wave,
                        uint64_t now) {
        RolloutReady *v = NULL;
        size_t n = 0;
        int r;

        r = store_rollout_ready(tx, id, max_wave, now, c->heartbeat_timeout, rollback, c->assign_per_tick, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                /* An image gone from the catalog cannot be assigned: the host
                 * is skipped, and the rollout goes on without it. */
                if (!v[i].known) {
                        _cleanup_free_ char *why = unassignable(v[i].target, false, 0);
                        r = why ? skip_host(tx, id, v[i].host, why, "coordinator", now) : -ENOMEM;
                } else if (files) {
                        /* Pinned to the set's version first: a host whose
                         * files cannot be rendered at it is skipped. */
                        _cleanup_free_ char *why = NULL;
                        r = rollout_files_assign(tx, id, files, v[i].host, &why);
                        if (r > 0)
                                r = store_rollout_assign(tx, id, v[i].host, v[i].target, rollback, false, now);
                        else if (r == 0)
                                r = skip_host(tx, id, v[i].host, why, "coordinator", now);
                } else
                        r = store_rollout_assign(tx, id, v[i].host, v[i].target, rollback, v[i].finished, now);
                if (r < 0)
                        break;
        }
        rollout_ready_free(v, n);
        return r;
}

/* rollout.failed: wave t of rollout id has more failures than allowed. */
static int audit_failed(StoreTx *tx, int64_t id, const RolloutWaveTally *t, int64_t allowed, const char *why,
                        bool rollback, uint64_t now) {
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id);
        json_t *d;
        int r;

        if (!target)
                return -ENOMEM;
        d = json_pack("{s:i, s:I, s:I, s:I, s:s, s:s}", "wave", t->wave + 1, "failed", (json_int_t) t->failed, "hosts",
                      (json_int_t) t->hosts, "allowed", (json_int_t) allowed, "reason", why, "then",
                      rollback ? "rollback" : "pause");
        r = d ? audit_log_at(tx, (int64_t) now, "coordinator", "rollout.failed", target, d) : -ENOMEM;
        json_decref(d);
        return r;
}

/* Pauses (or with on_failure rollback, rolls back) a running rollout whose
 * waves so far have more failures than allowed. Returns 1 when it did. */
static int check_failures(StoreTx *tx, const Rollout *ro, const RolloutSpec *s, uint64_t now) {
        _cleanup_free_ RolloutWaveTally *t = NULL;
        size_t n = 0;
        int r;

        /* Every wave so far, not only this one: a host unreachable during
         * its wave reports its failure after the wave was over. */
        r = store_rollout_wave_tallies(tx, ro->id, ro->wave, &t, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                int64_t allowed = s->fail_count >= 0 ? s->fail_count : t[i].hosts * s->fail_pct / 100;
                if (t[i].failed <= allowed)
                        continue;
                _cleanup_free_ char *why = strdup_printf("wave %d: %" PRIi64 " of %" PRIi64 " hosts failed, %" PRIi64
                                                         " allowed",
                                                         t[i].wave + 1, t[i].failed, t[i].hosts, allowed);
                if (!why)
                        return -ENOMEM;
                log_warning("rollout %" PRIi64 ": %s", ro->id, why);
                bool rollback = s->rollback_on_failure && ro->kind == ROLLOUT_KIND_ROLLOUT;
                /* Failed: what webhooks and alerts wait for, before the
                 * pause or the rollback it leads to. */
                r = audit_failed(tx, ro->id, &t[i], allowed, why, rollback, now);
                if (r >= 0 && rollback)
                        r = rollout_rollback(tx, ro->id, "coordinator", now, why, NULL);
                else if (r >= 0)
                        r = rollout_set_state(tx, ro->id, ROLLOUT_PAUSED, why, "coordinator", now);
                return r < 0 ? r : 1;
        }
        return 0;
}

/* Whether stored spec text names a selector with a label. */
static bool spec_has_selector(const char *text) {
        _cleanup_json_ json_t *j = json_loads(text, 0, NULL);

        return json_object_size(json_object_get(j, "selector")) > 0;
}

int coord_rollout_tick(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now) {
        _cleanup_(rollout_release) Rollout ro = {};
        _cleanup_free_ char *target = strdup_printf("rollout %" PRIi64, id), *files = NULL;
        RolloutSpec s = {};
        bool rollback;
        int r;

        if (!target)
                return -ENOMEM;
        r = store_rollout_get(tx, id, &ro);
        if (r < 0)
                return r;
        rollback = ro.kind == ROLLOUT_KIND_ROLLBACK;
        /* A rollout that moves files finishes a host by its files digest
         * too, which the image alone does not say. */
        r = store_rollout_files(tx, id, &files, NULL, NULL);
        if (r > 0)
                r = rollout_files_statuses(tx, id);
        else if (r == 0)
                r = store_rollout_update_statuses(tx, id, rollback);
        if (r < 0 || (ro.state != ROLLOUT_RUNNING && ro.state != ROLLOUT_DONE))
                return r;
        if (ro.state == ROLLOUT_RUNNING) {
                _cleanup_free_ char *why = NULL;

                r = rollout_spec_parse_stored(ro.spec, &s, &why);
                if (r > 0) {
                        log_warning("rollout %" PRIi64 ": %s: paused", id, why);
                        return rollout_set_state(tx, id, ROLLOUT_PAUSED, why, "coordinator", now);
                }
                if (r == 0)
                        r = check_failures(tx, &ro, &s, now);
                if (r != 0)
                        return r < 0 ? r : 0;
        }
        r = assign_ready(tx, c, id, rollback, files, ro.state == ROLLOUT_DONE ? INT32_MAX : ro.wave, now);
        if (r < 0 || ro.state != ROLLOUT_RUNNING)
                return r;

        /* The wave is complete when none of its reachable hosts is still on the way. */
        r = store_rollout_wave_open(tx, id, ro.wave, now, c->heartbeat_timeout);
        if (r != 0)
                return r < 0 ? r : 0;
        if (!ro.has_done_at) {
                r = store_rollout_set_wave_done(tx, id, now);
                if (r >= 0) {
                        json_t *d = json_pack("{s:i}", "wave", ro.wave + 1);
                        r = audit_log_at(tx, (int64_t) now, "coordinator", "rollout.wave-complete", target, d);
                        json_decref(d);
                }
                if (r < 0)
                        return r;
                ro.done_at = now;
        }
        /* The bake is capped (ROLLOUT_BAKE_MAX): this cannot wrap. */
        if (now < ro.done_at + s.bake)
                return 0;
        if (ro.wave + 1 >= ro.n_waves) {
                if (files) {
                        r = rollout_files_done(tx, id, spec_has_selector(ro.spec));
                        if (r < 0)
                                return r;
                }
                return rollout_set_state(tx, id, ROLLOUT_DONE, NULL, "coordinator", now);
        }
        r = store_rollout_next_wave(tx, id);
        if (r >= 0) {
                json_t *d = json_pack("{s:i}", "wave", ro.wave + 2);
                r = audit_log_at(tx, (int64_t) now, "coordinator", "rollout.wave", target, d);
                json_decref(d);
        }
        /* The next wave's hosts are assigned now, not a tick later. */
        if (r >= 0)
                r = assign_ready(tx, c, id, rollback, files, ro.wave + 1, now);
        return r;
}

int coord_rollouts_active(StoreTx *tx, int64_t **ret_ids, size_t *ret_n) {
        return store_rollouts_active(tx, ret_ids, ret_n);
}

int coord_rollout_pause(StoreTx *tx, int64_t id, const char *reason, uint64_t now) {
        _cleanup_(rollout_release) Rollout row = {};
        int r = store_rollout_get(tx, id, &row);

        if (r < 0)
                return r;
        if (row.state != ROLLOUT_RUNNING && row.state != ROLLOUT_DONE)
                return 0;
        r = rollout_set_state(tx, id, ROLLOUT_PAUSED, reason, "coordinator", now);
        return r < 0 ? r : 1;
}

/* Appends "rollout 3" or "rollouts 3, 5" and what, to *why ("; " between
 * parts). */
static int why_append_rollouts(char **why, const int64_t *ids, size_t n, const char *what) {
        _cleanup_free_ char *list = NULL;
        char *m;

        if (n == 0)
                return 0;
        list = strdup(n == 1 ? "rollout" : "rollouts");
        for (size_t i = 0; list && i < n; i++) {
                char *x = strdup_printf("%s%s %" PRIi64, list, i > 0 ? "," : "", ids[i]);
                free(list);
                list = x;
        }
        m = list ? strdup_printf("%s%s%s %s", strempty(*why), *why ? "; " : "", list, what) : NULL;
        if (!m)
                return -ENOMEM;
        free(*why);
        *why = m;
        return 0;
}

int coord_image_users(StoreTx *tx, const char *id, char **ret_why) {
        _cleanup_free_ RolloutImageUse *v = NULL;
        _cleanup_free_ char *why = NULL;
        int64_t assigns[8], returns[8], hosts;
        size_t n = 0, n_assigns = 0, n_returns = 0;
        int r;

        /* A rollout that is not aborted would still assign it to a host on
         * the way, or may be rolled back to it (coord_rollout_action()):
         * deleting it would leave that with an image it cannot assign. */
        r = store_image_users(tx, id, &hosts, &v, &n);
        if (r < 0)
                return r;
        if (hosts > 0) {
                why = strdup_printf("assigned to or running on %lld host(s)", (long long) hosts);
                if (!why)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (v[i].assigns && n_assigns < ELEMENTSOF(assigns))
                        assigns[n_assigns++] = v[i].rollout_id;
                else if (v[i].returns && n_returns < ELEMENTSOF(returns))
                        returns[n_returns++] = v[i].rollout_id;
        }
        r = why_append_rollouts(&why, assigns, n_assigns, "would assign it");
        if (r >= 0)
                r = why_append_rollouts(&why, returns, n_returns, "may roll back to it");
        if (r < 0)
                return r;
        if (!why)
                return 0;
        *ret_why = TAKE_PTR(why);
        return 1;
}

static json_t *waves_json(const RolloutWaveCounts *w, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "wave", w[i].wave + 1,
                                                       "hosts", (json_int_t) w[i].hosts, "pending",
                                                       (json_int_t) w[i].pending, "assigned",
                                                       (json_int_t) w[i].assigned, "done", (json_int_t) w[i].done,
                                                       "failed", (json_int_t) w[i].failed, "skipped",
                                                       (json_int_t) w[i].skipped)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

static json_t *groups_json(const RolloutGroupCounts *g, size_t n) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < n; i++)
                if (json_array_append_new(a, json_pack("{s:s, s:I, s:I, s:I, s:I}", "group", g[i].group, "hosts",
                                                       (json_int_t) g[i].hosts, "done", (json_int_t) g[i].done,
                                                       "failed", (json_int_t) g[i].failed, "down",
                                                       (json_int_t) g[i].down)) < 0)
                        a = (json_decref(a), NULL);
        return a;
}

/* The spec's own budgets as GET /v1/budgets shows the site's: selector,
 * budget; one that does not read says so. */
static json_t *budgets_json(json_t *spec) {
        json_t *a = json_array(), *v;
        const char *sel;

        json_object_foreach(json_object_get(spec, "budgets"), sel, v) {
                Budget b;
                char desc[64] = "not valid";

                if (budget_from_json(v, &b) >= 0)
                        budget_describe(&b, desc, sizeof desc);
                if (!a || json_array_append_new(a, json_pack("{s:s, s:s}", "selector", sel, "budget", desc)) < 0)
                        return json_decref(a), NULL;
        }
        return a;
}

int coord_rollout_json(StoreTx *tx, const CoordConfig *c, int64_t id, uint64_t now, json_t **ret) {
        _cleanup_(rollout_info_release) RolloutInfo info = {};
        _cleanup_free_ RolloutWaveCounts *w = NULL;
        RolloutGroupCounts *g = NULL;
        size_t n_w = 0, n_g = 0;
        json_t *ro, *waves, *groups, *spec, *budgets;
        int r;

        r = store_rollout_info(tx, id, &info);
        if (r < 0)
                return r;
        r = store_rollout_wave_counts(tx, id, &w, &n_w);
        if (r < 0)
                return r;
        /* Per group of every budgeted label key: hosts, done, down now. */
        r = store_rollout_group_counts(tx, id, now, c->heartbeat_timeout, &g, &n_g);
        if (r < 0)
                return r;
        waves = waves_json(w, n_w);
        groups = groups_json(g, n_g);
        rollout_group_counts_free(g, n_g);
        if (!waves || !groups) {
                json_decref(waves);
                json_decref(groups);
                return -ENOMEM;
        }
        spec = json_loads(info.ro.spec, 0, NULL);
        budgets = budgets_json(spec);
        if (!budgets) {
                json_decref(spec);
                json_decref(waves);
                json_decref(groups);
                return -ENOMEM;
        }
        ro = json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:o, s:s?, s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t) id,
                       "kind", rollout_kind_to_string(info.ro.kind), "state", rollout_state_to_string(info.ro.state),
                       "wave", info.ro.wave + 1, "waves_total", info.ro.n_waves, "reason", info.reason, "rollback_of",
                       info.rollback_of > 0 ? json_integer(info.rollback_of) : json_null(), "image", info.image,
                       "created", (json_int_t) info.created, "spec", spec ?: json_null(), "waves", waves, "groups",
                       groups, "budgets", budgets);
        if (!ro)
                return -ENOMEM;
        *ret = ro;
        return 0;
}

json_t *coord_rollouts_json(StoreTx *tx) {
        RolloutInfo *v = NULL;
        size_t n = 0;
        json_t *l;

        if (store_rollouts_list(tx, &v, &n) < 0)
                return NULL;
        l = json_array();
        for (size_t i = 0; l && i < n; i++)
                if (json_array_append_new(l, json_pack("{s:I, s:s, s:s, s:i, s:i, s:s?, s:I, s:I, s:I}", "id",
                                                       (json_int_t) v[i].ro.id, "kind",
                                                       rollout_kind_to_string(v[i].ro.kind), "state",
                                                       rollout_state_to_string(v[i].ro.state), "wave",
                                                       v[i].ro.wave + 1, "waves_total", v[i].ro.n_waves, "image",
                                                       v[i].image, "created", (json_int_t) v[i].created, "hosts",
                                                       (json_int_t) v[i].hosts, "done", (json_int_t) v[i].done)) < 0)
                        l = (json_decref(l), NULL);
        rollout_infos_free(v, n);
        return l;
}
