/* Staging a root file system into the inactive slot: streamed from the
 * server with its SHA-256 computed while writing, resumable from the last
 * durable offset (kept in the agent state, so also across a reboot),
 * fsynced, then read back and verified. */
#pragma once

#include "agent.h"
#include "error.h"

/* Writes the blob at url (sha256, size bytes) into slot, continuing from
 * a->state.written. Saves progress to the state as it goes. Returns 0 when
 * the slot holds exactly the blob, verified by reading it back; -EFBIG when
 * the blob is larger than the slot; -EBADMSG when the bytes received are
 * not the blob: another digest, more than size bytes, or the whole blob in
 * answer to a resume's Range (progress is reset so the next try starts
 * over); -EIO when
 * the read-back differs; network errors as common/http.h maps them, with
 * progress kept for a resume. error gets the message the host reports. */
int slot_stage(Agent *a, char slot, const char *url, const char *sha256, uint64_t size, Error *error);

/* Reads slot's first size bytes and compares their SHA-256 with sha256.
 * Returns 0 when they match, -EBADMSG when not. */
int slot_verify(Agent *a, char slot, const char *sha256, uint64_t size);

/* The same for any open target (a whole disk at bring-up): what names it in
 * messages, cap is its size. */
int stage_fd(Agent *a, int fd, uint64_t cap, const char *what, const char *url, const char *sha256, uint64_t size,
             Error *error);

/* Reads fd's first size bytes and compares their SHA-256 with sha256. */
int verify_fd(int fd, const char *sha256, uint64_t size);
