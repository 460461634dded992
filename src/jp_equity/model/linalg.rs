//! Matrix products of the model, row-major, deterministic at any thread count.
//!
//! Conventions: `x` is `m×k`, a weight `w` is `k×n` (input-major, so `y = x·w + b` as
//! MODEL.md writes it), `y` is `m×n`. Products that reduce over rows (weight gradients
//! `xᵀ·dy`) are computed in fixed chunks of [`CHUNK`] rows whose partial sums are added in
//! chunk order, so the result never depends on how rayon schedules the chunks.

use super::real::Real;
use rayon::prelude::*;

/// Rows per parallel chunk. Fixed, not derived from the thread count.
pub const CHUNK: usize = 256;

/// `y = x·w` (`beta = 0`) or `y += x·w` (`beta = 1`), split over fixed row chunks.
fn matmul_into<T: Real>(x: &[T], w: &[T], m: usize, k: usize, n: usize, y: &mut [T], beta: T) {
    assert_eq!(x.len(), m * k, "matmul: x is not {m}×{k}");
    assert_eq!(w.len(), k * n, "matmul: w is not {k}×{n}");
    assert_eq!(y.len(), m * n, "matmul: y is not {m}×{n}");
    if m * n * k < 1 << 15 || m <= CHUNK {
        T::gemm(m, k, n, T::one(), x, k, 1, w, n, 1, beta, y, n);
        return;
    }
    y.par_chunks_mut(CHUNK * n)
        .zip(x.par_chunks(CHUNK * k))
        .for_each(|(yc, xc)| {
            let rows = xc.len() / k;
            T::gemm(rows, k, n, T::one(), xc, k, 1, w, n, 1, beta, yc, n);
        });
}

/// `x·w`, a new `m×n` buffer.
pub fn matmul<T: Real>(x: &[T], w: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    let mut y = vec![T::zero(); m * n];
    matmul_into(x, w, m, k, n, &mut y, T::zero());
    y
}

/// `y += x·w`.
pub fn matmul_acc<T: Real>(x: &[T], w: &[T], m: usize, k: usize, n: usize, y: &mut [T]) {
    matmul_into(x, w, m, k, n, y, T::one());
}

/// `dx += dy·wᵀ`: `dy` is `m×n`, `w` the `k×n` weight of `y = x·w`, `dx` is `m×k`.
pub fn matmul_bt_acc<T: Real>(dy: &[T], w: &[T], m: usize, k: usize, n: usize, dx: &mut [T]) {
    assert_eq!(dy.len(), m * n, "matmul_bt: dy is not {m}×{n}");
    assert_eq!(w.len(), k * n, "matmul_bt: w is not {k}×{n}");
    assert_eq!(dx.len(), m * k, "matmul_bt: dx is not {m}×{k}");
    if m * n * k < 1 << 15 || m <= CHUNK {
        T::gemm(m, n, k, T::one(), dy, n, 1, w, 1, n, T::one(), dx, k);
        return;
    }
    dx.par_chunks_mut(CHUNK * k)
        .zip(dy.par_chunks(CHUNK * n))
        .for_each(|(dxc, dyc)| {
            let rows = dyc.len() / n;
            T::gemm(rows, n, k, T::one(), dyc, n, 1, w, 1, n, T::one(), dxc, k);
        });
}

/// `dw += xᵀ·dy` (`x` is `m×k`, `dy` is `m×n`, `dw` is `k×n`), reduced over fixed row
/// chunks in order.
pub fn matmul_at_acc<T: Real>(x: &[T], dy: &[T], m: usize, k: usize, n: usize, dw: &mut [T]) {
    assert_eq!(x.len(), m * k, "matmul_at: x is not {m}×{k}");
    assert_eq!(dy.len(), m * n, "matmul_at: dy is not {m}×{n}");
    assert_eq!(dw.len(), k * n, "matmul_at: dw is not {k}×{n}");
    if m <= CHUNK {
        T::gemm(k, m, n, T::one(), x, 1, k, dy, n, 1, T::one(), dw, n);
        return;
    }
    let partials: Vec<Vec<T>> = x
        .par_chunks(CHUNK * k)
        .zip(dy.par_chunks(CHUNK * n))
        .map(|(xc, dyc)| {
            let rows = xc.len() / k;
            let mut p = vec![T::zero(); k * n];
            T::gemm(
                k,
                rows,
                n,
                T::one(),
                xc,
                1,
                k,
                dyc,
                n,
                1,
                T::zero(),
                &mut p,
                n,
            );
            p
        })
        .collect();
    for p in &partials {
        for (d, v) in dw.iter_mut().zip(p) {
            *d += *v;
        }
    }
}

