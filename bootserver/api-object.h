/* What the handlers of a numbered object (a rollout, a pipeline) share:
 * reading or acting on the one the path's first wildcard names, and the
 * error replies of their actions. */
#pragma once

#include "server.h"

/* Acts on object id in tx (a write transaction) as req asks; the object to
 * show after it goes in *ret_id (id itself, or one the action made), a
 * message for an error in *ret_error (the caller frees). */
typedef int (*ObjectActFunc)(StoreTx *tx, Request *req, int64_t id, int64_t *ret_id, char **ret_error);

/* Object id's JSON in *ret (a new reference); -ENOENT when there is none. */
typedef int (*ObjectViewFunc)(StoreTx *tx, Request *req, int64_t id, json_t **ret);

/* Replies to a request for the object of kind noun ("rollout") the path's
 * first wildcard numbers: its view, or with act, its view after act, in
 * one write transaction committed when both succeeded. 200 with the view;
 * a number that is not one is invalid_value, an object not found
 * not_found; an action's other errors as reply_object_error(), a read's
 * as reply_errno(). */
enum MHD_Result reply_object(Request *req, const char *noun, ObjectActFunc act, ObjectViewFunc view);

/* The reply to an action on an object of kind noun that failed with r:
 * -EINVAL invalid_value, -ENOENT or -ENXIO not_found, -EBUSY conflict,
 * each with error's message (taken; may be NULL); others as reply_errno(). */
enum MHD_Result reply_object_error(Request *req, const char *noun, int r, char *error);
