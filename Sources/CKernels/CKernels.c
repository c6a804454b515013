#include "CKernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// ---------------------------------------------------------------- shared scalar pieces

// e^x, the Cephes expf polynomial (≤ 2 ulp on [−87, 88]) with branch-free range reduction: k = round(x / ln 2)
// from the 1.5·2²³ trick, no calls, no trapping conversions. Below −87.3 it gives ≈ 1e-38 instead of 0.
static inline float exp1(float x) {
    float c = fminf(fmaxf(x, -87.3f), 88.7f);
    const float magic = 12582912.0f; // 1.5·2²³: the low mantissa bits of `shifted` hold round(x / ln 2)
    float shifted = c * 1.44269504f + magic;
    float k = shifted - magic;
    float r = c - k * 0.693359375f + k * 2.1219444e-4f;
    float p = 1.98756915e-4f;
    p = p * r + 1.39819995e-3f;
    p = p * r + 8.3334519e-3f;
    p = p * r + 4.16665796e-2f;
    p = p * r + 1.66666655e-1f;
    p = p * r + 5.00000012e-1f;
    float y = p * (r * r) + r + 1;
    uint32_t bits;
    memcpy(&bits, &shifted, 4);
    uint32_t scaleBits = ((bits - 0x4B400000u) + 127u) << 23;
    float scale;
    memcpy(&scale, &scaleBits, 4);
    return y * scale;
}

static const float geluScale = 0.7978845608028654f; // √(2/π)

uint32_t gpt2kit_dropout_bits(uint64_t seed, long index) {
    uint64_t z = seed + (uint64_t)index * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (uint32_t)(z >> 40);
}

// ---------------------------------------------------------------- portable

static void gelu_forward_portable(float *out, const float *inp, long count) {
    for (long i = 0; i < count; i++) {
        float x = inp[i];
        float u = geluScale * (x + 0.044715f * (x * x * x));
        out[i] = x * (1 / (1 + exp1(-2 * u)));
    }
}

static void gelu_backward_portable(float *dinp, const float *inp, const float *dout, long count) {
    for (long i = 0; i < count; i++) {
        float x = inp[i];
        float u = geluScale * (x + 0.044715f * (x * x * x));
        float s = 1 / (1 + exp1(-2 * u));
        float du = geluScale * (1 + 0.134145f * (x * x));
        dinp[i] += (s + 2 * x * s * (1 - s) * du) * dout[i];
    }
}

