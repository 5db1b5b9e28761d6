# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""The compiled core: tokens, cookie signing, cookie extraction, reply parsing, change sets.

The twin of ``redis_sessions._pycore`` (same names, same results; ``tests/core`` runs both).
SHA-256/HMAC and base64 are done here in C (with the x86 SHA extensions when the CPU has them),
so signing does not pay for Python's ``hmac`` objects. Tables come from ``_constants``.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Next
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_Substring
from libc.stdint cimport uint32_t
from libc.string cimport memcpy, memchr, memcmp, strlen

import json
import os
import time
from collections.abc import Mapping as _Mapping

from redis_sessions._constants import (
    BASE36_DIGITS,
    MAX_DEPTH,
    TOKEN_ALPHABET,
    TOKEN_LENGTH,
    TOKEN_RANDOM_LENGTH,
    TOKEN_SEPARATOR,
)
from redis_sessions.errors import (
    forbidden_type,
    key_not_text,
    not_finite,
    not_unicode,
    number_too_large,
    too_deep,
)

__all__ = [
    "new_token",
    "token_from_random",
    "is_token",
    "sign",
    "unsign",
    "cookie_value",
    "extract_token",
    "pack_command",
    "parse_session",
    "encode_changes",
    "check_value",
    "snapshot",
    "diff",
]

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>

    static inline int rs_str_ready(PyObject *o) {
    #if PY_VERSION_HEX < 0x030C0000
        return PyUnicode_READY(o);
    #else
        (void)o;
        return 0;
    #endif
    }
    #define rs_str_is_ascii(o) PyUnicode_IS_ASCII(o)
    #define rs_str_kind(o) ((int)PyUnicode_KIND(o))
    #define rs_str_data(o) ((const void *)PyUnicode_DATA(o))
    #define rs_read(kind, data, i) PyUnicode_READ((kind), (data), (i))
    #define RS_KIND_1BYTE PyUnicode_1BYTE_KIND

    static inline int rs_is_alnum(unsigned int c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }

    /* 1 iff the n bytes at s are ASCII letters and digits (no early exit: n is a token's). */
    static inline int rs_alnum_bytes(const unsigned char *s, Py_ssize_t n) {
        unsigned int ok = 1;
        Py_ssize_t i;
        for (i = 0; i < n; i++) {
            unsigned int c = s[i];
            ok &= ((c | 32u) - 'a' < 26u) | (c - '0' < 10u);
        }
        return (int)ok;
    }

    /* ---- SHA-256 (FIPS 180-4): portable C, and x86 SHA-NI when the CPU has it ---- */
    static const uint32_t rs_K[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
    };
    static const uint32_t rs_IV[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
    };

    #define RS_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

    #define RS_BSIG0(x) (RS_ROR(x, 2) ^ RS_ROR(x, 13) ^ RS_ROR(x, 22))
    #define RS_BSIG1(x) (RS_ROR(x, 6) ^ RS_ROR(x, 11) ^ RS_ROR(x, 25))
    #define RS_SSIG0(x) (RS_ROR(x, 7) ^ RS_ROR(x, 18) ^ ((x) >> 3))
    #define RS_SSIG1(x) (RS_ROR(x, 17) ^ RS_ROR(x, 19) ^ ((x) >> 10))
    #define RS_CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
    /* One round; the caller renames the eight working variables instead of moving them. Maj(a,
       b, c) is b ^ ((a ^ b) & (b ^ c)), and b ^ c is the a ^ b of the round before: x takes this
       round's a ^ b, y holds the last one (the caller swaps them every round). kw is K[i] + W[i]. */
    #define RS_ROUND(a, b, c, d, e, f, g, h, kw, x, y) do { \\
            uint32_t t1_ = (h) + RS_BSIG1(e) + RS_CH(e, f, g) + (kw); \\
            (x) = (a) ^ (b); \\
            (d) += t1_; (h) = t1_ + RS_BSIG0(a) + ((b) ^ ((x) & (y))); } while (0)
    /* The same round with a shorter dependency chain, for a block whose schedule is ready (no
       schedule work to fill the gaps): e = ((d + h + kw) + Ch) + BSIG1(e), and Maj as the sum
       (a & (b ^ c)) + (b & c) (the two never share a bit), so neither waits on more than one
       BSIG; about 1.15x the speed of RS_ROUND there, and slower where the schedule is computed. */
    #define RS_ROUND_SHORT(a, b, c, d, e, f, g, h, kw, x, y) do { \\
            uint32_t u_ = (h) + (kw), ch_ = RS_CH(e, f, g), s1_ = RS_BSIG1(e); \\
            uint32_t z_ = u_ + ch_ + (((b) & (c)) + ((a) & (y))); \\
            (x) = (a) ^ (b); \\
            (d) = ((d) + u_ + ch_) + s1_; (h) = (z_ + s1_) + RS_BSIG0(a); } while (0)
    /* K[i] + W[i]: the block's own word (i < 16), the schedule's in a ring of 16 words, or a
       schedule computed beforehand with K already added (kw[64]). */
    #define RS_KW_MSG(i) (rs_K[i] + w[i])
    #define RS_KW_SCHED(i) (rs_K[i] + (w[(i) & 15] += RS_SSIG1(w[((i) - 2) & 15]) + w[((i) - 7) & 15] \\
                                                      + RS_SSIG0(w[((i) - 15) & 15])))
    #define RS_KW_PRE(i) (kw[i])
    #define RS_ROUNDS8_WITH(ROUND, i, KW) \\
        ROUND(a, b, c, d, e, f, g, h, KW((i)), x, y); \\
        ROUND(h, a, b, c, d, e, f, g, KW((i) + 1), y, x); \\
        ROUND(g, h, a, b, c, d, e, f, KW((i) + 2), x, y); \\
        ROUND(f, g, h, a, b, c, d, e, KW((i) + 3), y, x); \\
        ROUND(e, f, g, h, a, b, c, d, KW((i) + 4), x, y); \\
        ROUND(d, e, f, g, h, a, b, c, KW((i) + 5), y, x); \\
        ROUND(c, d, e, f, g, h, a, b, KW((i) + 6), x, y); \\
        ROUND(b, c, d, e, f, g, h, a, KW((i) + 7), y, x)
    #define RS_ROUNDS8(i, KW) RS_ROUNDS8_WITH(RS_ROUND, i, KW)
    #define RS_ROUNDS8_PRE(i) RS_ROUNDS8_WITH(RS_ROUND_SHORT, i, RS_KW_PRE)
    #define RS_LOAD_STATE() \\
        a = st[0]; b = st[1]; c = st[2]; d = st[3]; e = st[4]; f = st[5]; g = st[6]; h = st[7]; \\
        y = b ^ c
    #define RS_ADD_STATE() \\
        st[0] += a; st[1] += b; st[2] += c; st[3] += d; st[4] += e; st[5] += f; st[6] += g; st[7] += h

    /* Written out round by round (no loop left for the compiler to keep rolled): about 1.2x
       the speed of the rolled loop. Compiled twice: plain, and for CPUs with BMI2 (rorx: one
       instruction per rotation without touching flags, another 1.2x), which is every x86 CPU
       without SHA-NI since 2013. */
    #if defined(__GNUC__) || defined(__clang__)
    #define RS_ALWAYS_INLINE inline __attribute__((always_inline))
    #elif defined(_MSC_VER)
    #define RS_ALWAYS_INLINE __forceinline
    #else
    #define RS_ALWAYS_INLINE inline
    #endif
    static RS_ALWAYS_INLINE uint32_t rs_load_be32(const unsigned char *p) {
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
    }
    static RS_ALWAYS_INLINE void rs_store_be32(unsigned char *p, uint32_t v) {
        p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
        p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
    }
    /* One block given as its 16 message words (w is used up as the schedule's ring). Inlined
       where the caller knows some words, so that the compiler folds what they make constant. */
    static RS_ALWAYS_INLINE void rs_sha256_words(uint32_t st[8], uint32_t w[16]) {
        uint32_t a, b, c, d, e, f, g, h, x, y;
        RS_LOAD_STATE();
        RS_ROUNDS8(0, RS_KW_MSG); RS_ROUNDS8(8, RS_KW_MSG);
        RS_ROUNDS8(16, RS_KW_SCHED); RS_ROUNDS8(24, RS_KW_SCHED); RS_ROUNDS8(32, RS_KW_SCHED);
        RS_ROUNDS8(40, RS_KW_SCHED); RS_ROUNDS8(48, RS_KW_SCHED); RS_ROUNDS8(56, RS_KW_SCHED);
        RS_ADD_STATE();
    }
    /* One block whose whole schedule is known beforehand: kw[i] = K[i] + W[i]. */
    static RS_ALWAYS_INLINE void rs_sha256_kw(uint32_t st[8], const uint32_t kw[64]) {
        uint32_t a, b, c, d, e, f, g, h, x, y;
        RS_LOAD_STATE();
        RS_ROUNDS8_PRE(0); RS_ROUNDS8_PRE(8); RS_ROUNDS8_PRE(16); RS_ROUNDS8_PRE(24);
        RS_ROUNDS8_PRE(32); RS_ROUNDS8_PRE(40); RS_ROUNDS8_PRE(48); RS_ROUNDS8_PRE(56);
        RS_ADD_STATE();
    }
    static RS_ALWAYS_INLINE void rs_sha256_blocks(uint32_t st[8], const unsigned char *p, size_t nblocks) {
        uint32_t w[16];
        int i;
        while (nblocks--) {
            for (i = 0; i < 16; i++) w[i] = rs_load_be32(p + 4 * i);
            rs_sha256_words(st, w);
            p += 64;
        }
    }

    /* HMAC-SHA256 of a 64-byte message (a token) from the key's inner and outer states: the
       message block, then the inner padding block, the same for every 64-byte message (0x80,
       zeros, bit length (64 + 64) * 8), whose schedule rs_pad64_kw holds ready; then the outer
       block: the inner digest's 8 words and 8 constant words (0x80..., zeros, (64 + 32) * 8),
       which the compiler folds into the rounds and the schedule. Saves a third of the work. */
    /* HMAC key schedule: the states after the ipad and opad blocks, computed once per key. */
    typedef struct { uint32_t inner[8]; uint32_t outer[8]; } rs_hmac_key;

    static uint32_t rs_pad64_kw[64];
    static void rs_pad64_init(void) {
        uint32_t w[64];
        int i;
        memset(w, 0, sizeof w);
        w[0] = 0x80000000u;
        w[15] = (64 + 64) * 8;
        for (i = 16; i < 64; i++) w[i] = RS_SSIG1(w[i - 2]) + w[i - 7] + RS_SSIG0(w[i - 15]) + w[i - 16];
        for (i = 0; i < 64; i++) rs_pad64_kw[i] = rs_K[i] + w[i];
    }
    static RS_ALWAYS_INLINE void rs_hmac64_c(const rs_hmac_key *k, const unsigned char *msg,
                                             unsigned char out[32]) {
        uint32_t st[8], w[16];
        int i;
        for (i = 0; i < 8; i++) st[i] = k->inner[i];
        for (i = 0; i < 16; i++) w[i] = rs_load_be32(msg + 4 * i);
        rs_sha256_words(st, w);
        rs_sha256_kw(st, rs_pad64_kw);
        for (i = 0; i < 8; i++) w[i] = st[i];
        w[8] = 0x80000000u;
        for (i = 9; i < 15; i++) w[i] = 0;
        w[15] = (64 + 32) * 8;
        for (i = 0; i < 8; i++) st[i] = k->outer[i];
        rs_sha256_words(st, w);
        for (i = 0; i < 8; i++) rs_store_be32(out + 4 * i, st[i]);
    }

    static void rs_sha256_portable(uint32_t st[8], const unsigned char *p, size_t nblocks) {
        rs_sha256_blocks(st, p, nblocks);
    }
    static void rs_hmac64_portable(const rs_hmac_key *k, const unsigned char *msg, unsigned char out[32]) {
        rs_hmac64_c(k, msg, out);
    }

    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    #define RS_HAVE_SHANI 1
    #include <immintrin.h>
    #include <cpuid.h>

    __attribute__((target("sha,sse4.1")))
    static void rs_sha256_shani(uint32_t st[8], const unsigned char *p, size_t nblocks) {
        const __m128i MASK = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
        __m128i STATE0, STATE1, MSG, TMP, ABEF_SAVE, CDGH_SAVE, X[4];
        int g;
        TMP = _mm_loadu_si128((const __m128i *)&st[0]);
        STATE1 = _mm_loadu_si128((const __m128i *)&st[4]);
        TMP = _mm_shuffle_epi32(TMP, 0xB1);
        STATE1 = _mm_shuffle_epi32(STATE1, 0x1B);
        STATE0 = _mm_alignr_epi8(TMP, STATE1, 8);
        STATE1 = _mm_blend_epi16(STATE1, TMP, 0xF0);
        while (nblocks--) {
            ABEF_SAVE = STATE0;
            CDGH_SAVE = STATE1;
            for (g = 0; g < 16; g++) {
                if (g < 4) {
                    X[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * g)), MASK);
                } else {
                    __m128i m = _mm_sha256msg1_epu32(X[g & 3], X[(g + 1) & 3]);
                    m = _mm_add_epi32(m, _mm_alignr_epi8(X[(g + 3) & 3], X[(g + 2) & 3], 4));
                    X[g & 3] = _mm_sha256msg2_epu32(m, X[(g + 3) & 3]);
                }
                MSG = _mm_add_epi32(X[g & 3], _mm_loadu_si128((const __m128i *)&rs_K[4 * g]));
                STATE1 = _mm_sha256rnds2_epu32(STATE1, STATE0, MSG);
                MSG = _mm_shuffle_epi32(MSG, 0x0E);
                STATE0 = _mm_sha256rnds2_epu32(STATE0, STATE1, MSG);
            }
            STATE0 = _mm_add_epi32(STATE0, ABEF_SAVE);
            STATE1 = _mm_add_epi32(STATE1, CDGH_SAVE);
            p += 64;
        }
        TMP = _mm_shuffle_epi32(STATE0, 0x1B);
        STATE1 = _mm_shuffle_epi32(STATE1, 0xB1);
        STATE0 = _mm_blend_epi16(TMP, STATE1, 0xF0);
        STATE1 = _mm_alignr_epi8(STATE1, TMP, 8);
        _mm_storeu_si128((__m128i *)&st[0], STATE0);
        _mm_storeu_si128((__m128i *)&st[4], STATE1);
    }

    __attribute__((target("bmi2")))
    static void rs_sha256_bmi2(uint32_t st[8], const unsigned char *p, size_t nblocks) {
        rs_sha256_blocks(st, p, nblocks);
    }
    __attribute__((target("bmi2")))
    static void rs_hmac64_bmi2(const rs_hmac_key *k, const unsigned char *msg, unsigned char out[32]) {
        rs_hmac64_c(k, msg, out);
    }

    static int rs_cpu_has_shani(void) {
        unsigned int a, b, c, d;
        if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
        if (!(c & (1u << 19)) || !(c & (1u << 9))) return 0;  /* SSE4.1, SSSE3 */
        if (__get_cpuid_max(0, NULL) < 7) return 0;
        __cpuid_count(7, 0, a, b, c, d);
        return (int)((b >> 29) & 1u);  /* SHA */
    }

    static int rs_cpu_has_bmi2(void) {
        unsigned int a, b, c, d;
        if (__get_cpuid_max(0, NULL) < 7) return 0;
        __cpuid_count(7, 0, a, b, c, d);
        return (int)((b >> 8) & 1u);  /* BMI2 */
    }
    #else
    #define RS_HAVE_SHANI 0
    static int rs_cpu_has_shani(void) { return 0; }
    static int rs_cpu_has_bmi2(void) { return 0; }
    #endif

    typedef void (*rs_compress_fn)(uint32_t *, const unsigned char *, size_t);
    static rs_compress_fn rs_compress = rs_sha256_portable;
    typedef void (*rs_hmac64_fn)(const rs_hmac_key *, const unsigned char *, unsigned char *);
    static void rs_hmac64_blocks(const rs_hmac_key *k, const unsigned char *msg, unsigned char out[32]);
    static rs_hmac64_fn rs_hmac64 = rs_hmac64_portable;

    /* The SHA-256 code: RS_SHA_NI, RS_SHA_BMI2 or RS_SHA_PORTABLE; the best the CPU has that is
       not above `most`. Returns the one now in use. */
    enum { RS_SHA_PORTABLE = 0, RS_SHA_BMI2 = 1, RS_SHA_NI = 2 };
    static int rs_select_sha(int most) {
        rs_pad64_init();
    #if RS_HAVE_SHANI
        if (most >= RS_SHA_NI && rs_cpu_has_shani()) {
            rs_compress = rs_sha256_shani; rs_hmac64 = rs_hmac64_blocks; return RS_SHA_NI;
        }
        if (most >= RS_SHA_BMI2 && rs_cpu_has_bmi2()) {
            rs_compress = rs_sha256_bmi2; rs_hmac64 = rs_hmac64_bmi2; return RS_SHA_BMI2;
        }
    #endif
        (void)most;
        rs_compress = rs_sha256_portable;
        rs_hmac64 = rs_hmac64_portable;
        return RS_SHA_PORTABLE;
    }

    /* Finishes a SHA-256 whose state already absorbed prefix_len bytes (a multiple of 64). */
    static void rs_sha256_finish(uint32_t st[8], uint64_t prefix_len, const unsigned char *msg,
                                 size_t len, unsigned char out[32]) {
        unsigned char tail[128];
        size_t full = len / 64, rest = len % 64, tl, i;
        uint64_t bits = (prefix_len + (uint64_t)len) * 8;
        if (full) rs_compress(st, msg, full);
        memcpy(tail, msg + full * 64, rest);
        tail[rest] = 0x80;
        tl = (rest + 9 <= 64) ? 64 : 128;
        memset(tail + rest + 1, 0, tl - rest - 9);
        for (i = 0; i < 8; i++) tail[tl - 1 - i] = (unsigned char)(bits >> (8 * i));
        rs_compress(st, tail, tl / 64);
        for (i = 0; i < 8; i++) {
            out[4 * i] = (unsigned char)(st[i] >> 24);
            out[4 * i + 1] = (unsigned char)(st[i] >> 16);
            out[4 * i + 2] = (unsigned char)(st[i] >> 8);
            out[4 * i + 3] = (unsigned char)st[i];
        }
    }

    static void rs_sha256(const unsigned char *msg, size_t len, unsigned char out[32]) {
        uint32_t st[8];
        memcpy(st, rs_IV, sizeof st);
        rs_sha256_finish(st, 0, msg, len, out);
    }

    static void rs_hmac_prepare(rs_hmac_key *k, const unsigned char *key, size_t keylen) {
        unsigned char block[64], hashed[32];
        size_t i;
        if (keylen > 64) { rs_sha256(key, keylen, hashed); key = hashed; keylen = 32; }
        memset(block, 0, sizeof block);
        if (keylen) memcpy(block, key, keylen);
        for (i = 0; i < 64; i++) block[i] ^= 0x36;
        memcpy(k->inner, rs_IV, sizeof rs_IV);
        rs_compress(k->inner, block, 1);
        for (i = 0; i < 64; i++) block[i] ^= 0x36 ^ 0x5c;
        memcpy(k->outer, rs_IV, sizeof rs_IV);
        rs_compress(k->outer, block, 1);
    }

    /* rs_hmac64 with SHA-NI: three blocks through rs_compress, the padding block a constant. */
    static void rs_hmac64_blocks(const rs_hmac_key *k, const unsigned char *msg, unsigned char out[32]) {
        static const unsigned char pad[64] = {0x80, [62] = (64 + 64) * 8 >> 8, [63] = (64 + 64) * 8 & 255};
        unsigned char block[64] = {[32] = 0x80, [62] = (64 + 32) * 8 >> 8, [63] = (64 + 32) * 8 & 255};
        uint32_t st[8];
        int i;
        memcpy(st, k->inner, sizeof st);
        rs_compress(st, msg, 1);
        rs_compress(st, pad, 1);
        for (i = 0; i < 8; i++) rs_store_be32(block + 4 * i, st[i]);
        memcpy(st, k->outer, sizeof st);
        rs_compress(st, block, 1);
        for (i = 0; i < 8; i++) rs_store_be32(out + 4 * i, st[i]);
    }

    static void rs_hmac(const rs_hmac_key *k, const unsigned char *msg, size_t len, unsigned char out[32]) {
        uint32_t st[8];
        unsigned char inner[32];
        if (len == 64) { rs_hmac64(k, msg, out); return; }  /* a token: the usual case */
        memcpy(st, k->inner, sizeof st);
        rs_sha256_finish(st, 64, msg, len, inner);
        memcpy(st, k->outer, sizeof st);
        rs_sha256_finish(st, 64, inner, 32, out);
    }

    /* Standard base64 of a 32-byte digest without "=": 43 characters. */
    static void rs_b64_digest(const unsigned char in[32], char out[43]) {
        static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        int i, o = 0;
        for (i = 0; i < 30; i += 3) {
            uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
            out[o++] = A[(v >> 18) & 63]; out[o++] = A[(v >> 12) & 63];
            out[o++] = A[(v >> 6) & 63]; out[o++] = A[v & 63];
        }
        {
            uint32_t v = ((uint32_t)in[30] << 16) | ((uint32_t)in[31] << 8);
            out[o++] = A[(v >> 18) & 63]; out[o++] = A[(v >> 12) & 63]; out[o++] = A[(v >> 6) & 63];
        }
    }

    /* The index of the last "." in s[start:end] (one byte a character), or -1. */
    static inline Py_ssize_t rs_last_dot(const unsigned char *s, Py_ssize_t start, Py_ssize_t end) {
        while (end > start) { if (s[--end] == '.') return end; }
        return -1;
    }

    /* 1 iff the n bytes at s are all below 128. */
    static inline int rs_ascii_bytes(const unsigned char *s, Py_ssize_t n) {
        unsigned char acc = 0;
        Py_ssize_t i;
        for (i = 0; i < n; i++) acc |= s[i];
        return acc < 128;
    }

    static int rs_ct_equal(const char *a, const char *b, size_t n) {
        unsigned char acc = 0;
        size_t i;
        for (i = 0; i < n; i++) acc |= (unsigned char)(a[i] ^ b[i]);
        return acc == 0;
    }

    /* JSON string body (ensure_ascii=False) of UTF-8 text into out; returns its length.
       With out NULL only the length is computed. */
    static size_t rs_json_escape(const unsigned char *s, size_t len, unsigned char *out) {
        static const char HEX[] = "0123456789abcdef";
        size_t i, o = 0;
        if (out == NULL) {
            for (i = 0; i < len; i++) {
                unsigned char c = s[i];
                if (c >= 0x20 && c != '"' && c != '\\\\') o += 1;
                else if (c == '"' || c == '\\\\' || c == '\\n' || c == '\\r' || c == '\\t' || c == '\\b' || c == '\\f') o += 2;
                else o += 6;
            }
            return o;
        }
        for (i = 0; i < len; i++) {
            unsigned char c = s[i];
            if (c >= 0x20 && c != '"' && c != '\\\\') { out[o++] = c; continue; }
            out[o++] = '\\\\';
            switch (c) {
            case '"': out[o++] = '"'; break;
            case '\\\\': out[o++] = '\\\\'; break;
            case '\\n': out[o++] = 'n'; break;
            case '\\r': out[o++] = 'r'; break;
            case '\\t': out[o++] = 't'; break;
            case '\\b': out[o++] = 'b'; break;
            case '\\f': out[o++] = 'f'; break;
            default:
                out[o++] = 'u'; out[o++] = '0'; out[o++] = '0';
                out[o++] = (unsigned char)HEX[c >> 4]; out[o++] = (unsigned char)HEX[c & 15];
            }
        }
        return o;
    }

    static inline int rs_signbit(double x) { return signbit(x) ? 1 : 0; }
    static inline int rs_isfinite(double x) { return isfinite(x) ? 1 : 0; }

    /* the decimal text of v into buf (room for 21 bytes); its length (snprintf's %lld, faster) */
    static int rs_ll_text(long long v, char *buf) {
        char digits[24];
        int n = 0, o = 0;
        unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        do { digits[n++] = (char)('0' + (int)(u % 10)); u /= 10; } while (u);
        if (v < 0) buf[o++] = '-';
        while (n) buf[o++] = digits[--n];
        return o;
    }
    """
    ctypedef struct rs_hmac_key:
        pass
    int rs_str_ready(object o) except -1
    bint rs_str_is_ascii(object o)
    int rs_ll_text(long long v, char *buf)
    int rs_str_kind(object o)
    const void *rs_str_data(object o)
    Py_UCS4 rs_read(int kind, const void *data, Py_ssize_t i)
    int RS_KIND_1BYTE
    bint rs_is_alnum(unsigned int c)
    bint rs_alnum_bytes(const unsigned char *s, Py_ssize_t n)
    int rs_select_sha(int most)
    enum: RS_SHA_PORTABLE, RS_SHA_BMI2, RS_SHA_NI
    void rs_sha256(const unsigned char *msg, size_t length, unsigned char *out)
    void rs_hmac_prepare(rs_hmac_key *k, const unsigned char *key, size_t keylen)
    void rs_hmac(const rs_hmac_key *k, const unsigned char *msg, size_t length, unsigned char *out)
    void rs_b64_digest(const unsigned char *inp, char *out)
    bint rs_ct_equal(const char *a, const char *b, size_t n)
    Py_ssize_t rs_last_dot(const unsigned char *s, Py_ssize_t start, Py_ssize_t end)
    bint rs_ascii_bytes(const unsigned char *s, Py_ssize_t n)
    size_t rs_json_escape(const unsigned char *s, size_t length, unsigned char *out)
    bint rs_signbit(double x)
    bint rs_isfinite(double x)

cdef extern from *:
    """
    /* ---- per-process buffer of os.urandom bytes for new_token ----
       Only new_token touches it, with the GIL held from reading rs_rpos to storing it back (no
       Python call in between), so the GIL is its lock. Consumed bytes are zeroed and never read
       again; a forked child starts with an empty buffer (pthread_atfork here catches every fork
       through libc, os.register_at_fork in the module catches os.fork on any platform). */
    #define RS_RBUF_SIZE 4096
    static unsigned char rs_rbuf[RS_RBUF_SIZE];
    static Py_ssize_t rs_rpos = RS_RBUF_SIZE;

    static void rs_rbuf_forget(void) {
        memset(rs_rbuf, 0, sizeof rs_rbuf);
        rs_rpos = RS_RBUF_SIZE;
    }

    #if !defined(_WIN32)
    #include <pthread.h>
    static int rs_rbuf_atfork(void) { return pthread_atfork(NULL, NULL, rs_rbuf_forget); }
    #else
    static int rs_rbuf_atfork(void) { return 0; }
    #endif

    /* The wall clock in ms, as time.time_ns() // 1000000 (which is CLOCK_REALTIME on POSIX);
       -1 where the caller must ask the time module. */
    #if !defined(_WIN32)
    #include <time.h>
    #endif
    static int rs_now_ms(unsigned long long *ms) {
    #if !defined(_WIN32) && defined(CLOCK_REALTIME)
        struct timespec ts;
        if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0) return -1;
        *ms = (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)(ts.tv_nsec / 1000000);
        return 0;
    #else
        (void)ms;
        return -1;
    #endif
    }

    /* ---- a JSON parser for the session's "d" (objects and arrays nested in it) ----
       The grammar of RFC 8259 with json's whitespace (space, tab, LF, CR), and the results of
       json.loads for everything it accepts: dicts filled by PyDict_SetItem in text order (a
       repeated key: the last value, at the first one's place), lists by append, ints through
       PyLong (any size up to 63 characters), floats through PyOS_string_to_double on the exact
       token (what float() does), strings decoded from UTF-8 with every json escape, a high
       surrogate escape joined with a low one that follows it (json's rule), lone ones kept.
       It gives up (RS_GIVE_UP: NULL without an exception; the caller then asks the stdlib, which
       gives the answer) on anything else: invalid JSON, NaN and Infinity, invalid UTF-8, numbers
       of 64 characters or more, nesting that reaches Python's recursion limit (each container
       takes one level, as in json's scanner, with RS_RESERVED_LEVELS more for the frames the
       pure twin has above its scanner). NULL with an exception is a real error (MemoryError). */
    #define RS_GIVE_UP NULL
    #define RS_RESERVED_LEVELS 4
    static inline int rs_ws(unsigned char c) { return c == ' ' || c == '\\t' || c == '\\n' || c == '\\r'; }
    static inline int rs_digit(unsigned char c) { return c >= '0' && c <= '9'; }

    typedef struct { const unsigned char *s; Py_ssize_t n; Py_ssize_t i; } rs_json;

    static inline void rs_skip_ws(rs_json *p) {
        while (p->i < p->n && rs_ws(p->s[p->i])) p->i++;
    }

    /* str of UTF-8 s[0:n]; NULL without an exception when it is not valid UTF-8. */
    static PyObject *rs_json_str(const unsigned char *s, Py_ssize_t n, int ascii) {
        PyObject *u;
        if (ascii) {
            u = PyUnicode_New(n, 127);
            if (u != NULL && n) memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
            return u;
        }
        u = PyUnicode_DecodeUTF8((const char *)s, n, NULL);
        if (u == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) PyErr_Clear();
        return u;
    }

    /* Keys repeat from one session to the next: short ASCII keys come from a small direct-mapped
       cache of str objects (immutable; their hash is computed once). Only touched with the GIL. */
    #define RS_KEY_SLOTS 256
    static PyObject *rs_key_cache[RS_KEY_SLOTS];

    static PyObject *rs_json_key(const unsigned char *s, Py_ssize_t n, int ascii) {
        uint32_t h = 2166136261u;
        Py_ssize_t i;
        PyObject *k, *old;
        if (!ascii || n > 32) return rs_json_str(s, n, ascii);
        for (i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
        h = (h ^ (h >> 16) ^ (uint32_t)n) & (RS_KEY_SLOTS - 1);
        k = rs_key_cache[h];
        if (k != NULL && PyUnicode_GET_LENGTH(k) == n && memcmp(PyUnicode_1BYTE_DATA(k), s, (size_t)n) == 0) {
            Py_INCREF(k);
            return k;
        }
        k = rs_json_str(s, n, 1);
        if (k == NULL) return NULL;
        Py_INCREF(k);
        old = rs_key_cache[h];
        rs_key_cache[h] = k;
        Py_XDECREF(old);
        return k;
    }

    /* 10**0 .. 10**22: the powers of ten a double holds exactly. */
    static const double rs_tens[23] = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
    };

    /* The number at p->s[p->i] (JSON grammar exactly); RS_GIVE_UP: not one, or too long.
       A float of at most 15 significant digits times 10**e, |e| <= 22, is the one IEEE
       operation m * 10**e or m / 10**-e of two exact doubles, correctly rounded: the double
       PyOS_string_to_double returns (dtoa.c's own first step); other floats go through it. */
    static PyObject *rs_json_number(rs_json *p) {
        const unsigned char *s = p->s;
        Py_ssize_t n = p->n, i = p->i, start = p->i, len, j;
        int is_int = 1, neg = 0, sig = 0, frac = 0, exp = 0, exp_neg = 0, exp_digits = 0;
        uint64_t m = 0;
        char buf[64];
        double d;
        if (s[i] == '-') { neg = 1; i++; }
        if (i < n && s[i] == '0') i++;
        else if (i < n && s[i] >= '1' && s[i] <= '9') {
            while (i < n && rs_digit(s[i])) {
                if (++sig <= 15) m = m * 10 + (uint64_t)(s[i] - '0');
                i++;
            }
        }
        else return RS_GIVE_UP;
        if (i < n && s[i] == '.') {
            if (!(i + 1 < n && rs_digit(s[i + 1]))) return RS_GIVE_UP;
            i++;
            while (i < n && rs_digit(s[i])) {
                if (m || s[i] != '0') sig++;
                if (sig <= 15) m = m * 10 + (uint64_t)(s[i] - '0');
                frac++;
                i++;
            }
            is_int = 0;
        }
        if (i < n && (s[i] == 'e' || s[i] == 'E')) {
            j = i + 1;
            if (j < n && (s[j] == '+' || s[j] == '-')) { exp_neg = s[j] == '-'; j++; }
            if (!(j < n && rs_digit(s[j]))) return RS_GIVE_UP;
            i = j;
            while (i < n && rs_digit(s[i])) {
                if (++exp_digits <= 4) exp = exp * 10 + (s[i] - '0');
                i++;
            }
            is_int = 0;
        }
        p->i = i;
        len = i - start;
        if (is_int && len - neg <= 18) {
            long long v = 0;
            for (j = start + neg; j < i; j++) v = v * 10 + (s[j] - '0');
            return PyLong_FromLongLong(neg ? -v : v);
        }
        if (!is_int && sig <= 15 && exp_digits <= 4) {
            int e10 = (exp_neg ? -exp : exp) - frac;
            if (e10 >= -22 && e10 <= 22) {
                d = (double)m;  /* exact: m < 10**15 */
                if (e10 > 0) d *= rs_tens[e10];
                else if (e10 < 0) d /= rs_tens[-e10];
                return PyFloat_FromDouble(neg ? -d : d);
            }
        }
        if (len >= (Py_ssize_t)sizeof buf) return RS_GIVE_UP;
        memcpy(buf, s + start, (size_t)len);
        buf[len] = 0;
        if (is_int) return PyLong_FromString(buf, NULL, 10);
        d = PyOS_string_to_double(buf, NULL, NULL);  /* overflow: +-inf, as float() and json give */
        if (d == -1.0 && PyErr_Occurred()) return NULL;
        return PyFloat_FromDouble(d);
    }

    /* One code point of strict UTF-8 at s[*pi] (a byte >= 0x80), as Python's decoder accepts it
       (no overlong forms, no surrogates, nothing above U+10FFFF); -1 when invalid. */
    static long rs_utf8_char(const unsigned char *s, Py_ssize_t end, Py_ssize_t *pi) {
        Py_ssize_t i = *pi;
        unsigned char c = s[i];
        long cp;
        int more, k;
        if (c >= 0xC2 && c <= 0xDF) { cp = c & 0x1F; more = 1; }
        else if (c >= 0xE0 && c <= 0xEF) { cp = c & 0x0F; more = 2; }
        else if (c >= 0xF0 && c <= 0xF4) { cp = c & 0x07; more = 3; }
        else return -1;
        if (end - i <= more) return -1;
        for (k = 1; k <= more; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF)))
                || (more == 3 && (cp < 0x10000 || cp > 0x10FFFF))) return -1;
        *pi = i + 1 + more;
        return cp;
    }

    static int rs_hex4(const unsigned char *s, Py_UCS4 *out) {
        Py_UCS4 v = 0;
        int k;
        for (k = 0; k < 4; k++) {
            unsigned char c = s[k];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= (Py_UCS4)(c - '0');
            else if (c >= 'a' && c <= 'f') v |= (Py_UCS4)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= (Py_UCS4)(c - 'A' + 10);
            else return 0;
        }
        *out = v;
        return 1;
    }

    /* The body s[start:end] of a string with escapes (its end already found); RS_GIVE_UP when
       json would reject it or the UTF-8 is invalid. */
    static PyObject *rs_json_escaped(const unsigned char *s, Py_ssize_t start, Py_ssize_t end) {
        Py_UCS4 small[128], *buf = small, c, c2;
        Py_ssize_t i = start, o = 0;
        long cp;
        PyObject *u = RS_GIVE_UP;
        if (end - start > 128) {
            buf = (Py_UCS4 *)PyMem_Malloc((size_t)(end - start) * sizeof(Py_UCS4));
            if (buf == NULL) return PyErr_NoMemory();
        }
        while (i < end) {
            c = s[i];
            if (c >= 0x80) {
                cp = rs_utf8_char(s, end, &i);
                if (cp < 0) goto done;
                buf[o++] = (Py_UCS4)cp;
                continue;
            }
            if (c != '\\\\') { buf[o++] = c; i++; continue; }
            if (i + 1 >= end) goto done;
            switch (s[i + 1]) {
            case '"': c = '"'; break;
            case '\\\\': c = '\\\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\\b'; break;
            case 'f': c = '\\f'; break;
            case 'n': c = '\\n'; break;
            case 'r': c = '\\r'; break;
            case 't': c = '\\t'; break;
            case 'u':
                if (end - i < 6 || !rs_hex4(s + i + 2, &c)) goto done;
                if (c >= 0xD800 && c <= 0xDBFF && end - i >= 12 && s[i + 6] == '\\\\' && s[i + 7] == 'u') {
                    if (!rs_hex4(s + i + 8, &c2)) goto done;
                    if (c2 >= 0xDC00 && c2 <= 0xDFFF) {
                        buf[o++] = 0x10000 + (((c - 0xD800) << 10) | (c2 - 0xDC00));
                        i += 12;
                        continue;
                    }
                }
                buf[o++] = c;
                i += 6;
                continue;
            default:
                goto done;
            }
            buf[o++] = c;
            i += 2;
        }
        u = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, o);
    done:
        if (buf != small) PyMem_Free(buf);
        return u;
    }

    /* The string at p->s[p->i] (its opening quote); a key (cached) when is_key. */
    static PyObject *rs_json_string(rs_json *p, int is_key) {
        const unsigned char *s = p->s;
        Py_ssize_t n = p->n, start = p->i + 1, i = start;
        unsigned char c;
        int ascii = 1, escaped = 0;
        while (i < n && (c = s[i]) != '"') {
            if (c == '\\\\') { escaped = 1; i += 2; continue; }
            if (c < 0x20) return RS_GIVE_UP;
            ascii &= c < 0x80;
            i++;
        }
        if (i >= n) return RS_GIVE_UP;
        p->i = i + 1;
        if (escaped) return rs_json_escaped(s, start, i);
        return is_key ? rs_json_key(s + start, i - start, ascii) : rs_json_str(s + start, i - start, ascii);
    }

    static PyObject *rs_json_value(rs_json *p);

    static PyObject *rs_json_array(rs_json *p) {
        PyObject *list, *v;
        p->i++;  /* [ */
        list = PyList_New(0);
        if (list == NULL) return NULL;
        rs_skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') { p->i++; return list; }
        for (;;) {
            v = rs_json_value(p);
            if (v == NULL) break;
            if (PyList_Append(list, v) < 0) { Py_DECREF(v); break; }
            Py_DECREF(v);
            rs_skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; rs_skip_ws(p); continue; }
            if (p->i < p->n && p->s[p->i] == ']') { p->i++; return list; }
            break;
        }
        Py_DECREF(list);
        return NULL;
    }

    static PyObject *rs_json_object(rs_json *p) {
        PyObject *d, *k, *v;
        p->i++;  /* { */
        d = PyDict_New();
        if (d == NULL) return NULL;
        rs_skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
        for (;;) {
            if (p->i >= p->n || p->s[p->i] != '"') break;
            k = rs_json_string(p, 1);
            if (k == NULL) break;
            rs_skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') { Py_DECREF(k); break; }
            p->i++;
            rs_skip_ws(p);
            v = rs_json_value(p);
            if (v == NULL) { Py_DECREF(k); break; }
            if (PyDict_SetItem(d, k, v) < 0) { Py_DECREF(k); Py_DECREF(v); break; }
            Py_DECREF(k);
            Py_DECREF(v);
            rs_skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') { p->i++; rs_skip_ws(p); continue; }
            if (p->i < p->n && p->s[p->i] == '}') { p->i++; return d; }
            break;
        }
        Py_DECREF(d);
        return NULL;
    }

    /* A container under one more level of Python's recursion limit (json's scanner takes one
       level per container too); reaching the limit is a give-up, not an error. */
    static PyObject *rs_json_container(rs_json *p, int object) {
        PyObject *v;
        if (Py_EnterRecursiveCall(" while decoding a JSON value")) {
            if (PyErr_ExceptionMatches(PyExc_RecursionError)) PyErr_Clear();
            return NULL;
        }
        v = object ? rs_json_object(p) : rs_json_array(p);
        Py_LeaveRecursiveCall();
        return v;
    }

    /* The value at p->s[p->i] (no whitespace before it). */
    static PyObject *rs_json_value(rs_json *p) {
        const unsigned char *s = p->s + p->i;
        Py_ssize_t left = p->n - p->i;
        if (left <= 0) return RS_GIVE_UP;
        switch (s[0]) {
        case '"': return rs_json_string(p, 0);
        case '{': return rs_json_container(p, 1);
        case '[': return rs_json_container(p, 0);
        case 't':
            if (left < 4 || memcmp(s, "true", 4) != 0) return RS_GIVE_UP;
            p->i += 4; Py_RETURN_TRUE;
        case 'f':
            if (left < 5 || memcmp(s, "false", 5) != 0) return RS_GIVE_UP;
            p->i += 5; Py_RETURN_FALSE;
        case 'n':
            if (left < 4 || memcmp(s, "null", 4) != 0) return RS_GIVE_UP;
            p->i += 4; Py_RETURN_NONE;
        default:
            if (s[0] == '-' || rs_digit(s[0])) return rs_json_number(p);
            return RS_GIVE_UP;  /* NaN, Infinity and anything that is not JSON */
        }
    }

    /* json.loads of UTF-8 s[0:n] when it is an object: the dict; Py_None when the caller must ask
       the stdlib (anything but an object, or a give-up); NULL on a real error. */
    static PyObject *rs_parse_object(const unsigned char *s, Py_ssize_t n) {
        rs_json p;
        PyObject *d;
        int reserved = 0;
        p.s = s; p.n = n; p.i = 0;
        rs_skip_ws(&p);
        if (p.i >= n || s[p.i] != '{') Py_RETURN_NONE;
        for (; reserved < RS_RESERVED_LEVELS; reserved++) {
            if (Py_EnterRecursiveCall(" while decoding a JSON value")) break;
        }
        d = reserved == RS_RESERVED_LEVELS ? rs_json_container(&p, 1) : NULL;
        while (reserved--) Py_LeaveRecursiveCall();
        if (d == NULL) {
            if (PyErr_Occurred()) {
                if (!PyErr_ExceptionMatches(PyExc_RecursionError)) return NULL;
                PyErr_Clear();
            }
            Py_RETURN_NONE;
        }
        rs_skip_ws(&p);
        if (p.i != n) { Py_DECREF(d); Py_RETURN_NONE; }
        return d;
    }
    """
    enum: RS_RBUF_SIZE
    unsigned char rs_rbuf[]
    Py_ssize_t rs_rpos
    void rs_rbuf_forget()
    int rs_rbuf_atfork()
    int rs_now_ms(unsigned long long *ms)
    object rs_parse_object(const unsigned char *s, Py_ssize_t n)

cdef extern from "Python.h":
    bint PyUnicode_Check(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyBytes_Check(object o)
    bint PyBytes_CheckExact(object o)
    bint PyByteArray_Check(object o)
    char *PyByteArray_AS_STRING(object o)
    Py_ssize_t PyByteArray_GET_SIZE(object o)
    bint PyLong_Check(object o)
    bint PyLong_CheckExact(object o)
    bint PyFloat_Check(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    bint PyList_Check(object o)
    bint PyList_CheckExact(object o)
    bint PyTuple_Check(object o)
    bint PyTuple_CheckExact(object o)
    bint PyDict_Check(object o)
    int PyUnicode_Compare(object a, object b) except? -1
    void *PyMem_Realloc(void *p, size_t n)
    PyObject *PyTuple_GET_ITEM(object o, Py_ssize_t i)
    void *PyMem_Malloc(size_t n)
    bint PyDict_CheckExact(object o)
    Py_ssize_t PyList_GET_SIZE(object o)
    PyObject *PyList_GET_ITEM(object o, Py_ssize_t i)
    PyObject *PyDict_GetItemWithError(object d, object k) except? NULL
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    unsigned char *PyUnicode_1BYTE_DATA(object o)
    const char *PyUnicode_AsUTF8AndSize(object o, Py_ssize_t *size) except NULL
    object PyUnicode_DecodeASCII(const char *s, Py_ssize_t size, const char *errors)
    object PyUnicode_DecodeUTF8(const char *s, Py_ssize_t size, const char *errors)
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1
    unsigned long long PyLong_AsUnsignedLongLong(object o) except? -1
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags, int *ptype) except NULL
    void PyMem_Free(void *p)
    int Py_DTSF_ADD_DOT_0

# ---------------------------------------------------------------------------------------------
# tables derived from _constants at import (never written out here)

cdef enum:
    MAX_TOKEN = 128
cdef char _LETTER_OF_BYTE[256]
cdef int _ACCEPT_BELOW
cdef char _B36[36]
cdef char _SEP
cdef Py_ssize_t _RANDOM_LEN = TOKEN_RANDOM_LENGTH
cdef Py_ssize_t _TOKEN_LEN = TOKEN_LENGTH
cdef Py_ssize_t _SIG_LEN = 43  # base64 of a SHA-256 digest without its "=" padding
cdef int _MAX_DEPTH = MAX_DEPTH


cdef void _init_tables() except *:
    global _ACCEPT_BELOW, _SEP
    cdef bytes alphabet = TOKEN_ALPHABET.encode("ascii")
    cdef bytes digits = BASE36_DIGITS.encode("ascii")
    cdef int n = len(alphabet), b
    if not (0 < n <= 256 and len(digits) == 36 and len(TOKEN_SEPARATOR) == 1
            and 0 < TOKEN_RANDOM_LENGTH and TOKEN_LENGTH <= MAX_TOKEN):
        raise ImportError("redis_sessions._constants does not fit the compiled core")
    _ACCEPT_BELOW = 256 - 256 % n
    for b in range(256):
        _LETTER_OF_BYTE[b] = alphabet[b % n] if b < _ACCEPT_BELOW else 0
    memcpy(_B36, PyBytes_AS_STRING(digits), 36)
    _SEP = ord(TOKEN_SEPARATOR)


_init_tables()
_SHA_BACKENDS = ("portable", "bmi2", "sha-ni")  # by RS_SHA_* value
_SHA_BACKEND = rs_select_sha(RS_SHA_NI)

_urandom = os.urandom
_time_ns = time.time_ns
_scan_once = json.decoder.JSONDecoder().scan_once
cdef dict _KEY_CACHE = {}
cdef Py_ssize_t _KEY_CACHE_MAX = 32
# the last exact-bytes key and its states: found by identity, before the dict (bytes are immutable)
cdef object _LAST_KEY = None
cdef rs_hmac_key _LAST_STATE


def _sha256_backend():
    """'sha-ni', 'bmi2' or 'portable': the SHA-256 code in use (for tests and benchmarks)."""
    return _SHA_BACKENDS[_SHA_BACKEND]


def _use_sha256_backend(str name):
    """Use the SHA-256 code ``name`` ('sha-ni', 'bmi2', 'portable'), or the best below it that
    the CPU has; returns the one in use. Benchmarks force 'portable' or 'bmi2' to measure a CPU
    without SHA-NI (what one selects itself)."""
    global _SHA_BACKEND
    _SHA_BACKEND = rs_select_sha(_SHA_BACKENDS.index(name))
    return _sha256_backend()


def _sha256(data):
    """SHA-256 of a bytes-like object (tests check it against hashlib)."""
    cdef bytes b = bytes(data)
    cdef unsigned char out[32]
    rs_sha256(<const unsigned char *>PyBytes_AS_STRING(b), <size_t>PyBytes_GET_SIZE(b), out)
    return PyBytes_FromStringAndSize(<char *>out, 32)


# ---------------------------------------------------------------------------------------------
# tokens

cdef Py_ssize_t _base36_into(unsigned long long v, char *out) noexcept:
    """Writes v in base 36 at out (at most 13 chars); returns the length."""
    cdef char buf[16]
    cdef Py_ssize_t i = 16
    while True:
        i -= 1
        buf[i] = _B36[v % 36]
        v //= 36
        if v == 0:
            break
    memcpy(out, buf + i, 16 - i)
    return 16 - i


cdef object _token(const unsigned char *rnd, Py_ssize_t n, object ms):
    cdef char buf[MAX_TOKEN + 16]
    cdef Py_ssize_t i, got = 0
    cdef unsigned char b
    for i in range(n):
        b = rnd[i]
        if b < _ACCEPT_BELOW:
            buf[got] = _LETTER_OF_BYTE[b]
            got += 1
            if got == _RANDOM_LEN:
                break
    if got < _RANDOM_LEN:
        return None
    buf[got] = _SEP
    got += 1
    if ms < 0x10000000000000000:
        got += _base36_into(PyLong_AsUnsignedLongLong(ms), buf + got)
        return PyUnicode_DecodeASCII(buf, got, NULL)
    digits = []
    while ms:
        ms, r = divmod(ms, 36)
        digits.append(BASE36_DIGITS[r])
    return PyUnicode_DecodeASCII(buf, got, NULL) + "".join(reversed(digits))


def token_from_random(random, ms):
    """The deterministic part of ``new_token``: 55 letters from ``random``, "Z", base36(``ms``).

    Returns None when ``random`` holds fewer than 55 accepted bytes (each byte >= 244 is skipped).
    """
    cdef bytes data = random if PyBytes_CheckExact(random) else memoryview(random).tobytes()
    if type(ms) is bool or not isinstance(ms, int):
        raise TypeError(f"ms must be an int, got {type(ms).__name__}")
    if ms < 0:
        raise ValueError("ms must be >= 0")
    return _token(<const unsigned char *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), ms)


def new_token():
    """A new 64-character session token from ``os.urandom`` and the current time in ms."""
    # The random bytes come from a per-process buffer of os.urandom output (rs_rbuf): each byte
    # is read once, zeroed, and never used again; a forked child starts with an empty buffer.
    # The GIL is the buffer's lock: between reading rs_rpos and storing it back this code makes
    # no Python call and does not release the GIL. The refill (os.urandom) may release it; the
    # buffer is then empty (rs_rpos == RS_RBUF_SIZE), and the fresh bytes replace whatever
    # another thread left there (unread bytes are dropped, never reused).
    cdef char buf[MAX_TOKEN + 16]
    cdef Py_ssize_t got = 0, pos
    cdef unsigned char b
    cdef unsigned long long ms
    cdef bytes fresh
    if rs_now_ms(&ms) != 0:
        ms = PyLong_AsUnsignedLongLong(_time_ns()) // 1000000
    global rs_rpos
    while True:
        pos = rs_rpos
        while pos < RS_RBUF_SIZE:
            b = rs_rbuf[pos]
            rs_rbuf[pos] = 0
            pos += 1
            if b < _ACCEPT_BELOW:
                buf[got] = _LETTER_OF_BYTE[b]
                got += 1
                if got == _RANDOM_LEN:
                    rs_rpos = pos
                    buf[got] = _SEP
                    got += 1
                    got += _base36_into(ms, buf + got)
                    return PyUnicode_DecodeASCII(buf, got, NULL)
        rs_rpos = RS_RBUF_SIZE
        fresh = _urandom(RS_RBUF_SIZE)
        if PyBytes_GET_SIZE(fresh) != RS_RBUF_SIZE:
            raise RuntimeError("os.urandom returned a short read")
        memcpy(rs_rbuf, PyBytes_AS_STRING(fresh), RS_RBUF_SIZE)
        rs_rpos = 0


def _forget_random():
    """Empties the random buffer of new_token (run in a forked child; tests call it too)."""
    rs_rbuf_forget()


if rs_rbuf_atfork() != 0:
    raise ImportError("redis_sessions._core: pthread_atfork failed")
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_random)


cdef bint _is_token_range(object s, Py_ssize_t start, Py_ssize_t end) except -1:
    """True iff s[start:end] is 64 ASCII letters and digits (s is a ready str)."""
    cdef int kind
    cdef const void *data
    cdef Py_ssize_t i
    if end - start != _TOKEN_LEN:
        return False
    kind = rs_str_kind(s)
    data = rs_str_data(s)
    if kind == RS_KIND_1BYTE:
        return rs_alnum_bytes(<const unsigned char *>data + start, end - start)
    for i in range(start, end):
        if not rs_is_alnum(rs_read(kind, data, i)):
            return False
    return True


def is_token(value):
    """True iff ``value`` is a str of 64 ASCII letters and digits (Node's ``^[A-Za-z0-9]{64}$``)."""
    if not PyUnicode_Check(value):
        return False
    rs_str_ready(value)
    return _is_token_range(value, 0, PyUnicode_GET_LENGTH(value))


# ---------------------------------------------------------------------------------------------
# signing

cdef int _load_key(object key, rs_hmac_key *k) except -1:
    global _LAST_KEY
    cdef PyObject *cached
    if key is _LAST_KEY:  # the same bytes object as last time (usually the one signing key)
        memcpy(k, &_LAST_STATE, sizeof(rs_hmac_key))
        return 0
    if PyBytes_CheckExact(key):
        cached = PyDict_GetItemWithError(_KEY_CACHE, key)
        if cached is not NULL:
            memcpy(k, PyBytes_AS_STRING(<object>cached), sizeof(rs_hmac_key))
        else:
            rs_hmac_prepare(k, <const unsigned char *>PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key))
            if len(_KEY_CACHE) >= _KEY_CACHE_MAX:
                _KEY_CACHE.clear()
            _KEY_CACHE[key] = PyBytes_FromStringAndSize(<char *>k, sizeof(rs_hmac_key))
        memcpy(&_LAST_STATE, k, sizeof(rs_hmac_key))
        _LAST_KEY = key
    elif PyBytes_Check(key):
        rs_hmac_prepare(k, <const unsigned char *>PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key))
    elif PyByteArray_Check(key):
        rs_hmac_prepare(k, <const unsigned char *>PyByteArray_AS_STRING(key), <size_t>PyByteArray_GET_SIZE(key))
    else:
        raise TypeError(f"key: expected bytes or bytearray, got {type(key).__name__}")
    return 0


