/*
 * tls.c — OpenSSL 3 contexts and deadline-bound I/O (see tls.h).
 */
#include "clock.h"
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define TICKET_KEY_LEN 80 /* 16 name + 32 HMAC + 32 AES, OpenSSL's layout */

void
tls_init(void)
{
	static int done;

	if (done)
		return;
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
	done = 1;
}

const char *
tls_errors(char *out, size_t outsize)
{
	unsigned long e;
	size_t used = 0;

	if (outsize == 0)
		return out;
	out[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(e, one, sizeof(one));
		if (used + strlen(one) + 3 < outsize) {
			used += (size_t)snprintf(out + used, outsize - used, "%s%s", used ? "; " : "", one);
		}
	}
	return out;
}

int
tls_version_code(const char *name)
{
	if (strcmp(name, "TLSv1") == 0)
		return TLS1_VERSION;
	if (strcmp(name, "TLSv1.1") == 0)
		return TLS1_1_VERSION;
	if (strcmp(name, "TLSv1.2") == 0)
		return TLS1_2_VERSION;
	if (strcmp(name, "TLSv1.3") == 0)
		return TLS1_3_VERSION;
	return 0;
}

/* Options both sides share. */
static int
ctx_common(SSL_CTX *ctx, const char *min_version, char *err, size_t errsize)
{
	int v = tls_version_code(min_version && *min_version ? min_version : "TLSv1.2");

	if (v == 0) {
		snprintf(err, errsize, "unknown TLS version \"%s\"", min_version);
		return -1;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, v)) {
		snprintf(err, errsize, "cannot set the minimum TLS version");
		return -1;
	}
	/* No renegotiation (a DoS lever); an EOF without close_notify is an EOF
	 * (SMTP frames its own data); writes may complete partially. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				      SSL_MODE_RELEASE_BUFFERS);
	return 0;
}

SSL_CTX *
tls_server_ctx(const char *cert_file, const char *key_file, const char *min_version, const char *cipherlist,
	       const char *ciphersuites, char *err, size_t errsize)
{
	char why[512];
	SSL_CTX *ctx;

	tls_init();
	if (key_file == NULL || *key_file == '\0')
		key_file = cert_file;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errsize, "SSL_CTX_new: %s", tls_errors(why, sizeof(why)));
		return NULL;
	}
	if (ctx_common(ctx, min_version, err, errsize) < 0)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(err, errsize, "cannot load the certificate chain %s: %s", cert_file, tls_errors(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errsize, "cannot load the private key %s: %s", key_file, tls_errors(why, sizeof(why)));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errsize, "the private key %s does not match the certificate %s", key_file, cert_file);
		goto fail;
	}
	if (cipherlist && *cipherlist && SSL_CTX_set_cipher_list(ctx, cipherlist) != 1) {
		snprintf(err, errsize, "bad TLS 1.2 cipher list \"%s\"", cipherlist);
		goto fail;
	}
	if (ciphersuites && *ciphersuites && SSL_CTX_set_ciphersuites(ctx, ciphersuites) != 1) {
		snprintf(err, errsize, "bad TLS 1.3 cipher suites \"%s\"", ciphersuites);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* Resumption by stateless tickets only: a per-process session cache
	 * would be useless in a prefork pool and grow memory. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tern-smtpd", 10);
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Create path with fresh random keys unless it exists (O_EXCL + link, so
 * concurrent creators agree on one file); replace it when stale. */
