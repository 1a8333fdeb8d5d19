/* Enrollment secrets of install boots. A host marked for install gets one
 * secret per install: issued on the first install-script fetch, bound to
 * the address that fetched it, and never handed to another address while
 * it is valid. The secret is an HMAC of the host, its MAC, that address and
 * a random nonce under a key kept in the state directory (enroll.key), so
 * the same boot fetching its script again gets the same secret, and the
 * database holds no secret. docs/architecture.md has the threat model. */
#pragma once

#include "store.h"

#include <stdint.h>

/* A numeric IPv4 or IPv6 address and its NUL. */
#define ENROLL_ADDRESS_MAX 46

/* The HMAC key in state_dir/enroll.key (64 hex digits), made on first use
 * (mode 0600). -EBADMSG when the file holds anything else. */
int enroll_key(const char *state_dir, char ret[65]);

/* The secret for host (MAC mac) fetched by address under nonce: 64 hex. */
void enroll_derive(const char *key, const char *host, const char *mac, const char *address, const char *nonce,
                   char ret[65]);

typedef enum EnrollIssue {
        ENROLL_AGAIN, /* the same secret again: address holds the valid one */
        ENROLL_NEW,   /* none was valid: a new one, living ttl seconds */
        ENROLL_HELD,  /* another address holds the valid one: none */
} EnrollIssue;

/* With the lock held, in a transaction: the install secret of host (MAC
 * mac) for the boot at address, at time now, in ret_secret (untouched when
 * ENROLL_HELD). Returns an EnrollIssue or a negative errno. A new secret is
 * audited as enroll.issue, a refusal as enroll.refuse (and logged): the
 * caller commits either. */
int enroll_issue(StoreTx *tx, const char *state_dir, const char *host, const char *mac, const char *address,
                 uint64_t ttl, uint64_t now, char ret_secret[65]);

/* With the lock held: whether secret, presented by address at now, is the
 * valid install secret of the host with MAC mac. Returns 1 when it is, 0
 * when not with the reason in *ret_why (for the log and the audit, not for
 * the client; caller frees). The caller consumes it with enroll_revoke(). */
int enroll_check(StoreTx *tx, const char *state_dir, const char *mac, const char *address, const char *secret,
                 uint64_t now, char **ret_why);

/* With the lock held, in a transaction: forgets host's secret (used, or
 * revoked by an operator who assigned the host's image again). */
int enroll_revoke(StoreTx *tx, const char *host);
