#include "CDecode.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define PAUSE() _mm_pause()
#else
#define PAUSE() ((void)0)
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

static void rows_q8_0_portable(const gpt2kit_block_q8_0 *w, const gpt2kit_block_q8_x *x, float *out, long cols, long row0,
                               long row1, long batch, long ldo, int accumulate) {
    long blocks = cols / 32;
    for (long j = row0; j < row1; j++) {
        const gpt2kit_block_q8_0 *row = w + j * blocks;
        for (long n = 0; n < batch; n++) {
            const gpt2kit_block_q8_x *xn = x + n * blocks;
            float s = 0;
            for (long b = 0; b < blocks; b++) {
                int t = 0;
                for (int i = 0; i < 32; i++) t += (int)row[b].qs[i] * (int)xn[b].qs[i];
                s += half_to_float(row[b].d) * xn[b].d * (float)t;
            }
            out[n * ldo + j] = accumulate ? out[n * ldo + j] + s : s;
        }
    }
}

void gpt2kit_quantize_activations(const float *x, gpt2kit_block_q8_x *out, long count) {
    for (long b = 0; b < count / 32; b++) {
        const float *v = x + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; i++) { float a = v[i] < 0 ? -v[i] : v[i]; if (a > amax) amax = a; }
        float d = amax / 127, id = d != 0 ? 1 / d : 0;
        out[b].d = d;
        for (int i = 0; i < 32; i++) {
            float q = v[i] * id;
            out[b].qs[i] = (int8_t)(q < 0 ? -(int)(-q + 0.5f) : (int)(q + 0.5f));
        }
    }
}

static void rows_f32_portable(const float *w, const float *x, float *out, long cols, long row0, long row1,
                              long batch, long ldo, int accumulate) {
    for (long j = row0; j < row1; j++) {
        for (long n = 0; n < batch; n++) {
            float s = 0;
            for (long i = 0; i < cols; i++) s += w[j * cols + i] * x[n * cols + i];
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

// One weight row against M input vectors (M a compile-time constant after inlining, so the accumulators stay
// in registers), with CH independent FMA chains per vector (4 for M ≤ 2, 2 above: at most 8 accumulators);
// then the kernel over rows [row0, row1), M ≤ 4 inputs at a time. One definition for every element type: LOAD8
// turns 8 weights at P into floats, LOAD1 one weight.
#define INLINE __attribute__((always_inline)) static inline
#define ROW_KERNELS(SUFFIX, TYPE, LOAD8, LOAD1)                                                                    \
VECTOR INLINE void row_##SUFFIX(const TYPE *row, const float *x, float *out, long cols, long ldo, int accumulate,   \
                                const int M, const int CH) {                                                       \
    __m256 a[4][4];                                                                                                \
    for (int k = 0; k < M; k++) for (int c = 0; c < CH; c++) a[k][c] = _mm256_setzero_ps();                        \
    long i = 0;                                                                                                    \
    for (; i + 8 * CH <= cols; i += 8 * CH) {                                                                      \
        for (int c = 0; c < CH; c++) {                                                                             \
            const TYPE *P = row + i + 8 * c;                                                                       \
            __m256 wv = LOAD8;                                                                                     \
            for (int k = 0; k < M; k++) a[k][c] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k * cols + i + 8 * c), a[k][c]); \
        }                                                                                                          \
    }                                                                                                              \
    for (; i + 8 <= cols; i += 8) {                                                                                \
        const TYPE *P = row + i;                                                                                   \
        __m256 wv = LOAD8;                                                                                         \
        for (int k = 0; k < M; k++) a[k][0] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + k * cols + i), a[k][0]);     \
    }                                                                                                              \
    for (int k = 0; k < M; k++) {                                                                                  \
        __m256 t = a[k][0];                                                                                        \
        for (int c = 1; c < CH; c++) t = _mm256_add_ps(t, a[k][c]);                                                \
        float sum = sum8(t);                                                                                       \
        for (long r = i; r < cols; r++) { const TYPE *P = row + r; sum += (LOAD1) * x[k * cols + r]; }             \
        float *o = out + k * ldo;                                                                                  \
        *o = accumulate ? *o + sum : sum;                                                                          \
    }                                                                                                              \
}                                                                                                                  \
VECTOR static void rows_##SUFFIX##_avx2(const TYPE *w, const float *x, float *out, long cols, long row0, long row1, \
                                        long batch, long ldo, int accumulate) {                                    \
    for (long j = row0; j < row1; j++) {                                                                           \
        const TYPE *row = w + j * cols;                                                                            \
        for (long n0 = 0; n0 < batch; n0 += 4) {                                                                   \
            const float *xs = x + n0 * cols;                                                                       \
            float *o = out + n0 * ldo + j;                                                                         \
            switch (batch - n0 < 4 ? batch - n0 : 4) {                                                             \
            case 1: row_##SUFFIX(row, xs, o, cols, ldo, accumulate, 1, 4); break;                                  \
            case 2: row_##SUFFIX(row, xs, o, cols, ldo, accumulate, 2, 4); break;                                  \
            case 3: row_##SUFFIX(row, xs, o, cols, ldo, accumulate, 3, 2); break;                                  \
            default: row_##SUFFIX(row, xs, o, cols, ldo, accumulate, 4, 2); break;                                 \
            }                                                                                                      \
        }                                                                                                          \
    }                                                                                                              \
}

