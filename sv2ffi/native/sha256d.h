/* Bitcoin's double SHA-256, for the extension modules in this folder.
 *
 * sha256d(): any message, through OpenSSL's SHA256_Init/Update/Final rather than EVP
 * (for Bitcoin's small messages EVP's per-call dispatch and cleanup cost more than the
 * hashing: 0.55 us per 64-byte node against 0.28 here).  OpenSSL 3 marks these functions
 * deprecated but keeps them.
 *
 * sha256d64(): many 64-byte messages at once (a merkle tree's level).  Most of what is left
 * of OpenSSL's 0.28 us is not hashing: its padding and length bookkeeping, and one
 * compression at a time, each waiting on the last (an SHA-NI round's result feeds the
 * next).  A 64-byte message's double hash is always three compressions, the last two
 * with padding known in advance, so where the CPU has the SHA extensions two nodes are
 * hashed side by side with the padding written as constants (about 0.15 us per node);
 * elsewhere, one sha256d() per node.  The round structure is FIPS 180-4's; the instructions' operand
 * order (the state as ABEF / CDGH halves) is Intel's documented convention.
 *
 * All state lives on the caller's stack: safe without the interpreter's lock (gbtscan.c
 * hashes with it released). */
#ifndef SV2FFI_NATIVE_SHA256D_H
#define SV2FFI_NATIVE_SHA256D_H

#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>

#include <stdint.h>
#include <string.h>

#include <openssl/sha.h>

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

#if defined(__x86_64__) && defined(__GNUC__)
#define SV2FFI_SHANI 1
#include <cpuid.h>
#include <immintrin.h>

static const uint32_t sv2_k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define SV2_SHANI_FN __attribute__((target("sha,sse4.1,ssse3"), always_inline)) static inline

/* Two independent compressions, lane by lane: ``s0``/``s1`` the states as ABEF / CDGH,
 * ``w`` each lane's 16 message words as four vectors (word 0 in element 0). */
SV2_SHANI_FN void shani_compress2(__m128i s0[2], __m128i s1[2], __m128i w[2][4])
{
    __m128i save0[2] = {s0[0], s0[1]}, save1[2] = {s1[0], s1[1]};
#pragma GCC unroll 16 /* constant indices below: the vectors stay in registers */
    for (int r = 0; r < 16; r++) {
        __m128i k = _mm_loadu_si128((const __m128i *)(sv2_k256 + 4 * r));
#pragma GCC unroll 2
        for (int l = 0; l < 2; l++) {
            __m128i *m = w[l];
            if (r >= 4) /* W[t..t+3] from W[t-16..t-1], the four vectors kept rolling */
                m[r & 3] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(_mm_sha256msg1_epu32(m[r & 3], m[(r + 1) & 3]),
                                  _mm_alignr_epi8(m[(r + 3) & 3], m[(r + 2) & 3], 4)),
                    m[(r + 3) & 3]);
            __m128i x = _mm_add_epi32(m[r & 3], k);
            s1[l] = _mm_sha256rnds2_epu32(s1[l], s0[l], x);
            s0[l] = _mm_sha256rnds2_epu32(s0[l], s1[l], _mm_shuffle_epi32(x, 0x0E));
        }
    }
    for (int l = 0; l < 2; l++) {
        s0[l] = _mm_add_epi32(s0[l], save0[l]);
        s1[l] = _mm_add_epi32(s1[l], save1[l]);
    }
}

/* ABEF / CDGH -> the words a..h in two vectors (a in element 0) */
SV2_SHANI_FN void shani_unpack(__m128i s0, __m128i s1, __m128i *abcd, __m128i *efgh)
{
    __m128i t = _mm_shuffle_epi32(s0, 0x1B);
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    *abcd = _mm_blend_epi16(t, s1, 0xF0);
    *efgh = _mm_alignr_epi8(s1, t, 8);
}