def sign(token, key):
    """``token.<signature>`` as express's cookie-signature makes it (HMAC-SHA256, base64, no =)."""
    cdef Py_ssize_t n
    cdef const char *utf8
    cdef rs_hmac_key k
    cdef unsigned char digest[32]
    cdef char sig[43]
    cdef unsigned char *out
    if not PyUnicode_Check(token):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    utf8 = PyUnicode_AsUTF8AndSize(token, &n)
    _load_key(key, &k)
    rs_hmac(&k, <const unsigned char *>utf8, <size_t>n, digest)
    rs_b64_digest(digest, sig)
    if rs_str_is_ascii(token):
        result = PyUnicode_New(n + 1 + _SIG_LEN, 127)
        out = PyUnicode_1BYTE_DATA(result)
        memcpy(out, utf8, n)
        out[n] = 46  # "."
        memcpy(out + n + 1, sig, _SIG_LEN)
        return result
    return token + "." + PyBytes_FromStringAndSize(sig, _SIG_LEN).decode("ascii")


cdef object _unsign_range(object s, Py_ssize_t start, Py_ssize_t end, object keys):
    """unsign(s[start:end], keys) without making the substring (s is a ready str)."""
    cdef int kind = rs_str_kind(s)
    cdef const void *data = rs_str_data(s)
    cdef const unsigned char *b = <const unsigned char *>data
    cdef Py_ssize_t dot = -1, i
    cdef char tok_copy[MAX_TOKEN]
    cdef char given_copy[43]
    cdef const char *tok
    cdef const char *given
    cdef char sig[43]
    cdef unsigned char digest[32]
    cdef rs_hmac_key k
    cdef bint full_length
    if kind == RS_KIND_1BYTE:
        dot = rs_last_dot(b, start, end)
    else:
        i = end
        while i > start:
            i -= 1
            if rs_read(kind, data, i) == 46:  # "."
                dot = i
                break
    if dot < 0 or not _is_token_range(s, start, dot):
        return None
    full_length = end - dot - 1 == _SIG_LEN
    if kind == RS_KIND_1BYTE:  # the usual case: the characters are the bytes
        if not rs_str_is_ascii(s) and not rs_ascii_bytes(b + dot + 1, end - dot - 1):
            return None
        tok = <const char *>b + start
        given = <const char *>b + dot + 1
    else:
        for i in range(dot + 1, end):
            if rs_read(kind, data, i) >= 128:
                return None
        if full_length:
            for i in range(_SIG_LEN):
                given_copy[i] = <char>rs_read(kind, data, dot + 1 + i)
        for i in range(_TOKEN_LEN):
            tok_copy[i] = <char>rs_read(kind, data, start + i)
        tok = tok_copy
        given = given_copy
    for key in keys:
        _load_key(key, &k)
        if full_length:
            rs_hmac(&k, <const unsigned char *>tok, <size_t>_TOKEN_LEN, digest)
            rs_b64_digest(digest, sig)
            if rs_ct_equal(sig, given, <size_t>_SIG_LEN):
                result = PyUnicode_New(_TOKEN_LEN, 127)
                memcpy(PyUnicode_1BYTE_DATA(result), tok, _TOKEN_LEN)
                return result
    return None


