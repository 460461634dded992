//! Element-wise and row-wise pieces shared by the blocks, each with its backward pass:
//! LayerNorm, ELU, sigmoid, ReLU, LeakyReLU, row softmax, GLU and dropout.

use super::real::Real;

/// LayerNorm's ε.
pub const LN_EPS: f64 = 1e-5;

/// What LayerNorm's backward needs: the normalised input and 1/σ per row.
#[derive(Debug, Clone, Default)]
pub struct LayerNormCache<T> {
    pub xhat: Vec<T>,
    pub rstd: Vec<T>,
}

/// `y = (x − μ)/σ · g + b` per row of `n` (σ over the row, biased, with ε).
pub fn layer_norm<T: Real>(x: &[T], g: &[T], b: &[T], n: usize) -> (Vec<T>, LayerNormCache<T>) {
    assert_eq!(g.len(), n);
    assert_eq!(b.len(), n);
    let m = x.len() / n;
    let mut y = vec![T::zero(); x.len()];
    let mut xhat = vec![T::zero(); x.len()];
    let mut rstd = vec![T::zero(); m];
    let nn = T::c(n as f64);
    for r in 0..m {
        let row = &x[r * n..(r + 1) * n];
        let mean = row.iter().copied().sum::<T>() / nn;
        let var = row.iter().map(|v| (*v - mean) * (*v - mean)).sum::<T>() / nn;
        let rs = T::one() / (var + T::c(LN_EPS)).sqrt();
        rstd[r] = rs;
        for j in 0..n {
            let h = (row[j] - mean) * rs;
            xhat[r * n + j] = h;
            y[r * n + j] = h * g[j] + b[j];
        }
    }
    (y, LayerNormCache { xhat, rstd })
}

/// Backward of [`layer_norm`]: `dg += Σ dy·x̂`, `db += Σ dy`, returns `dx`.
pub fn layer_norm_backward<T: Real>(
    dy: &[T],
    cache: &LayerNormCache<T>,
    g: &[T],
    dg: &mut [T],
    db: &mut [T],
) -> Vec<T> {
    let n = g.len();
    let m = dy.len() / n;
    let nn = T::c(n as f64);
    let mut dx = vec![T::zero(); dy.len()];
    for r in 0..m {
        let dyr = &dy[r * n..(r + 1) * n];
        let xh = &cache.xhat[r * n..(r + 1) * n];
        let mut sum_d = T::zero();
        let mut sum_dx = T::zero();
        for j in 0..n {
            dg[j] += dyr[j] * xh[j];
            db[j] += dyr[j];
            let d = dyr[j] * g[j];
            sum_d += d;
            sum_dx += d * xh[j];
        }
        let rs = cache.rstd[r];
        for j in 0..n {
            let d = dyr[j] * g[j];
            dx[r * n + j] = rs * (d - sum_d / nn - xh[j] * sum_dx / nn);
        }
    }
    dx
}

pub fn sigmoid<T: Real>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// ELU with α = 1.
pub fn elu<T: Real>(x: T) -> T {
    if x > T::zero() { x } else { x.exp_m1() }
}

/// d ELU / dx, from the input.
pub fn elu_grad<T: Real>(x: T) -> T {
    if x > T::zero() { T::one() } else { x.exp() }
}

pub fn relu<T: Real>(x: T) -> T {
    if x > T::zero() { x } else { T::zero() }
}

pub fn relu_grad<T: Real>(x: T) -> T {
    if x > T::zero() { T::one() } else { T::zero() }
}

/// LeakyReLU with the given negative slope (GATv2 uses 0.2).
pub fn leaky_relu<T: Real>(x: T, slope: T) -> T {
    if x > T::zero() { x } else { x * slope }
}

pub fn leaky_relu_grad<T: Real>(x: T, slope: T) -> T {
    if x > T::zero() { T::one() } else { slope }
}

/// Softmax over each row of `n`, in place.
pub fn softmax_rows<T: Real>(x: &mut [T], n: usize) {
    for row in x.chunks_mut(n) {
        softmax(row);
    }
}

