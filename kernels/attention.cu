// The temporal block's causal multi-head self-attention (MODEL.md block 3), mirroring
// src/jp_equity/model/attention.rs: per stock and head a (d = h/heads, scale = 1/√d)
//   S[τ,κ] = scale·Q[τ,a]·K[κ,a] (κ ≤ τ),  P[τ,·] = softmax_κ≤τ S[τ,·],  C[τ,a] = Σ_κ P V[κ,a],
//   y = LayerNorm(x + C·wo + bo).
// The Q/K/V/output projections and LayerNorm are layers.cu's kernels over all n·t rows;
// this file holds the per-stock core.
//
// Thread mapping: one block per (stock, head), one thread per step (blockDim = t rounded
// up to a warp; threads past t only help load and wait at the barriers).
// - attention_forward_core: the block loads the head's K and V rows ([t × d] each, fp32)
//   into dynamic shared memory; thread τ then computes its causal score row, the
//   max-shifted softmax (fp32, P kept in fp32 for the backward pass), and its context
//   row C[τ, a], summing the keys in step order as the CPU does.
// - attention_backward_core: phase 1, thread τ computes dP[τ,κ] = dC[τ]·V[κ], the softmax
//   backward dS[τ,κ] (into shared memory, [t × t] fp32) and its own dQ[τ] row; after a
//   barrier, phase 2, thread κ sums dV[κ] = Σ_τ≥κ P[τ,κ]·dC[τ] and dK[κ] = Σ_τ dS[τ,κ]·Q[τ]
//   over the query steps in increasing order. Each output row belongs to one thread
//   (a gather instead of the CPU's scatter, in the CPU's order): no atomics, deterministic.
#include "common.cuh"

// probs [n × heads × t × t] (fp32, zero above the diagonal), ctx [n × t × h] (T).
template <typename T>
__device__ void attention_forward_core(const T* q, const T* k, const T* v, float* probs, T* ctx,
                                       int t, int h, int heads, float scale) {
  LB_DYNAMIC_SMEM(float, smem);
  const int st = blockIdx.x / heads, a = blockIdx.x % heads, d = h / heads, off = a * d;
  float* ks = smem;          // [t × d]
  float* vs = smem + t * d;  // [t × d]
  const size_t base = (size_t)st * t * h;
  for (int e = threadIdx.x; e < t * d; e += blockDim.x) {
    const int r = e / d, j = e % d;
    ks[e] = to_f(k[base + (size_t)r * h + off + j]);
    vs[e] = to_f(v[base + (size_t)r * h + off + j]);
  }
  __syncthreads();
  const int tau = threadIdx.x;
  if (tau >= t) return;
  float* p = probs + (((size_t)st * heads + a) * t + tau) * t;
  const T* qr = q + base + (size_t)tau * h + off;
  float mx = -INFINITY;
  for (int kap = 0; kap <= tau; ++kap) {
    float s = 0.0f;
    for (int j = 0; j < d; ++j) s += to_f(qr[j]) * ks[kap * d + j];
    s *= scale;
    p[kap] = s;
    mx = fmaxf(mx, s);
  }
  float sum = 0.0f;
  for (int kap = 0; kap <= tau; ++kap) {
    const float e = expf(p[kap] - mx);
    p[kap] = e;
    sum += e;
  }
  for (int kap = 0; kap <= tau; ++kap) p[kap] /= sum;
  for (int kap = tau + 1; kap < t; ++kap) p[kap] = 0.0f;
  T* out = ctx + base + (size_t)tau * h + off;
  for (int j = 0; j < d; ++j) {
    float c = 0.0f;
    for (int kap = 0; kap <= tau; ++kap) c += p[kap] * vs[kap * d + j];
    out[j] = from_f<T>(c);
  }
}
#define ATTENTION_FORWARD_CORE_PARAMS(T)                                                 \
  (const T* q, const T* k, const T* v, float* probs, T* ctx, int t, int h, int heads, \
   float scale)
LB_PRECISIONS(attention_forward_core, ATTENTION_FORWARD_CORE_PARAMS,
              (q, k, v, probs, ctx, t, h, heads, scale))

// dq, dk, dv [n × t × h] (fp32, written) from dctx [n × t × h].
template <typename T>
__device__ void attention_backward_core(const T* q, const T* k, const T* v, const float* probs,
                                        const float* dctx, float* dq, float* dk, float* dv,
                                        int t, int h, int heads, float scale) {
  LB_DYNAMIC_SMEM(float, ds);  // [t × t]: dS[τ, κ]
  const int st = blockIdx.x / heads, a = blockIdx.x % heads, d = h / heads, off = a * d;
  const size_t base = (size_t)st * t * h;
  const float* pa = probs + ((size_t)st * heads + a) * t * t;
  const int me = threadIdx.x;
  if (me < t) {
    const int tau = me;
    const float* dout = dctx + base + (size_t)tau * h + off;
    float pdp = 0.0f;
    for (int kap = 0; kap <= tau; ++kap) {
      const T* vr = v + base + (size_t)kap * h + off;
      float dp = 0.0f;
      for (int j = 0; j < d; ++j) dp += dout[j] * to_f(vr[j]);
      ds[tau * t + kap] = dp;
      pdp += pa[tau * t + kap] * dp;
    }
    for (int kap = 0; kap < t; ++kap)
      ds[tau * t + kap] = kap <= tau ? pa[tau * t + kap] * (ds[tau * t + kap] - pdp) * scale : 0.0f;
    float* dqr = dq + base + (size_t)tau * h + off;
    for (int j = 0; j < d; ++j) {
      float s = 0.0f;
      for (int kap = 0; kap <= tau; ++kap) s += ds[tau * t + kap] * to_f(k[base + (size_t)kap * h + off + j]);
      dqr[j] = s;
    }
  }
  __syncthreads();
  if (me >= t) return;
  const int kap = me;
  float* dkr = dk + base + (size_t)kap * h + off;
  float* dvr = dv + base + (size_t)kap * h + off;
  for (int j = 0; j < d; ++j) {
    float sk = 0.0f, sv = 0.0f;
    for (int tau = kap; tau < t; ++tau) {
      sv += pa[tau * t + kap] * dctx[base + (size_t)tau * h + off + j];
      sk += ds[tau * t + kap] * to_f(q[base + (size_t)tau * h + off + j]);
    }
    dkr[j] = sk;
    dvr[j] = sv;
  }
}
#define ATTENTION_BACKWARD_CORE_PARAMS(T)                                                    \
  (const T* q, const T* k, const T* v, const float* probs, const float* dctx, float* dq,    \
   float* dk, float* dv, int t, int h, int heads, float scale)
LB_PRECISIONS(attention_backward_core, ATTENTION_BACKWARD_CORE_PARAMS,
              (q, k, v, probs, dctx, dq, dk, dv, t, h, heads, scale))
