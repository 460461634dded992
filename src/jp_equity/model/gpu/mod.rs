//! The model's blocks on a GPU: each function here drives the kernels of one
//! `kernels/<block>.cu` file and mirrors the CPU reference function of the same name
//! (llm.c's shape: the CPU reference is the specification, the kernels follow it). They
//! run on any [`Device`]: a real GPU ([`lakebuild_kernels::cuda::CudaDevice`]) or the
//! CPU shim, which is how every CI run checks them against the CPU reference without a
//! GPU (the tests beside each function: fp32 mode to relative L2 < 1e-5, fp16 mode to
//! MODEL.md's relative L2 < 1e-2 and cosine > 0.999).
//!
//! Conventions: activations and the weights the kernels read are tensors of the
//! precision's storage type; gradients, the loss and optimiser state are f32 tensors. A
//! backward function adds into the parameter gradients it is given (as on the CPU) and
//! returns the input's gradient as a new f32 tensor.

pub mod attention;
pub mod fan;
pub mod gat;
pub mod grn;
pub mod heads;
pub mod layers;
pub mod loss;
pub mod lstm;
pub mod network;
pub mod optim;
pub mod step;

#[cfg(test)]
pub(crate) mod check;

pub use lakebuild_kernels::{Arg, DType, Device, Launch, Precision, Tensor};

/// A device and the storage precision its kernels run in.
#[derive(Clone, Copy)]
pub struct Gpu<'a> {
    pub dev: &'a dyn Device,
    pub precision: Precision,
}

pub type Result<T> = std::result::Result<T, lakebuild_kernels::Error>;

impl Gpu<'_> {
    /// Launches `<name>_f32` or `<name>_f16`.
    pub fn launch(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()> {
        self.dev.launch(&self.precision.kernel(name), cfg, args)
    }

    /// A precision-independent kernel (fp32 only).
    pub fn launch_f32(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()> {
        self.dev.launch(name, cfg, args)
    }

    /// `data` in the storage precision (activations, weights).
    pub fn upload(&self, data: &[f32]) -> Result<Tensor> {
        Tensor::from_f32(self.dev, data, self.precision.storage())
    }

    /// `data` as f32 (gradients, targets).
    pub fn upload_f32(&self, data: &[f32]) -> Result<Tensor> {
        Tensor::from_f32(self.dev, data, DType::F32)
    }

    /// `len` zeros in the storage precision.
    pub fn zeros(&self, len: usize) -> Result<Tensor> {
        Tensor::zeros(self.dev, len, self.precision.storage())
    }

    pub fn zeros_f32(&self, len: usize) -> Result<Tensor> {
        Tensor::zeros(self.dev, len, DType::F32)
    }

    pub fn download(&self, t: &Tensor) -> Result<Vec<f32>> {
        t.to_f32(self.dev)
    }
}

/// A tensor from element `at` on: a block's parameters inside the flat parameter buffer,
/// one horizon's head, or a whole tensor (`at = 0`).
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub t: &'a Tensor,
    pub at: usize,
}

impl<'a> View<'a> {
    pub fn arg(&self) -> Arg<'a> {
        self.t.arg_at(self.at)
    }

    /// The view `by` elements further on.
    pub fn offset(self, by: usize) -> View<'a> {
        View {
            t: self.t,
            at: self.at + by,
        }
    }
}

impl<'a> From<&'a Tensor> for View<'a> {
    fn from(t: &'a Tensor) -> View<'a> {
        View { t, at: 0 }
    }
}

/// Hex blake3 of every embedded PTX module (which `kernels/build-ptx.sh --check` keeps
/// equal to what `kernels/*.cu` compile to): the part of an op's code version that a
/// result computed on a GPU adds, so a kernel fix re-keys what the GPU built while the
/// CPU path's keys stay as they are.
pub fn kernels_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let mut h = blake3::Hasher::new();
        for (name, text) in lakebuild_kernels::ptx::MODULES {
            h.update(name.as_bytes());
            h.update(&(text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
        }
        h.finalize().to_hex()[..16].to_string()
    })
}

/// Threads per block of the row-wise and element-wise kernels (`LB_BLOCK` in
/// kernels/common.cuh): 8 warps.
pub(crate) const BLOCK: u32 = 256;

/// One thread per element of `len`.
pub(crate) fn elementwise(len: usize) -> Launch {
    Launch::cover(len, BLOCK)
}

/// A size as a kernel's `int` argument.
pub(crate) fn int(v: usize) -> Arg<'static> {
    Arg::I32(i32::try_from(v).unwrap_or(i32::MAX))
}
