/*
 * send_tls.c — STARTTLS for the SMTP client: policy, handshake, checks.
 *
 * Public: send_tls_level, send_tls_handshake, send_tls_pending, send_tls_end.
 *
 * Levels (Postfix's names): none — never; may — STARTTLS when offered, any
 * certificate, and a failed handshake is retried once in plaintext on a new
 * connection (send_deliver.c); encrypt — TLS required (not offered or
 * failed: deferred 4.7.4/4.7.5), any certificate; verify — TLS required
 * and the certificate must chain to the system CA store (or
 * smtp_tls_CAfile) and name the MX host or the nexthop host (an IP literal
 * is checked against the certificate's IP addresses), else deferred 4.7.5.
 * The per-destination level comes from smtp_tls_policy_maps, keyed by the
 * request's nexthop as the queue manager writes it ("example.com",
 * "[mx.example.com]:25").
 *
 * The log line says what was checked: Verified (chain and name), Trusted
 * (chain, not the name), Untrusted (neither).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/x509v3.h>

#include "cdbmap.h"
#include "conf.h"
#include "log.h"
#include "send.h"
#include "tls.h"

static SSL_CTX *client_ctx;

const char *
send_tls_level(const char *nexthop)
{
	static struct cdbmap *policy;
	static char level[16];
	struct buf v;

	if (cf.smtp_tls_policy_maps[0] != '\0') {
		if (policy == NULL && (policy = cdbmap_open_table(cf.smtp_tls_policy_maps)) == NULL)
			log_warning("smtp_tls_policy_maps %s: %s", cf.smtp_tls_policy_maps, strerror(errno));
		buf_init(&v, 64);
		if (policy != NULL && cdbmap_lookup(policy, nexthop, &v) == 1) {
			if (strcmp(v.data, "none") == 0 || strcmp(v.data, "may") == 0 || strcmp(v.data, "encrypt") == 0 ||
			    strcmp(v.data, "verify") == 0) {
				memcpy(level, v.data, v.len + 1);
				buf_free(&v);
				return level;
			}
			log_warning("smtp_tls_policy_maps: %s: unknown level \"%s\"; using encrypt", nexthop, v.data);
			buf_free(&v);
			return "encrypt";
		}
		buf_free(&v);
	}
	return cf.smtp_tls_security_level;
}

static ssize_t
io_read(struct smtp_conn *c, void *p, size_t n)
{
	return tls_nb_read(c->io_ctx, p, n, &c->io_events);
}

static ssize_t
io_write(struct smtp_conn *c, void *p, size_t n)
{
	return tls_nb_write(c->io_ctx, p, n, &c->io_events);
}

int
send_tls_handshake(struct smtp_session *s, const char *level, const char *peername, char *why, size_t whysize)
{
	int verify = strcmp(level, "verify") == 0;
	unsigned char ipbin[16];
	char err[512], desc[200];
	const char *trust;
	long vr;
	SSL *ssl;

	if (client_ctx == NULL &&
	    (client_ctx = tls_client_ctx(cf.smtp_tls_CAfile, "TLSv1.2", err, sizeof(err))) == NULL) {
		snprintf(why, whysize, "cannot start TLS: %s", err);
		return -1;
	}
	if ((ssl = SSL_new(client_ctx)) == NULL || SSL_set_fd(ssl, s->fd) != 1) {
		snprintf(why, whysize, "cannot start TLS: %s", tls_errors(err, sizeof(err)));
		SSL_free(ssl);
		return -1;
	}
	SSL_set_connect_state(ssl);
	/* The name to check: an IP literal against IP SANs, else a DNS name (also SNI). */
	if (inet_pton(AF_INET, peername, ipbin) == 1 || inet_pton(AF_INET6, peername, ipbin) == 1) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), peername);
	} else {
		SSL_set_tlsext_host_name(ssl, peername);
		SSL_set1_host(ssl, peername);
	}
	if (verify)
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	if (tls_handshake_wait(ssl, s->fd, s->c.timeout_ms) < 0) {
		int e = errno;

		vr = SSL_get_verify_result(ssl);
		tls_errors(err, sizeof(err));
		if (verify && vr != X509_V_OK)
			snprintf(why, whysize, "Server certificate not verified: %s: %s", s->relay,
				 X509_verify_cert_error_string(vr));
		else
			snprintf(why, whysize, "TLS handshake with %s failed: %s", s->relay,
				 err[0] ? err : e == ETIMEDOUT ? "timed out" : strerror(e));
		SSL_free(ssl);
		return -1;
	}
	vr = SSL_get_verify_result(ssl);
	if (vr == X509_V_OK)
		trust = "Verified";
	else if (vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH)
		trust = "Trusted";
	else
		trust = "Untrusted";
	s->tls = ssl;
	s->c.io_ctx = ssl;
	s->c.io_read = io_read;
	s->c.io_write = io_write;
	tls_describe(ssl, desc, sizeof(desc));
	log_info("%s TLS connection established to %s: %s", trust, s->relay, desc);
	return 0;
}

void
send_tls_end(struct smtp_session *s)
{
	if (s->tls == NULL)
		return;
	tls_close(s->tls);
	s->tls = NULL;
}

/* Decrypted bytes OpenSSL holds that the reply reader has not taken. */
int
send_tls_pending(const struct smtp_session *s)
{
	return s->tls != NULL && SSL_pending(s->tls) > 0;
}