static void ln_stats_portable(const float *x, long C, float eps, float *mean, float *rstd) {
    float m = 0;
    for (long i = 0; i < C; i++) m += x[i];
    m /= (float)C;
    float v = 0;
    for (long i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
    v /= (float)C;
    *mean = m;
    *rstd = 1 / sqrtf(v + eps);
}

static void ln_normalize_portable(float *o, const float *x, float m, float s, const float *w, const float *b, long C) {
    for (long i = 0; i < C; i++) o[i] = (x[i] - m) * s * w[i] + b[i];
}

static void ln_backward_portable(float *din, float *dw, float *db, const float *d, const float *x, const float *w,
                                 float m, float s, long C) {
    float dnormMean = 0, dnormNormMean = 0;
    for (long i = 0; i < C; i++) {
        float norm = (x[i] - m) * s, dnorm = w[i] * d[i];
        dnormMean += dnorm;
        dnormNormMean += dnorm * norm;
    }
    dnormMean /= (float)C;
    dnormNormMean /= (float)C;
    for (long i = 0; i < C; i++) {
        float norm = (x[i] - m) * s, dnorm = w[i] * d[i];
        if (db) db[i] += d[i];
        if (dw) dw[i] += norm * d[i];
        din[i] += (dnorm - dnormMean - norm * dnormNormMean) * s;
    }
}

static float maximum_portable(const float *p, long n) {
    float m = p[0];
    for (long i = 1; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

static void exp_shift_scale_portable(float *p, long n, float shift, float scale) {
    for (long i = 0; i < n; i++) p[i] = exp1(p[i] - shift) * scale;
}

static double sum_exp_portable(const float *p, long n, float shift) {
    double total = 0;
    for (long start = 0; start < n; start += 1024) {
        long end = start + 1024 < n ? start + 1024 : n;
        float run = 0;
        for (long i = start; i < end; i++) run += exp1(p[i] - shift);
        total += run;
    }
    return total;
}

static float sum_portable(const float *p, long n) {
    float s = 0;
    for (long i = 0; i < n; i++) s += p[i];
    return s;
}

static void dropout_forward_portable(float *out, const float *inp, long count, uint64_t seed, long first,
                                     uint32_t threshold, float scale) {
    for (long i = 0; i < count; i++)
        out[i] = gpt2kit_dropout_bits(seed, first + i) >= threshold ? inp[i] * scale : 0;
}

static void dropout_backward_portable(float *dinp, const float *dout, long count, uint64_t seed, long first,
                                      uint32_t threshold, float scale) {
    for (long i = 0; i < count; i++)
        if (gpt2kit_dropout_bits(seed, first + i) >= threshold) dinp[i] += dout[i] * scale;
}

static void softmax_backward_row_portable(float *d, const float *p, const float *kept, long n, float scale) {
    if (kept) for (long j = 0; j < n; j++) d[j] = kept[j] != 0 ? d[j] * scale : 0;
    float dot = 0;
    for (long j = 0; j < n; j++) dot += p[j] * d[j];
    for (long j = 0; j < n; j++) d[j] = p[j] * (d[j] - dot);
}

// ---------------------------------------------------------------- LoRA's thin products (portable)

static void low_rank_expand_portable(float *out, const float *bias, const float *h, const float *bt, long rows, long OC,
                                     long r, float scale, int accumulate) {
    for (long n = 0; n < rows; n++) {
        float *o = out + n * OC;
        const float *hn = h + n * r;
        if (!accumulate) {
            if (bias) memcpy(o, bias, (size_t)OC * 4);
            else memset(o, 0, (size_t)OC * 4);
        }
        for (long k = 0; k < r; k++) {
            float hk = scale * hn[k];
            const float *b = bt + k * OC;
            for (long j = 0; j < OC; j++) o[j] += hk * b[j];
        }
    }
}

static void low_rank_backward_columns_portable(float *dh, float *db, const float *dout, long ldd, const float *b,
                                               const float *h, long rows, long o0, long o1, long r, float scale) {
    for (long n = 0; n < rows; n++) {
        const float *d = dout + n * ldd, *hn = h + n * r;
        float *dhn = dh + n * r;
        for (long o = o0; o < o1; o++) {
            float v = d[o], sv = scale * v;
            const float *bo = b + o * r;
            float *dbo = db + o * r;
            for (long k = 0; k < r; k++) {
                dhn[k] += v * bo[k];
                dbo[k] += sv * hn[k];
            }
        }
    }
}

// Each dot product in eight interleaved running sums (fused multiply-adds) added pairwise, the AVX2 code's order: the
// same bits, and more accurate than one running sum — h's rounding is amplified by the adapter's scale (rsLoRA's
// 16/√8 made one running sum miss PEFT's float64 gradients by 2–3 times PEFT's own float32 error).
static void low_rank_project_portable(float *h, const float *x, const float *a, long rows, long C, long r) {
    for (long n = 0; n < rows; n++) {
        const float *xn = x + n * C;
        for (long k = 0; k < r; k++) {
            const float *ak = a + k * C;
            float lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (long c = 0; c < C; c++) lane[c & 7] = fmaf(xn[c], ak[c], lane[c & 7]);
            h[n * r + k] = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        }
    }
}

static void low_rank_gradient_a_portable(float *da, const float *dh, const float *x, long rows, long C, long c0, long c1,
                                         long r) {
    for (long n = 0; n < rows; n++) {
        const float *xn = x + n * C;
        for (long k = 0; k < r; k++) {
            float g = dh[n * r + k];
            float *dak = da + k * C;
            for (long c = c0; c < c1; c++) dak[c] += g * xn[c];
        }
    }
}

// ---------------------------------------------------------------- AVX2 + FMA

#if defined(__x86_64__)
#define VECTOR __attribute__((target("avx2,fma")))
#define INLINE __attribute__((always_inline)) static inline

VECTOR INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

VECTOR INLINE __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.7f));
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504f), magic);
    __m256 k = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(k, _mm256_set1_ps(2.1219444e-4f), r);
    __m256 p = _mm256_set1_ps(1.98756915e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.39819995e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.16665796e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.66666655e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.00000012e-1f));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1));
    __m256i kb = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(0x4B400000));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(kb, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(y, scale);
}

// The vector bodies below handle whole groups of 8; the tails run the same formula on 8 lanes through a
// zero-padded copy, so an element's value never depends on where a range starts or ends.
#define TAIL_LOAD(dst, src, n) do { memset(dst, 0, sizeof(dst)); memcpy(dst, src, (size_t)(n) * 4); } while (0)

VECTOR INLINE __m256 gelu_sigma8(__m256 x) { // σ(2u)
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(geluScale), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    __m256 e = exp8(_mm256_mul_ps(u, _mm256_set1_ps(-2)));
    return _mm256_div_ps(_mm256_set1_ps(1), _mm256_add_ps(_mm256_set1_ps(1), e));
}

VECTOR INLINE __m256 gelu_forward8(__m256 x) { return _mm256_mul_ps(x, gelu_sigma8(x)); }

VECTOR INLINE __m256 gelu_derivative8(__m256 x) {
    __m256 s = gelu_sigma8(x);
    __m256 du = _mm256_mul_ps(_mm256_set1_ps(geluScale), _mm256_fmadd_ps(_mm256_set1_ps(0.134145f), _mm256_mul_ps(x, x), _mm256_set1_ps(1)));
    __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_add_ps(x, x), s), _mm256_sub_ps(_mm256_set1_ps(1), s)), du);
    return _mm256_add_ps(s, t);
}

