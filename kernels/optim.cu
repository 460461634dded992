// The optimiser, mirroring src/jp_equity/model/optim.rs: AdamW with decoupled weight
// decay after global-norm gradient clipping, on fp32 master weights and fp32 moments;
// the update also writes the T copy of the weights that the other kernels read.
//
// Two launches per step, no host round trip:
// 1. sum_squares: a fixed grid of LB_NORM_BLOCKS blocks; thread t of block b sums g²
//    (in double) over the indices ≡ b·256 + t (mod LB_NORM_BLOCKS·256), in index order;
//    the block adds its threads' sums in a fixed tree (shared memory, double) and writes
//    one partial. The partition depends only on n, never on timing: deterministic.
// 2. adamw_update: every thread first adds the LB_NORM_BLOCKS partials in order (each
//    thread gets the same norm; 64 reads, cheaper than a third launch), then clips and
//    updates its own parameters (grid-stride). A non-finite norm changes nothing, as on
//    the CPU. The host computes the schedule's learning rate and the bias corrections
//    (they depend on the step only) and passes them in.
//
// The CPU sums g² in index order in f64; here the order differs, so the norm agrees to
// double rounding, and the update itself is the CPU's float arithmetic term for term.
#include "common.cuh"

#define LB_NORM_BLOCKS 64

extern "C" __global__ void sum_squares(const float* g, int n, double* partial) {
  __shared__ double s[LB_BLOCK];
  const int tid = threadIdx.x;
  const int stride = LB_NORM_BLOCKS * LB_BLOCK;
  double acc = 0.0;
  for (int i = blockIdx.x * LB_BLOCK + tid; i < n; i += stride) acc += (double)g[i] * (double)g[i];
  s[tid] = acc;
  __syncthreads();
  for (int half = LB_BLOCK / 2; half > 0; half >>= 1) {
    if (tid < half) s[tid] += s[tid + half];
    __syncthreads();
  }
  if (tid == 0) partial[blockIdx.x] = s[0];
}
LB_REGISTER(sum_squares)

// One update (optim.rs `AdamW::step` after `lr_at`): g is clipped to `clip` (when
// 0 < clip < ∞ and the norm exceeds it), then per parameter
//   m = β₁m + (1−β₁)g,  v = β₂v + (1−β₂)g²,  p ·= shrink (if it decays),
//   p −= step_size · m / (√v · inv_sqrt_bc2 + ε),  copy = T(p).
// `grad_norm` (one double) receives the norm before clipping.
template <typename T>
__device__ void adamw_update(float* p, float* m, float* v, float* g, const unsigned char* decay,
                             T* copy, int n, const double* partial, double* grad_norm,
                             double clip, float b1, float b2, float one_b1, float one_b2,
                             float step_size, float inv_sqrt_bc2, float eps, float shrink) {
  double ss = 0.0;
  for (int b = 0; b < LB_NORM_BLOCKS; ++b) ss += partial[b];
  const double norm = sqrt(ss);
  const int first = blockIdx.x * blockDim.x + threadIdx.x;
  if (first == 0) *grad_norm = norm;
  if (!isfinite(norm)) return;
  const bool clipping = clip > 0.0 && isfinite(clip) && norm > clip;
  const double scale = clipping ? clip / norm : 1.0;
  for (int i = first; i < n; i += gridDim.x * blockDim.x) {
    float gi = g[i];
    if (clipping) {
      gi = (float)((double)gi * scale);
      g[i] = gi;
    }
    const float mi = b1 * m[i] + one_b1 * gi;
    const float vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = p[i];
    if (decay == nullptr || decay[i]) pi *= shrink;
    pi -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    p[i] = pi;
    copy[i] = from_f<T>(pi);
  }
}
#define ADAMW_PARAMS(T)                                                                      \
  (float* p, float* m, float* v, float* g, const unsigned char* decay, T* copy, int n,        \
   const double* partial, double* grad_norm, double clip, float b1, float b2, float one_b1, \
   float one_b2, float step_size, float inv_sqrt_bc2, float eps, float shrink)
LB_PRECISIONS(adamw_update, ADAMW_PARAMS,
              (p, m, v, g, decay, copy, n, partial, grad_norm, clip, b1, b2, one_b1, one_b2,
               step_size, inv_sqrt_bc2, eps, shrink))

// The T copy of float values (the weights after loading, or any float tensor).
template <typename T>
__device__ void convert_from_float(const float* x, T* y, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    y[i] = from_f<T>(x[i]);
}
#define CONVERT_PARAMS(T) (const float* x, T* y, int n)
LB_PRECISIONS(convert_from_float, CONVERT_PARAMS, (x, y, n))