ROW_KERNELS(f16, uint16_t, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)P)), _cvtsh_ss(*P))
ROW_KERNELS(f32, float, _mm256_loadu_ps(P), *P)

// Σ over a block of 32 of int8·int8 as 8 int32 lanes, as ggml does: |x|·(y·sign x) through maddubs (u8·s8 → s16
// pairs; at most 2·128·127, no saturation), then pairs of s16 summed into s32.
VECTOR INLINE __m256 block_dot(const int8_t *w, const int8_t *x) {
    __m256i wv = _mm256_loadu_si256((const __m256i *)w), xv = _mm256_loadu_si256((const __m256i *)x);
    __m256i pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv));
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

VECTOR INLINE void row_q8_0(const gpt2kit_block_q8_0 *row, const gpt2kit_block_q8_x *x, float *out, long cols, long ldo,
                            int accumulate, const int M) {
    long blocks = cols / 32;
    __m256 a[4][2];
    for (int k = 0; k < M; k++) { a[k][0] = _mm256_setzero_ps(); a[k][1] = _mm256_setzero_ps(); }
    long b = 0;
    for (; b + 2 <= blocks; b += 2) {
        float d0 = _cvtsh_ss(row[b].d), d1 = _cvtsh_ss(row[b + 1].d);
        for (int k = 0; k < M; k++) {
            const gpt2kit_block_q8_x *xk = x + k * blocks + b;
            a[k][0] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xk[0].d), block_dot(row[b].qs, xk[0].qs), a[k][0]);
            a[k][1] = _mm256_fmadd_ps(_mm256_set1_ps(d1 * xk[1].d), block_dot(row[b + 1].qs, xk[1].qs), a[k][1]);
        }
    }
    for (; b < blocks; b++) {
        float d0 = _cvtsh_ss(row[b].d);
        for (int k = 0; k < M; k++) {
            const gpt2kit_block_q8_x *xk = x + k * blocks + b;
            a[k][0] = _mm256_fmadd_ps(_mm256_set1_ps(d0 * xk[0].d), block_dot(row[b].qs, xk[0].qs), a[k][0]);
        }
    }
    for (int k = 0; k < M; k++) {
        float sum = sum8(_mm256_add_ps(a[k][0], a[k][1]));
        float *o = out + k * ldo;
        *o = accumulate ? *o + sum : sum;
    }
}

VECTOR static void rows_q8_0_avx2(const gpt2kit_block_q8_0 *w, const gpt2kit_block_q8_x *x, float *out, long cols, long row0,
                                  long row1, long batch, long ldo, int accumulate) {
    long blocks = cols / 32;
    for (long j = row0; j < row1; j++) {
        const gpt2kit_block_q8_0 *row = w + j * blocks;
        for (long n0 = 0; n0 < batch; n0 += 4) {
            const gpt2kit_block_q8_x *xs = x + n0 * blocks;
            float *o = out + n0 * ldo + j;
            switch (batch - n0 < 4 ? batch - n0 : 4) {
            case 1: row_q8_0(row, xs, o, cols, ldo, accumulate, 1); break;
            case 2: row_q8_0(row, xs, o, cols, ldo, accumulate, 2); break;
            case 3: row_q8_0(row, xs, o, cols, ldo, accumulate, 3); break;
            default: row_q8_0(row, xs, o, cols, ldo, accumulate, 4); break;
            }
        }
    }
}

VECTOR INLINE void inputs_group_f32(const float *w, const float *x, float *out, long inputs, long outputs, long in0, long in1,
                                    long ldo, int accumulate, const int M) {
    if (!accumulate) for (int k = 0; k < M; k++) memset(out + k * ldo, 0, (size_t)outputs * sizeof(float));
    for (long i = in0; i < in1; i++) {
        const float *wr = w + i * outputs;
        __m256 xv[4];
        for (int k = 0; k < M; k++) xv[k] = _mm256_broadcast_ss(x + k * inputs + i);
        for (long j = 0; j < outputs; j += 8) {
            __m256 wv = _mm256_loadu_ps(wr + j);
            for (int k = 0; k < M; k++) {
                float *o = out + k * ldo + j;
                _mm256_storeu_ps(o, _mm256_fmadd_ps(xv[k], wv, _mm256_loadu_ps(o)));
            }
        }
    }
}