def unsign(value, keys):
    """The token of a signed value when one of ``keys`` signed it, else None (never raises on str).

    The first key signs and every key verifies, so keys can be rotated.
    """
    if not PyUnicode_Check(value):
        return None
    rs_str_ready(value)
    return _unsign_range(value, 0, PyUnicode_GET_LENGTH(value), keys)


# ---------------------------------------------------------------------------------------------
# cookies

cdef inline bint _is_blank(Py_UCS4 c) noexcept:
    return c == 32 or c == 9


cdef bint _find_cookie(object header, object name, Py_ssize_t *vstart, Py_ssize_t *vend) except -1:
    """Finds the value of the first cookie ``name``: sets [vstart, vend) and returns True."""
    cdef int kind = rs_str_kind(header), nkind = rs_str_kind(name)
    cdef const void *data = rs_str_data(header)
    cdef const void *ndata = rs_str_data(name)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(header), nlen = PyUnicode_GET_LENGTH(name)
    cdef Py_ssize_t i = 0, pe, eq, ks, ke, vs, ve, j
    cdef const unsigned char *h1
    cdef const unsigned char *p
    cdef bint matched
    cdef bint one_byte = kind == RS_KIND_1BYTE and nkind == RS_KIND_1BYTE
    h1 = <const unsigned char *>data
    while i <= n:
        # the pair is [i, pe), its "=" at eq (or -1)
        eq = -1
        if one_byte:
            p = <const unsigned char *>memchr(h1 + i, 59, <size_t>(n - i))
            pe = n if p is NULL else p - h1
            p = <const unsigned char *>memchr(h1 + i, 61, <size_t>(pe - i))
            if p is not NULL:
                eq = p - h1
        else:
            pe = i
            while pe < n and rs_read(kind, data, pe) != 59:
                if eq < 0 and rs_read(kind, data, pe) == 61:
                    eq = pe
                pe += 1
        if eq >= 0:
            ks = i
            ke = eq
            while ks < ke and _is_blank(rs_read(kind, data, ks)):
                ks += 1
            while ke > ks and _is_blank(rs_read(kind, data, ke - 1)):
                ke -= 1
            if ke - ks == nlen:
                if one_byte:
                    matched = memcmp(h1 + ks, ndata, <size_t>nlen) == 0
                else:
                    matched = True
                    for j in range(nlen):
                        if rs_read(kind, data, ks + j) != rs_read(nkind, ndata, j):
                            matched = False
                            break
                if matched:
                    vs = eq + 1
                    ve = pe
                    while vs < ve and _is_blank(rs_read(kind, data, vs)):
                        vs += 1
                    while ve > vs and _is_blank(rs_read(kind, data, ve - 1)):
                        ve -= 1
                    if (ve - vs >= 2 and rs_read(kind, data, vs) == 34
                            and rs_read(kind, data, ve - 1) == 34):
                        vs += 1
                        ve -= 1
                    vstart[0] = vs
                    vend[0] = ve
                    return True
        i = pe + 1
    return False


