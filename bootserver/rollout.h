/* Rollouts: the state machine's functions are coord_rollout_*() in
 * coordinator.h; the spec they run is rollout-spec.h's. */
#pragma once

#include "rollout-spec.h"
