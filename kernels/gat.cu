// A GATv2 layer with edge features, residual and LayerNorm (MODEL.md block 4), mirroring
// src/jp_equity/model/gat.rs: for an edge e = j → i and head c,
//   u_e^c = (xl_j^c + xr_i^c) + e_e·w_e^c,  s_e^c = att_c · LeakyReLU_0.2(u_e^c),
//   α^c = softmax of s^c over i's in-edges,  o_i^c = Σ_e α_e^c xl_j^c,
//   y_i = LayerNorm(x_i + (concat_c o_i^c | mean_c o_i^c) + bias).
// The products xl = x·w_l + b_l and xr = x·w_r + b_r, their backward and LayerNorm are
// layers.cu's kernels; this file holds what is per edge. The graph is generic: any edge
// direction (CSR by destination, `dst` per edge), any edge-feature width.
//
// Thread mapping:
// - gat_edge_scores: one thread per (edge, head), writing the edge's u (T) and its score
//   (fp32, in the α buffer); the edge term e_e·w_e is computed in the thread (edge_dim is
//   small) instead of being a product of its own.
// - gat_softmax: one thread per (node, head) over its in-edges (max-shifted, fp32: the
//   softmax statistics are never stored in T).
// - gat_aggregate: one thread per (node, column) of the output; it sums its in-edges in
//   CSR order (and, averaging, the heads in order), then adds the bias and the residual.
// - gat_backward_scores: one thread per (node, head): ∂α, the softmax backward and ∂u for
//   the node's in-edges (each edge belongs to one destination: no two threads write it).
// - gat_backward_dxr: one thread per (node, column), the node's in-edges in CSR order.
// - gat_backward_dxl: one thread per (source, column) over the source's out-edges in
//   edge order (a reverse CSR the host builds once per day), so the scatter to sources
//   that the CPU does edge by edge is a gather here: no atomics, the CPU's order.
// - gat_backward_att / gat_backward_edge_weights: one block per weight; each thread sums
//   its strided share of the edges, the block adds them in block_sum's fixed tree.
// Every sum therefore has one order given the launch: the gradients are deterministic.
// Shared memory: 32 floats per block for block_sum's partials; nothing else.
#include "common.cuh"

#define LB_GAT_NEG_SLOPE 0.2f

__device__ __forceinline__ float lb_leaky_relu(float x) {
  return x > 0.0f ? x : LB_GAT_NEG_SLOPE * x;
}
__device__ __forceinline__ float lb_leaky_relu_grad(float x) {
  return x > 0.0f ? 1.0f : LB_GAT_NEG_SLOPE;
}

// u [E × hw] and score [E × heads] (the pre-softmax scores, fp32).
template <typename T>
__device__ void gat_edge_scores(const int* dst, const int* src, const float* edge_feat,
                                const T* xl, const T* xr, const T* w_e, const T* att, T* u,
                                float* score, int n_edges, int heads, int hd, int edge_dim) {
  const int hw = heads * hd, total = n_edges * heads;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < total; t += gridDim.x * blockDim.x) {
    const int e = t / heads, c = t % heads;
    const int i = dst[e], j = src[e];
    float s = 0.0f;
    for (int d = 0; d < hd; ++d) {
      const int q = c * hd + d;
      float ee = 0.0f;
      for (int a = 0; a < edge_dim; ++a)
        ee += edge_feat[(size_t)e * edge_dim + a] * to_f(w_e[(size_t)a * hw + q]);
      const float v = (to_f(xl[(size_t)j * hw + q]) + to_f(xr[(size_t)i * hw + q])) + ee;
      u[(size_t)e * hw + q] = from_f<T>(v);
      s += to_f(att[q]) * lb_leaky_relu(v);
    }
    score[t] = s;
  }
}
#define GAT_EDGE_SCORES_PARAMS(T)                                                       \
  (const int* dst, const int* src, const float* edge_feat, const T* xl, const T* xr,    \
   const T* w_e, const T* att, T* u, float* score, int n_edges, int heads, int hd, \
   int edge_dim)
LB_PRECISIONS(gat_edge_scores, GAT_EDGE_SCORES_PARAMS,
              (dst, src, edge_feat, xl, xr, w_e, att, u, score, n_edges, heads, hd, edge_dim))

