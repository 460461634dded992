// The temporal block's LSTM (MODEL.md block 3), mirroring src/jp_equity/model/lstm.rs:
// one layer over each stock's t steps, zero initial state, gate blocks i, f, g, o:
//   z_τ = x_τ·w_x + b + h_{τ−1}·w_h,  c_τ = f ⊙ c_{τ−1} + i ⊙ g,  h_τ = o ⊙ tanh(c_τ).
// The input projection of all n·t rows (x·w_x + b) and the weight gradients are
// layers.cu's product kernels; this file holds the recurrence.
//
// Thread mapping: one block per stock walks all t steps in one launch (blockDim = h
// rounded up to a warp; thread j owns hidden unit j). Per step, thread j computes its
// four gate pre-activations in fp32 from the projection and the previous hidden state,
// which the block keeps in shared memory (h floats, rewritten between two barriers); the
// cell state is fp32 in a register and in the cache, as MODEL.md requires (only h and the
// activated gates are stored in T).
// Backward (through time, τ = t−1 … 0): thread j keeps its unit's dh and dc carries in
// registers; the step's ∂z (4h floats) goes to shared memory so that after a barrier
// each thread sums its own dh_carry[j] = Σ_q ∂z[q]·w_h[j, q] in q order. Each stock's
// values are one block's, each unit one thread's, in a fixed order: deterministic.
// The forward also writes h_{τ−1} beside each step (`hprev`, zero at τ = 0), so that
// ∂w_h = Σ hprevᵀ·∂z is one product over all n·t rows.
#include "common.cuh"

__device__ __forceinline__ float lb_tanh(float x) { return tanhf(x); }

// xp [n × t × 4h] (x·w_x + b), w_h [h × 4h] → gates [n × t × 4h] (T, activated),
// c [n × t × h] (fp32), hs and hprev [n × t × h] (T).
template <typename T>
__device__ void lstm_forward_sequence(const T* xp, const T* w_h, T* gates, float* c, T* hs,
                                      T* hprev, int t, int h) {
  LB_DYNAMIC_SMEM(float, hp);  // [h]: h_{τ−1} of this stock
  const int st = blockIdx.x, j = threadIdx.x, h4 = 4 * h;
  const bool mine = j < h;
  float cell = 0.0f;
  if (mine) hp[j] = 0.0f;
  __syncthreads();
  for (int tau = 0; tau < t; ++tau) {
    const size_t row = (size_t)st * t + tau;
    float hn = 0.0f;
    if (mine) {
      float z[4];
      for (int k = 0; k < 4; ++k) {
        float s = to_f(xp[row * h4 + k * h + j]);
        if (tau > 0)
          for (int l = 0; l < h; ++l) s += hp[l] * to_f(w_h[(size_t)l * h4 + k * h + j]);
        z[k] = s;
      }
      const float i = lb_sigmoid(z[0]), f = lb_sigmoid(z[1]), g = lb_tanh(z[2]),
                  o = lb_sigmoid(z[3]);
      cell = f * cell + i * g;
      hn = o * lb_tanh(cell);
      T* gr = gates + row * h4;
      gr[j] = from_f<T>(i);
      gr[h + j] = from_f<T>(f);
      gr[2 * h + j] = from_f<T>(g);
      gr[3 * h + j] = from_f<T>(o);
      c[row * h + j] = cell;
      hs[row * h + j] = from_f<T>(hn);
      hprev[row * h + j] = from_f<T>(hp[j]);
    }
    __syncthreads();  // every thread has read h_{τ−1}
    if (mine) hp[j] = hn;
    __syncthreads();  // h_τ is complete
  }
}
#define LSTM_FORWARD_SEQUENCE_PARAMS(T) \
  (const T* xp, const T* w_h, T* gates, float* c, T* hs, T* hprev, int t, int h)
LB_PRECISIONS(lstm_forward_sequence, LSTM_FORWARD_SEQUENCE_PARAMS,
              (xp, w_h, gates, c, hs, hprev, t, h))

// dz [n × t × 4h] (fp32, written) from dy [n × t × h] (fp32).
template <typename T>
__device__ void lstm_backward_sequence(const T* gates, const float* c, const T* w_h,
                                       const float* dy, float* dz, int t, int h) {
  LB_DYNAMIC_SMEM(float, dzs);  // [4h]: this step's ∂z
  const int st = blockIdx.x, j = threadIdx.x, h4 = 4 * h;
  const bool mine = j < h;
  float dh_carry = 0.0f, dc = 0.0f;
  for (int tau = t - 1; tau >= 0; --tau) {
    const size_t row = (size_t)st * t + tau;
    if (mine) {
      const T* gr = gates + row * h4;
      const float i = to_f(gr[j]), f = to_f(gr[h + j]), g = to_f(gr[2 * h + j]),
                  o = to_f(gr[3 * h + j]);
      const float tc = lb_tanh(c[row * h + j]);
      const float cp = tau > 0 ? c[(row - 1) * h + j] : 0.0f;
      const float dh = dy[row * h + j] + dh_carry;
      dc = dc + dh * o * (1.0f - tc * tc);
      const float dzi = dc * g * i * (1.0f - i), dzf = dc * cp * f * (1.0f - f),
                  dzg = dc * i * (1.0f - g * g), dzo = dh * tc * o * (1.0f - o);
      float* out = dz + row * h4;
      out[j] = dzi;
      out[h + j] = dzf;
      out[2 * h + j] = dzg;
      out[3 * h + j] = dzo;
      dzs[j] = dzi;
      dzs[h + j] = dzf;
      dzs[2 * h + j] = dzg;
      dzs[3 * h + j] = dzo;
      dc *= f;
    }
    __syncthreads();  // ∂z of step τ is complete
    if (mine && tau > 0) {
      float s = 0.0f;
      for (int q = 0; q < h4; ++q) s += dzs[q] * to_f(w_h[(size_t)j * h4 + q]);
      dh_carry = s;
    }
    __syncthreads();  // every thread has read ∂z before the next step rewrites it
  }
}
#define LSTM_BACKWARD_SEQUENCE_PARAMS(T) \
  (const T* gates, const float* c, const T* w_h, const float* dy, float* dz, int t, int h)
LB_PRECISIONS(lstm_backward_sequence, LSTM_BACKWARD_SEQUENCE_PARAMS,
              (gates, c, w_h, dy, dz, t, h))
