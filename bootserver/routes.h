/* The route tables of slipwayd's resources, one per api-*.c file, each
 * ending in an entry whose method is NULL. main.c hands them to
 * server_start() in the order they are matched. */
#pragma once

#include "server.h"

extern const Route metrics_routes[];
extern const Route blob_routes[];
extern const Route image_routes[];
extern const Route host_routes[];
extern const Route lease_routes[];
extern const Route budget_routes[];
extern const Route rollout_routes[];
extern const Route fleetlock_routes[];
extern const Route ipxe_routes[];
extern const Route audit_routes[];
extern const Route instance_routes[];
extern const Route file_routes[];
extern const Route ui_routes[];
extern const Route whoami_routes[];
extern const Route pipeline_routes[];
