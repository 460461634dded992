// The network's own pieces between the blocks, mirroring src/jp_equity/model/network.rs:
// the gated fusion of the temporal and graph representations (z = h + σ(gate)·g), and
// the two linear paths into the quantiles (the skip path from the last day's inputs and
// the linear graph path from the in-neighbours' last-day inputs weighted by the edge
// features, MODEL.md blocks 4 and 5).
//
// Thread mapping and determinism:
// - last_day_inputs / neighbour_inputs: one thread per output element. A node's graph
//   input sums its own in-edges in CSR order (the edge list's order, whatever the
//   direction of the edges or the width of their features): no two threads write one
//   element and every sum has the CPU's order.
// - linear_path_forward: one thread per (stock, horizon), adding κ·w_h·x_i to the five
//   quantiles of that row.
// - linear_path_backward: one thread per weight (h, c), summing over the stocks in row
//   order: the weight gradient never depends on the grid.
// - fusion_backward_gate: one block; each thread sums its strided share of dz·g, the
//   block adds them in a fixed tree (block_sum): the gate's gradient is deterministic.
#include "common.cuh"

// out[i, :] = [x[i, t−1, :], mask[i, t−1, :]]: the last day's features and masks.
template <typename T>
__device__ void last_day_inputs(const T* x, const T* mask, T* out, int n, int t, int features,
                                int masks) {
  const int width = features + masks, total = n * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / width, c = e % width;
    const size_t last = (size_t)i * t + t - 1;
    out[e] = c < features ? x[last * features + c] : mask[last * masks + (c - features)];
  }
}
#define LAST_DAY_INPUTS_PARAMS(T) \
  (const T* x, const T* mask, T* out, int n, int t, int features, int masks)
LB_PRECISIONS(last_day_inputs, LAST_DAY_INPUTS_PARAMS, (x, mask, out, n, t, features, masks))

// M[i, a, c] = Σ over in-edges e = j → i, j ≠ i (CSR by destination) of
// edge_feat[e·dim + a] · x[j, c]; x is [n × width].
template <typename T>
__device__ void neighbour_inputs(const int* offsets, const int* src, const float* edge_feat,
                                 const T* x, T* out, int n, int dim, int width) {
  const int total = n * dim * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / (dim * width), a = (e / width) % dim, c = e % width;
    float s = 0.0f;
    for (int k = offsets[i]; k < offsets[i + 1]; ++k) {
      const int j = src[k];
      if (j == i) continue;
      s += edge_feat[(size_t)k * dim + a] * to_f(x[(size_t)j * width + c]);
    }
    out[e] = from_f<T>(s);
  }
}
#define NEIGHBOUR_INPUTS_PARAMS(T)                                                        \
  (const int* offsets, const int* src, const float* edge_feat, const T* x, T* out, int n, \
   int dim, int width)
LB_PRECISIONS(neighbour_inputs, NEIGHBOUR_INPUTS_PARAMS,
              (offsets, src, edge_feat, x, out, n, dim, width))

// q[i, h, :] += κ · Σ_c x[i, c] · w[h, c]  (x is [n × width], w is [horizons × width]).
template <typename T>
__device__ void linear_path_forward(T* q, const T* x, const T* w, int n, int horizons, int width,
                                    float kappa) {
  const int total = n * horizons;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / horizons, h = e % horizons;
    float s = 0.0f;
    for (int c = 0; c < width; ++c)
      s += to_f(x[(size_t)i * width + c]) * to_f(w[(size_t)h * width + c]);
    s *= kappa;
    for (int j = 0; j < 5; ++j) {
      T* o = q + (size_t)e * 5 + j;
      *o = from_f<T>(to_f(*o) + s);
    }
  }
}
#define LINEAR_PATH_FORWARD_PARAMS(T) \
  (T* q, const T* x, const T* w, int n, int horizons, int width, float kappa)
LB_PRECISIONS(linear_path_forward, LINEAR_PATH_FORWARD_PARAMS, (q, x, w, n, horizons, width, kappa))

// g[h, c] += Σ_i κ · (Σ_j dq[i, h, j]) · x[i, c], stocks in order.
template <typename T>
__device__ void linear_path_backward(const float* dq, const T* x, float* g, int n, int horizons,
                                     int width, float kappa) {
  const int total = horizons * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int h = e / width, c = e % width;
    float s = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float* d = dq + ((size_t)i * horizons + h) * 5;
      const float ds = kappa * (d[0] + d[1] + d[2] + d[3] + d[4]);
      s += ds * to_f(x[(size_t)i * width + c]);
    }
    g[e] += s;
  }
}
#define LINEAR_PATH_BACKWARD_PARAMS(T) \
  (const float* dq, const T* x, float* g, int n, int horizons, int width, float kappa)
