/*
 * master_devcert.c — a self-signed certificate for `make run` (issue 9),
 * made with the OpenSSL API (no shell, no openssl binary needed).
 *
 * The key is written mode 0600 through a temporary name and renamed into
 * place after the certificate's temporary file is complete, so an
 * interrupted run leaves either nothing or a usable pair.
 */
#include "master_devcert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "fsutil.h"

/* Write with fn into path.tmp (mode), fsync; 0 or -1. */
static int
write_pem(const char *tmp, mode_t mode, X509 *cert, EVP_PKEY *key)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
	FILE *f;
	int ok;

	if (fd < 0)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return -1;
	}
	ok = cert ? PEM_write_X509(f, cert) : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

static int
add_ext(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

int
dev_cert_ensure(const char *dir, char *err, size_t errsize)
{
	char tlsdir[4096], cpath[4200], kpath[4200], ctmp[4300], ktmp[4300];
	unsigned char serial[16];
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	BIGNUM *bn = NULL;
	X509_NAME *name;
	int rc = -1;

	snprintf(tlsdir, sizeof(tlsdir), "%s/tls", dir);
	snprintf(cpath, sizeof(cpath), "%s/cert.pem", tlsdir);
	snprintf(kpath, sizeof(kpath), "%s/key.pem", tlsdir);
	if (access(cpath, R_OK) == 0 && access(kpath, R_OK) == 0)
		return 0;
	if (mkdir(tlsdir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errsize, "mkdir %s: %s", tlsdir, strerror(errno));
		return -1;
	}
	snprintf(ctmp, sizeof(ctmp), "%s.tmp", cpath);
	snprintf(ktmp, sizeof(ktmp), "%s.tmp", kpath);
	if ((key = EVP_EC_gen("P-256")) == NULL || (cert = X509_new()) == NULL ||
	    RAND_bytes(serial, sizeof(serial)) != 1)
		goto ssl_fail;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == NULL || !X509_set_version(cert, 2) ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), 2L * 365 * 24 * 3600) == NULL || !X509_set_pubkey(cert, key))
		goto ssl_fail;
	name = X509_get_subject_name(cert);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost.localdomain", -1,
					-1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"tern development", -1, -1,
					0) ||
	    !X509_set_issuer_name(cert, name) ||
	    add_ext(cert, NID_subject_alt_name, "DNS:localhost.localdomain,DNS:localhost,IP:127.0.0.1,IP:::1") < 0 ||
	    add_ext(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 || !X509_sign(cert, key, EVP_sha256()))
		goto ssl_fail;
	if (write_pem(ktmp, 0600, NULL, key) < 0 || write_pem(ctmp, 0644, cert, NULL) < 0 ||
	    rename(ktmp, kpath) < 0 || rename(ctmp, cpath) < 0 || fsync_parent_dir(cpath) < 0) {
		snprintf(err, errsize, "writing %s: %s", tlsdir, strerror(errno));
		(void)unlink(ktmp);
		(void)unlink(ctmp);
		goto out;
	}
	rc = 0;
	goto out;
ssl_fail:
	snprintf(err, errsize, "cannot make a certificate: %s", ERR_error_string(ERR_get_error(), NULL));
out:
	ERR_clear_error();
	BN_free(bn);
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}
