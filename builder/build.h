/* The build pipeline: definition → lock → RPMs → staging root → artifacts →
 * signed manifest → store. */
#pragma once

#include <stdint.h>

#include "definition.h"

typedef struct BuildOptions {
        const char *store_dir;
        const char *cache_dir;
        const char *work_dir;   /* staging area; default cache_dir/work */
        const char *key_path;   /* Ed25519 private key (PEM) */
        const char *lock_path;  /* written after resolving, read with locked */
        bool locked;            /* build from the lock alone, no resolution */
        bool no_disk;           /* skip the GPT disk image */
        bool keep_work;         /* keep the staging root afterwards */
        bool force;             /* rebuild even when the inputs are unchanged */
        bool timings;           /* print each phase's time, one line on stderr */
        unsigned parallel;      /* concurrent downloads */
        uint64_t epoch;         /* SOURCE_DATE_EPOCH */
        const char *accel;      /* libguestfs: auto, kvm or tcg */
        int quiet;
} BuildOptions;

/* Builds and publishes def. On success ret_id (65 bytes) holds the image ID.
 * Every failure is logged once, naming what failed; nothing is published. */
int build_image(const ImageDef *def, const BuildOptions *opts, char ret_id[65]);
