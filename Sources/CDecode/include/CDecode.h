#ifndef GPT2KIT_CDECODE_H
#define GPT2KIT_CDECODE_H

// Matrix-times-few-vectors kernels for decoding with weights in fewer bytes than float32. Each weight row is
// streamed once for all input vectors. AVX2 + FMA + F16C code is chosen at run time where the CPU has them,
// else portable C (same results up to summation order). Written in C because Swift does not expose the
// half-to-float conversion and per-function target attributes these loops need.

#include <stddef.h>
#include <stdint.h>

/// One Q8_0 block, GGUF's layout: an f16 scale d and 32 int8 values q; the weights are d·q.
typedef struct {
    uint16_t d;
    int8_t qs[32];
} gpt2kit_block_q8_0;

/// out[n·ldo + j] (+)= Σ_i w[j·cols + i] · x[n·cols + i] for rows j in [row0, row1) and n < batch, with w in
/// IEEE half precision, (rows, cols) row-major. Adds to out when `accumulate`, else overwrites.
void gpt2kit_rows_f16(const uint16_t *w, const float *x, float *out, long cols, long row0, long row1,
                      long batch, long ldo, int accumulate);

/// A block of 32 activations quantized for the Q8_0 product: a float scale d and 32 int8 q (x ≈ d·q).
typedef struct {
    float d;
    int8_t qs[32];
} gpt2kit_block_q8_x;

/// Quantizes `count` floats (a multiple of 32) into blocks: d = max|x|/127, q = round(x/d) half away from zero.
void gpt2kit_quantize_activations(const float *x, gpt2kit_block_q8_x *out, long count);

/// The same product with w in Q8_0 blocks, (rows, cols/32) blocks row-major, and the inputs quantized by
/// `gpt2kit_quantize_activations`, (batch, cols/32) blocks: integer dot products per block, scaled by both
/// scales, as ggml's Q8_0 × Q8_0 product. Precondition: cols % 32 == 0.
void gpt2kit_rows_q8_0(const gpt2kit_block_q8_0 *w, const gpt2kit_block_q8_x *x, float *out, long cols, long row0, long row1,
                       long batch, long ldo, int accumulate);

/// Whether the AVX2/FMA/F16C kernels run on this CPU (else the portable ones).
int gpt2kit_decode_kernels_vectorized(void);

/// A product over all `rows` outputs, split over the calling thread and the cores' helper threads: kind 0
/// `gpt2kit_rows_f16`, kind 1 `gpt2kit_rows_q8_0` (`x` quantized blocks), kind 2 float32 w (rows, cols), kind 3
/// float32 w (cols, rows), Conv1D's input-major layout (`cols` inputs, `rows` outputs), a slice of columns per
/// thread through OpenBLAS's sgemv: the caller must keep OpenBLAS at one thread meanwhile. The helpers spin between calls for about a
/// millisecond (a decode step issues dozens of these products, too short to wake sleeping threads for each),
/// then sleep. Calls from several threads at once are safe: one of them runs on its own thread alone.
void gpt2kit_rows_parallel(int kind, const void *w, const void *x, float *out, long cols, long rows,
                           long batch, long ldo, int accumulate);

#endif