LB_PRECISIONS(linear_path_backward, LINEAR_PATH_BACKWARD_PARAMS,
              (dq, x, g, n, horizons, width, kappa))

// z = h + σ(gate) · g  (gate: one logit, a parameter).
template <typename T>
__device__ void fusion_forward(const T* h, const T* g, const T* gate, T* z, int len) {
  const float s = lb_sigmoid(to_f(gate[0]));
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x)
    z[e] = from_f<T>(to_f(h[e]) + s * to_f(g[e]));
}
#define FUSION_FORWARD_PARAMS(T) (const T* h, const T* g, const T* gate, T* z, int len)
LB_PRECISIONS(fusion_forward, FUSION_FORWARD_PARAMS, (h, g, gate, z, len))

// dg = σ(gate) · dz (the gradient into h is dz itself).
template <typename T>
__device__ void fusion_backward_input(const float* dz, const T* gate, float* dg, int len) {
  const float s = lb_sigmoid(to_f(gate[0]));
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x)
    dg[e] = s * dz[e];
}
#define FUSION_BACKWARD_INPUT_PARAMS(T) (const float* dz, const T* gate, float* dg, int len)
LB_PRECISIONS(fusion_backward_input, FUSION_BACKWARD_INPUT_PARAMS, (dz, gate, dg, len))

// dgate += (Σ dz · g) · σ(gate)(1 − σ(gate)); one block.
template <typename T>
__device__ void fusion_backward_gate(const float* dz, const T* g, const T* gate, float* dgate,
                                     int len) {
  __shared__ float scratch[32];
  float s = 0.0f;
  for (int e = threadIdx.x; e < len; e += blockDim.x) s += dz[e] * to_f(g[e]);
  s = block_sum(s, scratch);
  if (threadIdx.x == 0) {
    const float sg = lb_sigmoid(to_f(gate[0]));
    dgate[0] += s * sg * (1.0f - sg);
  }
}
#define FUSION_BACKWARD_GATE_PARAMS(T) \
  (const float* dz, const T* g, const T* gate, float* dgate, int len)
LB_PRECISIONS(fusion_backward_gate, FUSION_BACKWARD_GATE_PARAMS, (dz, g, gate, dgate, len))

// The selection input u [n·t × width] (width = f + f·k + masks): per row, FAN's output,
// the stock's amplitudes (the same for every step; amp may be null when k = 0) and the
// step's masks.
template <typename T>
__device__ void selection_input(const T* xf, const T* amp, const T* mask, T* u, int n, int t,
                                int f, int k, int masks) {
  const int width = f + f * k + masks, total = n * t * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int row = e / width, c = e % width, st = row / t;
    T v;
    if (c < f) v = xf[(size_t)row * f + c];
    else if (c < f + f * k) v = amp[(size_t)st * f * k + (c - f)];
    else v = mask[(size_t)row * masks + (c - f - f * k)];
    u[e] = v;
  }
}
#define SELECTION_INPUT_PARAMS(T) \
  (const T* xf, const T* amp, const T* mask, T* u, int n, int t, int f, int k, int masks)
LB_PRECISIONS(selection_input, SELECTION_INPUT_PARAMS, (xf, amp, mask, u, n, t, f, k, masks))

// The backward of selection_input: dxf [n × t × f] copied out of du, and damp [n × f × k]
// summed over the stock's steps in step order (threads past n·t·f do the amplitudes).
extern "C" __global__ void selection_input_backward(const float* du, float* dxf, float* damp,
                                                    int n, int t, int f, int k, int masks) {
  const int width = f + f * k + masks, nx = n * t * f, total = nx + n * f * k;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    if (e < nx) {
      const int row = e / f, c = e % f;
      dxf[e] = du[(size_t)row * width + c];
    } else {
      const int a = e - nx, st = a / (f * k), c = a % (f * k);
      float s = 0.0f;
      for (int tau = 0; tau < t; ++tau) s += du[((size_t)st * t + tau) * width + f + c];
      damp[a] = s;
    }
  }
}
LB_REGISTER(selection_input_backward)

// a += b (gradients meeting at a fork).
extern "C" __global__ void accumulate(float* a, const float* b, int len) {
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < len; e += gridDim.x * blockDim.x)
    a[e] += b[e];
}
LB_REGISTER(accumulate)