// alpha [E × heads]: the scores in, the attention weights out (in place).
extern "C" __global__ void gat_softmax(const int* offsets, float* alpha, int n, int heads) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n * heads; t += gridDim.x * blockDim.x) {
    const int i = t / heads, c = t % heads;
    const int e0 = offsets[i], e1 = offsets[i + 1];
    if (e0 == e1) continue;
    float mx = -INFINITY;
    for (int e = e0; e < e1; ++e) mx = fmaxf(mx, alpha[(size_t)e * heads + c]);
    float sum = 0.0f;
    for (int e = e0; e < e1; ++e) {
      const float v = expf(alpha[(size_t)e * heads + c] - mx);
      alpha[(size_t)e * heads + c] = v;
      sum += v;
    }
    for (int e = e0; e < e1; ++e) alpha[(size_t)e * heads + c] /= sum;
  }
}
LB_REGISTER(gat_softmax)

// pre [n × h] = x + (out + bias), out the heads concatenated (concat = 1) or averaged.
template <typename T>
__device__ void gat_aggregate(const int* offsets, const int* src, const float* alpha, const T* xl,
                              const T* x, const T* bias, T* pre, int n, int h, int heads, int hd,
                              int concat) {
  const int hw = heads * hd;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n * h; t += gridDim.x * blockDim.x) {
    const int i = t / h, col = t % h;
    const int e0 = offsets[i], e1 = offsets[i + 1];
    float o = 0.0f;
    if (concat) {
      const int c = col / hd;
      for (int e = e0; e < e1; ++e)
        o += alpha[(size_t)e * heads + c] * to_f(xl[(size_t)src[e] * hw + col]);
    } else {
      for (int c = 0; c < heads; ++c)
        for (int e = e0; e < e1; ++e)
          o += alpha[(size_t)e * heads + c] * to_f(xl[(size_t)src[e] * hw + c * hd + col]);
      o *= 1.0f / (float)heads;
    }
    pre[t] = from_f<T>(to_f(x[t]) + (o + to_f(bias[col])));
  }
}
#define GAT_AGGREGATE_PARAMS(T)                                                             \
  (const int* offsets, const int* src, const float* alpha, const T* xl, const T* x,         \
   const T* bias, T* pre, int n, int h, int heads, int hd, int concat)
LB_PRECISIONS(gat_aggregate, GAT_AGGREGATE_PARAMS,
              (offsets, src, alpha, xl, x, bias, pre, n, h, heads, hd, concat))

// The gradient reaching o_i^c[d] from dout_i (gat.rs `head_grad`).
__device__ __forceinline__ float lb_head_grad(const float* dout_i, int c, int d, int hd,
                                              int heads, int concat) {
  return concat ? dout_i[c * hd + d] : dout_i[d] * (1.0f / (float)heads);
}

// ds [E × heads] = ∂s, du [E × hw] = ∂u, from dpre = ∂(x + out + bias) [n × h].
template <typename T>
__device__ void gat_backward_scores(const int* offsets, const int* src, const float* alpha,
                                    const T* xl, const T* u, const T* att, const float* dpre,
                                    float* ds, float* du, int n, int h, int heads, int hd,
                                    int concat) {
  const int hw = heads * hd;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n * heads; t += gridDim.x * blockDim.x) {
    const int i = t / heads, c = t % heads;
    const int e0 = offsets[i], e1 = offsets[i + 1];
    const float* dout_i = dpre + (size_t)i * h;
    // ∂α_e = g_i^c · xl_j^c, kept in ds until the softmax backward replaces it.
    float dot = 0.0f;
    for (int e = e0; e < e1; ++e) {
      const T* xl_jc = xl + (size_t)src[e] * hw + c * hd;
      float da = 0.0f;
      for (int d = 0; d < hd; ++d) da += lb_head_grad(dout_i, c, d, hd, heads, concat) * to_f(xl_jc[d]);
      ds[(size_t)e * heads + c] = da;
      dot += alpha[(size_t)e * heads + c] * da;
    }
    for (int e = e0; e < e1; ++e) {
      const float a = alpha[(size_t)e * heads + c];
      const float dsc = a * (ds[(size_t)e * heads + c] - dot);
      ds[(size_t)e * heads + c] = dsc;
      for (int d = 0; d < hd; ++d) {
        const size_t q = (size_t)e * hw + c * hd + d;
        du[q] = dsc * to_f(att[c * hd + d]) * lb_leaky_relu_grad(to_f(u[q]));
      }
    }
  }
}
#define GAT_BACKWARD_SCORES_PARAMS(T)                                                          \
  (const int* offsets, const int* src, const float* alpha, const T* xl, const T* u,           \
   const T* att, const float* dpre, float* ds, float* du, int n, int h, int heads, int hd, \
   int concat)
