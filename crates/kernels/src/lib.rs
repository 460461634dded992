//! The CUDA kernels of lakebuild's model (`kernels/*.cu`) and the two places they run:
//!
//! - [`cuda::CudaDevice`]: a real GPU through cudarc, loading the PTX that ships inside
//!   the binary ([`ptx`]), so a user with only the NVIDIA driver needs nothing else;
//! - `shim::ShimDevice` (feature `shim`): the same `.cu` files compiled as C++ against a
//!   small CPU emulation of CUDA's execution model (`kernels/shim/cuda_shim.h`), so every
//!   kernel is run and checked on machines with no GPU (every CI run).
//!
//! Both sit behind one interface, [`Device`]: buffers of bytes, uploads, downloads, and
//! launches by kernel name with cuLaunchKernel's argument convention. Code above it (the
//! model's GPU blocks) never knows which one it drives. Launch configurations are
//! computed by the caller, so the shim runs the very grids and blocks the GPU gets.

pub mod cuda;
pub mod device;
pub mod ptx;
#[cfg(feature = "shim")]
pub mod shim;

pub use device::{Arg, Buffer, DType, Device, Error, Launch, Precision, Tensor};
