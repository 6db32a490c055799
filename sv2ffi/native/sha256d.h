/* Bitcoin's double SHA-256 with OpenSSL 3, for the extension modules in this folder.
 *
 * OpenSSL 3's one-shot SHA256() looks the algorithm up in its providers on every call
 * (about 1 us, no faster than hashlib for Bitcoin's small messages), so the digest is
 * fetched once and one context is reused.  Each module holds the GIL for the whole of
 * its calls, so one context per module is enough.  Include once per module. */
#ifndef SV2FFI_NATIVE_SHA256D_H
#define SV2FFI_NATIVE_SHA256D_H

#include <Python.h>

#include <openssl/evp.h>

static EVP_MD *sha256d_md;
static EVP_MD_CTX *sha256d_ctx;

/* From the module's init function: 0, or -1 with ImportError set. */
static int sha256d_init(void)
{
    sha256d_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    sha256d_ctx = EVP_MD_CTX_new();
    if (sha256d_md == NULL || sha256d_ctx == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return -1;
    }
    return 0;
}

static void sha256d(const unsigned char *p, size_t n, unsigned char *out32)
{
    unsigned char once[32];
    EVP_DigestInit_ex2(sha256d_ctx, sha256d_md, NULL);
    EVP_DigestUpdate(sha256d_ctx, p, n);
    EVP_DigestFinal_ex(sha256d_ctx, once, NULL);
    EVP_DigestInit_ex2(sha256d_ctx, sha256d_md, NULL);
    EVP_DigestUpdate(sha256d_ctx, once, 32);
    EVP_DigestFinal_ex(sha256d_ctx, out32, NULL);
}

#endif
