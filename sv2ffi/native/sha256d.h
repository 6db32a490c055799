/* Bitcoin's double SHA-256 with OpenSSL 3, for the extension modules in this folder.
 *
 * OpenSSL's SHA256_Init/Update/Final, not the EVP interface: for Bitcoin's small messages
 * (a merkle node is 64 bytes) EVP's per-call dispatch and cleanup cost more than the
 * hashing itself, 0.55 us per node against 0.28 us here (the same block function,
 * SHA extensions where the CPU has them).  OpenSSL 3 marks these functions deprecated
 * but keeps them; the state lives on the caller's stack, so sha256d() is safe without
 * the interpreter's lock (gbtscan.c hashes with it released). */
#ifndef SV2FFI_NATIVE_SHA256D_H
#define SV2FFI_NATIVE_SHA256D_H

#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>

#include <openssl/sha.h>

/* From the module's init function: 0, or -1 with ImportError set. */
static int sha256d_init(void)
{
    static const unsigned char abc[3] = {'a', 'b', 'c'};
    static const unsigned char want[4] = {0xba, 0x78, 0x16, 0xbf}; /* SHA-256("abc") */
    unsigned char got[32];
    if (SHA256(abc, 3, got) == NULL || got[0] != want[0] || got[1] != want[1] ||
        got[2] != want[2] || got[3] != want[3]) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL's SHA-256 is not usable");
        return -1;
    }
    return 0;
}

static void sha256d(const unsigned char *p, size_t n, unsigned char *out32)
{
    SHA256_CTX c;
    unsigned char once[32];
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(once, &c);
    SHA256_Init(&c);
    SHA256_Update(&c, once, 32);
    SHA256_Final(out32, &c);
}

#endif
