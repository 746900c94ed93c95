//! The Model role's implementations: SGD steps by hand, softmax regression against the reference job, MLP gradients against finite differences, state round trips and every refusal.
// Test helpers unwrap: a failure there is a broken fixture, reported by the panic.
#![allow(clippy::unwrap_used)]

use nodeflow::{
    digits, shuffle_order, Dataset, Mlp, Model, ModelError, NamedTensor, Sgd, SoftmaxRegression,
    SplitMix64, Tensor,
};
use serde_json::Value;

// ---- helpers ---------------------------------------------------------------

fn sgd(lr: f32) -> Sgd {
    Sgd::new(lr).unwrap()
}

fn features(rows: usize, cols: usize, values: &[f32]) -> Tensor {
    Tensor::from_f32(vec![rows, cols], values.to_vec()).unwrap()
}

fn labels(values: &[i64]) -> Tensor {
    Tensor::from_i64(vec![values.len()], values.to_vec()).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().unwrap()
}

/// The named tensors as (name, shape, bits), to compare bit for bit.
fn bits(named: &[NamedTensor]) -> Vec<(String, Vec<usize>, Vec<u32>)> {
    named
        .iter()
        .map(|(n, t)| {
            let b = values(t).iter().map(|v| v.to_bits()).collect();
            (n.clone(), t.shape().to_vec(), b)
        })
        .collect()
}

fn param(model: &dyn Model, name: &str) -> Vec<f32> {
    let (_, t) = model
        .parameters()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap();
    values(&t)
}

/// Three well separated clusters in 2-D (a linearly separable problem).
fn clusters() -> (Tensor, Tensor) {
    let centres = [(2.0, 0.0), (-1.0, 1.7), (-1.0, -1.7)];
    let mut rng = SplitMix64::new(7);
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for i in 0..60 {
        let c = i % 3;
        let jitter =
            |rng: &mut SplitMix64| ((rng.next_u64() >> 40) as f32 / 16_777_216.0 - 0.5) * 0.6;
        xs.push(centres[c].0 + jitter(&mut rng));
        xs.push(centres[c].1 + jitter(&mut rng));
        ys.push(c as i64);
    }
    (features(60, 2, &xs), labels(&ys))
}

/// The reference FedAvg job (a copy of `shared/reference/fedavg-digits/job.json`).
fn job() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/fedavg_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn positions(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// The reference job's train and test sets, pixels scaled by 1/16.
fn reference_split(job: &Value) -> (Dataset, Dataset) {
    let mut all = digits();
    all.scale_features(job["feature_scale"].as_f64().unwrap() as f32)
        .unwrap();
    all.train_test_split(
        &positions(&job["train_rows"]),
        &positions(&job["test_rows"]),
    )
    .unwrap()
}

// ---- Sgd ---------------------------------------------------------------------

#[test]
fn sgd_defaults_and_accessors() {
    let s = sgd(0.5);
    assert_eq!((s.lr(), s.momentum(), s.weight_decay()), (0.5, 0.0, 0.0));
    assert!(!s.has_velocity());
    let s = s
        .with_momentum(0.9)
        .unwrap()
        .with_weight_decay(0.01)
        .unwrap();
    assert_eq!((s.lr(), s.momentum(), s.weight_decay()), (0.5, 0.9, 0.01));
    assert!(s.has_velocity());
}

#[test]
fn sgd_plain_step_is_exactly_w_minus_lr_g() {
    let s = sgd(0.1);
    let mut w = vec![1.0f32, -0.3, 7.25];
    let g = [0.7f32, 1e-3, -2.0];
    s.update(&mut w, &g, None).unwrap();
    for (i, (&w0, &g)) in [1.0f32, -0.3, 7.25].iter().zip(&g).enumerate() {
        assert_eq!(w[i].to_bits(), (w0 - 0.1f32 * g).to_bits());
    }
}

#[test]
fn sgd_momentum_and_weight_decay_by_hand() {
    // lr 0.5, μ 0.5, λ 0.25, w = [1, −2], g = [0.5, 0.25] twice (all dyadic, so exact).
    let s = sgd(0.5)
        .with_momentum(0.5)
        .unwrap()
        .with_weight_decay(0.25)
        .unwrap();
    let mut w = vec![1.0f32, -2.0];
    let mut v = vec![0.0f32, 0.0];
    let g = [0.5f32, 0.25];
    // d = g + λw = [0.75, −0.25]; v = d; w = w − 0.5·v.
    s.update(&mut w, &g, Some(&mut v)).unwrap();
    assert_eq!(v, [0.75, -0.25]);
    assert_eq!(w, [0.625, -1.875]);
    // d = [0.5 + 0.15625, 0.25 − 0.46875]; v = 0.5·v + d; w = w − 0.5·v.
    s.update(&mut w, &g, Some(&mut v)).unwrap();
    assert_eq!(v, [1.03125, -0.34375]);
    assert_eq!(w, [0.109375, -1.703125]);

    // Weight decay alone: w = w − lr·(g + λw) = 1 − 0.5·(0.5 + 0.25) = 0.625.
    let s = sgd(0.5).with_weight_decay(0.25).unwrap();
    let mut w = vec![1.0f32];
    s.update(&mut w, &[0.5], None).unwrap();
    assert_eq!(w, [0.625]);
}

#[test]
fn sgd_refusals() {
    for lr in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(Sgd::new(lr), Err(ModelError::Config(_))),
            "lr {lr}"
        );
    }
    for mu in [1.0, 1.5, -0.1, f32::NAN] {
        let r = sgd(0.1).with_momentum(mu);
        assert!(matches!(r, Err(ModelError::Config(_))), "momentum {mu}");
    }
    for wd in [-0.1, f32::NAN, f32::INFINITY] {
        let r = sgd(0.1).with_weight_decay(wd);
        assert!(matches!(r, Err(ModelError::Config(_))), "weight decay {wd}");
    }
    let plain = sgd(0.1);
    let heavy = sgd(0.1).with_momentum(0.9).unwrap();
    let mut w = vec![1.0f32, 2.0];
    let shape = |r: Result<(), ModelError>| matches!(r, Err(ModelError::Shape { .. }));
    assert!(shape(plain.update(&mut w, &[1.0], None)));
    assert!(shape(plain.update(
        &mut w,
        &[1.0, 1.0],
        Some(&mut [0.0, 0.0])
    )));
    assert!(shape(heavy.update(&mut w, &[1.0, 1.0], None)));
    assert!(shape(heavy.update(&mut w, &[1.0, 1.0], Some(&mut [0.0]))));
    assert_eq!(w, [1.0, 2.0], "a refused update writes nothing");
}