static int
ticket_file_make(const char *path, int replace, char *err, size_t errsize)
{
	unsigned char key[TICKET_KEY_LEN];
	char tmp[4096];
	int fd, rc = -1;

	if (snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof(tmp)) {
		snprintf(err, errsize, "ticket key path too long");
		return -1;
	}
	if (RAND_bytes(key, sizeof(key)) != 1) {
		snprintf(err, errsize, "RAND_bytes failed");
		return -1;
	}
	(void)unlink(tmp);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) || fsync(fd) < 0) {
		snprintf(err, errsize, "%s: %s", tmp, strerror(errno ? errno : EIO));
		close(fd);
		(void)unlink(tmp);
		goto out;
	}
	if (close(fd) < 0) {
		snprintf(err, errsize, "%s: %s", tmp, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	if (replace ? rename(tmp, path) < 0 : (link(tmp, path) < 0 && errno != EEXIST)) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	if (!replace)
		(void)unlink(tmp);
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

int
tls_ticket_keys(SSL_CTX *ctx, const char *path, long long lifetime, char *err, size_t errsize)
{
	unsigned char key[TICKET_KEY_LEN];
	struct stat sb;
	ssize_t r;
	int fd, rc = -1;

	if (lstat(path, &sb) < 0) {
		if (errno != ENOENT || ticket_file_make(path, 0, err, errsize) < 0) {
			if (errno != ENOENT)
				snprintf(err, errsize, "%s: %s", path, strerror(errno));
			return -1;
		}
	} else if (lifetime > 0 && (long long)(time(NULL) - sb.st_mtime) > lifetime) {
		if (ticket_file_make(path, 1, err, errsize) < 0)
			return -1;
	}
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		snprintf(err, errsize, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0 ||
	    sb.st_size != TICKET_KEY_LEN) {
		snprintf(err, errsize, "%s: not a private %d-byte regular file", path, TICKET_KEY_LEN);
		close(fd);
		return -1;
	}
	r = read(fd, key, sizeof(key));
	close(fd);
	if (r != (ssize_t)sizeof(key)) {
		snprintf(err, errsize, "%s: short read", path);
		goto out;
	}
	if (SSL_CTX_set_tlsext_ticket_keys(ctx, key, sizeof(key)) != 1) {
		snprintf(err, errsize, "cannot set the session ticket keys");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	return rc;
}

SSL_CTX *
tls_client_ctx(const char *ca_file, const char *min_version, char *err, size_t errsize)
{
	char why[512];
	SSL_CTX *ctx;

	tls_init();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errsize, "SSL_CTX_new: %s", tls_errors(why, sizeof(why)));
		return NULL;
	}
	if (ctx_common(ctx, min_version, err, errsize) < 0)
		goto fail;
	if (ca_file && *ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(err, errsize, "cannot load CA certificates %s: %s", ca_file, tls_errors(why, sizeof(why)));
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errsize, "cannot load the system CA store: %s", tls_errors(why, sizeof(why)));
		goto fail;
	}
	/* Verification is recorded always and enforced by the caller. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

/* Map an SSL_* return value: -1 with errno (EAGAIN + events) or 0 at end. */
static int
nb_result(SSL *ssl, int ret, short *events)
{
	int e = SSL_get_error(ssl, ret);

	*events = 0;
	switch (e) {
	case SSL_ERROR_WANT_READ:
		*events = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		*events = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || ERR_peek_error() != 0) {
			ERR_clear_error();
			errno = ECONNRESET;
		}
		return -1;
	default:
		errno = EPROTO;
		return -1;
	}
}

int
tls_nb_handshake(SSL *ssl, short *events)
{
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_do_handshake(ssl);
	if (r == 1)
		return 1;
	if (nb_result(ssl, r, events) == 0)
		errno = ECONNRESET;
	return -1;
}

ssize_t
tls_nb_read(SSL *ssl, void *p, size_t n, short *events)
{
	size_t got = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_read_ex(ssl, p, n, &got);
	if (r == 1)
		return (ssize_t)got;
	return nb_result(ssl, 0, events);
}

ssize_t
tls_nb_write(SSL *ssl, const void *p, size_t n, short *events)
{
	size_t done = 0;
	int r;

	ERR_clear_error();
	errno = 0;
	r = SSL_write_ex(ssl, p, n, &done);
	if (r == 1)
		return (ssize_t)done;
	if (nb_result(ssl, 0, events) == 0)
		errno = EPIPE;
	return -1;
}

/* Wait for events on fd until deadline (timeout_ms < 0: forever). */
static int
wait_events(int fd, short events, int timeout_ms, long long deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		long long left = deadline - clock_ms();
		int pr = poll(&pfd, 1, timeout_ms < 0 ? -1 : (left > 0 ? (left > 1 << 30 ? 1 << 30 : (int)left) : 0));

		if (pr > 0)
			return 0;
		if (pr == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (errno != EINTR)
			return -1;
	}
}

int
tls_handshake_wait(SSL *ssl, int fd, int timeout_ms)
{
	long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	short ev = 0;

	for (;;) {
		if (tls_nb_handshake(ssl, &ev) == 1)
			return 0;
		if (errno != EAGAIN || wait_events(fd, ev, timeout_ms, deadline) < 0)
			return -1;
	}
}

ssize_t
tls_read_wait(SSL *ssl, int fd, void *p, size_t n, int timeout_ms)
{
	long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	short ev = 0;

	for (;;) {
		ssize_t r = tls_nb_read(ssl, p, n, &ev);

		if (r >= 0)
			return r;
		if (errno != EAGAIN || wait_events(fd, ev, timeout_ms, deadline) < 0)
			return -1;
	}
}

ssize_t
tls_write_wait(SSL *ssl, int fd, const void *p, size_t n, int timeout_ms)
{
	long long deadline = clock_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	short ev = 0;

	for (;;) {
		ssize_t r = tls_nb_write(ssl, p, n, &ev);

		if (r > 0)
			return r;
		if (errno != EAGAIN || wait_events(fd, ev, timeout_ms, deadline) < 0)
			return -1;
	}
}

void
tls_close(SSL *ssl)
{
	if (ssl == NULL)
		return;
	/* One non-blocking attempt at close_notify; the peer's is not awaited. */
	ERR_clear_error();
	(void)SSL_shutdown(ssl);
	ERR_clear_error();
	SSL_free(ssl);
}

void
tls_describe(SSL *ssl, char *out, size_t outsize)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
	int alg = 0, bits = c ? SSL_CIPHER_get_bits(c, &alg) : 0;

	snprintf(out, outsize, "%s with cipher %s (%d/%d bits)", SSL_get_version(ssl), c ? SSL_CIPHER_get_name(c) : "none",
		 bits, alg);
}
