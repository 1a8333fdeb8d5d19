/* Host file sets (docs/host-files.md): named sets of files that hosts
 * selected by their labels get, each file's content a template rendered
 * per host from its ID, name, MAC and labels. Every change of a set is a
 * new immutable version, named by the SHA-256 of its canonical JSON and
 * kept in the store (store-files.h) with the actor, and logged in the
 * audit log. What a host is to run is its image and the digest of its
 * rendered files (files_host_render()), which the check-in reply carries. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "store-hosts.h"
#include "store.h"

/* Checks a set as a client sends it ({"selector": {"K": "V", ...},
 * "files": [{"path", "mode", "owner", "content"}, ...]}, selector and mode
 * and owner optional) and makes its canonical form: members in a fixed
 * order, files by path, mode "0644" and owner "0:0" when not given. Every
 * template is parsed: a bad one is refused here, naming the file. *ret
 * gets the canonical JSON text (caller frees) and ret_digest its SHA-256.
 * -EINVAL with the reason in error. */
int file_set_canonical(const json_t *body, char **ret, char ret_digest[65], Error *error);

/* Renders template (the content of file path, for messages) for host h.
 * Variables: {{host.id}}, {{host.name}}, {{host.mac}}, {{label.KEY}}, and
 * {{"TEXT"}} for TEXT as it is (a literal "{{"). A variable the host has
 * no value for is an error naming the file and the variable (-ENOENT); a
 * malformed template -EINVAL. *ret: caller frees. */
int file_render(const char *path, const char *template, const Host *h, char **ret, Error *error);

/* Whether the selector of a set's version (its canonical JSON, NULL for a
 * deletion: false) selects host h. */
bool file_set_selects(const char *spec, const Host *h);

/* The files of host id: every set whose selector its labels match, each at
 * the version the host is pinned to or else the set's live one, rendered. *ret (may be NULL) gets {"digest": HEX, "files": [{"path",
 * "mode", "owner", "content", "set", "version"}, ...]} by path, and
 * ret_digest (may be NULL) their host_files_digest(), which is what the
 * host stages and applies. Two sets that give the same path are an error naming both
 * (-EEXIST); a render error as file_render(); -ENOENT with no message for
 * a host that is not there (when there is any set to read it for). */
int files_host_render(StoreTx *tx, const char *id, json_t **ret, char ret_digest[65], Error *error);

/* A set's version for the API: {"name", "version", "digest", "actor",
 * "created", "deleted"} and, when spec is given (the canonical JSON), its
 * "selector" and "files". NULL when out of memory. */
json_t *file_set_version_json(const char *name, int64_t seq, const char *digest, const char *spec, const char *actor,
                              int64_t created);