cdef inline int _check_cookie_args(object header, object name) except -1:
    if not PyUnicode_Check(header):
        raise TypeError(f"header must be a str or None, got {type(header).__name__}")
    if not PyUnicode_Check(name):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    rs_str_ready(header)
    rs_str_ready(name)
    return 0


def cookie_value(header, name):
    """The value of the first cookie called ``name`` in a raw ``Cookie`` header, or None.

    Pairs are split at ";", names and values stripped of spaces and tabs, one pair of double
    quotes around a value removed; pairs without "=" are skipped; no percent-decoding.
    """
    cdef Py_ssize_t vs, ve
    if header is None:
        return None
    _check_cookie_args(header, name)
    if not _find_cookie(header, name, &vs, &ve):
        return None
    return PyUnicode_Substring(header, vs, ve)


def extract_token(header, name, keys):
    """The session token of a request: the cookie ``name``, verified with ``keys`` when given."""
    cdef Py_ssize_t vs, ve
    if header is None:
        return None
    _check_cookie_args(header, name)
    if not _find_cookie(header, name, &vs, &ve):
        return None
    if keys:
        return _unsign_range(header, vs, ve, keys)
    if _is_token_range(header, vs, ve):
        return PyUnicode_Substring(header, vs, ve)
    return None


# ---------------------------------------------------------------------------------------------
# wire