VECTOR static void inputs_f32_avx2(const float *w, const float *x, float *out, long inputs, long outputs, long in0, long in1,
                                   long batch, long ldo, int accumulate) {
    for (long n0 = 0; n0 < batch; n0 += 4) {
        const float *xs = x + n0 * inputs;
        float *o = out + n0 * ldo;
        switch (batch - n0 < 4 ? batch - n0 : 4) {
        case 1: inputs_group_f32(w, xs, o, inputs, outputs, in0, in1, ldo, accumulate, 1); break;
        case 2: inputs_group_f32(w, xs, o, inputs, outputs, in0, in1, ldo, accumulate, 2); break;
        case 3: inputs_group_f32(w, xs, o, inputs, outputs, in0, in1, ldo, accumulate, 3); break;
        default: inputs_group_f32(w, xs, o, inputs, outputs, in0, in1, ldo, accumulate, 4); break;
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

static void rows_f32(const float *w, const float *x, float *out, long cols, long row0, long row1, long batch, long ldo, int accumulate) {
#if defined(__x86_64__)
    if (gpt2kit_decode_kernels_vectorized()) { rows_f32_avx2(w, x, out, cols, row0, row1, batch, ldo, accumulate); return; }
#endif
    rows_f32_portable(w, x, out, cols, row0, row1, batch, ldo, accumulate);
}

// w (inputs, outputs) row-major, Conv1D's layout: out[n, :] (+)= Σ_{i in [in0, in1)} x[n, i] · w[i, :], reading the
// rows [in0, in1) of w as one contiguous stream (each thread of a split gets its own block of input rows and its
// own partial sums; the caller adds them up).
static void inputs_f32_portable(const float *w, const float *x, float *out, long inputs, long outputs, long in0, long in1,
                                long batch, long ldo, int accumulate) {
    for (long n = 0; n < batch; n++) {
        float *o = out + n * ldo;
        if (!accumulate) for (long j = 0; j < outputs; j++) o[j] = 0;
        for (long i = in0; i < in1; i++) {
            float xi = x[n * inputs + i];
            for (long j = 0; j < outputs; j++) o[j] += xi * w[i * outputs + j];
        }
    }
}

static void inputs_f32(const float *w, const float *x, float *out, long inputs, long outputs, long in0, long in1,
                       long batch, long ldo, int accumulate) {
#if defined(__x86_64__)
    if (gpt2kit_decode_kernels_vectorized() && outputs % 8 == 0) {
        inputs_f32_avx2(w, x, out, inputs, outputs, in0, in1, batch, ldo, accumulate);
        return;
    }
#endif
    inputs_f32_portable(w, x, out, inputs, outputs, in0, in1, batch, ldo, accumulate);
}

void gpt2kit_rows_q8_0(const gpt2kit_block_q8_0 *w, const gpt2kit_block_q8_x *x, float *out, long cols, long row0, long row1,
                       long batch, long ldo, int accumulate) {
#if defined(__x86_64__)
    if (gpt2kit_decode_kernels_vectorized()) { rows_q8_0_avx2(w, x, out, cols, row0, row1, batch, ldo, accumulate); return; }
#endif
    rows_q8_0_portable(w, x, out, cols, row0, row1, batch, ldo, accumulate);
}

// ---------------------------------------------------------------- helper threads

enum { MAX_HELPERS = 7, SPIN_LIMIT = 200000 };

typedef struct {
    int kind;
    const void *w, *x;
    float *out;
    long cols, rows, batch, ldo;
    int accumulate;
    long bounds[MAX_HELPERS + 2]; // part p covers rows [bounds[p], bounds[p + 1])
} job_t;

static job_t job;
static atomic_long posted;                       // generation of the last job posted
static atomic_long finished[MAX_HELPERS];        // generation each helper finished last
static atomic_int sleeping[MAX_HELPERS];
static atomic_flag busy = ATOMIC_FLAG_INIT;      // one job at a time; a second caller runs alone
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int helpers;

static void run_range(int kind, const void *w, const void *x, float *out, long cols, long rows, long r0, long r1,
                      long batch, long ldo, int accumulate) {
    switch (kind) {
    case 0: gpt2kit_rows_f16(w, x, out, cols, r0, r1, batch, ldo, accumulate); break;
    case 1: gpt2kit_rows_q8_0(w, x, out, cols, r0, r1, batch, ldo, accumulate); break;
    case 2: rows_f32(w, x, out, cols, r0, r1, batch, ldo, accumulate); break;
    default: inputs_f32(w, x, out, cols, rows, r0, r1, batch, ldo, accumulate); break;
    }
}

static float *partials[MAX_HELPERS];  // kind 3: each helper's partial sums, (batch, rows)
static long partial_floats[MAX_HELPERS];

static void run_part(const job_t *j, long part) {
    long r0 = j->bounds[part], r1 = j->bounds[part + 1];
    if (j->kind == 3 && part > 0) { // its own partial sums, zero when its block of inputs is empty
        float *p = partials[part - 1];
        if (r0 >= r1) { memset(p, 0, (size_t)(j->batch * j->rows) * sizeof(float)); return; }
        run_range(3, j->w, j->x, p, j->cols, j->rows, r0, r1, j->batch, j->rows, 0);
        return;
    }
    if (r0 >= r1) return;
    run_range(j->kind, j->w, j->x, j->out, j->cols, j->rows, r0, r1, j->batch, j->ldo, j->accumulate);
}

static void *helper_main(void *arg) {
    long index = (long)arg, seen = 0;
    for (;;) {
        long spins = 0;
        while (atomic_load(&posted) == seen) {
            if (++spins < SPIN_LIMIT) { PAUSE(); continue; }
            pthread_mutex_lock(&lock);
            atomic_store(&sleeping[index], 1);
            while (atomic_load(&posted) == seen) pthread_cond_wait(&wake, &lock);
            atomic_store(&sleeping[index], 0);
            pthread_mutex_unlock(&lock);
        }
        seen = atomic_load(&posted);
        run_part(&job, index + 1);
        atomic_store(&finished[index], seen);
    }
    return NULL;
}

static void start_helpers(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int wanted = cores > 1 ? (int)(cores - 1 < MAX_HELPERS ? cores - 1 : MAX_HELPERS) : 0;
    for (int i = 0; i < wanted; i++) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attr, helper_main, (void *)(long)i) != 0) { pthread_attr_destroy(&attr); break; }
        pthread_attr_destroy(&attr);
        helpers = i + 1;
    }
}

