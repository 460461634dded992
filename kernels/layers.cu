// Pieces shared by the blocks, mirroring src/jp_equity/model/linalg.rs (matrix products)
// and layers.rs (LayerNorm): forward and backward.
//
// Thread mapping.
// - Products: one 16×16 thread block per 16×16 tile of the output; each thread owns one
//   output element. The reduced dimension is walked in 16-wide steps through two shared
//   tiles (as[16][17], bs[16][17]: the padding column keeps the column reads free of bank
//   conflicts), and each thread adds its 16 products in index order. Every output is one
//   thread's sum in a fixed order: deterministic, no atomics. The same kernel computes
//   the three products of a dense layer by strides: y = x·w (forward), dx = dy·wᵀ and
//   dw = xᵀ·dy (backward), so a weight gradient is reduced over rows in row order.
// - LayerNorm: one warp per row (8 rows per 256-thread block); mean and variance by warp
//   butterflies (two passes, as the CPU reference: mean first, then the centred sum of
//   squares). The forward pass keeps the row's mean and 1/σ (float) for the backward.
// - Column sums (bias and LayerNorm parameter gradients): one thread per column walking
//   the rows in order, so they are deterministic and equal for any number of blocks.
//
// Precision: x, w, b, g and y are T (float or __half); dy, dx, dw and the statistics are
// float; every accumulator is float.
#include "common.cuh"

#define LB_TILE 16

// C[i, j] (+)= Σ_l A(i, l)·B(l, j) (+ bias[j]), A(i, l) = a[i·a_r + l·a_c] and
// B(l, j) = b[l·b_r + j·b_c]; C is m×n row-major.
template <typename TA, typename TB, typename TC>
__device__ __forceinline__ void gemm_tiled(const TA* __restrict__ a, int a_r, int a_c,
                                           const TB* __restrict__ b, int b_r, int b_c,
                                           const TB* __restrict__ bias, TC* c, int m, int k,
                                           int n, int accumulate) {
  __shared__ float as[LB_TILE][LB_TILE + 1];
  __shared__ float bs[LB_TILE][LB_TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * LB_TILE + ty, col = blockIdx.x * LB_TILE + tx;
  float acc = 0.0f;
  for (int t0 = 0; t0 < k; t0 += LB_TILE) {
    const int la = t0 + tx, lb = t0 + ty;
    as[ty][tx] = (row < m && la < k) ? to_f(a[(size_t)row * a_r + (size_t)la * a_c]) : 0.0f;
    bs[ty][tx] = (lb < k && col < n) ? to_f(b[(size_t)lb * b_r + (size_t)col * b_c]) : 0.0f;
    __syncthreads();
    for (int l = 0; l < LB_TILE; ++l) acc += as[ty][l] * bs[l][tx];
    __syncthreads();
  }
  if (row < m && col < n) {
    if (bias != nullptr) acc += to_f(bias[col]);
    TC* out = c + (size_t)row * n + col;
    if (accumulate) acc += to_f(*out);
    *out = from_f<TC>(acc);
  }
}

// y[m×n] (+)= x[m×k]·w[k×n] (+ b): a dense layer's forward pass (bias may be null).
template <typename T>
__device__ void matmul_forward(const T* x, const T* w, const T* b, T* y, int m, int k, int n,
                               int accumulate) {
  gemm_tiled<T, T, T>(x, k, 1, w, n, 1, b, y, m, k, n, accumulate);
}
#define MATMUL_FORWARD_PARAMS(T) \
  (const T* x, const T* w, const T* b, T* y, int m, int k, int n, int accumulate)
LB_PRECISIONS(matmul_forward, MATMUL_FORWARD_PARAMS, (x, w, b, y, m, k, n, accumulate))

// dx[m×k] (+)= dy[m×n]·wᵀ (w is the k×n weight of y = x·w).
template <typename T>
__device__ void matmul_backward_input(const float* dy, const T* w, float* dx, int m, int k,
                                      int n, int accumulate) {
  gemm_tiled<float, T, float>(dy, n, 1, w, 1, n, nullptr, dx, m, n, k, accumulate);
}
#define MATMUL_BACKWARD_INPUT_PARAMS(T) \
  (const float* dy, const T* w, float* dx, int m, int k, int n, int accumulate)
LB_PRECISIONS(matmul_backward_input, MATMUL_BACKWARD_INPUT_PARAMS, (dy, w, dx, m, k, n, accumulate))

// dw[k×n] += xᵀ·dy (x is m×k, dy is m×n): reduced over the m rows in row order.
template <typename T>
__device__ void matmul_backward_weight(const T* x, const float* dy, float* dw, int m, int k,
                                       int n) {
  gemm_tiled<T, float, float>(x, 1, k, dy, n, 1, nullptr, dw, k, m, n, 1);
}
#define MATMUL_BACKWARD_WEIGHT_PARAMS(T) (const T* x, const float* dy, float* dw, int m, int k, int n)
LB_PRECISIONS(matmul_backward_weight, MATMUL_BACKWARD_WEIGHT_PARAMS, (x, dy, dw, m, k, n))

// db[n] += Σ_rows dy[m×n], one thread per column.
extern "C" __global__ void column_sum(const float* dy, float* db, int m, int n) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float s = 0.0f;
  for (int r = 0; r < m; ++r) s += dy[(size_t)r * n + j];
  db[j] += s;
}
LB_REGISTER(column_sum)