VECTOR static void gelu_forward_avx2(float *out, const float *inp, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) _mm256_storeu_ps(out + i, gelu_forward8(_mm256_loadu_ps(inp + i)));
    if (i < count) {
        float x[8], o[8];
        TAIL_LOAD(x, inp + i, count - i);
        _mm256_storeu_ps(o, gelu_forward8(_mm256_loadu_ps(x)));
        memcpy(out + i, o, (size_t)(count - i) * 4);
    }
}

VECTOR static void gelu_backward_avx2(float *dinp, const float *inp, const float *dout, long count) {
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 g = gelu_derivative8(_mm256_loadu_ps(inp + i));
        _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(g, _mm256_loadu_ps(dout + i), _mm256_loadu_ps(dinp + i)));
    }
    if (i < count) {
        float x[8], d[8], di[8];
        TAIL_LOAD(x, inp + i, count - i);
        TAIL_LOAD(d, dout + i, count - i);
        TAIL_LOAD(di, dinp + i, count - i);
        __m256 g = gelu_derivative8(_mm256_loadu_ps(x));
        _mm256_storeu_ps(di, _mm256_fmadd_ps(g, _mm256_loadu_ps(d), _mm256_loadu_ps(di)));
        memcpy(dinp + i, di, (size_t)(count - i) * 4);
    }
}

// Σ of a row with four 8-lane accumulators, then the scalar tail: a fixed order for a given C.
VECTOR INLINE float row_sum(const float *x, long C) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 32 <= C; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    for (; i + 8 <= C; i += 8) a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < C; i++) s += x[i];
    return s;
}

VECTOR INLINE void ln_stats_avx2(const float *x, long C, float eps, float *mean, float *rstd) {
    float m = row_sum(x, C) / (float)C;
    __m256 mv = _mm256_set1_ps(m);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 32 <= C; i += 32) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv);
        __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 16), mv), d3 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 24), mv);
        a0 = _mm256_fmadd_ps(d0, d0, a0); a1 = _mm256_fmadd_ps(d1, d1, a1);
        a2 = _mm256_fmadd_ps(d2, d2, a2); a3 = _mm256_fmadd_ps(d3, d3, a3);
    }
    for (; i + 8 <= C; i += 8) { __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv); a0 = _mm256_fmadd_ps(d, d, a0); }
    float v = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < C; i++) { float d = x[i] - m; v += d * d; }
    v /= (float)C;
    *mean = m;
    *rstd = 1 / sqrtf(v + eps);
}

VECTOR INLINE void ln_normalize_avx2(float *o, const float *x, float m, float s, const float *w, const float *b, long C) {
    __m256 mv = _mm256_set1_ps(m), sv = _mm256_set1_ps(s);
    long i = 0;
    for (; i + 8 <= C; i += 8) {
        __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sv);
        _mm256_storeu_ps(o + i, _mm256_fmadd_ps(norm, _mm256_loadu_ps(w + i), _mm256_loadu_ps(b + i)));
    }
    for (; i < C; i++) o[i] = fmaf((x[i] - m) * s, w[i], b[i]);
}

VECTOR static void layernorm_forward_avx2(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                          const float *b, long rows, long C, float eps) {
    for (long n = 0; n < rows; n++) {
        ln_stats_avx2(inp + n * C, C, eps, mean + n, rstd + n);
        ln_normalize_avx2(out + n * C, inp + n * C, mean[n], rstd[n], w, b, C);
    }
}

VECTOR static void layernorm_normalize_avx2(float *out, const float *inp, const float *mean, const float *rstd,
                                            const float *w, const float *b, long rows, long C) {
    for (long n = 0; n < rows; n++) ln_normalize_avx2(out + n * C, inp + n * C, mean[n], rstd[n], w, b, C);
}

VECTOR static void layernorm_backward_avx2(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                           const float *w, const float *mean, const float *rstd, long rows, long C) {
    for (long n = 0; n < rows; n++) {
        const float *d = dout + n * C, *x = inp + n * C;
        float *din = dinp + n * C;
        float m = mean[n], s = rstd[n];
        __m256 mv = _mm256_set1_ps(m), sv = _mm256_set1_ps(s);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;
        long i = 0;
        for (; i + 16 <= C; i += 16) {
            __m256 n0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sv);
            __m256 n1 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv), sv);
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(d + i));
            __m256 g1 = _mm256_mul_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(d + i + 8));
            a0 = _mm256_add_ps(a0, g0); a1 = _mm256_add_ps(a1, g1);
            b0 = _mm256_fmadd_ps(g0, n0, b0); b1 = _mm256_fmadd_ps(g1, n1, b1);
        }
        for (; i + 8 <= C; i += 8) {
            __m256 n0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sv);
            __m256 g0 = _mm256_mul_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(d + i));
            a0 = _mm256_add_ps(a0, g0);
            b0 = _mm256_fmadd_ps(g0, n0, b0);
        }
        float dnormMean = hsum8(_mm256_add_ps(a0, a1)), dnormNormMean = hsum8(_mm256_add_ps(b0, b1));
        for (; i < C; i++) {
            float norm = (x[i] - m) * s, dnorm = w[i] * d[i];
            dnormMean += dnorm;
            dnormNormMean = fmaf(dnorm, norm, dnormNormMean);
        }
        dnormMean /= (float)C;
        dnormNormMean /= (float)C;
        __m256 meanv = _mm256_set1_ps(dnormMean), nmeanv = _mm256_set1_ps(dnormNormMean);
        for (i = 0; i + 8 <= C; i += 8) {
            __m256 dv = _mm256_loadu_ps(d + i);
            __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), sv);
            __m256 dnorm = _mm256_mul_ps(_mm256_loadu_ps(w + i), dv);
            __m256 t = _mm256_fnmadd_ps(norm, nmeanv, _mm256_sub_ps(dnorm, meanv));
            _mm256_storeu_ps(din + i, _mm256_fmadd_ps(t, sv, _mm256_loadu_ps(din + i)));
            if (dbias) _mm256_storeu_ps(dbias + i, _mm256_add_ps(_mm256_loadu_ps(dbias + i), dv));
            if (dweight) _mm256_storeu_ps(dweight + i, _mm256_fmadd_ps(norm, dv, _mm256_loadu_ps(dweight + i)));
        }
        for (; i < C; i++) {
            float norm = (x[i] - m) * s, dnorm = w[i] * d[i];
            if (dbias) dbias[i] += d[i];
            if (dweight) dweight[i] = fmaf(norm, d[i], dweight[i]);
            din[i] = fmaf(fmaf(-norm, dnormNormMean, dnorm - dnormMean), s, din[i]);
        }
    }
}