LB_PRECISIONS(gat_backward_scores, GAT_BACKWARD_SCORES_PARAMS,
              (offsets, src, alpha, xl, u, att, dpre, ds, du, n, h, heads, hd, concat))

// dxr [n × hw] = Σ over i's in-edges of du_e.
extern "C" __global__ void gat_backward_dxr(const int* offsets, const float* du, float* dxr, int n,
                                            int hw) {
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n * hw; t += gridDim.x * blockDim.x) {
    const int i = t / hw, q = t % hw;
    float s = 0.0f;
    for (int e = offsets[i]; e < offsets[i + 1]; ++e) s += du[(size_t)e * hw + q];
    dxr[t] = s;
  }
}
LB_REGISTER(gat_backward_dxr)

// dxl [n × hw]: for each out-edge e = j → i of j (out_offsets / out_edges: the reverse
// CSR, edges in increasing order), du_e + α_e^c · g_i^c.
extern "C" __global__ void gat_backward_dxl(const int* out_offsets, const int* out_edges,
                                            const int* dst, const float* alpha, const float* du,
                                            const float* dpre, float* dxl, int n, int h,
                                            int heads, int hd, int concat) {
  const int hw = heads * hd;
  for (int t = blockIdx.x * blockDim.x + threadIdx.x; t < n * hw; t += gridDim.x * blockDim.x) {
    const int j = t / hw, q = t % hw, c = q / hd, d = q % hd;
    float s = 0.0f;
    for (int k = out_offsets[j]; k < out_offsets[j + 1]; ++k) {
      const int e = out_edges[k];
      const float* dout_i = dpre + (size_t)dst[e] * h;
      s += du[(size_t)e * hw + q] +
           alpha[(size_t)e * heads + c] * lb_head_grad(dout_i, c, d, hd, heads, concat);
    }
    dxl[t] = s;
  }
}
LB_REGISTER(gat_backward_dxl)

// datt [hw] += Σ_e ds_e^c · LeakyReLU(u_e[q]); block q.
template <typename T>
__device__ void gat_backward_att(const float* ds, const T* u, float* datt, int n_edges, int heads,
                                 int hd) {
  __shared__ float scratch[32];
  const int hw = heads * hd;
  for (int q = blockIdx.x; q < hw; q += gridDim.x) {
    const int c = q / hd;
    float s = 0.0f;
    for (int e = threadIdx.x; e < n_edges; e += blockDim.x)
      s += ds[(size_t)e * heads + c] * lb_leaky_relu(to_f(u[(size_t)e * hw + q]));
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) datt[q] += s;
  }
}
#define GAT_BACKWARD_ATT_PARAMS(T) \
  (const float* ds, const T* u, float* datt, int n_edges, int heads, int hd)
LB_PRECISIONS(gat_backward_att, GAT_BACKWARD_ATT_PARAMS, (ds, u, datt, n_edges, heads, hd))

// dw_e [edge_dim × hw] += Σ_e e_e[a] · du_e[q]; block a·hw + q.
extern "C" __global__ void gat_backward_edge_weights(const float* edge_feat, const float* du,
                                                     float* dw_e, int n_edges, int edge_dim,
                                                     int hw) {
  __shared__ float scratch[32];
  for (int w = blockIdx.x; w < edge_dim * hw; w += gridDim.x) {
    const int a = w / hw, q = w % hw;
    float s = 0.0f;
    for (int e = threadIdx.x; e < n_edges; e += blockDim.x)
      s += edge_feat[(size_t)e * edge_dim + a] * du[(size_t)e * hw + q];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) dw_e[w] += s;
  }
}
LB_REGISTER(gat_backward_edge_weights)