void gpt2kit_rows_parallel(int kind, const void *w, const void *x, float *out, long cols, long rows,
                           long batch, long ldo, int accumulate) {
    pthread_once(&once, start_helpers);
    // Small products, no helpers, or another thread's job in flight: this thread alone.
    long extent = kind == 3 ? cols : rows; // kind 3 splits its input rows, the others their output rows
    if (helpers == 0 || rows < 256 || atomic_flag_test_and_set(&busy)) {
        run_range(kind, w, x, out, cols, rows, 0, extent, batch, ldo, accumulate);
        return;
    }
    int parts = helpers + 1;
    if (kind == 3) { // split the input rows; every helper needs room for its partial sums
        for (int i = 0; i < helpers; i++) {
            if (partial_floats[i] < batch * rows) {
                float *grown = realloc(partials[i], (size_t)(batch * rows) * sizeof(float));
                if (!grown) { atomic_flag_clear(&busy); run_range(kind, w, x, out, cols, rows, 0, cols, batch, ldo, accumulate); return; }
                partials[i] = grown;
                partial_floats[i] = batch * rows;
            }
        }
    }
    job.kind = kind; job.w = w; job.x = x; job.out = out;
    job.cols = cols; job.rows = rows; job.batch = batch; job.ldo = ldo; job.accumulate = accumulate;
    for (int p = 0; p <= parts; p++) {
        long edge = extent * p / parts;
        job.bounds[p] = p == parts ? extent : edge / 16 * 16; // whole cache lines per part
    }
    long generation = atomic_load(&posted) + 1;
    atomic_store(&posted, generation);
    int anyone_sleeping = 0;
    for (int i = 0; i < helpers; i++) anyone_sleeping |= atomic_load(&sleeping[i]);
    if (anyone_sleeping) {
        pthread_mutex_lock(&lock);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&lock);
    }
    run_part(&job, 0);
    for (int i = 0; i < helpers; i++) while (atomic_load(&finished[i]) != generation) PAUSE();
    if (kind == 3) {
        for (int i = 0; i < helpers; i++) {
            for (long n = 0; n < batch; n++) {
                float *o = out + n * ldo;
                const float *p = partials[i] + n * rows;
                for (long j = 0; j < rows; j++) o[j] += p[j];
            }
        }
    }
    atomic_flag_clear(&busy);
}
