// The training loss, mirroring src/jp_equity/model/loss.rs (`loss_and_grad`): per
// horizon the pinball loss over the five quantiles plus λ·(1 − Pearson(q₀.₅, y)),
// horizons weighted equally over those with a valid stock, and the optional
// quantile-crossing penalty. Everything in float (fp32) whatever the storage of q.
//
// Thread mapping: one 256-thread block per horizon k. Each thread owns the stocks
// i ≡ threadIdx.x (mod 256) and writes every dq entry of its stocks for horizon k, so
// dq needs no zeroing beforehand and no two threads write the same entry. The block
// first counts the valid stocks of every horizon (K, the number of horizons with one,
// weights each part by 1/K), then sums the pinball loss, the two means and the three
// centred sums of the correlation with block_sum: fixed orders, deterministic. The
// gradient of the correlation needs the block's sums, so it is a second pass over the
// thread's own stocks.
//
// Output: parts[k·3 + 0] = the mean pinball loss of horizon k, [1] = its Pearson
// correlation (NaN when undefined), [2] = its part L_k of the loss (NaN for a horizon
// with no valid stock). The host adds the parts (Σ L_k / K) and the crossing penalty's
// per-row terms in order, in double.
#include "common.cuh"

#define LB_NQ 5
#define LB_MEDIAN 2
#define LB_CORR_EPS 1e-8f
#define LB_MAX_HORIZONS 32

__device__ __forceinline__ float lb_tau(int j) {
  return j == 0 ? 0.05f : j == 1 ? 0.25f : j == 2 ? 0.5f : j == 3 ? 0.75f : 0.95f;
}

template <typename T>
__device__ void loss_forward_backward(const T* q, const float* y, const unsigned char* valid,
                                      float* dq, float* parts, int n, int hz, float lambda) {
  __shared__ float scratch[32];
  const int k = blockIdx.x;
  const int tid = threadIdx.x, nt = blockDim.x;
  // K: horizons with at least one valid stock; m: valid stocks of horizon k.
  int active = 0;
  float m = 0.0f;
  for (int h = 0; h < hz; ++h) {
    float c = 0.0f;
    for (int i = tid; i < n; i += nt) c += valid[(size_t)i * hz + h] ? 1.0f : 0.0f;
    c = block_sum(c, scratch);
    if (c > 0.0f) active += 1;
    if (h == k) m = c;
  }
  if (m == 0.0f) {
    for (int i = tid; i < n; i += nt)
      for (int j = 0; j < LB_NQ; ++j) dq[((size_t)i * hz + k) * LB_NQ + j] = 0.0f;
    if (tid == 0) {
      parts[k * 3 + 0] = NAN;
      parts[k * 3 + 1] = NAN;
      parts[k * 3 + 2] = NAN;
    }
    return;
  }
  const float w = 1.0f / (float)active;
  const float scale = w / ((float)LB_NQ * m);
  // Pinball, and its gradient.
  float pin = 0.0f, sq = 0.0f, sy = 0.0f;
  for (int i = tid; i < n; i += nt) {
    const size_t base = ((size_t)i * hz + k) * LB_NQ;
    if (!valid[(size_t)i * hz + k]) {
      for (int j = 0; j < LB_NQ; ++j) dq[base + j] = 0.0f;
      continue;
    }
    const float yi = y[(size_t)i * hz + k];
    for (int j = 0; j < LB_NQ; ++j) {
      const float tau = lb_tau(j);
      const float e = yi - to_f(q[base + j]);
      pin += fmaxf(tau * e, (tau - 1.0f) * e);
      dq[base + j] = scale * (e > 0.0f ? -tau : 1.0f - tau);
    }
    sq += to_f(q[base + LB_MEDIAN]);
    sy += yi;
  }
  pin = block_sum(pin, scratch) / ((float)LB_NQ * m);
  float lk = pin, corr = NAN;
  if (m >= 2.0f) {
    const float qbar = block_sum(sq, scratch) / m;
    const float ybar = block_sum(sy, scratch) / m;
    float sa = 0.0f, sb = 0.0f, sab = 0.0f;
    for (int i = tid; i < n; i += nt) {
      if (!valid[(size_t)i * hz + k]) continue;
      const float a = to_f(q[((size_t)i * hz + k) * LB_NQ + LB_MEDIAN]) - qbar;
      const float b = y[(size_t)i * hz + k] - ybar;
      sa += a * a;
      sb += b * b;
      sab += a * b;
    }
    sa = block_sum(sa, scratch);
    sb = block_sum(sb, scratch);
    sab = block_sum(sab, scratch);
    const bool defined = sa / m > LB_CORR_EPS * (1.0f + qbar * qbar) &&
                         sb / m > LB_CORR_EPS * (1.0f + ybar * ybar);
    if (defined) {
      const float root = sqrtf(sa * sb);
      const float p = sab / root;
      corr = p;
      lk += lambda * (1.0f - p);
      const float c = -w * lambda;
      for (int i = tid; i < n; i += nt) {
        if (!valid[(size_t)i * hz + k]) continue;
        const size_t at = ((size_t)i * hz + k) * LB_NQ + LB_MEDIAN;
        const float a = to_f(q[at]) - qbar;
        const float b = y[(size_t)i * hz + k] - ybar;
        dq[at] += c * (b / root - p * a / sa);
      }
    }
  }
  if (tid == 0) {
    parts[k * 3 + 0] = pin;
    parts[k * 3 + 1] = corr;
    parts[k * 3 + 2] = lk;
  }
}
#define LOSS_PARAMS(T)                                                                   \
  (const T* q, const float* y, const unsigned char* valid, float* dq, float* parts, int n, \
   int hz, float lambda)
LB_PRECISIONS(loss_forward_backward, LOSS_PARAMS, (q, y, valid, dq, parts, n, hz, lambda))

// The quantile-crossing penalty, after loss_forward_backward: per (stock, horizon) row r
// (one thread each), penalty[r] = Σ_{j<4} relu(q_j − q_{j+1}) and dq gets ±c on the two
// quantiles of each crossed pair (c = crossing/(n·hz)).
template <typename T>
__device__ void loss_crossing(const T* q, float* dq, float* penalty, int rows, float c) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  float pen = 0.0f;
  for (int j = 0; j < LB_NQ - 1; ++j) {
    const float d = to_f(q[(size_t)r * LB_NQ + j]) - to_f(q[(size_t)r * LB_NQ + j + 1]);
    if (d > 0.0f) {
      pen += d;
      dq[(size_t)r * LB_NQ + j] += c;
      dq[(size_t)r * LB_NQ + j + 1] -= c;
    }
  }
  penalty[r] = pen;
}
#define LOSS_CROSSING_PARAMS(T) (const T* q, float* dq, float* penalty, int rows, float c)
LB_PRECISIONS(loss_crossing, LOSS_CROSSING_PARAMS, (q, dq, penalty, rows, c))