VECTOR static float maximum_avx2(const float *p, long n) {
    long i = 0;
    float m = p[0];
    if (n >= 32) {
        __m256 a0 = _mm256_loadu_ps(p), a1 = a0, a2 = a0, a3 = a0;
        for (; i + 32 <= n; i += 32) {
            a0 = _mm256_max_ps(a0, _mm256_loadu_ps(p + i));
            a1 = _mm256_max_ps(a1, _mm256_loadu_ps(p + i + 8));
            a2 = _mm256_max_ps(a2, _mm256_loadu_ps(p + i + 16));
            a3 = _mm256_max_ps(a3, _mm256_loadu_ps(p + i + 24));
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(a0, a1), _mm256_max_ps(a2, a3)));
        for (int k = 0; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
    }
    for (; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

VECTOR static void exp_shift_scale_avx2(float *p, long n, float shift, float scale) {
    __m256 sh = _mm256_set1_ps(shift), sc = _mm256_set1_ps(scale);
    long i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), sh)), sc));
    if (i < n) {
        float x[8];
        TAIL_LOAD(x, p + i, n - i);
        _mm256_storeu_ps(x, _mm256_mul_ps(exp8(_mm256_sub_ps(_mm256_loadu_ps(x), sh)), sc));
        memcpy(p + i, x, (size_t)(n - i) * 4);
    }
}

VECTOR static double sum_exp_avx2(const float *p, long n, float shift) {
    __m256 sh = _mm256_set1_ps(shift);
    double total = 0;
    for (long start = 0; start < n; start += 1024) {
        long end = start + 1024 < n ? start + 1024 : n, i = start;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (; i + 16 <= end; i += 16) {
            a0 = _mm256_add_ps(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), sh)));
            a1 = _mm256_add_ps(a1, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i + 8), sh)));
        }
        for (; i + 8 <= end; i += 8) a0 = _mm256_add_ps(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), sh)));
        if (i < end) {
            // The tail as one more vector, its zero padding masked out.
            float x[8];
            TAIL_LOAD(x, p + i, end - i);
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x), sh));
            __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)(end - i)), lane));
            a1 = _mm256_add_ps(a1, _mm256_and_ps(e, keep));
        }
        total += (double)hsum8(_mm256_add_ps(a0, a1));
    }
    return total;
}

VECTOR static float sum_avx2(const float *p, long n) { return row_sum(p, n); }

// 64-bit lane products by a constant from 32-bit halves (AVX2 has no 64-bit multiply): a·c mod 2⁶⁴.
VECTOR INLINE __m256i mul64(__m256i a, uint64_t c) {
    __m256i lo = _mm256_set1_epi64x((long long)(c & 0xFFFFFFFFu)), hi = _mm256_set1_epi64x((long long)(c >> 32));
    __m256i p0 = _mm256_mul_epu32(a, lo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), lo), _mm256_mul_epu32(a, hi));
    return _mm256_add_epi64(p0, _mm256_slli_epi64(cross, 32));
}

// The 24 hash bits of four consecutive counters z (seed + index·golden), in the low half of each 64-bit lane.
VECTOR INLINE __m256i hash4(__m256i z) {
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
    z = mul64(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBull);
    z = _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
    return _mm256_srli_epi64(z, 40);
}

// Keep masks of 8 consecutive elements: all-ones lanes where the hash is ≥ threshold. `z` holds the counters of
// elements 0–3 and 4–7 and is advanced by 8.
VECTOR INLINE __m256 keep8(__m256i *z0, __m256i *z1, __m256i step, __m256i thresholdMinusOne) {
    const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256i lo = _mm256_permutevar8x32_epi32(hash4(*z0), pick), hi = _mm256_permutevar8x32_epi32(hash4(*z1), pick);
    __m256i bits = _mm256_inserti128_si256(lo, _mm256_castsi256_si128(hi), 1);
    *z0 = _mm256_add_epi64(*z0, step);
    *z1 = _mm256_add_epi64(*z1, step);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(bits, thresholdMinusOne));
}

