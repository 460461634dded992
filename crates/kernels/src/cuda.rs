//! A real GPU as a [`Device`], through cudarc's driver API.
//!
//! cudarc is built with `dynamic-loading`: the binary links no CUDA library and loads
//! `libcuda.so.1` when first used. Its loaders panic when the library is missing, so
//! [`CudaDevice::open`] looks for the driver library itself first and reports what is
//! missing (the driver, a device) as an [`Error`], never a panic. The kernels' PTX is
//! compiled into the binary ([`crate::ptx`]) and JIT-compiled by the driver for the GPU at
//! hand (compute_80 PTX runs on A100, H100 and H200).

use crate::device::{Arg, Buffer, Device, Error, Inner, Launch, Result};
use crate::ptx;
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, LaunchConfig, PushKernelArg};
use std::collections::HashMap;
use std::sync::Arc;

/// The driver library cudarc loads.
const DRIVER_LIBRARY: &str = "libcuda.so.1";

/// Whether the NVIDIA driver library can be loaded on this machine (no CUDA call made).
pub fn driver_present() -> bool {
    let Ok(name) = std::ffi::CString::new(DRIVER_LIBRARY) else {
        return false;
    };
    // SAFETY: dlopen with a valid C string; the handle is closed at once.
    unsafe {
        let h = libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
        if h.is_null() {
            return false;
        }
        libc::dlclose(h);
    }
    true
}

/// One GPU, its default stream and every kernel of the embedded PTX.
pub struct CudaDevice {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    functions: HashMap<String, CudaFunction>,
    name: String,
    compute_capability: (i32, i32),
    /// With `LAKEBUILD_KERNEL_TIMING=1`: launches and wall time per kernel, each launch
    /// synchronised (a first timing, not a profile: it includes the launch overhead).
    timing: Option<std::sync::Mutex<HashMap<String, (u64, std::time::Duration)>>>,
}

/// One kernel's launches and their total time (see [`CudaDevice::take_timings`]).
#[derive(Debug, Clone)]
pub struct KernelTiming {
    pub kernel: String,
    pub launches: u64,
    pub total: std::time::Duration,
}

fn driver(e: cudarc::driver::DriverError) -> Error {
    Error(format!("CUDA driver: {e:?}"))
}

impl CudaDevice {
    /// Opens GPU `ordinal` and loads every kernel module, or says what is missing.
    pub fn open(ordinal: usize) -> Result<CudaDevice> {
        if !driver_present() {
            return Err(Error(format!(
                "no NVIDIA driver: {DRIVER_LIBRARY} is not installed or not on the library path"
            )));
        }
        let count = CudaContext::device_count().map_err(driver)?;
        if count <= 0 {
            return Err(Error(
                "the NVIDIA driver is installed but sees no GPU".into(),
            ));
        }
        if ordinal >= count as usize {
            return Err(Error(format!(
                "GPU {ordinal} requested, but the driver sees {count}"
            )));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver)?;
        let stream = ctx.default_stream();
        let mut functions = HashMap::new();
        for (module, text) in ptx::MODULES {
            let m = ctx
                .load_module(cudarc::nvrtc::Ptx::from_src(*text))
                .map_err(|e| Error(format!("loading the {module} kernels' PTX: {e:?}")))?;
            for name in ptx::entry_points(text) {
                let f = m
                    .load_function(&name)
                    .map_err(|e| Error(format!("kernel {name} of {module}: {e:?}")))?;
                functions.insert(name, f);
            }
        }
        let name = ctx.name().map_err(driver)?;
        let compute_capability = ctx.compute_capability().map_err(driver)?;
        let timing = (std::env::var("LAKEBUILD_KERNEL_TIMING").as_deref() == Ok("1"))
            .then(|| std::sync::Mutex::new(HashMap::new()));
        Ok(CudaDevice {
            ctx,
            stream,
            functions,
            name,
            compute_capability,
            timing,
        })
    }

    /// The device's compute capability (major, minor).
    pub fn compute_capability(&self) -> (i32, i32) {
        self.compute_capability
    }
}

fn slice(b: &Buffer) -> Result<&cudarc::driver::CudaSlice<u8>> {
    match &b.inner {
        Inner::Cuda(s) => Ok(s),
        Inner::Host(_) => Err(Error("a host (shim) buffer was passed to the GPU".into())),
    }
}