/// `db += Σ_rows dy` (`dy` is `m×n`), in row order.
pub fn col_sum_acc<T: Real>(dy: &[T], m: usize, n: usize, db: &mut [T]) {
    assert_eq!(dy.len(), m * n, "col_sum: dy is not {m}×{n}");
    assert_eq!(db.len(), n, "col_sum: db is not {n}");
    for row in dy.chunks(n) {
        for (d, v) in db.iter_mut().zip(row) {
            *d += *v;
        }
    }
}

/// `y = x·w + b`: a dense layer over `m` rows.
pub fn linear<T: Real>(x: &[T], w: &[T], b: &[T], m: usize, k: usize, n: usize) -> Vec<T> {
    assert_eq!(b.len(), n, "linear: bias is not {n}");
    let mut y = vec![T::zero(); m * n];
    for row in y.chunks_mut(n) {
        row.copy_from_slice(b);
    }
    matmul_acc(x, w, m, k, n, &mut y);
    y
}

/// Backward of [`linear`]: `dw += xᵀ·dy`, `db += Σ dy`, and `dx += dy·wᵀ` when asked.
#[allow(clippy::too_many_arguments)]
pub fn linear_backward<T: Real>(
    x: &[T],
    w: &[T],
    dy: &[T],
    m: usize,
    k: usize,
    n: usize,
    dw: &mut [T],
    db: Option<&mut [T]>,
    dx: Option<&mut [T]>,
) {
    matmul_at_acc(x, dy, m, k, n, dw);
    if let Some(db) = db {
        col_sum_acc(dy, m, n, db);
    }
    if let Some(dx) = dx {
        matmul_bt_acc(dy, w, m, k, n, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::on_threads;
    use super::*;

    fn naive(x: &[f64], w: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut y = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    y[i * n + j] += x[i * k + l] * w[l * n + j];
                }
            }
        }
        y
    }

    fn data(len: usize, seed: u64) -> Vec<f64> {
        (0..len)
            .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f64) / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn products_match_the_definition_on_both_paths() {
        for &(m, k, n) in &[(3, 4, 5), (700, 9, 33)] {
            let x = data(m * k, 1);
            let w = data(k * n, 2);
            let dy = data(m * n, 3);
            let y = matmul(&x, &w, m, k, n);
            for (a, b) in y.iter().zip(naive(&x, &w, m, k, n)) {
                assert!((a - b).abs() < 1e-9);
            }
            let mut dw = vec![0.0; k * n];
            matmul_at_acc(&x, &dy, m, k, n, &mut dw);
            let mut xt = vec![0.0; k * m];
            for i in 0..m {
                for l in 0..k {
                    xt[l * m + i] = x[i * k + l];
                }
            }
            for (a, b) in dw.iter().zip(naive(&xt, &dy, k, m, n)) {
                assert!((a - b).abs() < 1e-9);
            }
            let mut dx = vec![0.0; m * k];
            matmul_bt_acc(&dy, &w, m, k, n, &mut dx);
            let mut wt = vec![0.0; n * k];
            for l in 0..k {
                for j in 0..n {
                    wt[j * k + l] = w[l * n + j];
                }
            }
            for (a, b) in dx.iter().zip(naive(&dy, &wt, m, n, k)) {
                assert!((a - b).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn weight_gradients_do_not_depend_on_the_thread_count() {
        let (m, k, n) = (1000, 17, 23);
        let x: Vec<f32> = data(m * k, 4).iter().map(|v| *v as f32).collect();
        let dy: Vec<f32> = data(m * n, 5).iter().map(|v| *v as f32).collect();
        let run = |threads| {
            on_threads(threads, || {
                let mut dw = vec![0f32; k * n];
                matmul_at_acc(&x, &dy, m, k, n, &mut dw);
                dw
            })
        };
        assert_eq!(run(1), run(2));
    }
}