#define DROPOUT_SETUP                                                                                              \
    const uint64_t golden = 0x9E3779B97F4A7C15ull;                                                                 \
    __m256i z0 = _mm256_setr_epi64x((long long)(seed + (uint64_t)first * golden),                                  \
                                    (long long)(seed + (uint64_t)(first + 1) * golden),                            \
                                    (long long)(seed + (uint64_t)(first + 2) * golden),                            \
                                    (long long)(seed + (uint64_t)(first + 3) * golden));                           \
    __m256i step = _mm256_set1_epi64x((long long)(8 * golden));                                                    \
    __m256i z1 = _mm256_add_epi64(z0, _mm256_set1_epi64x((long long)(4 * golden)));                               \
    __m256i thr = _mm256_set1_epi32((int)threshold - 1);                                                           \
    __m256 sc = _mm256_set1_ps(scale);                                                                             \
    long i = 0;

VECTOR static void dropout_forward_avx2(float *out, const float *inp, long count, uint64_t seed, long first,
                                        uint32_t threshold, float scale) {
    DROPOUT_SETUP
    for (; i + 8 <= count; i += 8) {
        __m256 keep = keep8(&z0, &z1, step, thr);
        _mm256_storeu_ps(out + i, _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(inp + i), sc)));
    }
    for (; i < count; i++) out[i] = gpt2kit_dropout_bits(seed, first + i) >= threshold ? inp[i] * scale : 0;
}

VECTOR static void dropout_backward_avx2(float *dinp, const float *dout, long count, uint64_t seed, long first,
                                         uint32_t threshold, float scale) {
    DROPOUT_SETUP
    for (; i + 8 <= count; i += 8) {
        __m256 keep = keep8(&z0, &z1, step, thr);
        __m256 g = _mm256_and_ps(keep, _mm256_mul_ps(_mm256_loadu_ps(dout + i), sc));
        _mm256_storeu_ps(dinp + i, _mm256_add_ps(_mm256_loadu_ps(dinp + i), g));
    }
    for (; i < count; i++)
        if (gpt2kit_dropout_bits(seed, first + i) >= threshold) dinp[i] += dout[i] * scale;
}

VECTOR static void softmax_backward_row_avx2(float *d, const float *p, const float *kept, long n, float scale) {
    __m256 sc = _mm256_set1_ps(scale), zero = _mm256_setzero_ps();
    __m256 a0 = zero, a1 = zero;
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 g = _mm256_loadu_ps(d + j);
        if (kept) {
            __m256 k = _mm256_cmp_ps(_mm256_loadu_ps(kept + j), zero, _CMP_NEQ_OQ);
            g = _mm256_and_ps(k, _mm256_mul_ps(g, sc));
            _mm256_storeu_ps(d + j, g);
        }
        if ((j / 8) % 2 == 0) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), g, a0);
        else a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), g, a1);
    }
    float dot = hsum8(_mm256_add_ps(a0, a1));
    for (long t = j; t < n; t++) {
        if (kept) d[t] = kept[t] != 0 ? d[t] * scale : 0;
        dot = fmaf(p[t], d[t], dot);
    }
    __m256 dv = _mm256_set1_ps(dot);
    for (j = 0; j + 8 <= n; j += 8)
        _mm256_storeu_ps(d + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(d + j), dv)));
    for (; j < n; j++) d[j] = p[j] * (d[j] - dot);
}

VECTOR static void low_rank_expand_avx2(float *out, const float *bias, const float *h, const float *bt, long rows, long OC,
                                        long r, float scale, int accumulate) {
    for (long n = 0; n < rows; n++) {
        float *o = out + n * OC;
        const float *hn = h + n * r;
        const float *init = accumulate ? o : bias;
        long j = 0;
        for (; j + 32 <= OC; j += 32) {
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            if (init) {
                a0 = _mm256_loadu_ps(init + j); a1 = _mm256_loadu_ps(init + j + 8);
                a2 = _mm256_loadu_ps(init + j + 16); a3 = _mm256_loadu_ps(init + j + 24);
            }
            for (long k = 0; k < r; k++) {
                __m256 hk = _mm256_set1_ps(scale * hn[k]);
                const float *b = bt + k * OC + j;
                a0 = _mm256_fmadd_ps(hk, _mm256_loadu_ps(b), a0);
                a1 = _mm256_fmadd_ps(hk, _mm256_loadu_ps(b + 8), a1);
                a2 = _mm256_fmadd_ps(hk, _mm256_loadu_ps(b + 16), a2);
                a3 = _mm256_fmadd_ps(hk, _mm256_loadu_ps(b + 24), a3);
            }
            _mm256_storeu_ps(o + j, a0); _mm256_storeu_ps(o + j + 8, a1);
            _mm256_storeu_ps(o + j + 16, a2); _mm256_storeu_ps(o + j + 24, a3);
        }
        for (; j + 8 <= OC; j += 8) {
            __m256 a0 = init ? _mm256_loadu_ps(init + j) : _mm256_setzero_ps();
            for (long k = 0; k < r; k++) a0 = _mm256_fmadd_ps(_mm256_set1_ps(scale * hn[k]), _mm256_loadu_ps(bt + k * OC + j), a0);
            _mm256_storeu_ps(o + j, a0);
        }
        for (; j < OC; j++) {
            float a0 = init ? init[j] : 0;
            for (long k = 0; k < r; k++) a0 = fmaf(scale * hn[k], bt[k * OC + j], a0);
            o[j] = a0;
        }
    }
}

