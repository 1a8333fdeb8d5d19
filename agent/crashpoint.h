/* Fault injection: SLIPWAY_CRASH_AT=NAME[:N] makes the agent kill itself
 * with SIGKILL the Nth time (default 1st) it passes crashpoint(NAME), as a
 * power cut would stop it. Tests use it to prove every step is crash-safe.
 * SLIPWAY_PAUSE_AT=NAME[:N] stops the agent there (SIGSTOP) instead, so a
 * test can change the world (kill the server) before it goes on. */
#pragma once

void crashpoint(const char *name);
