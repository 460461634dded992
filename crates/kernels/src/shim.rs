//! The CPU shim as a [`Device`]: kernels/*.cu compiled as C++ (build.rs) and launched by
//! name with the GPU's launch configurations (kernels/shim/cuda_shim.h for the execution
//! model). Memory is host memory; "device pointers" are its addresses.

use crate::device::{Arg, Buffer, Device, Error, HostMemory, Inner, Launch, Result};
use std::ffi::{CString, c_char, c_void};

unsafe extern "C" {
    fn lb_shim_launch(
        name: *const c_char,
        gx: u32,
        gy: u32,
        gz: u32,
        bx: u32,
        by: u32,
        bz: u32,
        shared_bytes: u32,
        params: *mut *mut c_void,
        error: *mut c_char,
        error_len: usize,
    ) -> i32;
    fn lb_shim_kernels(out: *mut c_char, len: usize) -> usize;
}

/// The CPU shim device.
#[derive(Debug, Default, Clone, Copy)]
pub struct ShimDevice;

impl ShimDevice {
    /// Names of the kernels the shim library holds, sorted.
    pub fn kernels(&self) -> Vec<String> {
        // SAFETY: a null buffer of length 0 only asks for the size.
        let len = unsafe { lb_shim_kernels(std::ptr::null_mut(), 0) };
        let mut buf = vec![0u8; len + 1];
        // SAFETY: `buf` holds len + 1 bytes, the C side writes at most that many.
        unsafe { lb_shim_kernels(buf.as_mut_ptr() as *mut c_char, buf.len()) };
        String::from_utf8_lossy(&buf[..len])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn host(b: &Buffer) -> Result<&HostMemory> {
    match &b.inner {
        Inner::Host(h) => Ok(h),
        Inner::Cuda(_) => Err(Error("a GPU buffer was passed to the CPU shim".into())),
    }
}

impl Device for ShimDevice {
    fn name(&self) -> String {
        "CPU shim".into()
    }

    fn alloc(&self, bytes: usize) -> Result<Buffer> {
        Ok(Buffer {
            inner: Inner::Host(HostMemory::zeroed(bytes)),
            bytes,
        })
    }

    fn upload(&self, dst: &Buffer, src: &[u8]) -> Result<()> {
        dst.check_copy("upload of", src.len())?;
        // SAFETY: the allocation holds at least dst.bytes ≥ src.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), host(dst)?.ptr(), src.len()) };
        Ok(())
    }

    fn download(&self, src: &Buffer, dst: &mut [u8]) -> Result<()> {
        src.check_copy("download of", dst.len())?;
        // SAFETY: the allocation holds at least src.bytes ≥ dst.len() bytes.
        unsafe { std::ptr::copy_nonoverlapping(host(src)?.ptr(), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn launch(&self, name: &str, cfg: Launch, args: &[Arg]) -> Result<()> {
        // Each argument's value, then a pointer to each (cuLaunchKernel's convention).
        enum Value {
            Ptr(*mut c_void),
            I32(i32),
            F32(f32),
            F64(f64),
        }
        let mut values: Vec<Value> = args
            .iter()
            .map(|a| {
                Ok(match a {
                    Arg::Buf(b) => Value::Ptr(host(b)?.ptr() as *mut c_void),
                    Arg::At(b, off) => {
                        if *off > b.bytes {
                            return Err(Error(format!(
                                "{name}: offset {off} past a buffer of {} bytes",
                                b.bytes
                            )));
                        }
                        // SAFETY: within the allocation (checked above).
                        Value::Ptr(unsafe { host(b)?.ptr().add(*off) } as *mut c_void)
                    }
                    Arg::Null => Value::Ptr(std::ptr::null_mut()),
                    Arg::I32(v) => Value::I32(*v),
                    Arg::F32(v) => Value::F32(*v),
                    Arg::F64(v) => Value::F64(*v),
                })
            })
            .collect::<Result<_>>()?;
        let mut params: Vec<*mut c_void> = values
            .iter_mut()
            .map(|v| match v {
                Value::Ptr(p) => p as *mut *mut c_void as *mut c_void,
                Value::I32(x) => x as *mut i32 as *mut c_void,
                Value::F32(x) => x as *mut f32 as *mut c_void,
                Value::F64(x) => x as *mut f64 as *mut c_void,
            })
            .collect();
        let cname = CString::new(name).map_err(|_| Error(format!("kernel name {name:?}")))?;
        let mut err = vec![0u8; 512];
        // SAFETY: params point at live values of the kernel's argument types (the caller
        // passes them in the kernel's order); the C side writes at most err.len() bytes.
        let rc = unsafe {
            lb_shim_launch(
                cname.as_ptr(),
                cfg.grid.0,
                cfg.grid.1,
                cfg.grid.2,
                cfg.block.0,
                cfg.block.1,
                cfg.block.2,
                cfg.shared_bytes,
                params.as_mut_ptr(),
                err.as_mut_ptr() as *mut c_char,
                err.len(),
            )
        };
        if rc != 0 {
            let end = err.iter().position(|b| *b == 0).unwrap_or(err.len());
            return Err(Error(format!(
                "shim launch failed: {}",
                String::from_utf8_lossy(&err[..end])
            )));
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}
