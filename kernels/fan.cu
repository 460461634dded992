// FAN, frequency adaptive normalisation (MODEL.md block 1), mirroring
// src/jp_equity/model/fan.rs: per stock and feature, the length-t series x loses its k
// strongest non-DC frequencies (the real DFT computed directly from cos/sin tables, top-k
// by |X_j| with ties to the lower j), and the residual e = x − P·x is standardised along
// time: y = scale·(e − μ)/σ + shift; the amplitudes (c_j/t)·|X_j| of the removed bins are
// extra channels.
//
// Thread mapping: one thread per (stock, feature) series; t is at most LB_FAN_MAX_T, so
// the series, its spectrum and the backward's work vectors live in the thread's own
// arrays. The cos/sin tables ([(t/2 + 1) × t], exact at multiples of π/2, built by the
// host as on the CPU) are fp32 in global memory, read by every thread. The selection is
// computed in fp32 from the stored inputs and kept (int) for the backward pass.
// The scale/shift gradients: each thread writes its series' partial sums to its own row
// of a [n × 2f] buffer, and layers.cu's column_sum adds the rows in stock order, as the
// CPU does: deterministic.
#include "common.cuh"

#define LB_FAN_MAX_T 64
#define LB_FAN_EPS 1e-5f

__device__ __forceinline__ float lb_bin_weight(int j, int t) {
  return (t % 2 == 0 && 2 * j == t) ? 1.0f / (float)t : 2.0f / (float)t;
}

// out = P·v, the projection onto the selected bins.
__device__ __forceinline__ void lb_fan_project(const float* v, const int* sel, int k,
                                               const float* cos_t, const float* sin_t, int t,
                                               float* out) {
  for (int tau = 0; tau < t; ++tau) out[tau] = 0.0f;
  for (int i = 0; i < k; ++i) {
    const int j = sel[i];
    const float* cj = cos_t + (size_t)j * t;
    const float* sj = sin_t + (size_t)j * t;
    float a = 0.0f, b = 0.0f;
    for (int tau = 0; tau < t; ++tau) {
      a += v[tau] * cj[tau];
      b += v[tau] * sj[tau];
    }
    const float w = lb_bin_weight(j, t);
    a *= w;
    b *= w;
    for (int tau = 0; tau < t; ++tau) out[tau] += a * cj[tau] + b * sj[tau];
  }
}

// x [n × t × f] → y [n × t × f], amp [n × f × k]; the cache: sel [n × f × k] (int),
// re / im / mag [n × f × k] and rstd [n × f] (fp32), xhat [n × t × f] (T).
template <typename T>
__device__ void fan_forward(const T* x, const T* scale, const T* shift, const float* cos_t,
                            const float* sin_t, T* y, T* amp, int* sel, float* re, float* im,
                            float* mag, T* xhat, float* rstd, int n, int t, int f, int k) {
  for (int s = blockIdx.x * blockDim.x + threadIdx.x; s < n * f; s += gridDim.x * blockDim.x) {
    const int st = s / f, feat = s % f, bins = t / 2;
    const T* xs_in = x + (size_t)st * t * f;
    float xs[LB_FAN_MAX_T], r[LB_FAN_MAX_T];
    float sre[LB_FAN_MAX_T / 2], sim[LB_FAN_MAX_T / 2], smag[LB_FAN_MAX_T / 2];
    bool taken[LB_FAN_MAX_T / 2];
    for (int tau = 0; tau < t; ++tau) xs[tau] = to_f(xs_in[(size_t)tau * f + feat]);
    for (int j = 1; j <= bins; ++j) {
      const float* cj = cos_t + (size_t)j * t;
      const float* sj = sin_t + (size_t)j * t;
      float a = 0.0f, b = 0.0f;
      for (int tau = 0; tau < t; ++tau) {
        a += xs[tau] * cj[tau];
        b -= xs[tau] * sj[tau];
      }
      sre[j - 1] = a;
      sim[j - 1] = b;
      smag[j - 1] = hypotf(a, b);
      taken[j - 1] = false;
    }
    int* my_sel = sel + (size_t)s * k;
    for (int i = 0; i < k; ++i) {
      int best = -1;
      for (int b = 0; b < bins; ++b) {
        if (taken[b]) continue;
        if (best < 0 || smag[b] > smag[best]) best = b;
      }
      if (best < 0) best = 0;
      taken[best] = true;
      my_sel[i] = best + 1;
      const size_t o = (size_t)s * k + i;
      re[o] = sre[best];
      im[o] = sim[best];
      mag[o] = smag[best];
      amp[o] = from_f<T>(lb_bin_weight(best + 1, t) * smag[best]);
    }
    lb_fan_project(xs, my_sel, k, cos_t, sin_t, t, r);
    float mu = 0.0f;
    for (int tau = 0; tau < t; ++tau) {
      r[tau] = xs[tau] - r[tau];
      mu += r[tau];
    }
    mu /= (float)t;
    float var = 0.0f;
    for (int tau = 0; tau < t; ++tau) var += (r[tau] - mu) * (r[tau] - mu);
    var /= (float)t;
    const float rs = 1.0f / sqrtf(var + LB_FAN_EPS);
    rstd[s] = rs;
    const float sc = to_f(scale[feat]), sh = to_f(shift[feat]);
    for (int tau = 0; tau < t; ++tau) {
      const float h = (r[tau] - mu) * rs;
      const size_t o = ((size_t)st * t + tau) * f + feat;
      xhat[o] = from_f<T>(h);
      y[o] = from_f<T>(sc * h + sh);
    }
  }
}
#define FAN_FORWARD_PARAMS(T)                                                              \
  (const T* x, const T* scale, const T* shift, const float* cos_t, const float* sin_t, T* y, \
   T* amp, int* sel, float* re, float* im, float* mag, T* xhat, float* rstd, int n, int t,  \
   int f, int k)
