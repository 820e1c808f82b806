/*
 * fuzz_auth — libFuzzer target for the AUTH decoder (common/saslcodec.c).
 *
 * Each input is treated three ways: as a base64 response line (strict
 * decode, then the PLAIN split of whatever decoded, as smtpd does), as a
 * decoded PLAIN message directly, and as bytes to encode, which must decode
 * back to themselves.  Bounds: every output buffer has the size smtpd uses,
 * so an overflow is an ASan report.  Built and run by tests/fuzz/run.sh.
 */
// fuzz-sources:
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "saslcodec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char z[SASL_FIELD_MAX + 1], c[SASL_FIELD_MAX + 1], p[SASL_FIELD_MAX + 1];
	unsigned char dec[1024], back[4096];
	char enc[8192];
	size_t n = 0, m = 0;
	long e;

	if (sasl_b64_decode((const char *)data, size, dec, sizeof(dec), &n) == 0) {
		if (n > sizeof(dec))
			abort();
		if (sasl_plain_parse(dec, n, z, c, p) == SASL_PLAIN_OK &&
		    (strlen(c) == 0 || strlen(p) == 0 || strlen(c) > SASL_FIELD_MAX))
			abort();
		/* Strict: the canonical encoding of the result is the input. */
		e = sasl_b64_encode(dec, n, enc, sizeof(enc));
		if (e < 0 || (size_t)e != size || memcmp(enc, data, size) != 0)
			abort();
	}
	(void)sasl_plain_parse(data, size, z, c, p);
	e = sasl_b64_encode(data, size, enc, sizeof(enc));
	if (e >= 0) {
		if (sasl_b64_decode(enc, (size_t)e, back, sizeof(back), &m) != 0 || m != size ||
		    memcmp(back, data, size) != 0)
			abort();
	}
	return 0;
}
