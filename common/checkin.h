/* What an agent and slipwayd say to each other about a host (docs/api.md,
 * "Hosts" and "Reboot leases"): the check-in and its reply, the lease
 * request and release and their replies. Each is a struct with its JSON
 * form both ways, so that the two sides cannot drift apart.
 *
 * A parser (..._from_json) checks what slipwayd accepts: every member's
 * type and cap, and no member it does not know. A refusal is one Error
 * whose message names the member, as the server's 400 reply says it
 * ("'state': not a host state"): -EINVAL for a request, -EBADMSG for a
 * reply. A writer (..._to_json) makes what the parser accepts, or refuses
 * (-EINVAL) a struct it would not. Parsed strings are copies the struct
 * owns; ..._release() frees them. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "error.h"
#include "hoststate.h"
#include "macro.h"

/* Caps of a check-in's members. */
#define CHECKIN_VERSION_MAX 64
#define CHECKIN_MESSAGE_MAX 4096
/* The longest a lease request may wait at the server, in seconds. */
#define LEASE_WAIT_MAX_SEC 60

/* POST /v1/hosts/<id>/checkin. */
typedef struct CheckinRequest {
        HostState state;
        char *version;      /* what runs; NULL when not known */
        char *image;        /* the image ID of what runs, or NULL */
        char booted_slot;   /* 'a', 'b', or 0 when not known */
        json_t *slots;      /* objects the server keeps as sent; NULL when not sent */
        json_t *health;
        json_t *facts;
        char *message;      /* why the state, for people; at most CHECKIN_MESSAGE_MAX bytes */
        char *failed_image; /* an image that failed here and is not tried again, or NULL */
} CheckinRequest;

/* The image the server wants the host to run. */
typedef struct DesiredImage {
        char *image;     /* its ID; NULL when nothing is assigned */
        char *name;
        char *version;
        char *manifest;  /* the digests of manifest.json and manifest.sig */
        char *signature;
        bool rollback;   /* a downgrade the server allows */
        char *files;     /* the digest of the host's files (docs/host-files.md);
                          * NULL when the server did not say: keep what is staged */
} DesiredImage;

/* The reply to a check-in. */
typedef struct CheckinReply {
        DesiredImage desired;      /* desired.image is NULL when nothing is assigned */
        uint64_t checkin_interval; /* seconds; 0 when the server did not say */
} CheckinReply;

/* POST /v1/hosts/<id>/lease: asks for the reboot lease (or renews it). */
typedef struct LeaseRequest {
        uint64_t wait; /* seconds the server may hold a refusal, 0 to LEASE_WAIT_MAX_SEC */
} LeaseRequest;

/* Its reply. */
typedef struct LeaseReply {
        bool granted;
        uint64_t epoch;       /* granted: the fencing token */
        uint64_t expires;     /* granted: Unix seconds */
        char *reason;         /* refused: why, or NULL */
        char *group;          /* refused: the group whose budget refused, or NULL */
        uint64_t retry_after; /* refused: seconds */
        uint64_t waited;      /* seconds the request waited at the server; 0 when it did not */
} LeaseReply;

/* DELETE /v1/hosts/<id>/lease: gives the lease back. */
typedef struct LeaseRelease {
        uint64_t epoch; /* only this lease; 0: whichever the host holds */
} LeaseRelease;

/* Its reply. */
typedef struct LeaseReleaseReply {
        bool released; /* false when there was none (or the epoch was stale) */
} LeaseReleaseReply;

/* Checks a check-in body's members as slipwayd does (state, image,
 * booted_slot, failed_image, version, message, the objects); returns NULL
 * when they are good, else a static message naming the first bad one.
 * Unknown members are not its business (checkin_request_from_json() refuses
 * them). */
const char *checkin_request_check(const json_t *body);

int checkin_request_from_json(const json_t *j, CheckinRequest *ret, Error *error);
/* A message over CHECKIN_MESSAGE_MAX bytes is cut there (at a character
 * boundary) rather than refused: the report goes through. */
int checkin_request_to_json(const CheckinRequest *r, json_t **ret, Error *error);
void checkin_request_release(CheckinRequest *r);

int checkin_reply_from_json(const json_t *j, CheckinReply *ret, Error *error);
int checkin_reply_to_json(const CheckinReply *r, json_t **ret, Error *error);
void checkin_reply_release(CheckinReply *r);

void desired_image_release(DesiredImage *d);

/* j may be NULL: an empty body asks without waiting. */
int lease_request_from_json(const json_t *j, LeaseRequest *ret, Error *error);
int lease_request_to_json(const LeaseRequest *r, json_t **ret, Error *error);

int lease_reply_from_json(const json_t *j, LeaseReply *ret, Error *error);
int lease_reply_to_json(const LeaseReply *r, json_t **ret, Error *error);
void lease_reply_release(LeaseReply *r);

/* j may be NULL: an empty body gives back whichever lease is held. */
int lease_release_from_json(const json_t *j, LeaseRelease *ret, Error *error);
int lease_release_to_json(const LeaseRelease *r, json_t **ret, Error *error);

int lease_release_reply_from_json(const json_t *j, LeaseReleaseReply *ret, Error *error);
int lease_release_reply_to_json(const LeaseReleaseReply *r, json_t **ret, Error *error);