// Rows of dout four at a time (each B and dB row loaded once for four), 8 of the rank's columns at a time. dB's
// sums run over the rows in order and dh's over the columns in order, however the rows are grouped.
VECTOR static void low_rank_backward_columns_avx2(float *dh, float *db, const float *dout, long ldd, const float *b,
                                                  const float *h, long rows, long o0, long o1, long r, float scale) {
    if (r % 8 != 0) {
        low_rank_backward_columns_portable(dh, db, dout, ldd, b, h, rows, o0, o1, r, scale);
        return;
    }
    long n = 0;
    for (; n + 4 <= rows; n += 4) {
        const float *d0 = dout + n * ldd, *d1 = d0 + ldd, *d2 = d1 + ldd, *d3 = d2 + ldd;
        for (long kb = 0; kb < r; kb += 8) {
            __m256 h0 = _mm256_loadu_ps(h + n * r + kb), h1 = _mm256_loadu_ps(h + (n + 1) * r + kb);
            __m256 h2 = _mm256_loadu_ps(h + (n + 2) * r + kb), h3 = _mm256_loadu_ps(h + (n + 3) * r + kb);
            __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
            for (long o = o0; o < o1; o++) {
                __m256 bv = _mm256_loadu_ps(b + o * r + kb);
                float *dbo = db + o * r + kb;
                float v0 = d0[o], v1 = d1[o], v2 = d2[o], v3 = d3[o];
                c0 = _mm256_fmadd_ps(_mm256_set1_ps(v0), bv, c0);
                c1 = _mm256_fmadd_ps(_mm256_set1_ps(v1), bv, c1);
                c2 = _mm256_fmadd_ps(_mm256_set1_ps(v2), bv, c2);
                c3 = _mm256_fmadd_ps(_mm256_set1_ps(v3), bv, c3);
                __m256 g = _mm256_loadu_ps(dbo);
                g = _mm256_fmadd_ps(_mm256_set1_ps(scale * v0), h0, g);
                g = _mm256_fmadd_ps(_mm256_set1_ps(scale * v1), h1, g);
                g = _mm256_fmadd_ps(_mm256_set1_ps(scale * v2), h2, g);
                g = _mm256_fmadd_ps(_mm256_set1_ps(scale * v3), h3, g);
                _mm256_storeu_ps(dbo, g);
            }
            float *e = dh + n * r + kb;
            _mm256_storeu_ps(e, _mm256_add_ps(_mm256_loadu_ps(e), c0));
            _mm256_storeu_ps(e + r, _mm256_add_ps(_mm256_loadu_ps(e + r), c1));
            _mm256_storeu_ps(e + 2 * r, _mm256_add_ps(_mm256_loadu_ps(e + 2 * r), c2));
            _mm256_storeu_ps(e + 3 * r, _mm256_add_ps(_mm256_loadu_ps(e + 3 * r), c3));
        }
    }
    for (; n < rows; n++) {
        const float *d0 = dout + n * ldd;
        for (long kb = 0; kb < r; kb += 8) {
            __m256 h0 = _mm256_loadu_ps(h + n * r + kb), c0 = _mm256_setzero_ps();
            for (long o = o0; o < o1; o++) {
                float *dbo = db + o * r + kb;
                c0 = _mm256_fmadd_ps(_mm256_set1_ps(d0[o]), _mm256_loadu_ps(b + o * r + kb), c0);
                _mm256_storeu_ps(dbo, _mm256_fmadd_ps(_mm256_set1_ps(scale * d0[o]), h0, _mm256_loadu_ps(dbo)));
            }
            float *e = dh + n * r + kb;
            _mm256_storeu_ps(e, _mm256_add_ps(_mm256_loadu_ps(e), c0));
        }
    }
}

