/* The host inventory: registration (PXE or agent), labels, assigned image,
 * and what each agent last reported. */
#pragma once

#include "labels.h"
#include "store.h"

#include <jansson.h>

#include "checkin.h"
#include "seen.h"
#include "store-hosts.h"

/* Normalises a MAC address ("52:54:00:AB:CD:EF", dashes or colons) to
 * lowercase with colons into ret (18 bytes). -EINVAL when malformed. */
int mac_normalize(const char *s, char ret[18]);
/* Checks an SMBIOS UUID (8-4-4-4-12 hex) and lowercases it into ret. */
int uuid_normalize(const char *s, char ret[37]);

/* With the db lock held: finds the host by ID or MAC; ret_id gets its ID.
 * -ENOENT when unknown. */
int hosts_find(StoreTx *tx, const char *ref, char ret_id[16]);
/* A host as JSON (docs/api.md); NULL on -ENOMEM. */
json_t *host_to_json(const Host *h);
/* With the db lock held: the host as JSON (docs/api.md), or NULL. */
json_t *hosts_to_json(StoreTx *tx, const char *id);
/* With the db lock held, in the caller's transaction: registers a host seen
 * for the first time by its MAC (and UUID, may be NULL) at time now;
 * returns its ID and whether it was new. Records no sign of life: the
 * caller knows what the request proves (a check-in sets last_seen, a PXE
 * request pxe_seen). */
int hosts_ensure(StoreTx *tx, const char *mac, const char *uuid, uint64_t now, const char *actor, char ret_id[16],
                 bool *ret_new);

/* In the caller's transaction: a registration of id (MAC mac, new or not)
 * from address at time now: consumes its install secret, keeps the host
 * token's hash, hostname and facts (JSON text; NULL keeps the old ones),
 * and audits it as host.token. */
int hosts_set_token(StoreTx *tx, const char *id, const char *mac, bool is_new, const char *address,
                    const char *token_hash, const char *hostname, const char *facts, uint64_t now);
/* In its own transaction (the registration's was rolled back): audits a
 * registration of mac from address refused for why at time now, as
 * enroll.reject. */
void hosts_audit_rejected(StoreDb *store, uint64_t now, const char *actor, const char *mac, const char *address,
                          const char *why);
/* In the caller's transaction: removes the label keys in remove (an array
 * of valid keys, may be NULL) and sets those in set (an object of valid
 * keys and values, may be NULL) of host id, audited as host.labels with
 * detail at time now. */
int hosts_set_labels(StoreTx *tx, const char *id, json_t *set, json_t *remove, uint64_t now, const char *actor,
                     json_t *detail);
/* In the caller's transaction: assigns image (an image ID, or NULL for
 * none; ref is what the operator wrote) to host id, with boot ("disk",
 * "live", or NULL to keep it) and reinstall; revokes an outstanding install
 * secret and audits it as host.assign at time now. */
int hosts_assign(StoreTx *tx, const char *id, const char *image, const char *ref, const char *boot, bool reinstall,
                 uint64_t now, const char *actor);

/* Checks a check-in body's members (state, image, slot, version, message,
 * objects); returns NULL when it is good, else a static message. */
const char *hosts_checkin_invalid(json_t *body);

/* With the lock held, in a transaction: applies check-in c of host ref (ID
 * or MAC) at time now (state, versions, slots, health; a healthy report lifts
 * quarantine; the report reaches the rollouts) and returns the desired
 * image in ret_desired (image NULL when none; caller releases it).
 * -ENOENT for an unknown host. */
int hosts_checkin(StoreTx *tx, const char *ref, const CheckinRequest *c, uint64_t now, const char *actor,
                  DesiredImage *ret_desired);
/* The check-in's read-only answer, in a read transaction: when c repeats
 * the host's last report (the same state, so nothing to audit, and no
 * quarantine to lift), 1 with the desired image in ret_desired, the host's
 * last_seen noted in seen for its next flush (seen.h); 0 when the check-in
 * must go to hosts_checkin() in a write transaction. */
int hosts_checkin_unchanged(StoreTx *tx, SeenLog *seen, const char *ref, const CheckinRequest *c, uint64_t now,
                            DesiredImage *ret_desired);
/* The desired image as the check-in reply's "desired" member (JSON null
 * when none), as the store holds it; NULL on -ENOMEM. */
json_t *desired_image_to_json(const DesiredImage *d);
/* hosts_checkin() for a JSON body, answering the desired image as JSON. */
int hosts_checkin_apply(StoreTx *tx, const char *host, json_t *body, uint64_t now, const char *actor,
                        json_t **ret_desired);

/* With the lock held, in a transaction: registers a host that has no MAC,
 * known by name (FleetLock clients), in FleetLock group group at time now. */
int hosts_ensure_named(StoreTx *tx, const char *name, const char *group, uint64_t now, const char *actor,
                       char ret_id[16]);
/* A host without MAC known by name (FleetLock clients); -ENOENT if none. */
int hosts_find_named(StoreTx *tx, const char *name, char ret_id[16]);
/* With the lock held, in a transaction: moves a FleetLock host to FleetLock
 * group group (audited as host.labels by actor at time now). -EBUSY, with
 * the reason in *ret_why (caller frees), while it holds a lease or is
 * quarantined in another group: it stays where its place was counted. */
int hosts_set_fleetlock_group(StoreTx *tx, const char *id, const char *group, uint64_t now, const char *actor,
                              char **ret_why);
