/* The TLS client contexts of the agent's HTTP client (httpc.c): one per
 * CA file for the process, made when first needed and kept, so that the
 * CA store is loaded once, not at each connection. Safe to call from
 * several threads. Library code: nothing here logs. */
#pragma once

#include <openssl/ssl.h>

/* Gives a reference to the client context that trusts ca_file (a PEM
 * bundle; NULL: the system's store), TLS 1.2 or later, peers verified.
 * The caller drops it with SSL_CTX_free(). The context is made again when
 * the file changed since it was loaded (its inode, size or time). Returns
 * 0, -EPROTO when the CA file cannot be loaded (OpenSSL's error queue says
 * why), or -ENOMEM. */
int tls_context_get(const char *ca_file, SSL_CTX **ret);
