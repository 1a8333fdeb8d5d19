/* Staging a root file system into the inactive slot: streamed from the
 * server in chunks, each hashed (SHA-256) as it fills, written by a second
 * thread (O_DIRECT where the file takes it) and read back from the device
 * and compared while the next ones arrive; resumable from the last durable
 * offset (kept in the agent state, so also across a reboot); fsynced. */
#pragma once

#include "agent.h"
#include "error.h"

/* Writes the blob at url (sha256, size bytes) into slot, continuing from
 * a->state.written rounded down to 4 KiB. Saves progress to the state as
 * it goes (a multiple of 4 KiB until the end). Returns 0 when the slot
 * holds exactly the blob, every byte read back; -EFBIG when the blob is
 * larger than the slot; -EBADMSG when the bytes received are not the
 * blob: another digest, more than size bytes, or the whole blob in answer
 * to a resume's Range (progress is reset so the next try starts over);
 * -EIO when the device returns other bytes than were written (what was
 * read back before is kept); network and write errors as common/http.h
 * maps them, with progress kept for a resume. error gets the message the
 * host reports. */
int slot_stage(Agent *a, char slot, const char *url, const char *sha256, uint64_t size, Error *error);

/* Reads slot's first size bytes and compares their SHA-256 with sha256.
 * Returns 0 when they match, -EBADMSG when not. */
int slot_verify(Agent *a, char slot, const char *sha256, uint64_t size);

/* The same for any open target (a whole disk at bring-up): what names it in
 * messages, cap is its size. fd's O_DIRECT flag is set while writing and
 * cleared before it returns. */
int stage_fd(Agent *a, int fd, uint64_t cap, const char *what, const char *url, const char *sha256, uint64_t size,
             Error *error);

/* Reads fd's first size bytes and compares their SHA-256 with sha256. */
int verify_fd(int fd, const char *sha256, uint64_t size);
