#ifndef GPT2KIT_CKERNELS_H
#define GPT2KIT_CKERNELS_H

// Element-wise and row-wise training kernels (GELU, LayerNorm, dropout, softmax pieces, LoRA's thin products): AVX2 + FMA code chosen at
// run time where the CPU has them, else portable C with the same formulas (equal up to rounding: mostly no fused
// multiply-adds, other summation lanes; LoRA's projection gives the same bits on both). Written in C because Swift has no per-function target attributes, and the
// package is built for the baseline x86-64 (SSE2), which leaves these loops a quarter of the vector width.
// Every function works on the range it is given and keeps a fixed order of operations inside it, so a caller that
// splits work into fixed chunks gets the same floats on every run.

#include <stddef.h>
#include <stdint.h>

/// out[i] = gelu_new(inp[i]) = inp[i] · σ(2u), u = √(2/π)·(x + 0.044715·x³), for i < count (out may alias inp).
void gpt2kit_gelu_forward(float *out, const float *inp, long count);

/// dinp[i] += gelu_new′(inp[i]) · dout[i] for i < count.
void gpt2kit_gelu_backward(float *dinp, const float *inp, const float *dout, long count);

/// LayerNorm of `rows` rows of C floats: out = (x − mean)·rstd·w + b, biased variance; writes each row's mean and
/// rstd = 1/√(var + eps).
void gpt2kit_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                               long rows, long C, float eps);

/// The output `gpt2kit_layernorm_forward` wrote, from its saved mean and rstd: the same floats.
void gpt2kit_layernorm_normalize(float *out, const float *inp, const float *mean, const float *rstd, const float *w,
                                 const float *b, long rows, long C);

/// LayerNorm backward over `rows` rows: dinp += …; dweight += Σ norm·dout and dbias += Σ dout when not NULL.
void gpt2kit_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                const float *w, const float *mean, const float *rstd, long rows, long C);

/// The largest of p[0..<n] (n ≥ 1).
float gpt2kit_maximum(const float *p, long n);

/// p[i] = e^(p[i] − shift) · scale for i < n (the exponential rounded, then the product rounded).
void gpt2kit_exp_shift_scale(float *p, long n, float shift, float scale);

/// Σ e^(p[i] − shift) for i < n: runs of 1024 summed over float lanes, the runs added in double.
double gpt2kit_sum_exp(const float *p, long n, float shift);

/// Σ p[i] for i < n over float lanes in a fixed order.
float gpt2kit_sum(const float *p, long n);

/// Dropout with the counter-based mask of `Dropout.keeps`: element i is kept when the 24-bit hash of (seed,
/// first + i) is ≥ threshold; out[i] = kept ? inp[i]·scale : 0 (out may alias inp).
void gpt2kit_dropout_forward(float *out, const float *inp, long count, uint64_t seed, long first, uint32_t threshold,
                             float scale);

/// dinp[i] += kept ? dout[i]·scale : 0, the same mask as `gpt2kit_dropout_forward`.
void gpt2kit_dropout_backward(float *dinp, const float *dout, long count, uint64_t seed, long first, uint32_t threshold,
                              float scale);

/// The 24 random bits of element `index` under `seed` (splitmix64's finalizer, the top 24 bits).
uint32_t gpt2kit_dropout_bits(uint64_t seed, long index);

/// Softmax backward of one attention row in place, for j < n: g[j] = d[j]·k[j] (k[j] = scale where kept[j] ≠ 0, else
/// 0; all 1 when kept is NULL), then d[j] = p[j]·(g[j] − Σ_i p[i]·g[i]).
void gpt2kit_softmax_backward_row(float *d, const float *p, const float *kept, long n, float scale);

/// LoRA's expansion over `rows` rows: out[n, j] = init + Σ_k (scale·h[n, k])·bt[k, j] for j < OC, k < r in order,
/// where init is out[n, j] itself when `accumulate` ≠ 0, else bias[j] (0 when bias is NULL). h is (rows, r), bt (r, OC).
void gpt2kit_low_rank_expand(float *out, const float *bias, const float *h, const float *bt, long rows, long OC, long r,
                             float scale, int accumulate);

/// LoRA's two products that read dout (row stride ldd), over its columns o0 ≤ o < o1 and `rows` rows, in one pass:
/// dh[n, k] += Σ_o dout[n, o]·b[o, k] (the columns in order) and db[o, k] += Σ_n (scale·dout[n, o])·h[n, k] (the
/// rows in order). b and db are (OC, r), h and dh (rows, r).
void gpt2kit_low_rank_backward_columns(float *dh, float *db, const float *dout, long ldd, const float *b, const float *h,
                                       long rows, long o0, long o1, long r, float scale);

/// LoRA's projection onto A: h[n, k] = Σ_c x[n, c]·a[k, c] for n < rows, k < r (x (rows, C), a (r, C)), each sum in
/// eight interleaved lanes of fused multiply-adds added pairwise on every path (the same bits portable and AVX2):
/// the adapter's scale amplifies h's rounding.
void gpt2kit_low_rank_project(float *h, const float *x, const float *a, long rows, long C, long r);

/// LoRA's gradient of A over the columns c0 ≤ c < c1: da[k, c] += Σ_n dh[n, k]·x[n, c] (the rows in order).
void gpt2kit_low_rank_gradient_a(float *da, const float *dh, const float *x, long rows, long C, long c0, long c1, long r);

/// OPENBLAS_THREAD_TIMEOUT as OpenBLAS uses it (log2 of its idle workers' spin in cycles; 0 for its default), or −1
/// when the OpenBLAS linked does not say. Unless the user sets the variable, GPT2Kit has OpenBLAS use 4 (see
/// CKernels.c: its workers' spin took the CPU from the kernels' own threads).
int gpt2kit_openblas_thread_timeout(void);

/// The CPU kernels OpenBLAS chose ("Haswell", "SkylakeX", "Cooperlake", …; OPENBLAS_CORETYPE overrides it), or NULL
/// when the BLAS linked does not say. Benchmarks report it: the same machine runs at different speeds with each.
const char *gpt2kit_openblas_core_name(void);

/// Whether the AVX2/FMA kernels run on this CPU (else the portable ones).
int gpt2kit_training_kernels_vectorized(void);

/// Tests only: nonzero makes every call take the portable path (as on a CPU without AVX2/FMA, or not x86-64); zero
/// restores the CPU's choice. Process-wide: not for use while other threads run these kernels.
void gpt2kit_training_kernels_force_portable(int on);

#endif
