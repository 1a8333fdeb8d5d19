/* What slipwayd runs beside itself: dnsmasq for DHCP/TFTP when [dhcp] mode
 * is not off. Ticked once a second by the main loop. */
#pragma once

#include "server.h"

typedef struct Supervisor Supervisor;

/* Starts the children the configuration asks for. */
int supervisor_new(Server *s, Supervisor **ret);
/* Applies a reloaded configuration (starts, restarts or stops dnsmasq). */
void supervisor_reload(Supervisor *sup, Server *s);
/* Restarts children that died (with a backoff). */
void supervisor_tick(Supervisor *sup);
/* Stops every child. */
Supervisor *supervisor_free(Supervisor *sup);