/// Softmax of one slice, in place (max-shifted).
pub fn softmax<T: Real>(row: &mut [T]) {
    let max = row.iter().copied().fold(T::neg_infinity(), T::max);
    let mut sum = T::zero();
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Backward of softmax from its output `y`: `dx = y ⊙ (dy − Σ dy·y)`, one slice.
pub fn softmax_backward<T: Real>(y: &[T], dy: &[T]) -> Vec<T> {
    let dot: T = y.iter().zip(dy).map(|(a, b)| *a * *b).sum();
    y.iter().zip(dy).map(|(a, b)| *a * (*b - dot)).collect()
}

/// GLU over rows of `2n`: `u₁ ⊙ σ(u₂)`, giving rows of `n`.
pub fn glu<T: Real>(u: &[T], n: usize) -> Vec<T> {
    let m = u.len() / (2 * n);
    let mut y = vec![T::zero(); m * n];
    for r in 0..m {
        for j in 0..n {
            y[r * n + j] = u[r * 2 * n + j] * sigmoid(u[r * 2 * n + n + j]);
        }
    }
    y
}

/// Backward of [`glu`]: `du` (rows of `2n`) from `dy` (rows of `n`) and the input `u`.
pub fn glu_backward<T: Real>(u: &[T], dy: &[T], n: usize) -> Vec<T> {
    let m = dy.len() / n;
    let mut du = vec![T::zero(); m * 2 * n];
    for r in 0..m {
        for j in 0..n {
            let a = u[r * 2 * n + j];
            let s = sigmoid(u[r * 2 * n + n + j]);
            let d = dy[r * n + j];
            du[r * 2 * n + j] = d * s;
            du[r * 2 * n + n + j] = d * a * s * (T::one() - s);
        }
    }
    du
}

/// Applies a dropout mask in place (entries 0 or 1/(1−p), drawn by the caller from the
/// training seed; `None` in evaluation). The backward pass applies the same mask.
pub fn apply_mask<T: Real>(x: &mut [T], mask: Option<&[T]>) {
    if let Some(mask) = mask {
        assert_eq!(
            mask.len(),
            x.len(),
            "dropout mask does not match its tensor"
        );
        for (v, m) in x.iter_mut().zip(mask) {
            *v *= *m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{assert_close_grads, numeric_grad, rand_vec};
    use super::*;

    #[test]
    fn layer_norm_gradient() {
        let (m, n) = (3, 5);
        let x = rand_vec(m * n, 1, 1.0);
        let g = rand_vec(n, 2, 1.0);
        let b = rand_vec(n, 3, 1.0);
        let r = rand_vec(m * n, 4, 1.0);
        let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
            let (y, _) = layer_norm(x, g, b, n);
            y.iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let (_, cache) = layer_norm(&x, &g, &b, n);
        let mut dg = vec![0.0; n];
        let mut db = vec![0.0; n];
        let dx = layer_norm_backward(&r, &cache, &g, &mut dg, &mut db);
        assert_close_grads("ln dx", &dx, &numeric_grad(&x, |x| loss(x, &g, &b)));
        assert_close_grads("ln dg", &dg, &numeric_grad(&g, |g| loss(&x, g, &b)));
        assert_close_grads("ln db", &db, &numeric_grad(&b, |b| loss(&x, &g, b)));
    }

    #[test]
    fn softmax_and_glu_gradients() {
        let x = rand_vec(6, 5, 2.0);
        let r = rand_vec(6, 6, 1.0);
        let loss = |x: &[f64]| -> f64 {
            let mut y = x.to_vec();
            softmax(&mut y);
            y.iter().zip(&r).map(|(a, b)| a * b).sum()
        };
        let mut y = x.clone();
        softmax(&mut y);
        assert_close_grads(
            "softmax",
            &softmax_backward(&y, &r),
            &numeric_grad(&x, loss),
        );

        let u = rand_vec(12, 7, 2.0);
        let loss = |u: &[f64]| -> f64 { glu(u, 3).iter().zip(&r).map(|(a, b)| a * b).sum() };
        assert_close_grads("glu", &glu_backward(&u, &r, 3), &numeric_grad(&u, loss));
    }
}