// h's rows one at a time, 8 of the rank's rows of A at a time (8 running sums over C in float lanes).
VECTOR static void low_rank_project_avx2(float *h, const float *x, const float *a, long rows, long C, long r) {
    if (r % 8 != 0 || C % 8 != 0) {
        low_rank_project_portable(h, x, a, rows, C, r);
        return;
    }
    for (long n = 0; n < rows; n++) {
        const float *xn = x + n * C;
        for (long kb = 0; kb < r; kb += 8) {
            const float *a0 = a + kb * C;
            __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
            for (long c = 0; c < C; c += 8) {
                __m256 xv = _mm256_loadu_ps(xn + c);
                s0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + c), s0);
                s1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + C + c), s1);
                s2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 2 * C + c), s2);
                s3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 3 * C + c), s3);
                s4 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 4 * C + c), s4);
                s5 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 5 * C + c), s5);
                s6 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 6 * C + c), s6);
                s7 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(a0 + 7 * C + c), s7);
            }
            float *hn = h + n * r + kb;
            hn[0] = hsum8(s0); hn[1] = hsum8(s1); hn[2] = hsum8(s2); hn[3] = hsum8(s3);
            hn[4] = hsum8(s4); hn[5] = hsum8(s5); hn[6] = hsum8(s6); hn[7] = hsum8(s7);
        }
    }
}

// A column band of 8 at a time, its 8 × 8 block of dA in registers over all rows (rows in order per element).
VECTOR static void low_rank_gradient_a_avx2(float *da, const float *dh, const float *x, long rows, long C, long c0, long c1,
                                            long r) {
    if (r % 8 != 0) {
        low_rank_gradient_a_portable(da, dh, x, rows, C, c0, c1, r);
        return;
    }
    long c = c0;
    for (; c + 8 <= c1; c += 8) {
        for (long kb = 0; kb < r; kb += 8) {
            float *d0 = da + kb * C + c;
            __m256 g0 = _mm256_loadu_ps(d0), g1 = _mm256_loadu_ps(d0 + C), g2 = _mm256_loadu_ps(d0 + 2 * C);
            __m256 g3 = _mm256_loadu_ps(d0 + 3 * C), g4 = _mm256_loadu_ps(d0 + 4 * C), g5 = _mm256_loadu_ps(d0 + 5 * C);
            __m256 g6 = _mm256_loadu_ps(d0 + 6 * C), g7 = _mm256_loadu_ps(d0 + 7 * C);
            for (long n = 0; n < rows; n++) {
                __m256 xv = _mm256_loadu_ps(x + n * C + c);
                const float *e = dh + n * r + kb;
                g0 = _mm256_fmadd_ps(_mm256_broadcast_ss(e), xv, g0);
                g1 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 1), xv, g1);
                g2 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 2), xv, g2);
                g3 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 3), xv, g3);
                g4 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 4), xv, g4);
                g5 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 5), xv, g5);
                g6 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 6), xv, g6);
                g7 = _mm256_fmadd_ps(_mm256_broadcast_ss(e + 7), xv, g7);
            }
            _mm256_storeu_ps(d0, g0); _mm256_storeu_ps(d0 + C, g1); _mm256_storeu_ps(d0 + 2 * C, g2);
            _mm256_storeu_ps(d0 + 3 * C, g3); _mm256_storeu_ps(d0 + 4 * C, g4); _mm256_storeu_ps(d0 + 5 * C, g5);
            _mm256_storeu_ps(d0 + 6 * C, g6); _mm256_storeu_ps(d0 + 7 * C, g7);
        }
    }
    for (; c < c1; c++) {
        for (long k = 0; k < r; k++) {
            float g = da[k * C + c];
            for (long n = 0; n < rows; n++) g = fmaf(dh[n * r + k], x[n * C + c], g);
            da[k * C + c] = g;
        }
    }
}

static int forcePortable = 0;

int gpt2kit_training_kernels_vectorized(void) {
    static int vectorized = -1;
    if (__atomic_load_n(&forcePortable, __ATOMIC_RELAXED)) return 0;
    int v = __atomic_load_n(&vectorized, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&vectorized, v, __ATOMIC_RELAXED);
    }
    return v;
}
#define DISPATCH(name, ...) (gpt2kit_training_kernels_vectorized() ? name##_avx2(__VA_ARGS__) : name##_portable(__VA_ARGS__))
#else
static int forcePortable = 0;
int gpt2kit_training_kernels_vectorized(void) { return 0; }
#define DISPATCH(name, ...) name##_portable(__VA_ARGS__)
#endif

// ---------------------------------------------------------------- entry points

void gpt2kit_gelu_forward(float *out, const float *inp, long count) { DISPATCH(gelu_forward, out, inp, count); }

void gpt2kit_gelu_backward(float *dinp, const float *inp, const float *dout, long count) {
    DISPATCH(gelu_backward, dinp, inp, dout, count);
}

static void layernorm_forward_portable(float *out, float *mean, float *rstd, const float *inp, const float *w,
                                       const float *b, long rows, long C, float eps) {
    for (long n = 0; n < rows; n++) {
        ln_stats_portable(inp + n * C, C, eps, mean + n, rstd + n);
        ln_normalize_portable(out + n * C, inp + n * C, mean[n], rstd[n], w, b, C);
    }
}

static void layernorm_normalize_portable(float *out, const float *inp, const float *mean, const float *rstd,
                                         const float *w, const float *b, long rows, long C) {
    for (long n = 0; n < rows; n++) ln_normalize_portable(out + n * C, inp + n * C, mean[n], rstd[n], w, b, C);
}

