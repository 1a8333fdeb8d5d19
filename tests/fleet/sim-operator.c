/* The operator: starts the rollout the simulator watches and, on some
 * seeds, resumes it after a pause at the failure threshold. */
#include <string.h>

#include "sim.h"
#include "util.h"

void operator_start_rollout(Sim *s) {
        StoreTx *tx = NULL;
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *error = NULL;
        json_t *spec;
        sqlite3 *db;
        int r;

        spec = json_pack("{s:s, s:[i, s, s, s], s:i, s:s, s:s, s:{s:s, s:[s, s]}, s:{s:s, s:s}}", "image",
                         image_ids[1], "waves", 1, "10%", "50%", "100%", "bake", 30, "max_failures", "5%", "on_failure",
                         "pause", "order", "key", "service", "values", "s0", "s1", "budgets", "rack", "100%", "service",
                         "5%");
        db = store_sqlite(s->db);
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_rollout_start(tx, &s->cc, spec, "sim", now_s(s), &s->rollout, &error);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r >= 0)
                r = sqlite_prepare(db, "SELECT host_id, wave FROM rollout_hosts WHERE rollout_id = ?", &st);
        if (r >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                while ((r = sqlite_step(st)) > 0) {
                        unsigned i;
                        int w = sqlite3_column_int(st, 1);
                        if (sscanf((const char *) sqlite3_column_text(st, 0), "h-%u", &i) == 1 && i < s->n && w >= 0 &&
                            w < MAX_WAVES) {
                                s->a[i].wave = w;
                                s->wave_size[w]++;
                        }
                }
        }
        json_decref(spec);
        if (r < 0) {
                violation(s, "cannot start the rollout: %s", error ? error : strerror(-r));
                return;
        }
        s->rollout_started = s->t;
        s->tick_dirty = true;
        snprintf(s->rollout_state, sizeof s->rollout_state, "running");
        trace(s, "rollout %" PRIi64 " started: waves of %d, %d, %d, %d hosts", s->rollout, s->wave_size[0],
              s->wave_size[1], s->wave_size[2], s->wave_size[3]);
}

void operator_on_pause(Sim *s) {
        /* On some seeds an operator looks and resumes, up to twice. */
        if (s->res.resumes < 2 && rng_next(s) % 2 == 0) {
                s->pending_disruptions++;
                sim_schedule(s, s->t + rng_range(s, 30000, 300000), EV_RESUME, -1);
        }
}

/* The operator resumes a paused rollout: the failures the coordinator has
 * seen so far, wave by wave the model's, are accepted. */
void operator_resume(Sim *s) {
        StoreTx *tx = NULL;
        _cleanup_sqlite_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *error = NULL;
        sqlite3 *db = store_sqlite(s->db);
        int r;

        if (sqlite_prepare(db,
                       "SELECT wave, sum(status = 'failed' AND NOT acked) FROM rollout_hosts WHERE rollout_id = ? "
                       "GROUP BY wave",
                       &st) >= 0) {
                sqlite3_bind_int64(st, 1, s->rollout);
                while ((r = sqlite_step(st)) > 0) {
                        int w = sqlite3_column_int(st, 0), n = sqlite3_column_int(st, 1);
                        if (w >= 0 && w < MAX_WAVES && n != wave_failures(s, w))
                                violation(s, "resume: wave %d has %d failures not yet accepted, the model %d", w + 1, n,
                                          wave_failures(s, w));
                }
                if (r < 0)
                        violation(s, "resume: cannot read the failures: %s", strerror(-r));
        }
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = coord_rollout_action(tx, s->rollout, "resume", "operator", now_s(s), NULL, &error);
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r < 0) {
                violation(s, "cannot resume the rollout: %s", error ? error : strerror(-r));
                return;
        }
        for (int w = 0; w < MAX_WAVES; w++)
                s->wave_acked[w] = s->wave_failed[w];
        s->res.resumes++;
        s->tick_dirty = true;
        snprintf(s->rollout_state, sizeof s->rollout_state, "running");
        trace(s, "rollout resumed by the operator");
}