// ---- softmax regression ----------------------------------------------------------

#[test]
fn softmax_single_step_by_hand() {
    // x = [[1, 2], [3, −1]], y = [0, 0], zero init, lr 0.5.
    // z = 0 so p = ½ everywhere; p − onehot = [[−½, ½], [−½, ½]]; dz = that / 2.
    // dW = xᵀ·dz = [[−1, 1], [−0.25, 0.25]]; db = [−0.5, 0.5].
    let mut m = SoftmaxRegression::new(2, 2, sgd(0.5)).unwrap();
    assert_eq!((m.kind(), m.features(), m.classes()), ("softmax", 2, 2));
    let x = features(2, 2, &[1.0, 2.0, 3.0, -1.0]);
    let y = labels(&[0, 0]);
    let (loss, grads) = m.gradients(&x, &y).unwrap();
    assert_eq!(loss, std::f32::consts::LN_2);
    assert_eq!(grads[0].0, "W");
    assert_eq!(values(&grads[0].1), [-1.0, 1.0, -0.25, 0.25]);
    assert_eq!(values(&grads[1].1), [-0.5, 0.5]);

    let loss = m.train_batch(&x, &y).unwrap();
    assert_eq!(loss, std::f32::consts::LN_2, "the loss before the step");
    assert_eq!(param(&m, "W"), [0.5, -0.5, 0.125, -0.125]);
    assert_eq!(param(&m, "b"), [0.25, -0.25]);
    let names: Vec<String> = m.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["W", "b"]);
    assert_eq!(m.state().len(), 2, "no velocities without momentum");
}