static void layernorm_backward_portable(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                        const float *w, const float *mean, const float *rstd, long rows, long C) {
    for (long n = 0; n < rows; n++)
        ln_backward_portable(dinp + n * C, dweight, dbias, dout + n * C, inp + n * C, w, mean[n], rstd[n], C);
}

void gpt2kit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                               long rows, long C, float eps) {
    DISPATCH(layernorm_forward, out, mean, rstd, inp, w, b, rows, C, eps);
}

void gpt2kit_layernorm_normalize(float *out, const float *inp, const float *mean, const float *rstd, const float *w,
                                 const float *b, long rows, long C) {
    DISPATCH(layernorm_normalize, out, inp, mean, rstd, w, b, rows, C);
}

void gpt2kit_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, long rows, long C) {
    DISPATCH(layernorm_backward, dinp, dweight, dbias, dout, inp, w, mean, rstd, rows, C);
}

float gpt2kit_maximum(const float *p, long n) { return DISPATCH(maximum, p, n); }

void gpt2kit_exp_shift_scale(float *p, long n, float shift, float scale) { DISPATCH(exp_shift_scale, p, n, shift, scale); }

double gpt2kit_sum_exp(const float *p, long n, float shift) { return DISPATCH(sum_exp, p, n, shift); }

float gpt2kit_sum(const float *p, long n) { return DISPATCH(sum, p, n); }

void gpt2kit_dropout_forward(float *out, const float *inp, long count, uint64_t seed, long first, uint32_t threshold,
                             float scale) {
    DISPATCH(dropout_forward, out, inp, count, seed, first, threshold, scale);
}

void gpt2kit_dropout_backward(float *dinp, const float *dout, long count, uint64_t seed, long first, uint32_t threshold,
                              float scale) {
    DISPATCH(dropout_backward, dinp, dout, count, seed, first, threshold, scale);
}

void gpt2kit_softmax_backward_row(float *d, const float *p, const float *kept, long n, float scale) {
    DISPATCH(softmax_backward_row, d, p, kept, n, scale);
}

void gpt2kit_training_kernels_force_portable(int on) { __atomic_store_n(&forcePortable, on ? 1 : 0, __ATOMIC_RELAXED); }

void gpt2kit_low_rank_expand(float *out, const float *bias, const float *h, const float *bt, long rows, long OC, long r,
                             float scale, int accumulate) {
    DISPATCH(low_rank_expand, out, bias, h, bt, rows, OC, r, scale, accumulate);
}

void gpt2kit_low_rank_backward_columns(float *dh, float *db, const float *dout, long ldd, const float *b, const float *h,
                                       long rows, long o0, long o1, long r, float scale) {
    DISPATCH(low_rank_backward_columns, dh, db, dout, ldd, b, h, rows, o0, o1, r, scale);
}

void gpt2kit_low_rank_project(float *h, const float *x, const float *a, long rows, long C, long r) {
    DISPATCH(low_rank_project, h, x, a, rows, C, r);
}

void gpt2kit_low_rank_gradient_a(float *da, const float *dh, const float *x, long rows, long C, long c0, long c1, long r) {
    DISPATCH(low_rank_gradient_a, da, dh, x, rows, C, c0, c1, r);
}

// ---------------------------------------------------------------- OpenBLAS's idle threads

#if defined(__linux__)
#include <dlfcn.h>

// After each call, OpenBLAS's worker threads spin in sched_yield for 2^28 cycles (~0.1 s) before they sleep, so
// between BLAS calls — through every kernel above, which split their work over the cores with Dispatch — a spinning
// worker holds the CPU that the kernel's second thread needs: measured with `perf sched`, that thread waited 1.5 ms
// on average to start (0.06 ms when the workers sleep at once). OpenBLAS reads OPENBLAS_THREAD_TIMEOUT (log2 of the
// spin in cycles, 4–30) in its own constructor, before this one runs, so here — unless the user set the variable —
// OpenBLAS re-reads its environment with the shortest spin and stops its workers, which it starts again at the next
// call with the new setting. Before `main`, so no BLAS call is running; symbols looked up, so an OpenBLAS without
// them (another build or version) is left as it is.
__attribute__((constructor)) static void gpt2kit_openblas_workers_sleep(void) {
    if (getenv("OPENBLAS_THREAD_TIMEOUT")) return;
    void (*readEnvironment)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "openblas_read_env");
    int (*threadTimeout)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_thread_timeout");
    int (*stopWorkers)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (!readEnvironment || !threadTimeout || !stopWorkers) return;
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    readEnvironment();
    unsetenv("OPENBLAS_THREAD_TIMEOUT"); // child processes see the user's environment
    if (threadTimeout() == 4) stopWorkers();
}

const char *gpt2kit_openblas_core_name(void) {
    char *(*coreName)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    return coreName ? coreName() : NULL;
}

int gpt2kit_openblas_thread_timeout(void) {
    int (*threadTimeout)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_thread_timeout");
    return threadTimeout ? threadTimeout() : -1;
}
#else
int gpt2kit_openblas_thread_timeout(void) { return -1; }
const char *gpt2kit_openblas_core_name(void) { return NULL; }
#endif
