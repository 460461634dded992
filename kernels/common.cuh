// Shared by every kernel file: storage precision, dynamic shared memory, the
// fp32/fp16 instantiation macro and deterministic warp / block reductions.
//
// Precision (MODEL.md, issue 14): activations and the weights the kernels read are
// stored as T (float, or __half in fp16 mode); every product and sum accumulates in
// float; gradients, the loss, LSTM cell state, softmax statistics and the optimiser's
// master weights and moments are float. Each kernel is a template over T, instantiated
// twice as extern "C" entry points `<name>_f32` and `<name>_f16` (LB_PRECISIONS), so
// the fp32 mode tells logic errors apart from rounding.
//
// Determinism: no float atomics. Every sum has one fixed order given the launch
// configuration: warp sums are xor-butterflies, block sums add the warps' partials in
// warp order, and a reduction over rows runs in row order in one thread.
#pragma once

#ifndef LB_SHIM
#include <cuda_fp16.h>
#define LB_REGISTER(kernel)
#define LB_DYNAMIC_SMEM(T, name)                                 \
  extern __shared__ __align__(16) unsigned char lb_smem_raw[]; \
  T* name = reinterpret_cast<T*>(lb_smem_raw)
#else
#define LB_DYNAMIC_SMEM(T, name) T* name = reinterpret_cast<T*>(shim::dynamic_shared())
#endif

// Threads per block of the row-wise and element-wise kernels (a multiple of 32).
#define LB_BLOCK 256

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }

template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ __half from_f<__half>(float x) { return __float2half_rn(x); }

// σ(x) without overflow for either sign (layers.rs `sigmoid`).
__device__ __forceinline__ float lb_sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  const float e = expf(x);
  return e / (1.0f + e);
}

// Sum over the 32 lanes of a warp; every lane gets the same value (xor butterfly: the
// same additions in the same order on every run).
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block whose size is a multiple of 32 (at most 1024); every thread gets the
// result. `scratch` is 32 floats of shared memory; the call starts and ends with a
// barrier so it can be called repeatedly with the same scratch.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float s = 0.0f;
  for (int w = 0; w < warps; ++w) s += scratch[w];
  return s;
}

// Two entry points per kernel template: `<name>_f32` with T = float and `<name>_f16`
// with T = __half. PARAMS is a macro of T giving the parameter list, ARGS the argument
// list forwarded to the template.
#define LB_PRECISIONS(name, PARAMS, ARGS)                                   \
  extern "C" __global__ void name##_f32 PARAMS(float) { name<float> ARGS; }  \
  extern "C" __global__ void name##_f16 PARAMS(__half) { name<__half> ARGS; } \
  LB_REGISTER(name##_f32)                                                   \
  LB_REGISTER(name##_f16)