#[test]
fn softmax_momentum_and_weight_decay_follow_the_formula() {
    let base = sgd(0.3)
        .with_momentum(0.8)
        .unwrap()
        .with_weight_decay(0.05)
        .unwrap();
    let mut m = SoftmaxRegression::with_seed(3, 4, base, 11).unwrap();
    let x = features(3, 3, &[0.5, -1.0, 2.0, 1.5, 0.25, -0.75, -2.0, 1.0, 0.5]);
    let y = labels(&[3, 0, 1]);
    let w0 = bits(&m.parameters());
    let (_, g1) = m.gradients(&x, &y).unwrap();
    let p0 = m.parameters();
    m.train_batch(&x, &y).unwrap();
    // Step 1 by the formula, in f32 in the same order: d = g + λw; v = d; w −= lr·v.
    let mut v1 = Vec::new();
    for ((_, p), (_, g)) in p0.iter().zip(&g1) {
        let (p, g) = (values(p), values(g));
        let v: Vec<f32> = p
            .iter()
            .zip(&g)
            .map(|(&w, &g)| 0.8 * 0.0 + (g + 0.05 * w))
            .collect();
        let expect: Vec<f32> = p.iter().zip(&v).map(|(&w, &v)| w - 0.3 * v).collect();
        v1.push(v);
        let name = if v1.len() == 1 { "W" } else { "b" };
        assert_eq!(param(&m, name), expect, "step 1 of {name}");
    }
    // The velocities are in the state, after the parameters.
    let state = m.state();
    let names: Vec<&str> = state.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["W", "b", "v:W", "v:b"]);
    assert_eq!(values(&state[2].1), v1[0]);
    assert_eq!(values(&state[3].1), v1[1]);
    // Step 2: v = μ·v + (g + λw); w −= lr·v.
    let p1 = m.parameters();
    let (_, g2) = m.gradients(&x, &y).unwrap();
    m.train_batch(&x, &y).unwrap();
    for (i, ((_, p), (name, g))) in p1.iter().zip(&g2).enumerate() {
        let (p, g) = (values(p), values(g));
        let v: Vec<f32> = p
            .iter()
            .zip(&g)
            .zip(&v1[i])
            .map(|((&w, &g), &v)| 0.8 * v + (g + 0.05 * w))
            .collect();
        let expect: Vec<f32> = p.iter().zip(&v).map(|(&w, &v)| w - 0.3 * v).collect();
        assert_eq!(param(&m, name), expect, "step 2 of {name}");
    }
    assert_ne!(bits(&m.parameters()), w0);

    // Momentum changes the second step and weight decay the first.
    let mut plain = SoftmaxRegression::with_seed(3, 4, sgd(0.3), 11).unwrap();
    let mut decay =
        SoftmaxRegression::with_seed(3, 4, sgd(0.3).with_weight_decay(0.05).unwrap(), 11).unwrap();
    plain.train_batch(&x, &y).unwrap();
    decay.train_batch(&x, &y).unwrap();
    assert_ne!(param(&plain, "W"), param(&decay, "W"));
}

#[test]
fn softmax_with_seed_is_small_deterministic_and_seed_dependent() {
    let a = SoftmaxRegression::with_seed(64, 10, sgd(0.1), 1).unwrap();
    let b = SoftmaxRegression::with_seed(64, 10, sgd(0.1), 1).unwrap();
    let c = SoftmaxRegression::with_seed(64, 10, sgd(0.1), 2).unwrap();
    assert_eq!(bits(&a.parameters()), bits(&b.parameters()));
    assert_ne!(bits(&a.parameters()), bits(&c.parameters()));
    let w = param(&a, "W");
    assert!(w.iter().all(|v| (-0.01..0.01).contains(v)));
    assert!(w.iter().any(|&v| v != 0.0));
    assert!(param(&a, "b").iter().all(|&v| v == 0.0));
    let zero = SoftmaxRegression::new(64, 10, sgd(0.1)).unwrap();
    assert!(param(&zero, "W").iter().all(|&v| v == 0.0));
}

#[test]
fn softmax_loss_decreases_on_separable_data() {
    let (x, y) = clusters();
    let mut m = SoftmaxRegression::new(2, 3, sgd(0.5)).unwrap();
    let before = m.evaluate(&x, &y).unwrap();
    assert!((before.loss - 3f32.ln()).abs() < 1e-6, "zero model: ln 3");
    assert_eq!(before.samples, 60);
    let mut last = f32::INFINITY;
    for step in 0..100 {
        let loss = m.train_batch(&x, &y).unwrap();
        assert!(loss <= last + 1e-6, "full-batch loss rose at step {step}");
        last = loss;
    }
    let after = m.evaluate(&x, &y).unwrap();
    assert!(after.loss < 0.1 * before.loss, "{after:?}");
    assert_eq!(after.accuracy, 1.0);
}

#[test]
fn softmax_steps_match_the_reference_update_in_f64() {
    let job = job();
    let (train, _) = reference_split(&job);
    let (d, c, lr) = (64, 10, 0.5);
    let mut m = SoftmaxRegression::new(d, c, sgd(lr as f32)).unwrap();
    let mut w = vec![0.0f64; d * c];
    let mut b = vec![0.0f64; c];
    let order: Vec<usize> = (0..60).collect();
    for (bx, by) in train.batches(&order, 10).unwrap() {
        m.train_batch(&bx, &by).unwrap();
        // The reference: z = XW + b; p = softmax(z); p[i, y_i] −= 1;
        // W −= lr·Xᵀp/m; b −= lr·Σᵢ pᵢ/m, in f64.
        let xs: Vec<f64> = values(&bx).iter().map(|&v| f64::from(v)).collect();
        let ys = by.to_i64_vec().unwrap();
        let rows = ys.len();
        let mut p = vec![0.0f64; rows * c];
        for i in 0..rows {
            for k in 0..c {
                p[i * c + k] = b[k] + (0..d).map(|f| xs[i * d + f] * w[f * c + k]).sum::<f64>();
            }
            let max = p[i * c..(i + 1) * c]
                .iter()
                .cloned()
                .fold(f64::MIN, f64::max);
            let sum: f64 = p[i * c..(i + 1) * c].iter().map(|z| (z - max).exp()).sum();
            for k in 0..c {
                p[i * c + k] = (p[i * c + k] - max).exp() / sum;
            }
            p[i * c + ys[i] as usize] -= 1.0;
        }
        for f in 0..d {
            for k in 0..c {
                let g: f64 = (0..rows).map(|i| xs[i * d + f] * p[i * c + k]).sum();
                w[f * c + k] -= lr * g / rows as f64;
            }
        }
        for k in 0..c {
            b[k] -= lr * (0..rows).map(|i| p[i * c + k]).sum::<f64>() / rows as f64;
        }
    }
    let close = |ours: &[f32], theirs: &[f64]| {
        ours.iter()
            .zip(theirs)
            .all(|(&a, &e)| (f64::from(a) - e).abs() <= 1e-6 + 1e-5 * e.abs())
    };
    assert!(close(&param(&m, "W"), &w), "W after 6 steps");
    assert!(close(&param(&m, "b"), &b), "b after 6 steps");
}