#define LB_LN_EPS 1e-5f

// y = (x − μ)/σ · g + b per row of n (σ biased, with ε); keeps μ and 1/σ per row.
template <typename T>
__device__ void layernorm_forward(const T* x, const T* g, const T* b, T* y, float* mean,
                                  float* rstd, int rows, int n) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (r >= rows) return;  // whole warps leave together
  const T* xr = x + (size_t)r * n;
  float s = 0.0f;
  for (int j = lane; j < n; j += 32) s += to_f(xr[j]);
  const float mu = warp_sum(s) / n;
  float v = 0.0f;
  for (int j = lane; j < n; j += 32) {
    const float d = to_f(xr[j]) - mu;
    v += d * d;
  }
  const float rs = 1.0f / sqrtf(warp_sum(v) / n + LB_LN_EPS);
  for (int j = lane; j < n; j += 32)
    y[(size_t)r * n + j] = from_f<T>((to_f(xr[j]) - mu) * rs * to_f(g[j]) + to_f(b[j]));
  if (lane == 0) {
    mean[r] = mu;
    rstd[r] = rs;
  }
}
#define LAYERNORM_FORWARD_PARAMS(T) \
  (const T* x, const T* g, const T* b, T* y, float* mean, float* rstd, int rows, int n)
LB_PRECISIONS(layernorm_forward, LAYERNORM_FORWARD_PARAMS, (x, g, b, y, mean, rstd, rows, n))

// dx (+)= 1/σ · (d − mean(d) − x̂ · mean(d·x̂)), d = dy·g, one warp per row.
template <typename T>
__device__ void layernorm_backward_input(const float* dy, const T* x, const T* g,
                                         const float* mean, const float* rstd, float* dx,
                                         int rows, int n, int accumulate) {
  const int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
  if (r >= rows) return;
  const float mu = mean[r], rs = rstd[r];
  const float* dyr = dy + (size_t)r * n;
  const T* xr = x + (size_t)r * n;
  float sd = 0.0f, sdx = 0.0f;
  for (int j = lane; j < n; j += 32) {
    const float d = dyr[j] * to_f(g[j]);
    sd += d;
    sdx += d * (to_f(xr[j]) - mu) * rs;
  }
  sd = warp_sum(sd) / n;
  sdx = warp_sum(sdx) / n;
  for (int j = lane; j < n; j += 32) {
    const float xh = (to_f(xr[j]) - mu) * rs;
    const float v = rs * (dyr[j] * to_f(g[j]) - sd - xh * sdx);
    float* o = dx + (size_t)r * n + j;
    *o = accumulate ? *o + v : v;
  }
}
#define LAYERNORM_BACKWARD_INPUT_PARAMS(T)                                              \
  (const float* dy, const T* x, const T* g, const float* mean, const float* rstd, float* dx, \
   int rows, int n, int accumulate)
LB_PRECISIONS(layernorm_backward_input, LAYERNORM_BACKWARD_INPUT_PARAMS,
              (dy, x, g, mean, rstd, dx, rows, n, accumulate))

// dg[j] += Σ_r dy·x̂, db[j] += Σ_r dy: one thread per column, rows in order.
template <typename T>
__device__ void layernorm_backward_params(const float* dy, const T* x, const float* mean,
                                          const float* rstd, float* dg, float* db, int rows,
                                          int n) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= n) return;
  float sg = 0.0f, sb = 0.0f;
  for (int r = 0; r < rows; ++r) {
    const float d = dy[(size_t)r * n + j];
    sg += d * (to_f(x[(size_t)r * n + j]) - mean[r]) * rstd[r];
    sb += d;
  }
  dg[j] += sg;
  db[j] += sb;
}
#define LAYERNORM_BACKWARD_PARAMS_PARAMS(T)                                            \
  (const float* dy, const T* x, const float* mean, const float* rstd, float* dg, float* db, \
   int rows, int n)
LB_PRECISIONS(layernorm_backward_params, LAYERNORM_BACKWARD_PARAMS_PARAMS,
              (dy, x, mean, rstd, dg, db, rows, n))
