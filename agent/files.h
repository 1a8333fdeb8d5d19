/* Host files on the host (docs/host-files.md): the files slipwayd renders
 * for this host are staged with a slot, as STATE_DIR/files/<slot>.json
 * (one file, replaced atomically), and applied from the booted slot's copy
 * into the root at boot: a fallback to the other slot brings back its
 * files. */
#pragma once

#include "agent.h"
#include "error.h"

/* Whether slot's staged files have digest (NULL: whatever it has). A slot
 * without staged files has the digest of no files. */
bool files_slot_has(Agent *a, char slot, const char *digest);

/* The digest of slot's staged files into ret (no files: the digest of
 * none). -EBADMSG for a copy that does not parse. */
int files_slot_digest(Agent *a, char slot, char ret[65]);

/* Stages the files for slot: want NULL (the server named no digest) keeps
 * the booted slot's files for it; else fetches this host's files from the
 * server, checks them (host_files_check()) and that their digest is want
 * (-ESTALE when the sets changed meanwhile: the next round asks again),
 * and replaces the slot's copy atomically (crash point "files-staged"
 * after it). error gets the reason. */
int files_stage(Agent *a, char slot, const char *want, Error *error);

/* Applies the booted slot's files under root ("/" on a host): each file
 * written atomically with its mode and owner (unchanged ones are left
 * alone), and the files an earlier apply wrote that the slot does not have
 * removed. What was applied is kept in STATE_DIR/files/applied.json,
 * written first with the paths about to be written too, so that a crash
 * leaves nothing a later apply does not know of (crash points
 * "files-applying" after the first file written, "files-applied" after
 * the record, both only when something changed). Returns
 * the number of files written or removed, or a negative errno, logged. */
int files_apply(Agent *a, const char *root);
