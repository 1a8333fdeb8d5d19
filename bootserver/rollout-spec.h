/* Rollout specs (docs/api.md, Rollouts) without the database: the checks
 * made when a rollout starts are the ones its tick reads the stored spec
 * with, and a fuzzer drives them alone. Resolving the image is the
 * caller's (coord_rollout_plan(), coord_rollout_start()). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The caps of a spec, in docs/api.md: beyond them a spec is invalid. */
#define ROLLOUT_WAVES_MAX 16
#define ROLLOUT_BAKE_MAX (30 * 86400)
#define ROLLOUT_SELECTOR_MAX 16
#define ROLLOUT_ORDER_VALUES_MAX 64
#define ROLLOUT_WINDOWS_MAX 64
#define ROLLOUT_BUDGETS_MAX 64

typedef struct RolloutSpec {
        const char *image;    /* the reference as given, NULL for files alone; borrowed */
        json_t *selector;     /* {"k": "v", ...} or NULL; borrowed */
        size_t n_waves;
        /* Each wave end: a count (pct -1) or a percentage (count -1). */
        int64_t wave_count[ROLLOUT_WAVES_MAX], wave_pct[ROLLOUT_WAVES_MAX];
        uint64_t bake;        /* seconds, at most ROLLOUT_BAKE_MAX */
        int64_t fail_count, fail_pct;
        bool rollback_on_failure;
        char files_name[64];   /* the file set it moves, "" for none */
        int64_t files_version; /* its version, 0 for the newest */
        const char *order_key; /* NULL when there is no order; borrowed */
        json_t *order_values;  /* array of label values; borrowed */
        json_t *budgets;       /* {"SELECTOR": BUDGET} or NULL; borrowed */
} RolloutSpec;

/* Parses and checks spec j. *ret borrows from j, which must outlive it. On
 * failure *ret_error gets a message naming the member (caller frees) and
 * the result is -EINVAL (-ENOMEM when the message cannot be made). */
int rollout_spec_parse(json_t *j, RolloutSpec *ret, char **ret_error);

/* Sets *ret_error to a message made from format (caller frees); returns
 * -EINVAL, or -ENOMEM when the message cannot be made. */
int rollout_spec_error(char **ret_error, const char *format, ...) _printf_(2, 3);

/* The stored spec text of a running rollout, read with the parser that
 * accepted it at the start. *ret keeps only the numbers (image, selector,
 * order and budgets are NULL). Returns 0, 1 with *ret_why (caller frees) when the
 * text cannot be read, or -ENOMEM. */
int rollout_spec_parse_stored(const char *text, RolloutSpec *ret, char **ret_why);

/* The cumulative host counts at the end of each of s's waves for n hosts:
 * never decreasing, never above n, the last one n. */
void rollout_wave_ends(const RolloutSpec *s, size_t n, size_t ret[ROLLOUT_WAVES_MAX]);

/* The plan's estimate in seconds: reboot_estimate for each wave that has
 * hosts (ends as from rollout_wave_ends()), plus the bake between waves. */
uint64_t rollout_estimate(const RolloutSpec *s, const size_t ends[ROLLOUT_WAVES_MAX], uint64_t reboot_estimate);

/* The wave (0-based) of the i-th host in rollout order, for ends as from
 * rollout_wave_ends(). */
int rollout_wave_of(const size_t ends[ROLLOUT_WAVES_MAX], size_t n_waves, size_t i);
