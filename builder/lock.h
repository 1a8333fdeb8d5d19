/* The lock: the exact package set an image is built from (NEVRA, sha256 and
 * location of every RPM, and the key that signed it) and the digest of each
 * repository's metadata at resolution time. Written beside the image;
 * `--locked` builds from it alone. */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "macro.h"

typedef struct LockRepo {
        char *id;
        char *baseurl;       /* absolute URL: the mirror that served repomd.xml when resolved */
        char **mirrors;      /* every mirror, in the order they are tried; NULL when baseurl is the only one */
        char *repomd_sha256; /* sha256 of repodata/repomd.xml when resolved */
        char *repomd_key;    /* fingerprint of the key whose signature over repomd.xml was verified, or NULL */
        bool gpgcheck;       /* whether its packages' signatures were checked */
        char **keys;         /* fingerprints of the keys that signed them, sorted; may be NULL */
} LockRepo;

typedef struct LockPackage {
        char *name;
        char *epoch; /* "0" when none */
        char *version;
        char *release;
        char *arch;
        char *repo_id;  /* which LockRepo it comes from */
        char *location; /* path relative to the repo's baseurl */
        char *sha256;   /* of the whole .rpm file */
        uint64_t size;  /* of the whole .rpm file */
        char *key_id;   /* ID of the key whose signature was checked; NULL when none was */
} LockPackage;

/* A module stream that was active for the resolution. */
typedef struct LockModule {
        char *name;
        char *stream;
        char *profile;   /* the profile installed, or NULL */
        bool is_default; /* active as the module's default stream, not enabled */
        char *required_by; /* "NAME:STREAM" of the stream that required it, or NULL */
} LockModule;

/* What an "@GROUP" or "@^ENVIRONMENT" request expanded to. */
typedef struct LockGroup {
        char *request;   /* as the definition has it, "@core" */
        char **ids;      /* the groups and environments it matched */
        char **packages; /* names, and "(NAME if REQUIRED)" for conditional ones */
} LockGroup;

typedef struct Lock {
        char *arch;
        char **requested; /* the definition's package list */
        LockModule *modules; /* active module streams, by name; written only when any */
        size_t n_modules;
        LockGroup *groups; /* expanded group requests; written only when any */
        size_t n_groups;
        LockRepo *repos;
        size_t n_repos;
        LockPackage *packages; /* sorted by name, then arch */
        size_t n_packages;
} Lock;

/* Frees n modules or groups and the array that holds them. */
void lock_modules_free(LockModule *m, size_t n);
void lock_groups_free(LockGroup *g, size_t n);
Lock *lock_free(Lock *l);
static inline void lock_freep(Lock **l) {
        lock_free(*l);
}
#define _cleanup_lock_free_ _cleanup_(lock_freep)

/* "name-[epoch:]version-release.arch"; caller frees. */
char *lock_package_nevra(const LockPackage *p);
/* The full URL of the package: its repo's baseurl joined with location. */
char *lock_package_url(const Lock *l, const LockPackage *p);
/* The same from the mirror at base. */
char *lock_package_url_at(const LockPackage *p, const char *base);
const LockRepo *lock_find_repo(const Lock *l, const char *id);

/* Sorts packages by name, then arch. */
void lock_sort(Lock *l);

/* JSON form (the lock file, and the "lock" member of manifest.json). Keys are
 * sorted so the bytes are stable. */
int lock_to_json(const Lock *l, json_t **ret);
/* The same without what checking the signatures adds (each repository's
 * gpgcheck and keys, each package's key_id): the lock as resolved. */
int lock_to_json_unchecked(const Lock *l, json_t **ret);
/* Validates everything: "format" 1 or 2, every field present and typed,
 * sha256 syntax, names, locations relative and without "..", repo ids known,
 * sizes > 0, key IDs and fingerprints (format 2). Logs one error naming the
 * field and package; -EINVAL. A format 1 lock (from before signatures were
 * checked) reads with gpgcheck off and no keys. */
int lock_from_json(const json_t *j, Lock **ret);

/* Writes the lock atomically (sorted keys, indented). Does not log. */
int lock_write(const Lock *l, const char *path);
/* The same for a lock as resolved, before any signature was checked
 * (lock_to_json_unchecked(), format 1): what `slipway-build resolve`
 * writes. */
int lock_write_unchecked(const Lock *l, const char *path);
/* Reads and validates a lock file. Logs every error except -ENOENT, which
 * the caller reports. */
int lock_read(const char *path, Lock **ret);
