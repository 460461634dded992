// The quantile heads (block 5), mirroring src/jp_equity/model/heads.rs: per horizon k an
// MLP H → H/2 (ReLU, dropout) → 5. The two dense layers of each head are the product
// kernels of layers.cu; this file holds what sits between and around them.
//
// Thread mapping: element-wise, one thread per element of an `rows × width` matrix
// (grid-stride). Strided copies move one horizon's `n × 5` outputs into the interleaved
// `q[(i·horizons + k)·5 + j]` and its gradient back out, and the dropout mask is read
// in its `[n × horizons × H/2]` layout through a row stride, so nothing is transposed.
// No reductions: deterministic by construction.
#include "common.cuh"

// r = ReLU(a) ⊙ mask (mask[i·mask_stride + j], or none).
template <typename T>
__device__ void relu_mask_forward(const T* a, const T* mask, int mask_stride, T* r, int rows,
                                  int width) {
  const int total = rows * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / width, j = e % width;
    float v = fmaxf(to_f(a[e]), 0.0f);
    if (mask != nullptr) v *= to_f(mask[(size_t)i * mask_stride + j]);
    r[e] = from_f<T>(v);
  }
}
#define RELU_MASK_FORWARD_PARAMS(T) \
  (const T* a, const T* mask, int mask_stride, T* r, int rows, int width)
LB_PRECISIONS(relu_mask_forward, RELU_MASK_FORWARD_PARAMS, (a, mask, mask_stride, r, rows, width))

// da = dr ⊙ mask ⊙ 1[a > 0].
template <typename T>
__device__ void relu_mask_backward(const float* dr, const T* a, const T* mask, int mask_stride,
                                   float* da, int rows, int width) {
  const int total = rows * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / width, j = e % width;
    float d = to_f(a[e]) > 0.0f ? dr[e] : 0.0f;
    if (mask != nullptr) d *= to_f(mask[(size_t)i * mask_stride + j]);
    da[e] = d;
  }
}
#define RELU_MASK_BACKWARD_PARAMS(T) \
  (const float* dr, const T* a, const T* mask, int mask_stride, float* da, int rows, int width)
LB_PRECISIONS(relu_mask_backward, RELU_MASK_BACKWARD_PARAMS,
              (dr, a, mask, mask_stride, da, rows, width))

// dst[i·dst_stride + j] = src[i·src_stride + j] for an rows × width block.
template <typename T>
__device__ void copy_rows(const T* src, int src_stride, T* dst, int dst_stride, int rows,
                          int width) {
  const int total = rows * width;
  for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const int i = e / width, j = e % width;
    dst[(size_t)i * dst_stride + j] = src[(size_t)i * src_stride + j];
  }
}
#define COPY_ROWS_PARAMS(T) (const T* src, int src_stride, T* dst, int dst_stride, int rows, int width)
LB_PRECISIONS(copy_rows, COPY_ROWS_PARAMS, (src, src_stride, dst, dst_stride, rows, width))
