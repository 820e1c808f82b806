/*
 * tls — the OpenSSL 3 helpers smtpd and send share.
 *
 * Contexts: tls_server_ctx (certificate chain and key in PEM, minimum
 * protocol version, TLS 1.2 cipher list and TLS 1.3 suites, no
 * renegotiation, stateless session tickets whose keys are shared by every
 * process through tls_ticket_keys) and tls_client_ctx (system CA store or
 * a CA file; verification is decided per connection by the caller).
 *
 * I/O on a non-blocking socket, two flavours:
 *   tls_nb_*    one attempt: >0 / 0 (end) / -1 with errno EAGAIN and the
 *               poll events the TLS layer waits for in *events, or another
 *               errno (EPROTO for a TLS failure);
 *   tls_*_wait  the same with poll() until done or timeout_ms (ETIMEDOUT).
 *
 * Errors are returned as text (tls_errors drains OpenSSL's error queue);
 * nothing here logs or exits, and no secret is ever put in a message.
 *
 * Public: tls_init, tls_server_ctx, tls_ticket_keys, tls_client_ctx,
 * tls_version_code, tls_nb_handshake, tls_nb_read, tls_nb_write,
 * tls_handshake_wait, tls_read_wait, tls_write_wait, tls_close,
 * tls_describe, tls_errors.
 */
#ifndef TERN_TLS_H
#define TERN_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* Once per process (idempotent). */
void tls_init(void);

/* "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3" → the OpenSSL constant, or 0. */
int tls_version_code(const char *name);

/* A server context with the chain from cert_file and the key from key_file
 * (key_file "" = the same file); the key must match the certificate.
 * NULL with the reason in err. */
SSL_CTX *tls_server_ctx(const char *cert_file, const char *key_file, const char *min_version,
			const char *cipherlist, const char *ciphersuites, char *err, size_t errsize);

/*
 * Session tickets whose keys every smtpd process shares: path holds 80
 * random bytes (created with O_EXCL and a link when missing, replaced when
 * older than lifetime seconds).  0, or -1 with err (tickets then stay
 * per-process, which only costs resumption across processes).
 */
int tls_ticket_keys(SSL_CTX *ctx, const char *path, long long lifetime, char *err, size_t errsize);

/* A client context: CA certificates from ca_file, or the system store when
 * ca_file is "" or NULL.  NULL with err. */
SSL_CTX *tls_client_ctx(const char *ca_file, const char *min_version, char *err, size_t errsize);

int tls_nb_handshake(SSL *ssl, short *events);
ssize_t tls_nb_read(SSL *ssl, void *p, size_t n, short *events);
ssize_t tls_nb_write(SSL *ssl, const void *p, size_t n, short *events);

int tls_handshake_wait(SSL *ssl, int fd, int timeout_ms);
ssize_t tls_read_wait(SSL *ssl, int fd, void *p, size_t n, int timeout_ms);
ssize_t tls_write_wait(SSL *ssl, int fd, const void *p, size_t n, int timeout_ms);

/* Send close_notify (not waiting for the peer's) and free ssl. */
void tls_close(SSL *ssl);

/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" into out. */
void tls_describe(SSL *ssl, char *out, size_t outsize);

/* OpenSSL's queued errors as one line into out ("" when none); clears them. */
const char *tls_errors(char *out, size_t outsize);

#endif
