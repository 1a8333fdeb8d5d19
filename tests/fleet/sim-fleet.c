/* The fleet of one seed: its hosts dealt into services and racks by a
 * seeded shuffle, their rows, labels and budgets in the database, the first
 * check-ins and the first events; and its release at the end. */
#include <errno.h>
#include <unistd.h>

#include "hosts.h"
#include "log.h"
#include "sim.h"
#include "util.h"

int fleet_setup(Sim *s) {
        StoreTx *tx = NULL;
        _cleanup_sqlite_stmt_ sqlite3_stmt *img = NULL, *ren = NULL, *lab = NULL;
        const Options *o = s->o;
        sqlite3 *db;
        int r;

        s->n = o->hosts;
        s->n_racks = (o->hosts + o->rack_size - 1) / o->rack_size;
        s->a = calloc(s->n, sizeof *s->a);
        s->racks = calloc(s->n_racks, sizeof *s->racks);
        s->wave_size = calloc(MAX_WAVES, sizeof(int));
        s->wave_failed = calloc(MAX_WAVES, sizeof(int));
        s->wave_acked = calloc(MAX_WAVES, sizeof(int));
        if (!s->a || !s->racks || !s->wave_size || !s->wave_failed || !s->wave_acked)
                return -ENOMEM;
        s->cc = COORD_CONFIG_DEFAULT;
        s->cc.heartbeat_timeout = o->heartbeat_s ? o->heartbeat_s : 3 * o->checkin_s;
        s->cc.lease_ttl = o->ttl;

        /* Outages and spells start while the rollout is expected to run: about
         * a minute per host that must wait for the one before it in its
         * service or rack, twice (s1 waits for s0), plus waves and bakes. */
        uint64_t per_service = s->n / N_SERVICES;
        uint64_t serial = MAX((uint64_t) o->rack_size, per_service / MAX(per_service * 10 / 100, 1));
        s->window = (serial * 70 * 2 + 300) * 1000;

        /* Services: equal shares; racks: rack_size hosts each; both dealt by
         * a seeded shuffle. Host IDs are random in slipwayd and waves take
         * hosts in ID order, so a wave spreads over racks and services. */
        int *perm = calloc(2 * (size_t) s->n, sizeof(int));
        if (!perm)
                return -ENOMEM;
        for (unsigned i = 0; i < s->n; i++) {
                perm[i] = (int) (i % N_SERVICES);
                perm[s->n + i] = (int) (i / o->rack_size);
        }
        for (unsigned k = 0; k < 2; k++)
                for (unsigned i = s->n; i > 1; i--) {
                        unsigned j = (unsigned) rng_range(s, 0, i - 1);
                        int t = perm[k * s->n + i - 1];
                        perm[k * s->n + i - 1] = perm[k * s->n + j];
                        perm[k * s->n + j] = t;
                }
        for (unsigned g = 0; g < N_SERVICES; g++) {
                snprintf(s->services[g].name, sizeof s->services[g].name, "service=s%u", g);
                s->services[g].members = calloc(s->n, sizeof(int));
        }
        for (unsigned g = 0; g < s->n_racks; g++) {
                snprintf(s->racks[g].name, sizeof s->racks[g].name, "rack=r%u", g);
                s->racks[g].members = calloc(o->rack_size, sizeof(int));
        }
        for (unsigned i = 0; i < s->n; i++) {
                Agent *a = &s->a[i];
                snprintf(a->id, sizeof a->id, "h-%06u", i);
                a->service = perm[i];
                a->rack = perm[s->n + i];
                a->running = 0;
                a->target = a->failed = a->wave = -1;
                a->report = "healthy";
                s->services[a->service].members[s->services[a->service].n++] = (int) i;
                s->racks[a->rack].members[s->racks[a->rack].n++] = (int) i;
                fault_plan(s, (int) i);
        }
        free(perm);

        Budget rack = { .selector = (char *) "rack", .max_unavailable = 1, .max_unavailable_pct = -1,
                        .min_available = -1 };
        Budget service = { .selector = (char *) "service", .max_unavailable = -1, .max_unavailable_pct = 10,
                           .min_available = -1 };
        /* The rollout's own budgets (sim-operator.c): a tighter service, a
         * looser rack, which must not loosen the site's. */
        Budget ro_rack = { .max_unavailable = -1, .max_unavailable_pct = 100, .min_available = -1 };
        Budget ro_service = { .max_unavailable = -1, .max_unavailable_pct = 5, .min_available = -1 };
        for (unsigned g = 0; g < N_SERVICES; g++) {
                int64_t n = (int64_t) s->services[g].n;
                s->services[g].allowed = budget_allowed(&service, n);
                s->services[g].allowed_rollout = MIN(s->services[g].allowed, budget_allowed(&ro_service, n));
        }
        for (unsigned g = 0; g < s->n_racks; g++) {
                int64_t n = (int64_t) s->racks[g].n;
                s->racks[g].allowed = budget_allowed(&rack, n);
                s->racks[g].allowed_rollout = MIN(s->racks[g].allowed, budget_allowed(&ro_rack, n));
        }

        r = sim_db_reopen(s);
        if (r < 0)
                return r;
        db = store_sqlite(s->db);
        r = store_tx_begin(s->db, STORE_TX_WRITE, &tx);
        if (r >= 0)
                r = sqlite_prepare(db, "INSERT INTO images (id, name, version, arch, manifest, signature, created) VALUES "
                                   "(?, 'tiny', ?, 'x86_64', ?1, '', 0)",
                               &img);
        for (int k = 0; r >= 0 && k < N_IMAGES; k++) {
                sqlite3_bind_text(img, 1, image_ids[k], -1, SQLITE_STATIC);
                sqlite3_bind_text(img, 2, image_versions[k], -1, SQLITE_STATIC);
                r = sqlite_errno(sqlite3_step(img));
                sqlite3_reset(img);
        }
        if (r >= 0)
                r = sqlite_prepare(db, "UPDATE hosts SET id = ?, image = ? WHERE id = ?", &ren);
        if (r >= 0)
                r = sqlite_prepare(db, "INSERT INTO host_labels (host_id, key, value) VALUES (?, ?, ?)", &lab);
        for (unsigned i = 0; r >= 0 && i < s->n; i++) {
                Agent *a = &s->a[i];
                char mac[18], id[16], value[16];
                bool is_new;
                snprintf(mac, sizeof mac, "02:00:%02x:%02x:%02x:%02x", (i >> 24) & 0xff, (i >> 16) & 0xff,
                         (i >> 8) & 0xff, i & 0xff);
                r = hosts_ensure(tx, mac, NULL, now_s(s), "sim", id, &is_new);
                if (r < 0)
                        break;
                /* hosts_ensure() draws a random ID; the rollout orders hosts by
                 * ID, so the simulator renames them for the seed to replay. */
                sqlite3_bind_text(ren, 1, a->id, -1, SQLITE_STATIC);
                sqlite3_bind_text(ren, 2, image_ids[0], -1, SQLITE_STATIC);
                sqlite3_bind_text(ren, 3, id, -1, SQLITE_STATIC);
                r = sqlite_errno(sqlite3_step(ren));
                sqlite3_reset(ren);
                for (int k = 0; r >= 0 && k < 2; k++) {
                        snprintf(value, sizeof value, "%c%d", k == 0 ? 's' : 'r', k == 0 ? a->service : a->rack);
                        sqlite3_bind_text(lab, 1, a->id, -1, SQLITE_STATIC);
                        sqlite3_bind_text(lab, 2, k == 0 ? "service" : "rack", -1, SQLITE_STATIC);
                        sqlite3_bind_text(lab, 3, value, -1, SQLITE_STATIC);
                        r = sqlite_errno(sqlite3_step(lab));
                        sqlite3_reset(lab);
                }
        }
        if (r >= 0)
                r = coord_budget_set(tx, &rack, now_s(s), "sim");
        if (r >= 0)
                r = coord_budget_set(tx, &service, now_s(s), "sim");
        if (r >= 0)
                r = store_tx_commit(&tx);
        else
                store_tx_rollback(&tx);
        if (r < 0)
                return log_error_errno(r, "cannot set up the fleet: %m");

        /* Every host checks in once, healthy on 1.0, then on its own rhythm. */
        for (unsigned i = 0; i < s->n && !s->failed; i++) {
                (void) call_checkin(s, &s->a[i]);
                sim_schedule(s, rng_range(s, 1, s->o->checkin_s * 1000), EV_AGENT, (int) i);
        }
        sim_schedule(s, tick_time(s, 1), EV_TICK, -1);
        sim_schedule(s, 5000, EV_ROLLOUT, -1);
        sim_schedule(s, rng_range(s, 300000, 1200000), EV_RESTART, -1);
        return s->failed ? -EIO : 0;
}

void fleet_release(Sim *s) {
        char p[4200];

        s->db = store_db_free(s->db);
        for (const char *suffix = ""; suffix; suffix = !*suffix ? "-wal" : streq(suffix, "-wal") ? "-shm" : NULL) {
                snprintf(p, sizeof p, "%s%s", s->path, suffix);
                (void) unlink(p);
        }
        for (unsigned i = 0; s->a && i < s->n; i++)
                free(s->a[i].last_refusal);
        for (unsigned g = 0; g < N_SERVICES; g++)
                free(s->services[g].members);
        for (unsigned g = 0; s->racks && g < s->n_racks; g++)
                free(s->racks[g].members);
        free(s->racks);
        free(s->a);
        free(s->heap);
        free(s->wave_size);
        free(s->wave_failed);
        free(s->wave_acked);
        free(s->tick_us);
}