#[test]
fn softmax_fedavg_rounds_reproduce_the_reference_job() {
    // iid-10, rounds 0..=3: local SGD as the job says, FedAvg by sample count.
    let job = job();
    let (train, test) = reference_split(&job);
    let (tx, ty) = test.to_tensors();
    let clients: Vec<Vec<usize>> = job["partitions"]["iid-10"]
        .as_array()
        .unwrap()
        .iter()
        .map(positions)
        .collect();
    let reference = job["numpy_reference"]["iid-10"].as_array().unwrap();
    let mut global = SoftmaxRegression::new(64, 10, sgd(0.5)).unwrap();
    for round in 0..=3u64 {
        if round > 0 {
            let total: usize = clients.iter().map(Vec::len).sum();
            let mut sum = vec![0.0f64; global.flat().len()];
            for (c, part) in clients.iter().enumerate() {
                let data = train.subset(part).unwrap();
                let mut local = global.clone();
                let order = shuffle_order(data.len(), (round << 40) | ((c as u64) << 16));
                for (bx, by) in data.batches(&order, 10).unwrap() {
                    local.train_batch(&bx, &by).unwrap();
                }
                let share = part.len() as f64 / total as f64;
                for (s, v) in sum.iter_mut().zip(values(&local.flat())) {
                    *s += share * f64::from(v);
                }
            }
            let flat: Vec<f32> = sum.iter().map(|&s| s as f32).collect();
            global
                .load_flat(&Tensor::from_f32(vec![flat.len()], flat).unwrap())
                .unwrap();
        }
        let eval = global.evaluate(&tx, &ty).unwrap();
        let expect = &reference[round as usize];
        let loss = expect["loss"].as_f64().unwrap();
        let accuracy = expect["accuracy"].as_f64().unwrap();
        assert!(
            (f64::from(eval.loss) - loss).abs() < 1e-4,
            "round {round}: loss {} vs {loss}",
            eval.loss
        );
        let correct = (f64::from(eval.accuracy) * 359.0).round();
        assert_eq!(
            correct,
            (accuracy * 359.0).round(),
            "round {round} accuracy"
        );
    }
}

#[test]
fn softmax_centralized_digits_reach_95_percent() {
    let job = job();
    let (train, test) = reference_split(&job);
    let mut m = SoftmaxRegression::new(64, 10, sgd(0.5)).unwrap();
    for epoch in 0..5 {
        let order = shuffle_order(train.len(), epoch);
        for (bx, by) in train.batches(&order, 10).unwrap() {
            m.train_batch(&bx, &by).unwrap();
        }
    }
    let (tx, ty) = test.to_tensors();
    let eval = m.evaluate(&tx, &ty).unwrap();
    assert_eq!(eval.samples, 359);
    assert!(eval.accuracy >= 0.95, "{eval:?}");
}

// ---- MLP -----------------------------------------------------------------------

/// The MLP's loss in f64, from its parameters (ReLU hidden layers, softmax
/// cross-entropy head), written independently of the model.
fn mlp_loss_f64(params: &[Vec<f64>], widths: &[usize], x: &[f64], y: &[i64]) -> f64 {
    let rows = y.len();
    let layers = widths.len() - 1;
    let mut h: Vec<f64> = x.to_vec();
    for l in 0..layers {
        let (fi, fo) = (widths[l], widths[l + 1]);
        let (w, b) = (&params[2 * l], &params[2 * l + 1]);
        let mut a = vec![0.0; rows * fo];
        for i in 0..rows {
            for k in 0..fo {
                let s: f64 = (0..fi).map(|f| h[i * fi + f] * w[f * fo + k]).sum();
                a[i * fo + k] = s + b[k];
                if l + 1 < layers {
                    a[i * fo + k] = a[i * fo + k].max(0.0);
                }
            }
        }
        h = a;
    }
    let c = widths[layers];
    let mut loss = 0.0;
    for i in 0..rows {
        let z = &h[i * c..(i + 1) * c];
        let max = z.iter().cloned().fold(f64::MIN, f64::max);
        let lse = max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss += lse - z[y[i] as usize];
    }
    loss / rows as f64
}

