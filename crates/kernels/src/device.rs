//! The device interface: what a backend (a GPU, or the CPU shim) offers the model's GPU
//! code, and typed tensors on top of it.

use std::fmt;

/// A device error: a missing driver or GPU, a failed allocation or launch. Never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Storage precision of activations and of the weights the kernels read (MODEL.md):
/// accumulation, gradients, the loss and optimiser state are fp32 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    /// The entry-point suffix of a kernel instantiated for this precision.
    pub fn suffix(self) -> &'static str {
        match self {
            Precision::F32 => "_f32",
            Precision::F16 => "_f16",
        }
    }

    /// `<name>_f32` or `<name>_f16`.
    pub fn kernel(self, name: &str) -> String {
        format!("{name}{}", self.suffix())
    }

    pub fn storage(self) -> DType {
        match self {
            Precision::F32 => DType::F32,
            Precision::F16 => DType::F16,
        }
    }

    /// `v` as a tensor of this precision stores it (f16: rounded to nearest even).
    pub fn stored(self, v: f32) -> f32 {
        match self {
            Precision::F32 => v,
            Precision::F16 => half::f16::from_f32(v).to_f32(),
        }
    }
}

/// Element types of device tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    F64,
    U8,
    I32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::F64 => 8,
            DType::U8 => 1,
            DType::I32 => 4,
        }
    }
}

/// A launch configuration: grid and block in three dimensions and the dynamic shared
/// memory in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: (u32, u32, u32),
    pub block: (u32, u32, u32),
    pub shared_bytes: u32,
}

impl Launch {
    /// `blocks` one-dimensional blocks of `threads` threads.
    pub fn linear(blocks: usize, threads: u32) -> Self {
        Launch {
            grid: (blocks.max(1) as u32, 1, 1),
            block: (threads, 1, 1),
            shared_bytes: 0,
        }
    }

    /// Enough blocks of `threads` for `n` threads in all (at least one block).
    pub fn cover(n: usize, threads: u32) -> Self {
        Launch::linear(n.div_ceil(threads as usize), threads)
    }
}

/// Device memory: opaque bytes owned by one device.
pub struct Buffer {
    pub(crate) inner: Inner,
    pub(crate) bytes: usize,
}

pub(crate) enum Inner {
    /// Host memory standing in for device memory (the shim): written by kernels through
    /// its raw pointer, like device memory, never through a Rust reference.
    #[allow(dead_code)]
    Host(HostMemory),
    Cuda(cudarc::driver::CudaSlice<u8>),
}

impl Buffer {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// A zeroed, 8-byte aligned host allocation addressed only through its pointer.
pub(crate) struct HostMemory {
    ptr: *mut u64,
    words: usize,
}

// The memory is only reached through the device's methods and kernels, which the shim
// serialises; the pointer itself is owned.
unsafe impl Send for HostMemory {}
unsafe impl Sync for HostMemory {}

#[allow(dead_code)]
impl HostMemory {
    pub(crate) fn zeroed(bytes: usize) -> Self {
        let words = bytes.div_ceil(8).max(1);
        let b: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        HostMemory {
            ptr: Box::into_raw(b) as *mut u64,
            words,
        }
    }

    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr as *mut u8
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        // Rebuilt from the same pointer and length that Box::into_raw gave.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.words,
            )));
        }
    }
}

impl Buffer {
    /// Refuses a copy of `len` bytes (`what`: "upload of", "download of") that does not fit.
    pub(crate) fn check_copy(&self, what: &str, len: usize) -> Result<()> {
        if len > self.bytes {
            return Err(Error(format!(
                "{what} {len} bytes with a buffer of {}",
                self.bytes
            )));
        }
        Ok(())
    }
}

