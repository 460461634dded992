//! kernels/layers.cu: dense layers (mirroring `linalg::linear` / `linear_backward` and
//! the products behind them) and LayerNorm (`layers::layer_norm` / its backward).

use super::{Arg, BLOCK, Gpu, Launch, Result, Tensor, View, int};

/// Tile edge of the product kernels (`LB_TILE`).
const TILE: usize = 16;
const ROWS_PER_BLOCK: usize = BLOCK as usize / 32;

/// One 16×16 block per 16×16 tile of an `m × n` output.
pub fn gemm_launch(m: usize, n: usize) -> Launch {
    Launch {
        grid: (
            n.div_ceil(TILE).max(1) as u32,
            m.div_ceil(TILE).max(1) as u32,
            1,
        ),
        block: (TILE as u32, TILE as u32, 1),
        shared_bytes: 0,
    }
}

/// One warp per row.
pub fn rows_launch(rows: usize) -> Launch {
    Launch::linear(rows.div_ceil(ROWS_PER_BLOCK), BLOCK)
}

/// One thread per column.
pub fn columns_launch(n: usize) -> Launch {
    Launch::cover(n, BLOCK)
}

/// `y = x·w + b` over `m` rows (`x` is `m×k`, `w` is `k×n`), as `linalg::linear`;
/// without `b`, `y = x·w` (`linalg::matmul`).
pub fn linear(
    g: &Gpu,
    x: View,
    w: View,
    b: Option<View>,
    m: usize,
    k: usize,
    n: usize,
) -> Result<Tensor> {
    let y = g.zeros(m * n)?;
    g.launch(
        "matmul_forward",
        gemm_launch(m, n),
        &[
            x.arg(),
            w.arg(),
            b.map_or(Arg::Null, |b| b.arg()),
            y.arg(),
            int(m),
            int(k),
            int(n),
            Arg::I32(0),
        ],
    )?;
    Ok(y)
}

/// Backward of [`linear`], as `linalg::linear_backward`: `dw += xᵀ·dy`, `db += Σ dy`,
/// and `dx += dy·wᵀ` when asked (`dy`, `dw`, `db`, `dx` are f32).
#[allow(clippy::too_many_arguments)]
pub fn linear_backward(
    g: &Gpu,
    x: View,
    w: View,
    dy: View,
    m: usize,
    k: usize,
    n: usize,
    dw: View,
    db: Option<View>,
    dx: Option<View>,
) -> Result<()> {
    g.launch(
        "matmul_backward_weight",
        gemm_launch(k, n),
        &[x.arg(), dy.arg(), dw.arg(), int(m), int(k), int(n)],
    )?;
    if let Some(db) = db {
        g.launch_f32(
            "column_sum",
            columns_launch(n),
            &[dy.arg(), db.arg(), int(m), int(n)],
        )?;
    }
    if let Some(dx) = dx {
        g.launch(
            "matmul_backward_input",
            gemm_launch(m, k),
            &[
                dy.arg(),
                w.arg(),
                dx.arg(),
                int(m),
                int(k),
                int(n),
                Arg::I32(1),
            ],
        )?;
    }
    Ok(())
}

/// What LayerNorm's backward needs on the device: each row's mean and 1/σ (f32).
pub struct LayerNormCache {
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// `y = (x − μ)/σ · γ + β` per row of `n`, as `layers::layer_norm`.
pub fn layer_norm(
    g: &Gpu,
    x: &Tensor,
    gamma: View,
    beta: View,
    rows: usize,
    n: usize,
) -> Result<(Tensor, LayerNormCache)> {
    let y = g.zeros(rows * n)?;
    let cache = LayerNormCache {
        mean: g.zeros_f32(rows)?,
        rstd: g.zeros_f32(rows)?,
    };
    g.launch(
        "layernorm_forward",
        rows_launch(rows),
        &[
            x.arg(),
            gamma.arg(),
            beta.arg(),
            y.arg(),
            cache.mean.arg(),
            cache.rstd.arg(),
            int(rows),
            int(n),
        ],
    )?;
    Ok((y, cache))
}

/// Backward of [`layer_norm`], as `layers::layer_norm_backward`: `dγ += Σ dy·x̂`,
/// `dβ += Σ dy`; returns `dx`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    g: &Gpu,
    dy: &Tensor,
    x: &Tensor,
    gamma: View,
    cache: &LayerNormCache,
    dgamma: View,
    dbeta: View,
    rows: usize,
    n: usize,
) -> Result<Tensor> {
    let dx = g.zeros_f32(rows * n)?;
    g.launch(
        "layernorm_backward_input",
        rows_launch(rows),
        &[
            dy.arg(),
            x.arg(),
            gamma.arg(),
            cache.mean.arg(),
            cache.rstd.arg(),
            dx.arg(),
            int(rows),
            int(n),
            Arg::I32(0),
        ],
    )?;
    g.launch(
        "layernorm_backward_params",
        columns_launch(n),
        &[
            dy.arg(),
            x.arg(),
            cache.mean.arg(),
            cache.rstd.arg(),
            dgamma.arg(),
            dbeta.arg(),
            int(rows),
            int(n),
        ],
    )?;
    Ok(dx)
}

