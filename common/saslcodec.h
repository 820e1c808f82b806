/*
 * saslcodec — the bytes of SMTP AUTH (RFC 4954) that come from the network:
 * strict base64 (RFC 4648 4) and the PLAIN message (RFC 4616).
 *
 * Shared by smtpd (decoding what clients send), send (encoding what it
 * sends to a relayhost) and the fuzz target tests/fuzz/fuzz_auth.c.
 * Everything is bounded by the caller's buffer sizes; nothing allocates.
 *
 * Public: sasl_b64_decode, sasl_b64_encode, sasl_plain_parse,
 * sasl_plain_build.  Errors are return codes; nothing logs.
 */
#ifndef TERN_SASLCODEC_H
#define TERN_SASLCODEC_H

#include <stddef.h>

/* RFC 4616 2: authcid and passwd are 1..255 octets, authzid 0..255. */
#define SASL_FIELD_MAX 255

/*
 * Decode n characters of in (no line breaks, no spaces; length a multiple
 * of 4; '=' padding only at the end, at most two, with the unused bits
 * zero) into out[outsize].  The empty input decodes to zero bytes.
 * 0 with *outlen set, or -1 (bad alphabet, bad length or padding, output
 * does not fit).
 */
int sasl_b64_decode(const char *in, size_t n, unsigned char *out, size_t outsize, size_t *outlen);

/* Encode n bytes into out[outsize] with padding and a NUL.  Returns the
 * length without the NUL, or -1 when it does not fit. */
long sasl_b64_encode(const unsigned char *in, size_t n, char *out, size_t outsize);

enum sasl_plain_error {
	SASL_PLAIN_OK = 0,
	SASL_PLAIN_SYNTAX = -1, /* not exactly two NULs */
	SASL_PLAIN_EMPTY = -2,  /* empty authcid or passwd */
	SASL_PLAIN_LONG = -3    /* a field longer than SASL_FIELD_MAX */
};

/*
 * Split a decoded PLAIN message "[authzid] NUL authcid NUL passwd" into
 * NUL-terminated copies; each output buffer must hold SASL_FIELD_MAX + 1.
 * On error every output is emptied.
 */
enum sasl_plain_error sasl_plain_parse(const unsigned char *msg, size_t n, char *authzid, char *authcid,
				       char *passwd);

/* Build "\0user\0pass" into out[outsize]; its length, or -1 when a field is
 * empty, too long, holds a NUL, or does not fit. */
long sasl_plain_build(const char *user, const char *pass, unsigned char *out, size_t outsize);

#endif
