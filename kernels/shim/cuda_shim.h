// The CPU shim: compiles the CUDA kernels of kernels/*.cu as plain C++ (g++ -std=c++20
// -DLB_SHIM) so their logic is checked against the Rust CPU reference on machines with
// no GPU (every CI run).
//
// Execution model, as close to CUDA's as a test needs:
// - A launch runs its blocks one after another; inside a block every GPU thread is one
//   std::thread, so threads of a block really run concurrently (and ThreadSanitizer sees
//   a missing barrier as a race). The threads are started once per launch and reused
//   for each block in turn.
// - threadIdx / blockIdx / blockDim / gridDim are thread-locals set per GPU thread.
// - __syncthreads() is a std::barrier of the block; a thread that returns from the kernel
//   drops out of it (arrive_and_drop), as exited threads do on the GPU.
// - __shared__ becomes `static`: one copy per kernel, which is one copy per block since
//   blocks run one at a time. Launches are serialised by a global mutex, so two tests
//   never share a kernel's shared memory. Dynamic shared memory (LB_DYNAMIC_SMEM) is a
//   per-launch buffer filled with 0xFF bytes (NaN as floats, so reading it before writing
//   it shows).
// - Warp shuffles are emulated per warp of 32 consecutive threads: each lane publishes
//   its value, the warp meets at a barrier, each lane reads its source lane, the warp
//   meets again. Every lane of the warp must take part (full masks only).
// - __half is _Float16 (IEEE binary16, round-to-nearest-even conversions, as CUDA's
//   __float2half). Kernels do arithmetic in float and only store halves.
// - atomicAdd works (std::atomic_ref); the kernels avoid float atomics to stay
//   deterministic.
#pragma once

#include <array>
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef _Float16 __half;

namespace shim {

// One warp's meeting point for shuffles.
struct Warp {
  explicit Warp(std::ptrdiff_t lanes) : bar(lanes) {}
  std::barrier<> bar;
  std::array<uint64_t, 32> slot{};
};

struct Ctx {
  dim3 thread, block, block_dim, grid_dim;
  std::barrier<>* block_bar = nullptr;
  Warp* warp = nullptr;
  unsigned lane = 0;
  unsigned char* dynamic_smem = nullptr;
};

inline thread_local Ctx ctx;

inline unsigned char* dynamic_shared() { return ctx.dynamic_smem; }

template <typename T>
T shuffle(T v, unsigned src) {
  static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  Warp* w = ctx.warp;
  w->slot[ctx.lane] = bits;
  w->bar.arrive_and_wait();
  uint64_t got = w->slot[src & 31];
  w->bar.arrive_and_wait();
  T out;
  std::memcpy(&out, &got, sizeof(T));
  return out;
}

using Thunk = std::function<void(void**)>;

inline std::map<std::string, Thunk>& registry() {
  static std::map<std::string, Thunk> r;
  return r;
}

// Calls `k` with its arguments unpacked from cuLaunchKernel-style `void** params`.
template <typename... A, std::size_t... I>
void call(void (*k)(A...), void** params, std::index_sequence<I...>) {
  k(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
}

template <typename... A>
struct Register {
  Register(const char* name, void (*k)(A...)) {
    registry()[name] = [k](void** params) { call(k, params, std::index_sequence_for<A...>{}); };
  }
};

}  // namespace shim

#define threadIdx (shim::ctx.thread)
#define blockIdx (shim::ctx.block)
#define blockDim (shim::ctx.block_dim)
#define gridDim (shim::ctx.grid_dim)
#define warpSize 32

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __restrict__ __restrict
#define __launch_bounds__(...)

inline void __syncthreads() { shim::ctx.block_bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { shim::ctx.warp->bar.arrive_and_wait(); }

template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int = 32) {
  return shim::shuffle(v, shim::ctx.lane ^ unsigned(lane_mask));
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int = 32) {
  unsigned src = shim::ctx.lane + delta;
  return shim::shuffle(v, src < 32 ? src : shim::ctx.lane);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src, int = 32) {
  return shim::shuffle(v, unsigned(src));
}

inline float atomicAdd(float* p, float v) {
  return std::atomic_ref<float>(*p).fetch_add(v);
}
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }

inline float __half2float(__half h) { return float(h); }
inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <typename T>
inline T __ldg(const T* p) { return *p; }
using std::exp;
using std::expm1;
using std::fabs;
using std::fmax;
using std::fmin;
using std::log;
using std::sqrt;
using std::tanh;
using std::isfinite;

// Registers a kernel for launching by name (lb_shim_launch); nothing under nvcc.
#define LB_REGISTER(kernel) static shim::Register lb_register_##kernel(#kernel, &kernel);

// Every kernel file defines lb_shim_file_<name>() (its name comes from the build), which
// the generated registry calls, so the linker keeps every file's kernels (and their
// registrations) even from a static library.
#ifdef LB_SHIM_FILE
#define LB_SHIM_CAT2(a, b) a##b
#define LB_SHIM_CAT(a, b) LB_SHIM_CAT2(a, b)
extern "C" void LB_SHIM_CAT(lb_shim_file_, LB_SHIM_FILE)() {}
#endif
