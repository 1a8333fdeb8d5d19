/* slipway-build push: publishes an image from the local store on a
 * bootserver. A server that has the same name:version as another image
 * fails the push before anything is sent (GET /v1/images/NAME:VERSION).
 * Only the blobs the server lacks are uploaded (HEAD, then PUT), then the
 * manifest is published (POST /v1/images), which the server verifies
 * against its trusted keys. A server of several instances makes the image
 * visible once its blobs are on `replicas` of them (202, "replicating"):
 * the push waits for that, polling GET /v1/images/ID. */
#pragma once

#include "store.h"

typedef struct PushOptions {
        const char *url;     /* the bootserver, http:// or https:// */
        const char *token;   /* admin token, or NULL */
        const char *ca_file; /* PEM bundle for https, or NULL: the system's */
        int quiet;           /* no progress */
        uint64_t replicas_timeout; /* seconds to wait for a replicating image; 0 = not at all */
} PushOptions;

/* Pushes the image ref (ID, ID prefix, name:version or name) of store s.
 * Progress goes to stderr, the summary line to stdout. Logs one line on
 * failure, naming the image and what the server said. Returns 0 or a
 * negative errno: -EHOSTUNREACH and the like when the server cannot be
 * reached, -EEXIST when the server has name:version as another image,
 * -ETIMEDOUT when the image did not reach its copies in time (it stays
 * replicating on the server), else as api_request() maps the server's
 * answer. */
int push_image(Store *s, const char *ref, const PushOptions *opts);
