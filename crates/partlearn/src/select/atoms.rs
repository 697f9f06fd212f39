//! Stability of the atoms over seeded runs (METHODS.md §11.4, cNMF: Kotliar et al., eLife 2019):
//! the atoms of all runs, each scaled to unit norm, clustered by k-means into k clusters; the
//! mean silhouette of that clustering is high when every run found the same k parts.

use crate::rng::Rng;

/// Squared Euclidean distance.
fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// k-means (Lloyd's iterations from a k-means++ start drawn from `rng`, at most `max_iter`
/// rounds) of `points` into `k` clusters: the cluster of each point.
pub(crate) fn kmeans(points: &[Vec<f64>], k: usize, max_iter: usize, rng: &mut Rng) -> Vec<usize> {
    let n = points.len();
    if n == 0 || k == 0 {
        return vec![0; n];
    }
    let k = k.min(n);
    let mut centers: Vec<Vec<f64>> = vec![points[rng.below(n)].clone()];
    let mut nearest: Vec<f64> = points.iter().map(|p| dist2(p, &centers[0])).collect();
    while centers.len() < k {
        let total: f64 = nearest.iter().sum();
        let pick = if total > 0.0 {
            let mut u = rng.uniform() * total;
            let mut i = 0;
            while i + 1 < n && u >= nearest[i] {
                u -= nearest[i];
                i += 1;
            }
            i
        } else {
            rng.below(n)
        };
        centers.push(points[pick].clone());
        for (d, p) in nearest.iter_mut().zip(points) {
            *d = d.min(dist2(p, &centers[centers.len() - 1]));
        }
    }
    let mut label = vec![usize::MAX; n];
    for _ in 0..max_iter {
        let mut changed = false;
        for (l, p) in label.iter_mut().zip(points) {
            let best = (0..k)
                .min_by(|&a, &b| dist2(p, &centers[a]).total_cmp(&dist2(p, &centers[b])))
                .unwrap_or(0);
            changed |= *l != best;
            *l = best;
        }
        if !changed {
            break;
        }
        for (c, center) in centers.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> = points
                .iter()
                .zip(&label)
                .filter(|(_, &l)| l == c)
                .map(|(p, _)| p)
                .collect();
            if members.is_empty() {
                continue; // an empty cluster keeps its center
            }
            for (i, v) in center.iter_mut().enumerate() {
                *v = members.iter().map(|p| p[i]).sum::<f64>() / members.len() as f64;
            }
        }
    }
    label
}

/// The mean silhouette `(b − a) / max(a, b)` of a clustering (Euclidean distances; `a` the mean
/// distance to the own cluster, `b` to the nearest other one); a point alone in its cluster
/// counts 0 (Rousseeuw 1987). 1 for tight, well separated clusters; with one cluster, 0.
pub(crate) fn silhouette(points: &[Vec<f64>], label: &[usize]) -> f64 {
    let n = points.len();
    let k = label.iter().copied().max().map_or(0, |m| m + 1);
    if n == 0 || k < 2 {
        return 0.0;
    }
    let mut count = vec![0usize; k];
    for &l in label {
        count[l] += 1;
    }
    let mut total = 0.0;
    for i in 0..n {
        if count[label[i]] <= 1 {
            continue;
        }
        let mut sums = vec![0.0f64; k];
        for j in 0..n {
            if j != i {
                sums[label[j]] += dist2(&points[i], &points[j]).sqrt();
            }
        }
        let a = sums[label[i]] / (count[label[i]] - 1) as f64;
        let b = (0..k)
            .filter(|&c| c != label[i] && count[c] > 0)
            .map(|c| sums[c] / count[c] as f64)
            .fold(f64::INFINITY, f64::min);
        if b.is_finite() && a.max(b) > 0.0 {
            total += (b - a) / a.max(b);
        }
    }
    total / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_groups_are_found_and_score_near_one() {
        let mut rng = Rng::new(1);
        let mut points = Vec::new();
        for g in 0..4 {
            for _ in 0..10 {
                let mut p = vec![0.0; 6];
                p[g] = 1.0;
                p[5] = 0.01 * rng.normal();
                points.push(p);
            }
        }
        let label = kmeans(&points, 4, 100, &mut Rng::new(7));
        for g in 0..4 {
            let first = label[g * 10];
            assert!(label[g * 10..g * 10 + 10].iter().all(|&l| l == first));
        }
        assert!(silhouette(&points, &label) > 0.95);
        // Random labels of the same points score near or below zero.
        let random: Vec<usize> = (0..40).map(|_| rng.below(4)).collect();
        assert!(silhouette(&points, &random) < 0.2);
    }
}
