//! Comparisons of device results with the CPU reference (tests only).

use super::{Gpu, Precision};
use lakebuild_kernels::cuda::CudaDevice;
use lakebuild_kernels::shim::ShimDevice;
use std::cell::RefCell;
use std::sync::OnceLock;

thread_local! {
    /// Which device the running comparison is on, for LAKEBUILD_KERNEL_REPORT=1.
    static DEVICE: RefCell<String> = RefCell::new("shim".into());
}

/// ‖a − b‖ / ‖b‖ (0 when both are 0).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared tensors differ in length");
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).powi(2))
        .sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 && nb == 0.0 {
        1.0
    } else {
        dot / (na * nb)
    }
}

/// Asserts that a device result matches the CPU reference under the precision's
/// tolerance: fp32 relative L2 < 1e-5; fp16 relative L2 < 1e-2 and cosine > 0.999.
pub fn assert_matches(what: &str, p: Precision, gpu: &[f32], cpu: &[f32]) {
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{what} ({p:?}): the device result has non-finite values"
    );
    let (e, c) = (rel_l2(gpu, cpu), cosine(gpu, cpu));
    if std::env::var("LAKEBUILD_KERNEL_REPORT").as_deref() == Ok("1") {
        DEVICE.with(|d| {
            eprintln!(
                "compare {} | {what} | {p:?} | rel L2 {e:.3e} | cosine {c:.7}",
                d.borrow()
            )
        });
    }
    match p {
        Precision::F32 => assert!(e < 1e-5, "{what} (fp32): relative L2 {e:.3e} ≥ 1e-5"),
        Precision::F16 => assert!(
            e < 1e-2 && c > 0.999,
            "{what} (fp16): relative L2 {e:.3e} (< 1e-2), cosine {c:.6} (> 0.999)"
        ),
    }
}

/// The first GPU, opened once for all the tests; `None` without one. With
/// `LAKEBUILD_REQUIRE_GPU=1` (kernels/gpu-check.sh, on the GPU machine) a missing GPU is a
/// failure instead.
pub fn gpu() -> Option<&'static CudaDevice> {
    static DEV: OnceLock<Option<CudaDevice>> = OnceLock::new();
    DEV.get_or_init(|| match CudaDevice::open(0) {
        Ok(d) => Some(d),
        Err(e) => {
            assert!(
                std::env::var("LAKEBUILD_REQUIRE_GPU").as_deref() != Ok("1"),
                "LAKEBUILD_REQUIRE_GPU=1 but no GPU: {}",
                e.0
            );
            None
        }
    })
    .as_ref()
}

/// Runs `f` in both precisions on the shim, then on the GPU when there is one (the only
/// skip these tests have: CI has no GPU; `no_gpu_means_the_device_comparisons_are_skipped`
/// says so).
pub fn both(mut f: impl FnMut(Gpu)) {
    static SHIM: ShimDevice = ShimDevice;
    DEVICE.with(|d| *d.borrow_mut() = "shim".into());
    for precision in [Precision::F32, Precision::F16] {
        f(Gpu {
            dev: &SHIM,
            precision,
        });
    }
    let Some(d) = gpu() else {
        return;
    };
    DEVICE.with(|n| *n.borrow_mut() = "gpu".into());
    for precision in [Precision::F32, Precision::F16] {
        f(Gpu { dev: d, precision });
        // With LAKEBUILD_KERNEL_TIMING=1 (kernels/gpu-check.sh): this test's kernels.
        let name = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        for t in d.take_timings() {
            eprintln!(
                "timing {name} {precision:?}: {} × {} = {:.1} µs ({:.1} µs per launch)",
                t.kernel,
                t.launches,
                t.total.as_secs_f64() * 1e6,
                t.total.as_secs_f64() * 1e6 / t.launches as f64
            );
        }
    }
}

pub use super::super::gradcheck::rand_f32 as values;

#[cfg(test)]
mod tests {
    /// Not a check of its own: it makes the skip visible (`cargo test -- --nocapture`).
    #[test]
    fn no_gpu_means_the_device_comparisons_are_skipped() {
        match super::gpu() {
            Some(d) => eprintln!(
                "GPU comparisons run on {}",
                lakebuild_kernels::Device::name(d)
            ),
            None => eprintln!(
                "no GPU here: every kernel comparison ran on the CPU shim only; the same comparisons on a GPU are skipped (kernels/gpu-check.sh runs them on one)"
            ),
        }
    }
}