#[test]
fn mlp_gradient_matches_finite_differences() {
    let widths = [3, 4, 5, 3];
    let m = Mlp::new(3, &[4, 5], 3, sgd(0.1), 5).unwrap();
    assert_eq!((m.kind(), m.hidden()), ("mlp", &[4usize, 5][..]));
    let mut rng = SplitMix64::new(99);
    let xs: Vec<f32> = (0..15)
        .map(|_| ((rng.next_u64() >> 40) as f32 / 16_777_216.0 - 0.5) * 4.0)
        .collect();
    let ys = [0i64, 2, 1, 1, 0];
    let (x, y) = (features(5, 3, &xs), labels(&ys));
    let params: Vec<Vec<f64>> = m
        .parameters()
        .iter()
        .map(|(_, t)| values(t).iter().map(|&v| f64::from(v)).collect())
        .collect();
    let x64: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();

    let (loss, grads) = m.gradients(&x, &y).unwrap();
    let reference = mlp_loss_f64(&params, &widths, &x64, &ys);
    assert!(
        (f64::from(loss) - reference).abs() < 1e-5,
        "{loss} vs {reference}"
    );
    assert!((f64::from(m.evaluate(&x, &y).unwrap().loss) - reference).abs() < 1e-5);

    let names: Vec<&str> = grads.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["W0", "b0", "W1", "b1", "W2", "b2"]);
    let eps = 1e-6;
    let mut checked = 0;
    for (p, (name, g)) in grads.iter().enumerate() {
        for (i, &analytic) in values(g).iter().enumerate() {
            let mut plus = params.clone();
            plus[p][i] += eps;
            let mut minus = params.clone();
            minus[p][i] -= eps;
            let numeric = (mlp_loss_f64(&plus, &widths, &x64, &ys)
                - mlp_loss_f64(&minus, &widths, &x64, &ys))
                / (2.0 * eps);
            assert!(
                (f64::from(analytic) - numeric).abs() <= 1e-5 + 1e-3 * numeric.abs(),
                "{name}[{i}]: analytic {analytic}, numeric {numeric}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 3 * 4 + 4 + 4 * 5 + 5 + 5 * 3 + 3);
    assert!(grads
        .iter()
        .any(|(_, g)| values(g).iter().any(|v| v.abs() > 1e-3)));
}

#[test]
fn mlp_init_is_he_uniform_and_seeded() {
    let a = Mlp::new(16, &[8], 4, sgd(0.1), 3).unwrap();
    let b = Mlp::new(16, &[8], 4, sgd(0.1), 3).unwrap();
    let c = Mlp::new(16, &[8], 4, sgd(0.1), 4).unwrap();
    assert_eq!(bits(&a.parameters()), bits(&b.parameters()));
    assert_ne!(bits(&a.parameters()), bits(&c.parameters()));
    let shapes: Vec<(String, Vec<usize>)> = a
        .parameters()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("W0".to_owned(), vec![16, 8]),
            ("b0".to_owned(), vec![8]),
            ("W1".to_owned(), vec![8, 4]),
            ("b1".to_owned(), vec![4]),
        ]
    );
    let (l0, l1) = ((6.0f32 / 16.0).sqrt(), (6.0f32 / 8.0).sqrt());
    let w0 = param(&a, "W0");
    assert!(w0.iter().all(|v| (-l0..l0).contains(v)));
    assert!(
        w0.iter().any(|v| v.abs() > l0 / 2.0),
        "spread over the range"
    );
    assert!(param(&a, "W1").iter().all(|v| (-l1..l1).contains(v)));
    assert!(param(&a, "b0").iter().all(|&v| v == 0.0));
    assert_eq!(a.sgd(), sgd(0.1));
}

#[test]
fn mlp_loss_decreases_on_separable_data() {
    let (x, y) = clusters();
    let mut m = Mlp::new(2, &[8, 8], 3, sgd(0.2).with_momentum(0.5).unwrap(), 1).unwrap();
    let before = m.evaluate(&x, &y).unwrap();
    for _ in 0..150 {
        m.train_batch(&x, &y).unwrap();
    }
    let after = m.evaluate(&x, &y).unwrap();
    assert!(after.loss < 0.1 * before.loss, "{before:?} -> {after:?}");
    assert_eq!(after.accuracy, 1.0);
}

