/* The agent's cycle: check in, stage the desired image into the inactive
 * slot, take a reboot lease, reboot, judge the new slot by its health
 * checks, bless it or fall back. docs/agent.md draws the state machine. */
#pragma once

#include <jansson.h>

#include "agent.h"
#include "checkin.h"
#include "hoststate.h"

struct Manifest;

/* Sets up the backend, finds out what booted and loads the state; changes
 * nothing (what `status` needs). */
int agent_load(Agent *a);

/* Applies the booted slot's host files (files_apply()) under files-root,
 * or, for the sim backend, SIM_DIR/root unless files-root is set. Health
 * checks find that root in SLIPWAY_FILES_ROOT. */
int agent_apply_files(Agent *a);

/* agent_load(), then judges a slot that was just
 * switched to (health, bless or mark bad and reboot). */
int agent_start(Agent *a);

/* One round: check in, act on the answer. Returns the seconds to wait
 * before the next round, or a negative errno. */
int agent_round(Agent *a);

/* Rounds until SIGTERM (or once when once is true). */
int agent_loop(Agent *a, bool once);

/* Whether agent_loop() got SIGTERM or SIGINT. */
bool agent_stop_requested(void);

/* Registers with the server using secret (the install boot's one-time
 * secret or the site-wide enrollment token) and keeps the host token. */
int agent_register(Agent *a, const char *mac, const char *secret);

/* Writes the state file. Logs on failure. */
int agent_save(Agent *a);

/* Records what the host says next (state and message) and saves. */
int agent_set_report(Agent *a, HostState state, const char *message);

/* Sends a check-in with the state, slots and (may be NULL) a health
 * report; *ret_desired (may be NULL) gets the server's desired image (its
 * image NULL when nothing is wanted; the caller releases it). -ENOTCONN
 * when not registered, -EBADMSG when the server's answer is malformed. */
int agent_checkin(Agent *a, json_t *health, DesiredImage *ret_desired);

/* Fetches the desired image's manifest and signature and checks them: the
 * manifest is the image, the signature verifies against a trusted key, the
 * architecture is ours, it is no downgrade unless a rollback, and it has a
 * rootfs, kernel and initrd. error gets the reason the host reports. */
int agent_fetch_manifest(Agent *a, const DesiredImage *desired, struct Manifest **ret, Error *error);

/* Of several servers: records the one the last request reached (for
 * status, and to start with it next time) and logs a change. Nothing when
 * no server answered. */
void agent_note_server(Agent *a);

/* After a download that failed with r (why says how): when no server
 * answered (http_error_unreachable()) and another is left, counting tried
 * so far, moves the client to the next and returns true. A download that
 * goes on there resumes where it stopped: blobs have the same path on
 * every server. */
bool agent_failover(Agent *a, int r, const char *why, size_t *tried);

/* URL of a blob on the current server; caller frees. */
char *agent_blob_url(Agent *a, const char *hex);
