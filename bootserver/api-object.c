/* The handlers of a numbered object (api-object.h). */
#include "api-object.h"
#include "json.h"
#include "util.h"

enum MHD_Result reply_object_error(Request *req, const char *noun, int r, char *error) {
        enum MHD_Result res;

        if (r == -EINVAL)
                res = reply_error(req, KIND_INVALID_VALUE, "%s", strempty(error));
        else if ((r == -ENXIO || r == -ENOENT) && error)
                res = reply_error(req, KIND_NOT_FOUND, "%s", error);
        else if (r == -ENXIO || r == -ENOENT)
                res = reply_error(req, KIND_NOT_FOUND, "%s: not found", noun);
        else if (r == -EBUSY)
                res = reply_error(req, KIND_CONFLICT, "%s", strempty(error));
        else
                res = reply_errno(req, r, noun);
        free(error);
        return res;
}

enum MHD_Result reply_object(Request *req, const char *noun, ObjectActFunc act, ObjectViewFunc view) {
        _cleanup_store_tx_ StoreTx *tx = NULL;
        _cleanup_json_ json_t *j = NULL;
        char *error = NULL;
        int64_t id, shown;
        int r;

        if (request_id_arg(req, &id) < 0)
                return reply_error(req, KIND_INVALID_VALUE, "'%s' is not a %s number", req->args[0], noun);
        shown = id;
        r = store_tx_begin(req->server->store, act ? STORE_TX_WRITE : STORE_TX_READ, &tx);
        if (r >= 0 && act)
                r = act(tx, req, id, &shown, &error);
        if (r >= 0)
                r = view(tx, req, shown, &j);
        if (r >= 0 && act)
                r = store_tx_commit(&tx);
        /* The reply is made outside the transaction. */
        store_tx_rollback(&tx);
        if (r == -ENOENT && !error)
                return reply_error(req, KIND_NOT_FOUND, "%s %s: not found", noun, req->args[0]);
        if (r < 0)
                return act ? reply_object_error(req, noun, r, error) : reply_errno(req, r, noun);
        return reply_json(req, 200, TAKE_PTR(j));
}