#[test]
fn mlp_without_hidden_layers_is_softmax_regression() {
    let (x, y) = clusters();
    let mut mlp = Mlp::new(2, &[], 3, sgd(0.5), 0).unwrap();
    let mut soft = SoftmaxRegression::new(2, 3, sgd(0.5)).unwrap();
    mlp.load_flat(&soft.flat()).unwrap();
    for _ in 0..5 {
        assert_eq!(
            mlp.train_batch(&x, &y).unwrap(),
            soft.train_batch(&x, &y).unwrap()
        );
    }
    assert_eq!(values(&mlp.flat()), values(&soft.flat()));
}

// ---- flat, state, determinism ------------------------------------------------------

#[test]
fn flat_round_trip() {
    let a = Mlp::new(5, &[4], 3, sgd(0.1), 1).unwrap();
    let mut b = Mlp::new(5, &[4], 3, sgd(0.1), 2).unwrap();
    let flat = a.flat();
    assert_eq!(flat.shape(), [5 * 4 + 4 + 4 * 3 + 3]);
    let expect: Vec<f32> = a.parameters().iter().flat_map(|(_, t)| values(t)).collect();
    assert_eq!(values(&flat), expect, "row-major, in parameter order");
    b.load_flat(&flat).unwrap();
    assert_eq!(bits(&a.parameters()), bits(&b.parameters()));

    let mut s = SoftmaxRegression::new(2, 2, sgd(0.1)).unwrap();
    s.load_flat(&Tensor::from_f32(vec![6], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap())
        .unwrap();
    assert_eq!(param(&s, "W"), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(param(&s, "b"), [5.0, 6.0]);
    assert!(matches!(
        s.load_flat(&Tensor::from_f32(vec![5], vec![0.0; 5]).unwrap()),
        Err(ModelError::Shape { .. })
    ));
    assert!(matches!(
        s.load_flat(&Tensor::from_f32(vec![6], vec![f32::NAN; 6]).unwrap()),
        Err(ModelError::NotFinite { .. })
    ));
    assert_eq!(
        param(&s, "W"),
        [1.0, 2.0, 3.0, 4.0],
        "unchanged after refusals"
    );
}

#[test]
fn load_keeps_velocities() {
    let (x, y) = clusters();
    let mut m = SoftmaxRegression::new(2, 3, sgd(0.1).with_momentum(0.9).unwrap()).unwrap();
    m.train_batch(&x, &y).unwrap();
    let velocities = bits(&m.state()[2..]);
    m.load(&SoftmaxRegression::new(2, 3, sgd(0.1)).unwrap().parameters())
        .unwrap();
    assert!(param(&m, "W").iter().all(|&v| v == 0.0));
    assert_eq!(bits(&m.state()[2..]), velocities);
}

/// Trains `a` some steps, restores its state into `b`, then one more
/// identical step on both must give the same bits.
fn restore_then_step(mut a: Box<dyn Model>, mut b: Box<dyn Model>) {
    let (x, y) = clusters();
    for _ in 0..3 {
        a.train_batch(&x, &y).unwrap();
    }
    b.restore(&a.state()).unwrap();
    assert_eq!(bits(&a.state()), bits(&b.state()));
    let (la, lb) = (
        a.train_batch(&x, &y).unwrap(),
        b.train_batch(&x, &y).unwrap(),
    );
    assert_eq!(la.to_bits(), lb.to_bits());
    assert_eq!(bits(&a.state()), bits(&b.state()));
}

#[test]
fn state_restore_continues_bit_identically() {
    let heavy = || {
        sgd(0.1)
            .with_momentum(0.9)
            .unwrap()
            .with_weight_decay(0.01)
            .unwrap()
    };
    restore_then_step(
        Box::new(SoftmaxRegression::new(2, 3, heavy()).unwrap()),
        Box::new(SoftmaxRegression::with_seed(2, 3, heavy(), 9).unwrap()),
    );
    restore_then_step(
        Box::new(Mlp::new(2, &[6, 4], 3, heavy(), 1).unwrap()),
        Box::new(Mlp::new(2, &[6, 4], 3, heavy(), 2).unwrap()),
    );
    restore_then_step(
        Box::new(Mlp::new(2, &[6], 3, sgd(0.1), 1).unwrap()),
        Box::new(Mlp::new(2, &[6], 3, sgd(0.1), 2).unwrap()),
    );
    let m = Mlp::new(2, &[6], 3, heavy(), 1).unwrap();
    let names: Vec<String> = m.state().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["W0", "b0", "W1", "b1", "v:W0", "v:b0", "v:W1", "v:b1"]
    );
}

#[test]
fn training_is_deterministic() {
    let (x, y) = clusters();
    let run = || {
        let mut m = Mlp::new(2, &[7], 3, sgd(0.3).with_momentum(0.6).unwrap(), 42).unwrap();
        for _ in 0..10 {
            m.train_batch(&x, &y).unwrap();
        }
        bits(&m.state())
    };
    assert_eq!(run(), run());
}

// ---- refusals ----------------------------------------------------------------------

#[test]
fn constructors_refuse_bad_configs() {
    let config = |r: Result<(), ModelError>| matches!(r, Err(ModelError::Config(_)));
    let soft = |f, c| SoftmaxRegression::new(f, c, sgd(0.1)).map(|_| ());
    let seeded = |f, c| SoftmaxRegression::with_seed(f, c, sgd(0.1), 0).map(|_| ());
    let mlp = |f, h: &[usize], c| Mlp::new(f, h, c, sgd(0.1), 0).map(|_| ());
    assert!(config(soft(0, 3)));
    assert!(config(soft(3, 1)));
    assert!(config(soft(3, 0)));
    assert!(config(seeded(0, 3)));
    assert!(config(soft(usize::MAX, 2)), "size overflow");
    assert!(config(soft(1 << 40, 2)), "past the tensor cap");
    assert!(config(mlp(0, &[4], 3)));
    assert!(config(mlp(3, &[4, 0], 3)));
    assert!(config(mlp(3, &[4], 1)));
    assert!(config(mlp(3, &[usize::MAX, 2], 3)));
    assert!(soft(1, 2).is_ok() && mlp(1, &[1], 2).is_ok());
}

/// Every refused batch leaves the model's state unchanged.
fn check_batch_refusals(m: &mut dyn Model) {
    let before = bits(&m.state());
    let f = m.features();
    let good_x = features(2, f, &vec![0.5; 2 * f]);
    let good_y = labels(&[0, 1]);
    let shape = |r: Result<f32, ModelError>, what: &str| match r {
        Err(ModelError::Shape { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected a Shape refusal of {what}, got {other:?}"),
    };
    let x_i64 = Tensor::from_i64(vec![2, f], vec![0; 2 * f]).unwrap();
    shape(m.train_batch(&x_i64, &good_y), "batch features");
    let x_rank1 = Tensor::from_f32(vec![f], vec![0.0; f]).unwrap();
    shape(m.train_batch(&x_rank1, &labels(&[0])), "batch features");
    let x_wide = features(2, f + 1, &vec![0.0; 2 * (f + 1)]);
    shape(m.train_batch(&x_wide, &good_y), "batch features");
    let x_empty = Tensor::from_f32(vec![0, f], vec![]).unwrap();
    shape(m.train_batch(&x_empty, &labels(&[])), "batch features");
    let y_f32 = Tensor::from_f32(vec![2], vec![0.0, 1.0]).unwrap();
    shape(m.train_batch(&good_x, &y_f32), "batch labels");
    shape(m.train_batch(&good_x, &labels(&[0])), "batch labels");
    let y_2d = Tensor::from_i64(vec![2, 1], vec![0, 1]).unwrap();
    shape(m.train_batch(&good_x, &y_2d), "batch labels");
    let classes = m.classes();
    assert_eq!(
        m.train_batch(&good_x, &labels(&[0, -1])),
        Err(ModelError::Label {
            label: -1,
            row: 1,
            classes
        })
    );
    assert_eq!(
        m.train_batch(&good_x, &labels(&[classes as i64, 0])),
        Err(ModelError::Label {
            label: classes as i64,
            row: 0,
            classes
        })
    );
    assert!(matches!(
        m.evaluate(&x_wide, &good_y),
        Err(ModelError::Shape { .. })
    ));
    assert!(matches!(
        m.evaluate(&x_empty, &labels(&[])),
        Err(ModelError::Shape { .. })
    ));
    assert!(matches!(
        m.evaluate(&good_x, &labels(&[0, 99])),
        Err(ModelError::Label { .. })
    ));
    assert_eq!(bits(&m.state()), before, "refused batches change nothing");
    assert!(
        m.train_batch(&good_x, &good_y).is_ok(),
        "the good batch trains"
    );
}

#[test]
fn train_and_evaluate_refuse_bad_batches() {
    let heavy = sgd(0.1).with_momentum(0.5).unwrap();
    check_batch_refusals(&mut SoftmaxRegression::new(3, 4, heavy).unwrap());
    check_batch_refusals(&mut Mlp::new(3, &[5], 4, heavy, 1).unwrap());
    let m = Mlp::new(3, &[5], 4, heavy, 1).unwrap();
    let bad = m.gradients(&features(1, 2, &[0.0, 0.0]), &labels(&[0]));
    assert!(matches!(bad, Err(ModelError::Shape { .. })));
}

/// Every refused load or restore leaves the model's state unchanged.
fn check_load_refusals(m: &mut dyn Model) {
    let before = bits(&m.state());
    let good = m.parameters();
    let refuse_load = |m: &mut dyn Model, p: Vec<NamedTensor>| m.load(&p).unwrap_err();
    let is_shape = |e: &ModelError| matches!(e, ModelError::Shape { .. });

    // Too few, too many.
    assert!(is_shape(&refuse_load(m, good[..1].to_vec())));
    let mut extra = good.clone();
    extra.push(("extra".into(), Tensor::scalar_f32(0.0)));
    assert!(is_shape(&refuse_load(m, extra)));
    // A wrong name, and two names swapped.
    let mut renamed = good.clone();
    renamed[1].0 = "bias".into();
    assert!(is_shape(&refuse_load(m, renamed)));
    let mut swapped = good.clone();
    swapped.swap(0, 1);
    assert!(is_shape(&refuse_load(m, swapped)));
    // A wrong shape, a wrong dtype.
    let mut reshaped = good.clone();
    let len = reshaped[0].1.len();
    reshaped[0].1 = Tensor::from_f32(vec![len], vec![0.0; len]).unwrap();
    assert!(is_shape(&refuse_load(m, reshaped)));
    let mut retyped = good.clone();
    let shape = retyped[1].1.shape().to_vec();
    retyped[1].1 = Tensor::from_i64(shape.clone(), vec![0; retyped[1].1.len()]).unwrap();
    assert!(is_shape(&refuse_load(m, retyped)));
    // NaN and infinity.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut poisoned = good.clone();
        let mut v = values(&poisoned[1].1);
        v[0] = bad;
        poisoned[1].1 = Tensor::from_f32(shape.clone(), v).unwrap();
        let name = poisoned[1].0.clone();
        assert_eq!(
            refuse_load(m, poisoned),
            ModelError::NotFinite {
                what: format!("tensor {name:?}")
            }
        );
    }
    // Restore wants the velocities too, finite.
    let state = m.state();
    assert!(
        is_shape(&m.restore(&good).unwrap_err()),
        "velocities missing"
    );
    let mut poisoned = state.clone();
    let last = poisoned.len() - 1;
    let (shape, n) = (poisoned[last].1.shape().to_vec(), poisoned[last].1.len());
    poisoned[last].1 = Tensor::from_f32(shape, vec![f32::NAN; n]).unwrap();
    assert!(matches!(
        m.restore(&poisoned),
        Err(ModelError::NotFinite { .. })
    ));
    let mut renamed = state.clone();
    renamed[last].0 = "velocity".into();
    assert!(is_shape(&m.restore(&renamed).unwrap_err()));
    assert_eq!(bits(&m.state()), before, "refused loads change nothing");
    m.load(&good).unwrap();
    m.restore(&state).unwrap();
}

#[test]
fn load_and_restore_refuse_bad_tensors() {
    let heavy = sgd(0.1).with_momentum(0.5).unwrap();
    let (x, y) = clusters();
    let mut soft = SoftmaxRegression::with_seed(2, 3, heavy, 3).unwrap();
    soft.train_batch(&x, &y).unwrap();
    check_load_refusals(&mut soft);
    let mut mlp = Mlp::new(2, &[4], 3, heavy, 3).unwrap();
    mlp.train_batch(&x, &y).unwrap();
    check_load_refusals(&mut mlp);
    // Without momentum a state with velocities is refused.
    let mut plain = SoftmaxRegression::new(2, 3, sgd(0.1)).unwrap();
    assert!(matches!(
        plain.restore(&soft.state()),
        Err(ModelError::Shape { .. })
    ));
}

#[test]
fn non_finite_steps_are_refused_and_leave_the_parameters() {
    // A NaN feature makes the loss NaN.
    let mut m = SoftmaxRegression::with_seed(2, 2, sgd(0.1), 1).unwrap();
    let before = bits(&m.state());
    let r = m.train_batch(&features(1, 2, &[f32::NAN, 1.0]), &labels(&[0]));
    assert!(matches!(r, Err(ModelError::NotFinite { what }) if what.contains("loss")));
    assert_eq!(bits(&m.state()), before);

    // A finite loss whose step overflows: from zero the loss is ln 2, but
    // lr·dW ≈ 1e38 · 2.5e29 is infinite.
    let mut m = SoftmaxRegression::new(2, 2, sgd(1e38).with_momentum(0.5).unwrap()).unwrap();
    let before = bits(&m.state());
    let r = m.train_batch(&features(2, 2, &[1e30, 0.0, 1.0, 0.0]), &labels(&[0, 1]));
    match r {
        Err(ModelError::NotFinite { what }) => assert!(what.contains("\"W\""), "{what}"),
        other => panic!("expected NotFinite, got {other:?}"),
    }
    assert_eq!(bits(&m.state()), before);

    // The same for an MLP fed an infinite feature.
    let mut m = Mlp::new(2, &[3], 2, sgd(0.1), 1).unwrap();
    let before = bits(&m.state());
    let r = m.train_batch(&features(1, 2, &[f32::INFINITY, 1.0]), &labels(&[1]));
    assert!(matches!(r, Err(ModelError::NotFinite { .. })), "{r:?}");
    assert_eq!(bits(&m.state()), before);
}