__attribute__((target("sha,sse4.1,ssse3"))) static void shani_sha256d64_2(
    unsigned char *out, const unsigned char *in)
{
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    /* SHA-256's initial state as ABEF / CDGH */
    const __m128i iv0 = _mm_set_epi32(0x6a09e667, 0xbb67ae85, 0x510e527f, 0x9b05688c);
    const __m128i iv1 = _mm_set_epi32(0x3c6ef372, 0xa54ff53a, 0x1f83d9ab, 0x5be0cd19);
    const __m128i one = _mm_set_epi32(0, 0, 0, (int)0x80000000u), zero = _mm_setzero_si128();
    __m128i s0[2] = {iv0, iv0}, s1[2] = {iv1, iv1}, w[2][4];
    for (int l = 0; l < 2; l++) /* both inputs read before anything is written */
        for (int i = 0; i < 4; i++)
            w[l][i] = _mm_shuffle_epi8(
                _mm_loadu_si128((const __m128i *)(in + 64 * l + 16 * i)), bswap);
    shani_compress2(s0, s1, w);
    for (int l = 0; l < 2; l++) { /* the 64-byte message's padding: 1 bit, length 512 */
        w[l][0] = one;
        w[l][1] = w[l][2] = zero;
        w[l][3] = _mm_set_epi32(512, 0, 0, 0);
    }
    shani_compress2(s0, s1, w);
    for (int l = 0; l < 2; l++) { /* the second hash: the 32-byte digest, padded */
        shani_unpack(s0[l], s1[l], &w[l][0], &w[l][1]);
        w[l][2] = one;
        w[l][3] = _mm_set_epi32(256, 0, 0, 0);
        s0[l] = iv0;
        s1[l] = iv1;
    }
    shani_compress2(s0, s1, w);
    for (int l = 0; l < 2; l++) {
        __m128i abcd, efgh;
        shani_unpack(s0[l], s1[l], &abcd, &efgh);
        _mm_storeu_si128((__m128i *)(out + 32 * l), _mm_shuffle_epi8(abcd, bswap));
        _mm_storeu_si128((__m128i *)(out + 32 * l + 16), _mm_shuffle_epi8(efgh, bswap));
    }
}

static int sv2_have_shani = -1;

static int shani_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 19)) || !(c & (1u << 9)))
        return 0; /* SSE4.1, SSSE3 */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1; /* SHA */
}
#endif

/* sha256d of ``n`` 64-byte messages at ``in`` into ``n`` 32-byte digests at ``out``.
 * ``out`` may be ``in`` (a merkle level reduced in place: digest i lands below input i). */
static inline void sha256d64(unsigned char *out, const unsigned char *in, size_t n)
{
    size_t i = 0;
#ifdef SV2FFI_SHANI
    if (sv2_have_shani > 0)
        for (; i + 2 <= n; i += 2)
            shani_sha256d64_2(out + 32 * i, in + 64 * i);
#endif
    for (; i < n; i++)
        sha256d(in + 64 * i, 64, out + 32 * i);
}

/* From the module's init function: 0, or -1 with ImportError set.  Both roads are checked
 * against a known digest before either is used. */
static int sha256d_init(void)
{
    /* sha256d of 64 zero bytes */
    static const unsigned char want[4] = {0xe2, 0xf6, 0x1c, 0x3f};
    unsigned char zeros[128] = {0}, got[64];
    sha256d(zeros, 64, got);
    if (memcmp(got, want, 4) != 0) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL's SHA-256 is not usable");
        return -1;
    }
#ifdef SV2FFI_SHANI
    if (sv2_have_shani < 0) {
        sv2_have_shani = shani_usable() && getenv("SV2FFI_NO_SHANI") == NULL;
        if (sv2_have_shani) {
            shani_sha256d64_2(got, zeros);
            if (memcmp(got, want, 4) != 0 || memcmp(got + 32, want, 4) != 0)
                sv2_have_shani = 0; /* never expected; OpenSSL then does it all */
        }
    }
#endif
    return 0;
}

/* "sha-ni, two at a time" or "openssl": what sha256d64 runs on (``sv2ffi config``) */
static inline const char *sha256d64_road(void)
{
#ifdef SV2FFI_SHANI
    if (sv2_have_shani > 0)
        return "sha-ni, two at a time";
#endif
    return "openssl";
}

#endif
