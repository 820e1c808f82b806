/*
 * saslcodec.c — strict base64 and the SASL PLAIN message (see saslcodec.h).
 *
 * Strict means: anything a careful encoder would not produce is refused
 * (whitespace, missing or misplaced padding, non-zero padding bits), so
 * there is exactly one encoding of each credential and the AUTH replies
 * for "bad base64" are predictable.
 */
#include "saslcodec.h"

#include <string.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The 6-bit value of c, or -1. */
static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
sasl_b64_decode(const char *in, size_t n, unsigned char *out, size_t outsize, size_t *outlen)
{
	size_t i, o = 0;

	*outlen = 0;
	if (n % 4 != 0)
		return -1;
	for (i = 0; i < n; i += 4) {
		int v[4], pad = 0, k;
		unsigned long w;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + (size_t)k];

			if (c == '=') {
				/* Padding only in the last quantum, only in its last two places. */
				if (i + 4 != n || k < 2)
					return -1;
				pad++;
				v[k] = 0;
				continue;
			}
			if (pad > 0 || (v[k] = b64val(c)) < 0)
				return -1; /* data after '=', or not in the alphabet */
		}
		w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) | ((unsigned long)v[2] << 6) |
		    (unsigned long)v[3];
		/* The bits the padding leaves unused must be zero (RFC 4648 3.5). */
		if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
			return -1;
		if (o > outsize || outsize - o < (size_t)(3 - pad))
			return -1;
		out[o++] = (unsigned char)(w >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)w;
	}
	*outlen = o;
	return 0;
}

long
sasl_b64_encode(const unsigned char *in, size_t n, char *out, size_t outsize)
{
	size_t i, o = 0;

	if (n > (((size_t)-1) / 4 - 1) / 4 * 3 || (n + 2) / 3 * 4 + 1 > outsize)
		return -1;
	for (i = 0; i < n; i += 3) {
		unsigned long w = (unsigned long)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			w |= (unsigned long)in[i + 1] << 8;
		if (left > 2)
			w |= in[i + 2];
		out[o++] = b64chars[(w >> 18) & 63];
		out[o++] = b64chars[(w >> 12) & 63];
		out[o++] = left > 1 ? b64chars[(w >> 6) & 63] : '=';
		out[o++] = left > 2 ? b64chars[w & 63] : '=';
	}
	out[o] = '\0';
	return (long)o;
}

enum sasl_plain_error
sasl_plain_parse(const unsigned char *msg, size_t n, char *authzid, char *authcid, char *passwd)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, clen, plen;

	authzid[0] = authcid[0] = passwd[0] = '\0';
	if ((nul1 = memchr(msg, '\0', n)) == NULL)
		return SASL_PLAIN_SYNTAX;
	if ((nul2 = memchr(nul1 + 1, '\0', n - (size_t)(nul1 + 1 - msg))) == NULL)
		return SASL_PLAIN_SYNTAX;
	if (memchr(nul2 + 1, '\0', n - (size_t)(nul2 + 1 - msg)) != NULL)
		return SASL_PLAIN_SYNTAX;
	zlen = (size_t)(nul1 - msg);
	clen = (size_t)(nul2 - nul1 - 1);
	plen = n - (size_t)(nul2 + 1 - msg);
	if (clen == 0 || plen == 0)
		return SASL_PLAIN_EMPTY;
	if (zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX || plen > SASL_FIELD_MAX)
		return SASL_PLAIN_LONG;
	memcpy(authzid, msg, zlen);
	authzid[zlen] = '\0';
	memcpy(authcid, nul1 + 1, clen);
	authcid[clen] = '\0';
	memcpy(passwd, nul2 + 1, plen);
	passwd[plen] = '\0';
	return SASL_PLAIN_OK;
}

long
sasl_plain_build(const char *user, const char *pass, unsigned char *out, size_t outsize)
{
	size_t ul = strlen(user), pl = strlen(pass);

	if (ul == 0 || pl == 0 || ul > SASL_FIELD_MAX || pl > SASL_FIELD_MAX || ul + pl + 2 > outsize)
		return -1;
	out[0] = '\0';
	memcpy(out + 1, user, ul);
	out[1 + ul] = '\0';
	memcpy(out + 2 + ul, pass, pl);
	return (long)(ul + pl + 2);
}