LB_PRECISIONS(fan_forward, FAN_FORWARD_PARAMS,
              (x, scale, shift, cos_t, sin_t, y, amp, sel, re, im, mag, xhat, rstd, n, t, f, k))

// dx [n × t × f] (fp32, written) from dy [n × t × f] and damp [n × f × k]; each series'
// [dscale, dshift] partials into its row of partial [n × 2f] (column f + feat for shift).
template <typename T>
__device__ void fan_backward(const T* scale, const float* cos_t, const float* sin_t,
                             const int* sel, const float* re, const float* im, const float* mag,
                             const T* xhat, const float* rstd, const float* dy,
                             const float* damp, float* dx, float* partial, int n, int t, int f,
                             int k) {
  for (int s = blockIdx.x * blockDim.x + threadIdx.x; s < n * f; s += gridDim.x * blockDim.x) {
    const int st = s / f, feat = s % f;
    float dh[LB_FAN_MAX_T], de[LB_FAN_MAX_T], pde[LB_FAN_MAX_T];
    const float sc = to_f(scale[feat]);
    float dscale = 0.0f, dshift = 0.0f, sum_d = 0.0f, sum_dh = 0.0f;
    for (int tau = 0; tau < t; ++tau) {
      const size_t o = ((size_t)st * t + tau) * f + feat;
      const float d = dy[o], h = to_f(xhat[o]);
      dscale += d * h;
      dshift += d;
      dh[tau] = d * sc;
      sum_d += dh[tau];
      sum_dh += dh[tau] * h;
    }
    partial[(size_t)st * 2 * f + feat] = dscale;
    partial[(size_t)st * 2 * f + f + feat] = dshift;
    const float rs = rstd[s], tt = (float)t;
    for (int tau = 0; tau < t; ++tau) {
      const float h = to_f(xhat[((size_t)st * t + tau) * f + feat]);
      de[tau] = rs * (dh[tau] - sum_d / tt - h * sum_dh / tt);
    }
    const int* my_sel = sel + (size_t)s * k;
    lb_fan_project(de, my_sel, k, cos_t, sin_t, t, pde);
    for (int tau = 0; tau < t; ++tau) de[tau] -= pde[tau];
    for (int i = 0; i < k; ++i) {
      const size_t o = (size_t)s * k + i;
      if (mag[o] <= 0.0f) continue;
      const int j = my_sel[i];
      const float w = damp[o] * lb_bin_weight(j, t) / mag[o];
      const float a = w * re[o], b = w * im[o];
      const float* cj = cos_t + (size_t)j * t;
      const float* sj = sin_t + (size_t)j * t;
      for (int tau = 0; tau < t; ++tau) de[tau] += a * cj[tau] - b * sj[tau];
    }
    for (int tau = 0; tau < t; ++tau) dx[((size_t)st * t + tau) * f + feat] = de[tau];
  }
}
#define FAN_BACKWARD_PARAMS(T)                                                               \
  (const T* scale, const float* cos_t, const float* sin_t, const int* sel, const float* re,  \
   const float* im, const float* mag, const T* xhat, const float* rstd, const float* dy,     \
   const float* damp, float* dx, float* partial, int n, int t, int f, int k)
LB_PRECISIONS(fan_backward, FAN_BACKWARD_PARAMS,
              (scale, cos_t, sin_t, sel, re, im, mag, xhat, rstd, dy, damp, dx, partial, n, t, f, k))
