/* Fault injection for the crash-safety tests: SLIPWAY_CRASH_AT=NAME[:N]
 * makes the program kill itself with SIGKILL the Nth time (default 1st) it
 * passes crashpoint(NAME), as a power cut would stop it.
 * SLIPWAY_PAUSE_AT=NAME[:N] stops it there (SIGSTOP) instead, so a test can
 * change the world (kill the server) before it goes on. Without either
 * variable a crash point costs two getenv() calls.
 *
 * The agent has a crash point at every step of an update (docs/agent.md),
 * the builder one at the end of every phase of a build
 * (docs/man/slipway-build.1). A test hook, not an interface. */
#pragma once

/* Safe to call from several threads. */
void crashpoint(const char *name);