/// A kernel argument.
#[derive(Clone, Copy)]
pub enum Arg<'a> {
    Buf(&'a Buffer),
    /// A pointer `bytes` into a buffer (a parameter block inside the flat parameters).
    At(&'a Buffer, usize),
    /// A null pointer (an optional input that is absent).
    Null,
    I32(i32),
    F32(f32),
    F64(f64),
}

/// What the model's GPU code needs from a device.
pub trait Device {
    /// What it is, for logs and errors ("NVIDIA H200 (sm_90)", "CPU shim").
    fn name(&self) -> String;
    /// `bytes` of zeroed memory.
    fn alloc(&self, bytes: usize) -> Result<Buffer>;
    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()>;
    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()>;
    /// Launches kernel `name` (its entry point, e.g. `layernorm_forward_f16`).
    fn launch(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()>;
    /// Waits for every launch so far.
    fn synchronize(&self) -> Result<()>;
}

/// A typed tensor in device memory.
pub struct Tensor {
    pub buf: Buffer,
    pub len: usize,
    pub dtype: DType,
}

impl Tensor {
    /// `len` zeros.
    pub fn zeros(dev: &dyn Device, len: usize, dtype: DType) -> Result<Tensor> {
        Ok(Tensor {
            buf: dev.alloc(len * dtype.size())?,
            len,
            dtype,
        })
    }

    /// `data` stored as `dtype` (F32, F16 or F64; f16 rounds to nearest even).
    pub fn from_f32(dev: &dyn Device, data: &[f32], dtype: DType) -> Result<Tensor> {
        let bytes: Vec<u8> = match dtype {
            DType::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::F16 => data
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
            DType::F64 => data
                .iter()
                .flat_map(|v| (*v as f64).to_le_bytes())
                .collect(),
            DType::U8 | DType::I32 => {
                return Err(Error(format!(
                    "a float tensor cannot be stored as {dtype:?}"
                )));
            }
        };
        let t = Tensor::zeros(dev, data.len(), dtype)?;
        dev.upload(&t.buf, &bytes)?;
        Ok(t)
    }

    /// Bytes as a u8 tensor (masks: 0 or 1).
    pub fn from_u8(dev: &dyn Device, data: &[u8]) -> Result<Tensor> {
        let t = Tensor::zeros(dev, data.len(), DType::U8)?;
        dev.upload(&t.buf, data)?;
        Ok(t)
    }

    /// Integers as an i32 tensor (graph offsets and edge sources).
    pub fn from_i32(dev: &dyn Device, data: &[i32]) -> Result<Tensor> {
        let t = Tensor::zeros(dev, data.len(), DType::I32)?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        dev.upload(&t.buf, &bytes)?;
        Ok(t)
    }

    /// The values as f32 (widening f16, rounding f64).
    pub fn to_f32(&self, dev: &dyn Device) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; self.len * self.dtype.size()];
        dev.download(&self.buf, &mut bytes)?;
        Ok(match self.dtype {
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            DType::F64 => self
                .to_f64_bytes(&bytes)
                .iter()
                .map(|v| *v as f32)
                .collect(),
            DType::U8 => bytes.iter().map(|v| *v as f32).collect(),
            DType::I32 => bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32)
                .collect(),
        })
    }

    /// The values of an I32 tensor.
    pub fn to_i32(&self, dev: &dyn Device) -> Result<Vec<i32>> {
        if self.dtype != DType::I32 {
            return Err(Error(format!("a {:?} tensor read as i32", self.dtype)));
        }
        let mut bytes = vec![0u8; self.len * 4];
        dev.download(&self.buf, &mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The values as f64 (an F64 tensor exactly).
    pub fn to_f64(&self, dev: &dyn Device) -> Result<Vec<f64>> {
        if self.dtype != DType::F64 {
            return Ok(self.to_f32(dev)?.iter().map(|v| *v as f64).collect());
        }
        let mut bytes = vec![0u8; self.len * 8];
        dev.download(&self.buf, &mut bytes)?;
        Ok(self.to_f64_bytes(&bytes))
    }

    fn to_f64_bytes(&self, bytes: &[u8]) -> Vec<f64> {
        bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect()
    }

    pub fn arg(&self) -> Arg<'_> {
        Arg::Buf(&self.buf)
    }

    /// A pointer to element `at` (a sub-tensor: one block's parameters, one horizon's).
    pub fn arg_at(&self, at: usize) -> Arg<'_> {
        Arg::At(&self.buf, at * self.dtype.size())
    }
}
