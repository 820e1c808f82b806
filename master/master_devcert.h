/*
 * master_devcert — the self-signed certificate of development mode.
 */
#ifndef TERN_MASTER_DEVCERT_H
#define TERN_MASTER_DEVCERT_H

#include <stddef.h>

/* Make DIR/tls/cert.pem and DIR/tls/key.pem (EC P-256, CN and SANs for
 * localhost, 127.0.0.1 and ::1, two years) unless both exist.  0, or -1
 * with the reason in err (development mode then runs without TLS). */
int dev_cert_ensure(const char *dir, char *err, size_t errsize);

#endif