#[cfg(test)]
mod tests {
    use super::super::check::{assert_matches, both, values};
    use super::*;
    use crate::jp_equity::model::layers as cpu_layers;
    use crate::jp_equity::model::linalg;

    /// Shapes with partial tiles in every dimension, several blocks, and one row.
    const SHAPES: [(usize, usize, usize); 3] = [(37, 45, 33), (1, 20, 7), (64, 16, 16)];

    #[test]
    fn linear_forward_and_backward_match_the_cpu_reference() {
        both(|g| {
            for &(m, k, n) in &SHAPES {
                let x = values(m * k, 1, 1.0);
                let w = values(k * n, 2, 0.5);
                let b = values(n, 3, 0.5);
                let dy = values(m * n, 4, 1.0);
                let cpu_y = linalg::linear(&x, &w, &b, m, k, n);
                let (mut dw, mut db, mut dx) = (
                    values(k * n, 5, 0.1),
                    values(n, 6, 0.1),
                    values(m * k, 7, 0.1),
                );
                let (dw0, db0, dx0) = (dw.clone(), db.clone(), dx.clone());
                linalg::linear_backward(
                    &x,
                    &w,
                    &dy,
                    m,
                    k,
                    n,
                    &mut dw,
                    Some(&mut db),
                    Some(&mut dx),
                );
                let run = || -> Result<_> {
                    let (tx, tw, tb) = (g.upload(&x)?, g.upload(&w)?, g.upload(&b)?);
                    let y = linear(&g, (&tx).into(), (&tw).into(), Some((&tb).into()), m, k, n)?;
                    let tdy = g.upload_f32(&dy)?;
                    let (tdw, tdb, tdx) = (
                        g.upload_f32(&dw0)?,
                        g.upload_f32(&db0)?,
                        g.upload_f32(&dx0)?,
                    );
                    linear_backward(
                        &g,
                        (&tx).into(),
                        (&tw).into(),
                        (&tdy).into(),
                        m,
                        k,
                        n,
                        (&tdw).into(),
                        Some((&tdb).into()),
                        Some((&tdx).into()),
                    )?;
                    Ok((
                        g.download(&y)?,
                        g.download(&tdw)?,
                        g.download(&tdb)?,
                        g.download(&tdx)?,
                    ))
                };
                let (y, gdw, gdb, gdx) = run().expect("the shim runs the kernels");
                let p = g.precision;
                assert_matches(&format!("linear y {m}×{k}×{n}"), p, &y, &cpu_y);
                assert_matches(&format!("linear dw {m}×{k}×{n}"), p, &gdw, &dw);
                assert_matches(&format!("linear db {m}×{k}×{n}"), p, &gdb, &db);
                assert_matches(&format!("linear dx {m}×{k}×{n}"), p, &gdx, &dx);
            }
        });
    }

    #[test]
    fn layer_norm_forward_and_backward_match_the_cpu_reference() {
        both(|g| {
            // 30 rows over 4 blocks (the last partial); widths below, at and above a warp.
            for &(rows, n) in &[(30, 32), (30, 45), (9, 7)] {
                let x = values(rows * n, 11, 2.0);
                let gamma = values(n, 12, 1.0);
                let beta = values(n, 13, 1.0);
                let dy = values(rows * n, 14, 1.0);
                let (cpu_y, cache) = cpu_layers::layer_norm(&x, &gamma, &beta, n);
                let (mut dg, mut db) = (vec![0f32; n], vec![0f32; n]);
                let cpu_dx = cpu_layers::layer_norm_backward(&dy, &cache, &gamma, &mut dg, &mut db);
                let run = || -> Result<_> {
                    let (tx, tg, tb) = (g.upload(&x)?, g.upload(&gamma)?, g.upload(&beta)?);
                    let (y, c) = layer_norm(&g, &tx, (&tg).into(), (&tb).into(), rows, n)?;
                    let (tdg, tdb) = (g.zeros_f32(n)?, g.zeros_f32(n)?);
                    let dx = layer_norm_backward(
                        &g,
                        &g.upload_f32(&dy)?,
                        &tx,
                        (&tg).into(),
                        &c,
                        (&tdg).into(),
                        (&tdb).into(),
                        rows,
                        n,
                    )?;
                    Ok((
                        g.download(&y)?,
                        g.download(&dx)?,
                        g.download(&tdg)?,
                        g.download(&tdb)?,
                    ))
                };
                let (y, dx, gdg, gdb) = run().expect("the shim runs the kernels");
                let p = g.precision;
                assert_matches(&format!("layer norm y {rows}×{n}"), p, &y, &cpu_y);
                assert_matches(&format!("layer norm dx {rows}×{n}"), p, &dx, &cpu_dx);
                assert_matches(&format!("layer norm dγ {rows}×{n}"), p, &gdg, &dg);
                assert_matches(&format!("layer norm dβ {rows}×{n}"), p, &gdb, &db);
            }
        });
    }
}
