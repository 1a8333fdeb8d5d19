/* The [webhook NAME] sections of slipwayd's configuration (config.h): read
 * key by key, checked once the file is in. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* A [webhook NAME] section: where the audit events it names go, signed
 * with its secret (webhooks.h; docs/operations.md, "Webhooks"). */
typedef struct WebhookConfig {
        char *name;
        char *url;         /* http:// or https:// */
        char *secret;      /* the HMAC-SHA256 key */
        char **events;     /* "rollout.*", "rollout.done", "*"; default rollout.* and pipeline.* */
        uint64_t retries;  /* attempts after the first before an event is given up (5) */
        uint64_t timeout;  /* seconds an attempt may take (10) */
        char *file;        /* where it was set, for messages */
        unsigned line;     /* of its first key */
} WebhookConfig;

/* The most webhooks one configuration may name. */
#define WEBHOOKS_MAX 32

/* One key of section [webhook name] at file:line: url, secret, events (a
 * comma- or blank-separated list of actions and "family.*" patterns),
 * retries, timeout. The webhook is added to *list (n of them) the first
 * time its name is seen. An unknown key or a bad value is -EINVAL with
 * error naming file:line. */
int webhook_config_key(WebhookConfig **list, size_t *n, const char *file, unsigned line, const char *name,
                       const char *key, const char *value, Error *error);

/* Every webhook has a URL and a secret; logs one message naming the file
 * and line of the first that does not, and returns -EINVAL. */
int webhook_configs_check(const WebhookConfig *list, size_t n);

/* Frees the list and its strings; NULL is fine. */
void webhook_configs_free(WebhookConfig *list, size_t n);

/* Whether action is one of the events the webhook is sent (an action named
 * as is, a family "rollout.*", or "*"). */
bool webhook_config_wants(const WebhookConfig *w, const char *action);