impl Device for CudaDevice {
    fn name(&self) -> String {
        let (a, b) = self.compute_capability;
        format!("{} (sm_{a}{b})", self.name)
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        let s = self
            .stream
            .alloc_zeros::<u8>(bytes.max(1))
            .map_err(driver)?;
        Ok(Buffer {
            inner: Inner::Cuda(s),
            bytes,
        })
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        dst.check_copy("upload of", src.len())?;
        let s = slice(dst)?;
        // The driver copies into device memory; the slice's Rust-side state is unchanged,
        // so a shared borrow suffices (the raw copy below is what memcpy_htod does).
        let (ptr, _sync) = cudarc::driver::DevicePtr::device_ptr(s, &self.stream);
        // SAFETY: `ptr` addresses at least dst.bytes ≥ src.len() bytes of device memory.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(ptr, src, self.stream.cu_stream())
                .map_err(driver)?;
        }
        self.stream.synchronize().map_err(driver)
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        src.check_copy("download of", dst.len())?;
        let s = slice(src)?;
        let (ptr, _sync) = cudarc::driver::DevicePtr::device_ptr(s, &self.stream);
        // SAFETY: `ptr` addresses at least src.bytes ≥ dst.len() bytes of device memory.
        unsafe {
            cudarc::driver::result::memcpy_dtoh_async(dst, ptr, self.stream.cu_stream())
                .map_err(driver)?;
        }
        self.stream.synchronize().map_err(driver)
    }

    fn launch(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()> {
        let Some(timing) = &self.timing else {
            return self.launch_now(name, cfg, args);
        };
        let start = std::time::Instant::now();
        self.launch_now(name, cfg, args)?;
        self.stream.synchronize().map_err(driver)?;
        let took = start.elapsed();
        let mut t = timing
            .lock()
            .map_err(|_| Error("kernel timing lock poisoned".into()))?;
        let e = t.entry(name.to_string()).or_default();
        e.0 += 1;
        e.1 += took;
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        self.ctx.synchronize().map_err(driver)
    }
}

impl CudaDevice {
    /// The timings gathered since the last call, slowest total first (empty without
    /// `LAKEBUILD_KERNEL_TIMING=1`).
    pub fn take_timings(&self) -> Vec<KernelTiming> {
        let Some(Ok(mut t)) = self.timing.as_ref().map(|m| m.lock()) else {
            return Vec::new();
        };
        let mut v: Vec<KernelTiming> = t
            .drain()
            .map(|(kernel, (launches, total))| KernelTiming {
                kernel,
                launches,
                total,
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(a.kernel.cmp(&b.kernel)));
        v
    }

    fn launch_now(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()> {
        let f = self
            .functions
            .get(name)
            .ok_or_else(|| Error(format!("no kernel named {name} in the embedded PTX")))?;
        // Scalars must outlive the launch builder that borrows them.
        enum Scalar {
            Null(u64),
            I32(i32),
            F32(f32),
            F64(f64),
        }
        let scalars: Vec<Option<Scalar>> = args
            .iter()
            .map(|a| match a {
                Arg::Buf(_) | Arg::At(..) => None,
                Arg::Null => Some(Scalar::Null(0)),
                Arg::I32(v) => Some(Scalar::I32(*v)),
                Arg::F32(v) => Some(Scalar::F32(*v)),
                Arg::F64(v) => Some(Scalar::F64(*v)),
            })
            .collect();
        // Views into buffers, likewise.
        let views: Vec<Option<cudarc::driver::CudaView<u8>>> = args
            .iter()
            .map(|a| match a {
                Arg::At(buf, off) => {
                    let s = slice(buf)?;
                    if *off > buf.bytes {
                        return Err(Error(format!(
                            "{name}: offset {off} past a buffer of {} bytes",
                            buf.bytes
                        )));
                    }
                    Ok(Some(s.slice(*off..)))
                }
                _ => Ok(None),
            })
            .collect::<Result<_>>()?;
        let mut b = self.stream.launch_builder(f);
        for ((a, s), v) in args.iter().zip(&scalars).zip(&views) {
            match (a, s) {
                (Arg::Buf(buf), _) => {
                    b.arg(slice(buf)?);
                }
                (Arg::At(..), _) => {
                    if let Some(v) = v {
                        b.arg(v);
                    }
                }
                (_, Some(Scalar::Null(v))) => {
                    b.arg(v);
                }
                (_, Some(Scalar::I32(v))) => {
                    b.arg(v);
                }
                (_, Some(Scalar::F32(v))) => {
                    b.arg(v);
                }
                (_, Some(Scalar::F64(v))) => {
                    b.arg(v);
                }
                (_, None) => {}
            }
        }
        let lc = LaunchConfig {
            grid_dim: cfg.grid,
            block_dim: cfg.block,
            shared_mem_bytes: cfg.shared_bytes,
        };
        // SAFETY: the arguments are in the kernel's order and of its types (the callers
        // are the model's GPU blocks, each checked against the CPU reference through the
        // shim with the same argument lists).
        unsafe { b.launch(lc) }
            .map(|_| ())
            .map_err(|e| Error(format!("launching {name}: {e:?}")))
    }
}
