#include "CDecode.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---------------------------------------------------------------- portable

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0) {
        if (mantissa == 0) {
            bits = sign;
        } else { // subnormal: normalise
            exponent = 127 - 15 + 1;
            while ((mantissa & 0x400) == 0) { mantissa <<= 1; exponent--; }
            bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
        }
    } else if (exponent == 31) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else {
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void rows_f16_portable(const uint16_t *w, const float *x, float *out, long cols, long row0, long row1,
                              long batch, long ldo, int accumulate) {
    for (long j = row0; j < row1; j++) {
        const uint16_t *row = w + j * cols;
        for (long n = 0; n < batch; n++) {
            const float *xn = x + n * cols;
            float s = 0;
            for (long i = 0; i < cols; i++) s += half_to_float(row[i]) * xn[i];
            out[n * ldo + j] = accumulate ? out[n * ldo + j] + s : s;
        }
    }
}

static void rows_q8_0_portable(const gpt2kit_block_q8_0 *w, const float *x, float *out, long cols, long row0, long row1,
                               long batch, long ldo, int accumulate) {
    long blocks = cols / 32;
    for (long j = row0; j < row1; j++) {
        const gpt2kit_block_q8_0 *row = w + j * blocks;
        for (long n = 0; n < batch; n++) {
            const float *xn = x + n * cols;
            float s = 0;
            for (long b = 0; b < blocks; b++) {
                float d = half_to_float(row[b].d), t = 0;
                for (int i = 0; i < 32; i++) t += (float)row[b].qs[i] * xn[b * 32 + i];
                s += d * t;
            }
            out[n * ldo + j] = accumulate ? out[n * ldo + j] + s : s;
        }
    }
}

// ---------------------------------------------------------------- AVX2 + FMA + F16C

#if defined(__x86_64__)
#define VECTOR __attribute__((target("avx2,fma,f16c")))

VECTOR static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Up to 4 input vectors at a time, two accumulators each (8 independent FMA chains).
VECTOR static void rows_f16_avx2(const uint16_t *w, const float *x, float *out, long cols, long row0, long row1,
                                 long batch, long ldo, int accumulate) {
    for (long j = row0; j < row1; j++) {
        const uint16_t *row = w + j * cols;
        for (long n0 = 0; n0 < batch; n0 += 4) {
            int m = batch - n0 < 4 ? (int)(batch - n0) : 4;
            __m256 a[4][2];
            for (int k = 0; k < 4; k++) { a[k][0] = _mm256_setzero_ps(); a[k][1] = _mm256_setzero_ps(); }
            long i = 0;
            for (; i + 16 <= cols; i += 16) {
                __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i)));
                __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i + 8)));
                for (int k = 0; k < m; k++) {
                    const float *xk = x + (n0 + k) * cols + i;
                    a[k][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xk), a[k][0]);
                    a[k][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xk + 8), a[k][1]);
                }
            }
            for (int k = 0; k < m; k++) {
                const float *xk = x + (n0 + k) * cols;
                float s = sum8(_mm256_add_ps(a[k][0], a[k][1]));
                for (long t = i; t < cols; t++) s += _cvtsh_ss(row[t]) * xk[t];
                float *o = out + (n0 + k) * ldo + j;
                *o = accumulate ? *o + s : s;
            }
        }
    }
}

VECTOR static void rows_q8_0_avx2(const gpt2kit_block_q8_0 *w, const float *x, float *out, long cols, long row0, long row1,
                                  long batch, long ldo, int accumulate) {
    long blocks = cols / 32;
    for (long j = row0; j < row1; j++) {
        const gpt2kit_block_q8_0 *row = w + j * blocks;
        for (long n0 = 0; n0 < batch; n0 += 4) {
            int m = batch - n0 < 4 ? (int)(batch - n0) : 4;
            __m256 a[4][2];
            for (int k = 0; k < 4; k++) { a[k][0] = _mm256_setzero_ps(); a[k][1] = _mm256_setzero_ps(); }
            for (long b = 0; b < blocks; b++) {
                __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
                const int8_t *q = row[b].qs;
                __m256 w0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q)))));
                __m256 w1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8)))));
                __m256 w2 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 16)))));
                __m256 w3 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 24)))));
                for (int k = 0; k < m; k++) {
                    const float *xk = x + (n0 + k) * cols + b * 32;
                    a[k][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xk), a[k][0]);
                    a[k][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xk + 8), a[k][1]);
                    a[k][0] = _mm256_fmadd_ps(w2, _mm256_loadu_ps(xk + 16), a[k][0]);
                    a[k][1] = _mm256_fmadd_ps(w3, _mm256_loadu_ps(xk + 24), a[k][1]);
                }
            }
            for (int k = 0; k < m; k++) {
                float s = sum8(_mm256_add_ps(a[k][0], a[k][1]));
                float *o = out + (n0 + k) * ldo + j;
                *o = accumulate ? *o + s : s;
            }
        }
    }
}

static int vectorized = -1;

int gpt2kit_decode_kernels_vectorized(void) {
    if (vectorized < 0) {
        __builtin_cpu_init();
        vectorized = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
    }
    return vectorized;
}
#else
int gpt2kit_decode_kernels_vectorized(void) { return 0; }
#endif

void gpt2kit_rows_f16(const uint16_t *w, const float *x, float *out, long cols, long row0, long row1,
                      long batch, long ldo, int accumulate) {
#if defined(__x86_64__)
    if (gpt2kit_decode_kernels_vectorized()) { rows_f16_avx2(w, x, out, cols, row0, row1, batch, ldo, accumulate); return; }
#endif
    rows_f16_portable(w, x, out, cols, row0, row1, batch, ldo, accumulate);
}

void gpt2kit_rows_q8_0(const gpt2kit_block_q8_0 *w, const float *x, float *out, long cols, long row0, long row1,
                       long batch, long ldo, int accumulate) {
#if defined(__x86_64__)
    if (gpt2kit_decode_kernels_vectorized()) { rows_q8_0_avx2(w, x, out, cols, row0, row1, batch, ldo, accumulate); return; }
#endif
    rows_q8_0_portable(w, x, out, cols, row0, row1, batch, ldo, accumulate);
}
