/* The store of the host inventory: the hosts table and host labels, as
 * typed values. Implemented by store-hosts.c. Every function runs in
 * the caller's transaction; reads return -ENOENT for a host that is not
 * there, writes to a missing host do nothing. Strings handed back are the
 * caller's to free. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "checkin.h"
#include "macro.h"
#include "store.h"

/* A host ID: "h-" and 12 hex digits. */
#define HOST_ID_MAX 16

typedef struct HostLabel {
        char *key;
        char *value;
} HostLabel;

/* A host as the inventory holds it. Strings may be NULL where the column
 * is; json members are objects or NULL. Times are Unix seconds, 0 when
 * never. */
typedef struct Host {
        char id[HOST_ID_MAX];
        char *mac, *uuid, *hostname;
        char *image; /* assigned image ID */
        char *boot;  /* "disk" or "live" */
        char *state;
        bool installed;
        char *version, *current_image, *booted_slot;
        json_t *slots, *health, *facts;
        char *message;
        uint64_t registered, last_seen, pxe_seen;
        bool has_lease;
        uint64_t lease_epoch, lease_expires;
        bool quarantined;
        char *enroll_address; /* NULL when no install secret is outstanding */
        uint64_t enroll_expires;
        HostLabel *labels; /* sorted by key */
        size_t n_labels;
} Host;

void host_release(Host *h);

/* The install secret outstanding for a host: NULL members when none. */
typedef struct HostEnrollment {
        char id[HOST_ID_MAX];
        char *nonce;
        char *address;
        uint64_t expires;
} HostEnrollment;

void host_enrollment_release(HostEnrollment *e);

/* The image a network boot loads: from the image catalog. */
typedef struct BootImage {
        char *name, *version, *signature;
        char *manifest; /* the digest of manifest.json */
        char *kernel, *initrd, *rootfs; /* artifact digests, NULL when the image has none */
} BootImage;

void boot_image_release(BootImage *b);

/* Finds the host whose ID is id or whose MAC is mac (either may be NULL). */
int store_host_find(StoreTx *tx, const char *id, const char *mac, char ret_id[HOST_ID_MAX]);
/* Finds the host without MAC known by name. */
int store_host_find_named(StoreTx *tx, const char *name, char ret_id[HOST_ID_MAX]);
/* The whole host, labels included. */
int store_host_get(StoreTx *tx, const char *id, Host *ret);
/* The IDs of the hosts with label key=value (key NULL: any) and state
 * (NULL: any), sorted; a NULL-terminated strv. */
int store_host_list(StoreTx *tx, const char *key, const char *value, const char *state, char ***ret_ids);

/* A new host seen by its MAC (uuid may be NULL). -EEXIST if taken. */
int store_host_insert(StoreTx *tx, const char *id, const char *mac, const char *uuid, uint64_t now);
/* A new host without MAC, by name, healthy and seen at now, in FleetLock
 * group group. */
int store_host_insert_named(StoreTx *tx, const char *id, const char *name, const char *group, uint64_t now);
int store_host_set_uuid(StoreTx *tx, const char *id, const char *uuid);
/* A registration: the host token's hash; hostname and facts (JSON text)
 * replace the old ones unless NULL. */
int store_host_set_token(StoreTx *tx, const char *id, const char *token_hash, const char *hostname,
                         const char *facts, uint64_t now);
int store_host_label_set(StoreTx *tx, const char *id, const char *key, const char *value);
int store_host_label_remove(StoreTx *tx, const char *id, const char *key);
/* An operator's assignment: image (NULL: none), boot unless NULL, and
 * installed cleared when reinstall. */
int store_host_assign(StoreTx *tx, const char *id, const char *image, const char *boot, bool reinstall);
/* The firmware of id asked for its script at now. */
int store_host_pxe_seen(StoreTx *tx, const char *id, uint64_t now);

/* The check-in's first read: the host by ID or MAC, its state before (NULL
 * when none) and whether it is quarantined. */
int store_host_checkin_find(StoreTx *tx, const char *ref, const char *mac, char ret_id[HOST_ID_MAX],
                            char **ret_state, bool *ret_quarantined);
/* Records a check-in of id at now: what the agent reported, and whether
 * its state counts as installed. A check-in that changes nothing (the same
 * report within the same second) writes nothing. */
int store_host_checkin(StoreTx *tx, const char *id, const CheckinRequest *c, bool installed, uint64_t now);
/* Whether check-in c repeats what host ref (ID or MAC) last reported, and
 * the host is not quarantined: 1 with its ID in ret_id and its last_seen
 * (0 when never), 0 when the check-in must be written (or the host is
 * unknown). A read. */
int store_host_checkin_same(StoreTx *tx, const char *ref, const char *mac, const CheckinRequest *c, bool installed,
                            char ret_id[HOST_ID_MAX], uint64_t *ret_last_seen);
/* Moves id's last_seen to at, unless it is already later. */
int store_host_seen(StoreTx *tx, const char *id, uint64_t at);
/* The image id is to run: desired.image NULL when none is assigned. */
int store_host_desired(StoreTx *tx, const char *id, DesiredImage *ret);

/* The FleetLock group of id (NULL when none), whether it holds a lease and
 * whether it is quarantined. */
int store_host_fleetlock(StoreTx *tx, const char *id, char **ret_group, bool *ret_holds, bool *ret_quarantined);

/* The outstanding install secret of id, or of the host with MAC mac. */
int store_host_enrollment(StoreTx *tx, const char *id, HostEnrollment *ret);
int store_host_enrollment_by_mac(StoreTx *tx, const char *mac, HostEnrollment *ret);
/* Sets id's install secret; all NULL/0 forgets it. */
int store_host_set_enrollment(StoreTx *tx, const char *id, const char *nonce, const char *address,
                              uint64_t expires);

/* The catalog's answer for a network boot of image. */
int store_boot_image(StoreTx *tx, const char *image, BootImage *ret);

/* The groups of id: its labels as "key=value", sorted by key; a
 * NULL-terminated strv (NULL when it has none), the caller's. A failure
 * leaves tx usable on both drivers (a savepoint on PostgreSQL), so a
 * caller may go on without the groups. */
int store_host_groups(StoreTx *tx, const char *id, char ***ret);