cdef bytes _pack_generic(args):
    """pack_command for anything but a list or tuple of exact bytes, str and int: the pure code."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        else:
            raise TypeError(f"pack_command: cannot send {type(arg).__name__}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


cdef struct _Arg:
    const char *p  # the bytes to send, or NULL for a small int in v
    Py_ssize_t n   # their length
    long long v


cdef inline Py_ssize_t _ndigits(unsigned long long v) noexcept:
    cdef Py_ssize_t d = 1
    while v >= 10:
        v //= 10
        d += 1
    return d


cdef inline char *_put_digits(char *out, unsigned long long v, Py_ssize_t nd) noexcept:
    """Writes the nd decimal digits of v at out; returns out + nd."""
    cdef char *p = out + nd
    while True:
        p -= 1
        p[0] = <char>(48 + v % 10)
        v //= 10
        if v == 0:
            break
    return out + nd


cdef inline unsigned long long _magnitude(long long v) noexcept:
    return (<unsigned long long>0) - <unsigned long long>v if v < 0 else <unsigned long long>v


def pack_command(args):
    """One RESP command (an array of bulk strings); str is UTF-8, int is decimal, else TypeError."""
    cdef Py_ssize_t n = len(args), i, total
    cdef _Arg small[16]
    cdef _Arg *items = small
    cdef _Arg *it
    cdef PyObject *item
    cdef int overflow
    cdef bytes result
    cdef char *out
    if not (PyList_CheckExact(args) or PyTuple_CheckExact(args)):
        return _pack_generic(args)
    if n > 16:
        items = <_Arg *>PyMem_Malloc(n * sizeof(_Arg))
        if items is NULL:
            raise MemoryError()
    try:
        total = 3 + _ndigits(n)
        for i in range(n):
            # nothing here allocates GC-tracked objects or runs Python code, so the list cannot
            # change under it and the borrowed pointers stay valid until the copy below
            item = PyList_GET_ITEM(args, i) if PyList_CheckExact(args) else PyTuple_GET_ITEM(args, i)
            it = &items[i]
            if PyBytes_CheckExact(<object>item):
                it.p = PyBytes_AS_STRING(<object>item)
                it.n = PyBytes_GET_SIZE(<object>item)
            elif PyUnicode_CheckExact(<object>item):
                it.p = PyUnicode_AsUTF8AndSize(<object>item, &it.n)
            elif PyLong_CheckExact(<object>item):
                overflow = 0
                it.v = PyLong_AsLongLongAndOverflow(<object>item, &overflow)
                if overflow:  # beyond 64 bits: rare, formatted by Python as the pure twin does
                    return _pack_generic(args)
                it.p = NULL
                it.n = _ndigits(_magnitude(it.v)) + (it.v < 0)
            else:
                return _pack_generic(args)  # subclasses, bool and unsupported types: as the pure twin
            total += 5 + _ndigits(<unsigned long long>it.n) + it.n
        result = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(result)
        out[0] = 42  # "*"
        out = _put_digits(out + 1, <unsigned long long>n, _ndigits(<unsigned long long>n))
        out[0] = 13
        out[1] = 10
        out += 2
        for i in range(n):
            it = &items[i]
            out[0] = 36  # "$"
            out = _put_digits(out + 1, <unsigned long long>it.n, _ndigits(<unsigned long long>it.n))
            out[0] = 13
            out[1] = 10
            out += 2
            if it.p is not NULL:
                memcpy(out, it.p, <size_t>it.n)
            else:
                if it.v < 0:
                    out[0] = 45  # "-"
                    _put_digits(out + 1, _magnitude(it.v), it.n - 1)
                else:
                    _put_digits(out, <unsigned long long>it.v, it.n)
            out += it.n
            out[0] = 13
            out[1] = 10
            out += 2
        return result
    finally:
        if items is not small:
            PyMem_Free(items)


# ---------------------------------------------------------------------------------------------
# replies

cdef object _text(object item):
    """str of a bytes (UTF-8) or str item; None when it is neither or not UTF-8."""
    if PyBytes_Check(item):
        try:
            return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item), NULL)
        except UnicodeDecodeError:
            return None
    if PyUnicode_Check(item):
        return item
    return None


cdef inline bint _is_int(object item) noexcept:
    return PyLong_Check(item) and type(item) is not bool


cdef inline bint _json_space(Py_UCS4 c) noexcept:
    return c == 32 or c == 9 or c == 10 or c == 13


cdef object _json_object(str text):
    """json.loads(text) when that is a dict, else None (also for invalid JSON)."""
    cdef Py_ssize_t n, start = 0, end
    cdef int kind
    cdef const void *data
    rs_str_ready(text)
    n = PyUnicode_GET_LENGTH(text)
    kind = rs_str_kind(text)
    data = rs_str_data(text)
    while start < n and _json_space(rs_read(kind, data, start)):
        start += 1
    if start == n or rs_read(kind, data, start) != 123:  # "{": anything else is not an object
        return None
    try:
        value, end = _scan_once(text, start)
    except (StopIteration, ValueError, RecursionError):
        return None
    while end < n and _json_space(rs_read(kind, data, end)):
        end += 1
    if end != n or not PyDict_CheckExact(value):
        return None
    return value


def parse_session(reply):
    """Node's session dict from the reply of the session scripts; None for no session or garbage.

    ``reply`` is ``[id, r, w, ttl, idle, ip, d, no_resave]`` (bytes or str for the texts).
    """
    cdef dict session
    if not PyList_Check(reply) or PyList_GET_SIZE(reply) != 8:
        return None
    sid = _text(<object>PyList_GET_ITEM(reply, 0))
    if sid is None:
        return None
    r = <object>PyList_GET_ITEM(reply, 1)
    w = <object>PyList_GET_ITEM(reply, 2)
    ttl = <object>PyList_GET_ITEM(reply, 3)
    idle = <object>PyList_GET_ITEM(reply, 4)
    no_resave = <object>PyList_GET_ITEM(reply, 7)
    if not (_is_int(r) and _is_int(w) and _is_int(ttl) and _is_int(idle) and _is_int(no_resave)):
        return None
    ip = <object>PyList_GET_ITEM(reply, 5)
    if ip is None:
        ip = ""
    else:
        ip = _text(ip)
        if ip is None:
            return None
    session = {"id": sid, "r": r, "w": w, "ttl": ttl, "idle": idle, "ip": ip}
    d = <object>PyList_GET_ITEM(reply, 6)
    if d is not None:
        parsed = None
        if PyBytes_CheckExact(d):
            parsed = rs_parse_object(<const unsigned char *>PyBytes_AS_STRING(d), PyBytes_GET_SIZE(d))
        elif PyUnicode_CheckExact(d):
            rs_str_ready(d)
            if rs_str_is_ascii(d):
                parsed = rs_parse_object(PyUnicode_1BYTE_DATA(d), PyUnicode_GET_LENGTH(d))
        if parsed is not None:
            d = parsed
        else:  # not a flat object of plain strings and scalars (or not UTF-8): json's path
            d = _text(d)
            if d is None:
                return None
            d = _json_object(d)
            if d is None:
                return None
        if d:
            session["d"] = d
    if no_resave == 1:
        session["no_resave"] = True
    return session


# ---------------------------------------------------------------------------------------------
# change sets
#
# Values are JSON values (see the pure twin's encode_changes): the exact builtin types are tested
# first, then subclasses and other Mappings in the pure twin's order, so both raise the same
# ValidationError for the same input. Nested values are written into one growing C buffer.

cdef struct _Buf:
    char *p
    Py_ssize_t n
    Py_ssize_t cap


cdef int _reserve(_Buf *b, Py_ssize_t extra) except -1:
    """Makes room for ``extra`` more bytes at b.p + b.n."""
    cdef Py_ssize_t cap
    cdef char *p
    if b.n + extra <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 256
    if cap < b.n + extra:
        cap = b.n + extra
    p = <char *>PyMem_Realloc(b.p, <size_t>cap)
    if p is NULL:
        raise MemoryError()
    b.p = p
    b.cap = cap
    return 0


cdef inline int _put(_Buf *b, const char *s, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        _reserve(b, n)
    memcpy(b.p + b.n, s, <size_t>n)
    b.n += n
    return 0


cdef inline int _put_char(_Buf *b, char c) except -1:
    if b.n >= b.cap:
        _reserve(b, 1)
    b.p[b.n] = c
    b.n += 1
    return 0


cdef inline const char *_utf8_of(object text, Py_ssize_t *n, object key) except NULL:
    """The UTF-8 of a str (or str subclass); ValidationError for lone surrogates."""
    rs_str_ready(text)
    if rs_str_is_ascii(text):  # its own bytes: nothing to check, no exception state to save
        n[0] = PyUnicode_GET_LENGTH(text)
        return <const char *>PyUnicode_1BYTE_DATA(text)
    try:
        return PyUnicode_AsUTF8AndSize(text, n)
    except UnicodeEncodeError:
        raise not_unicode(key) from None


cdef int _put_string(_Buf *b, object text, object key) except -1:
    cdef Py_ssize_t n
    cdef const char *utf8 = _utf8_of(text, &n, key)
    cdef size_t written = rs_json_escape(<const unsigned char *>utf8, <size_t>n, NULL)
    _reserve(b, <Py_ssize_t>written + 2)
    b.p[b.n] = 34
    rs_json_escape(<const unsigned char *>utf8, <size_t>n, <unsigned char *>b.p + b.n + 1)
    b.p[b.n + 1 + <Py_ssize_t>written] = 34
    b.n += <Py_ssize_t>written + 2
    return 0


cdef bytes _int_text(object value, object key):
    """int.__repr__ of an int beyond 64 bits (or of an int subclass), as ASCII bytes."""
    try:
        return int.__repr__(value).encode("ascii")
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        raise number_too_large(key) from None


cdef int _put_int(_Buf *b, object value, object key) except -1:
    cdef char buf[32]
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(value, &overflow)
    cdef bytes text
    if not overflow:
        return _put(b, buf, rs_ll_text(v, buf))
    text = _int_text(value, key)
    return _put(b, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text))


cdef int _put_float(_Buf *b, object value, object key) except -1:
    cdef double f = PyFloat_AS_DOUBLE(value)
    cdef char *repr_
    if not rs_isfinite(f):
        raise not_finite(key)
    repr_ = PyOS_double_to_string(f, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        _put(b, repr_, <Py_ssize_t>strlen(repr_))
    finally:
        PyMem_Free(repr_)
    return 0


cdef int _put_array(_Buf *b, object value, object key, int depth) except -1:
    cdef bint first = True
    if depth >= _MAX_DEPTH:
        raise too_deep(key)
    _put_char(b, 91)  # "["
    for item in value:
        if not first:
            _put_char(b, 44)  # ","
        first = False
        _put_value(b, item, key, depth + 1)
    return _put_char(b, 93)  # "]"


cdef int _put_member(_Buf *b, object k, object item, object key, int depth, bint first) except -1:
    if not first:
        _put_char(b, 44)  # ","
    if not PyUnicode_Check(k):
        raise key_not_text(k, key)
    _put_string(b, k, key)
    _put_char(b, 58)  # ":"
    return _put_value(b, item, key, depth + 1)


cdef int _put_object(_Buf *b, object value, object key, int depth) except -1:
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    cdef bint first = True
    if depth >= _MAX_DEPTH:
        raise too_deep(key)
    _put_char(b, 123)  # "{"
    if PyDict_CheckExact(value):
        while PyDict_Next(value, &pos, &k, &v):
            _put_member(b, <object>k, <object>v, key, depth, first)
            first = False
    else:
        for k_, item in value.items():
            _put_member(b, k_, item, key, depth, first)
            first = False
    return _put_char(b, 125)  # "}"


cdef int _put_value(_Buf *b, object value, object key, int depth) except -1:
    """Writes the JSON of ``value``; ``depth`` counts the containers around it and ``key`` is the
    top-level key, named by every error."""
    if PyUnicode_CheckExact(value):
        return _put_string(b, value, key)
    if PyLong_CheckExact(value):
        return _put_int(b, value, key)
    if PyFloat_CheckExact(value):
        return _put_float(b, value, key)
    if value is None:
        return _put(b, "null", 4)
    if value is True:
        return _put(b, "true", 4)
    if value is False:
        return _put(b, "false", 5)
    if PyList_CheckExact(value) or PyTuple_CheckExact(value):
        return _put_array(b, value, key, depth)
    if PyDict_CheckExact(value):
        return _put_object(b, value, key, depth)
    # subclasses and other mappings, in the order of the pure twin's checks
    if PyUnicode_Check(value):
        return _put_string(b, value, key)
    if PyLong_Check(value):
        return _put_int(b, value, key)
    if PyFloat_Check(value):
        return _put_float(b, value, key)
    if PyList_Check(value) or PyTuple_Check(value):
        return _put_array(b, value, key, depth)
    if PyDict_Check(value) or isinstance(value, _Mapping):
        return _put_object(b, value, key, depth)
    raise forbidden_type(key)


cdef bytes _encode_value(object value, object key):
    """The JSON of a top-level value that is not a plain scalar."""
    cdef _Buf b
    b.p = NULL
    b.n = 0
    b.cap = 0
    try:
        _put_value(&b, value, key, 0)
        return PyBytes_FromStringAndSize(b.p, b.n)
    finally:
        PyMem_Free(b.p)


cdef bytes _json_string(object text, object key):
    """UTF-8 JSON string of text (ensure_ascii=False); ValidationError for lone surrogates."""
    cdef Py_ssize_t n
    cdef const char *utf8 = _utf8_of(text, &n, key)
    cdef bytes out
    cdef size_t written
    written = rs_json_escape(<const unsigned char *>utf8, <size_t>n, NULL)
    out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>written + 2)
    if written == <size_t>n:  # nothing to escape (the usual case): a copy
        memcpy(PyBytes_AS_STRING(out) + 1, utf8, n)
    else:
        rs_json_escape(<const unsigned char *>utf8, <size_t>n,
                       <unsigned char *>PyBytes_AS_STRING(out) + 1)
    PyBytes_AS_STRING(out)[0] = 34
    PyBytes_AS_STRING(out)[written + 1] = 34
    return out


cdef bytes _json_number(object value, object key):
    """JSON of an exact int or float."""
    cdef char buf[32]
    cdef int overflow = 0
    cdef long long v
    cdef double f
    cdef char *repr_
    cdef bytes result
    if PyLong_CheckExact(value):
        v = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow:
            return PyBytes_FromStringAndSize(buf, rs_ll_text(v, buf))
        return _int_text(value, key)
    f = PyFloat_AS_DOUBLE(value)
    if not rs_isfinite(f):
        raise not_finite(key)
    repr_ = PyOS_double_to_string(f, b"r", 0, Py_DTSF_ADD_DOT_0, NULL)
    try:
        result = repr_
    finally:
        PyMem_Free(repr_)
    return result


cdef int _encode_pair(object key, object value, list out) except -1:
    if not PyUnicode_Check(key):
        raise key_not_text(key)
    out.append(_json_string(key, key))
    if value is None:
        out.append(b"")
    elif PyUnicode_CheckExact(value):
        out.append(_json_string(value, key))
    elif value is True:
        out.append(b"true")
    elif value is False:
        out.append(b"false")
    elif PyLong_CheckExact(value) or PyFloat_CheckExact(value):
        out.append(_json_number(value, key))
    else:
        out.append(_encode_value(value, key))
    return 0


def encode_changes(changes):
    """``[key_json, value_json, ...]`` in mapping order; a None value becomes ``b""`` (delete).

    Values: None (JSON null inside containers), bool, int, finite float, str, list, tuple (an
    array), dict or any Mapping with str keys, nested up to MAX_DEPTH levels; subclasses of str,
    int and float are stored as their base value. Anything else is a ValidationError naming the
    top-level key (the first problem met, depth first, in iteration order).
    """
    cdef list out = []
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    if PyDict_CheckExact(changes):
        while PyDict_Next(changes, &pos, &k, &v):
            _encode_pair(<object>k, <object>v, out)
    else:
        for key, value in changes.items():
            _encode_pair(key, value, out)
    return out


def check_value(key, value):
    """Raises the ValidationError ``encode_changes({key: value})`` would raise; else None."""
    cdef int overflow = 0
    if PyUnicode_CheckExact(key):
        rs_str_ready(key)
        if rs_str_is_ascii(key):
            if PyUnicode_CheckExact(value):
                rs_str_ready(value)
                if rs_str_is_ascii(value):
                    return None
            elif PyLong_CheckExact(value):
                PyLong_AsLongLongAndOverflow(value, &overflow)
                if not overflow:
                    return None
            elif PyFloat_CheckExact(value):
                if rs_isfinite(PyFloat_AS_DOUBLE(value)):
                    return None
            elif value is None or value is True or value is False:
                return None
    _encode_pair(key, value, [])
    return None


cdef object _copy(object value, int depth):
    cdef dict copy
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    if PyUnicode_Check(value) or PyLong_Check(value) or PyFloat_Check(value) or value is None:
        return value
    if PyList_Check(value) or PyTuple_Check(value):
        if depth >= _MAX_DEPTH:
            return value
        return [_copy(item, depth + 1) for item in value]
    if PyDict_Check(value) or isinstance(value, _Mapping):
        if depth >= _MAX_DEPTH:
            return value
        if not PyDict_CheckExact(value):
            return {k_: _copy(item, depth + 1) for k_, item in value.items()}
        copy = {}
        while PyDict_Next(value, &pos, &k, &v):
            copy[<object>k] = _copy(<object>v, depth + 1)
        return copy
    return value


def snapshot(data):
    """A copy of a session's data for ``diff``, untouched by later in-place changes to ``data``.

    Dicts and other Mappings become new dicts, lists and tuples new lists, down to MAX_DEPTH
    levels (deeper containers are shared); everything else (scalars) is shared.
    """
    cdef dict copy = {}
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    if not PyDict_CheckExact(data):
        return {key: _copy(value, 0) for key, value in data.items()}
    while PyDict_Next(data, &pos, &k, &v):
        if (PyUnicode_CheckExact(<object>v) or PyLong_CheckExact(<object>v)
                or PyFloat_CheckExact(<object>v) or <object>v is None):
            copy[<object>k] = <object>v
        else:
            copy[<object>k] = _copy(<object>v, 0)
    return copy


cdef bint _str_equal(object a, object b) except -1:
    """str.__eq__ of two str (or subclass) objects: their text, whatever the subclass says."""
    if a is b:
        return True
    if PyUnicode_CheckExact(a) and PyUnicode_CheckExact(b):
        return <str>a == <str>b
    return PyUnicode_Compare(a, b) == 0


cdef bint _same_array(object old, object new, int depth) except -1:
    if depth >= _MAX_DEPTH:
        return old is new
    if not (PyList_Check(old) or PyTuple_Check(old)) or len(old) != len(new):
        return False
    for a, b in zip(old, new):
        if not _same(a, b, depth + 1):
            return False
    return True


cdef bint _same_object(object old, object new, int depth) except -1:
    cdef Py_ssize_t pa = 0, pb = 0
    cdef PyObject *ka
    cdef PyObject *va
    cdef PyObject *kb
    cdef PyObject *vb
    if depth >= _MAX_DEPTH:
        return old is new
    if not (PyDict_Check(old) or isinstance(old, _Mapping)) or len(old) != len(new):
        return False
    if PyDict_CheckExact(old) and PyDict_CheckExact(new):
        while PyDict_Next(old, &pa, &ka, &va) and PyDict_Next(new, &pb, &kb, &vb):
            if not (PyUnicode_Check(<object>ka) and PyUnicode_Check(<object>kb)):
                return False
            if not _str_equal(<object>ka, <object>kb) or not _same(<object>va, <object>vb, depth + 1):
                return False
        return True
    for (old_key, a), (new_key, b) in zip(old.items(), new.items()):
        if not (PyUnicode_Check(old_key) and PyUnicode_Check(new_key)):
            return False
        if not _str_equal(old_key, new_key) or not _same(a, b, depth + 1):
            return False
    return True


cdef bint _same(object old, object new, int depth) except -1:
    """True iff ``old`` and ``new`` have the same JSON encoding (the pure twin's ``_same``)."""
    cdef double a, b
    if PyUnicode_CheckExact(new) and PyUnicode_CheckExact(old):
        return old is new or <str>old == <str>new
    if PyLong_CheckExact(new) and PyLong_CheckExact(old):
        return old is new or old == new
    if PyFloat_CheckExact(new) and PyFloat_CheckExact(old):
        a = PyFloat_AS_DOUBLE(old)
        b = PyFloat_AS_DOUBLE(new)
        return a == b and rs_signbit(a) == rs_signbit(b)
    if PyUnicode_Check(new):
        return PyUnicode_Check(old) and _str_equal(old, new)
    if new is True or new is False or old is True or old is False:
        return old is new
    if PyLong_Check(new):
        return PyLong_Check(old) and int.__eq__(old, new) is True
    if PyFloat_Check(new):
        if not PyFloat_Check(old):
            return False
        a = PyFloat_AS_DOUBLE(old)
        b = PyFloat_AS_DOUBLE(new)
        return a == b and rs_signbit(a) == rs_signbit(b)
    if new is None:
        return old is None
    if PyList_Check(new) or PyTuple_Check(new):
        return _same_array(old, new, depth)
    if PyDict_Check(new) or isinstance(new, _Mapping):
        return _same_object(old, new, depth)
    return False  # not storable: reported as changed, so that encoding it raises


def diff(snapshot, data):
    """The encoded change set from ``snapshot`` to ``data``: changed or added keys in ``data``
    order, then deleted keys (missing or None in ``data``) in ``snapshot`` order. Values are
    compared deeply: a value is unchanged iff it would encode the same."""
    cdef list out = []
    cdef Py_ssize_t pos = 0
    cdef PyObject *k
    cdef PyObject *v
    cdef PyObject *o
    if PyDict_CheckExact(snapshot) and PyDict_CheckExact(data):
        while PyDict_Next(data, &pos, &k, &v):
            if <object>v is None:
                continue
            o = PyDict_GetItemWithError(snapshot, <object>k)
            if o is NULL or <object>o is None or not _same(<object>o, <object>v, 0):
                _encode_pair(<object>k, <object>v, out)
        pos = 0
        while PyDict_Next(snapshot, &pos, &k, &v):
            if <object>v is None:
                continue
            o = PyDict_GetItemWithError(data, <object>k)
            if o is NULL or <object>o is None:
                _encode_pair(<object>k, None, out)
        return out
    missing = object()
    for key, value in data.items():
        if value is None:
            continue
        old = snapshot.get(key, missing)
        if old is missing or old is None or not _same(old, value, 0):
            _encode_pair(key, value, out)
    for key, old in snapshot.items():
        if old is not None and data.get(key) is None:
            _encode_pair(key, None, out)
    return out
