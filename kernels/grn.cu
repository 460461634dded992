// The gated residual network and the variable selection network (MODEL.md block 2),
// mirroring src/jp_equity/model/grn.rs:
//   GRN(a) = LayerNorm(a·W_skip + GLU(drop(ELU(a·W₁ + b₁))·W₂ + b₂)),  GLU(u) = u₁ ⊙ σ(u₂);
//   VSN(x) = LayerNorm((w ⊙ x)·W_in + b_in),  w = softmax over the features of GRN(x).
// The products and LayerNorm are layers.cu's kernels; this file holds what sits between
// them.
//
// Thread mapping:
// - elu_mask_*, glu_*, select_forward: one thread per element (grid-stride); no
//   reductions.
// - softmax_rows_forward and select_backward: one warp per row (8 rows per 256-thread
//   block), the row's max and sums by warp butterflies (warp_max / warp_sum): the same
//   order on every run. The softmax statistics are fp32 whatever T is; only the weights
//   are stored in T.
// Nothing in shared memory.
#include "common.cuh"

// hid = ELU(pre) ⊙ mask (mask: 0 or 1/(1−p), or none).
template <typename T>
__device__ void elu_mask_forward(const T* pre, const T* mask, T* hid, int len) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x) {
    const float x = to_f(pre[e]);
    float v = x > 0.0f ? x : expm1f(x);
    if (mask != nullptr) v *= to_f(mask[e]);
    hid[e] = from_f<T>(v);
  }
}
#define ELU_MASK_FORWARD_PARAMS(T) (const T* pre, const T* mask, T* hid, int len)
LB_PRECISIONS(elu_mask_forward, ELU_MASK_FORWARD_PARAMS, (pre, mask, hid, len))

// dhid ⊙= mask ⊙ ELU'(pre), in place.
template <typename T>
__device__ void elu_mask_backward(float* dhid, const T* pre, const T* mask, int len) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x) {
    float d = dhid[e];
    if (mask != nullptr) d *= to_f(mask[e]);
    const float x = to_f(pre[e]);
    dhid[e] = d * (x > 0.0f ? 1.0f : expf(x));
  }
}
#define ELU_MASK_BACKWARD_PARAMS(T) (float* dhid, const T* pre, const T* mask, int len)
LB_PRECISIONS(elu_mask_backward, ELU_MASK_BACKWARD_PARAMS, (dhid, pre, mask, len))

// z[m×n] = u₁ ⊙ σ(u₂), u [m×2n].
template <typename T>
__device__ void glu_forward(const T* u, T* z, int m, int n) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < m * n; e += gridDim.x * blockDim.x) {
    const int r = e / n, j = e % n;
    const size_t row = (size_t)r * 2 * n;
    z[e] = from_f<T>(to_f(u[row + j]) * lb_sigmoid(to_f(u[row + n + j])));
  }
}
#define GLU_FORWARD_PARAMS(T) (const T* u, T* z, int m, int n)
LB_PRECISIONS(glu_forward, GLU_FORWARD_PARAMS, (u, z, m, n))

// du [m×2n] from dz [m×n]: du₁ = dz·σ(u₂), du₂ = dz·u₁·σ(u₂)(1 − σ(u₂)).
template <typename T>
__device__ void glu_backward(const T* u, const float* dz, float* du, int m, int n) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < m * n; e += gridDim.x * blockDim.x) {
    const int r = e / n, j = e % n;
    const size_t row = (size_t)r * 2 * n;
    const float a = to_f(u[row + j]), s = lb_sigmoid(to_f(u[row + n + j])), d = dz[e];
    du[row + j] = d * s;
    du[row + n + j] = d * a * s * (1.0f - s);
  }
}
#define GLU_BACKWARD_PARAMS(T) (const T* u, const float* dz, float* du, int m, int n)
LB_PRECISIONS(glu_backward, GLU_BACKWARD_PARAMS, (u, dz, du, m, n))

// w[r, :] = softmax(logits[r, :]) over rows of n (max-shifted; w may alias logits).
template <typename T>
__device__ void softmax_rows_forward(const T* logits, T* w, int rows, int n) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (r >= rows) return;  // whole warps leave together
  const T* x = logits + (size_t)r * n;
  float mx = -INFINITY;
  for (int j = lane; j < n; j += 32) mx = fmaxf(mx, to_f(x[j]));
  mx = warp_max(mx);
  float sum = 0.0f;
  for (int j = lane; j < n; j += 32) sum += expf(to_f(x[j]) - mx);
  sum = warp_sum(sum);
  // Each lane rewrites only the elements it read itself: w may alias logits.
  for (int j = lane; j < n; j += 32) w[(size_t)r * n + j] = from_f<T>(expf(to_f(x[j]) - mx) / sum);
}
#define SOFTMAX_ROWS_FORWARD_PARAMS(T) (const T* logits, T* w, int rows, int n)
LB_PRECISIONS(softmax_rows_forward, SOFTMAX_ROWS_FORWARD_PARAMS, (logits, w, rows, n))

// xs = w ⊙ x.
template <typename T>
__device__ void select_forward(const T* w, const T* x, T* xs, int len) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x)
    xs[e] = from_f<T>(to_f(w[e]) * to_f(x[e]));
}
#define SELECT_FORWARD_PARAMS(T) (const T* w, const T* x, T* xs, int len)
LB_PRECISIONS(select_forward, SELECT_FORWARD_PARAMS, (w, x, xs, len))

// From dxs = ∂(w ⊙ x), per row of n: dx = dxs ⊙ w (written) and, through the softmax,
// dlogits = w ⊙ (dw − Σ w·dw) with dw = dxs ⊙ x.
template <typename T>
__device__ void select_backward(const float* dxs, const T* w, const T* x, float* dx,
                                float* dlogits, int rows, int n) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (r >= rows) return;
  const size_t o = (size_t)r * n;
  float dot = 0.0f;
  for (int j = lane; j < n; j += 32) dot += to_f(w[o + j]) * (dxs[o + j] * to_f(x[o + j]));
  dot = warp_sum(dot);
  for (int j = lane; j < n; j += 32) {
    const float wj = to_f(w[o + j]), d = dxs[o + j];
    dx[o + j] = d * wj;
    dlogits[o + j] = wj * (d * to_f(x[o + j]) - dot);
  }
}
#define SELECT_BACKWARD_PARAMS(T) \
  (const float* dxs, const T* w, const T* x, float* dx, float* dlogits, int rows, int n)
LB_PRECISIONS(select_backward, SELECT_BACKWARD_PARAMS, (dxs, w, x, dx, dlogits, rows, n))
