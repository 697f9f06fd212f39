//! Consensus clustering of samples over seeded runs (METHODS.md §11.4; Brunet, Tamayo, Golub &
//! Mesirov, PNAS 2004): the consensus matrix of the runs' argmax labels, its cophenetic
//! correlation under average linkage, and its dispersion (Kim & Park 2007).

/// The consensus matrix `C̄` (`s × s`, row-major): the share of runs in which samples `i` and `j`
/// have the same label. `labels` holds one labelling of the `s` samples per run.
pub(crate) fn consensus(labels: &[Vec<usize>]) -> Vec<f64> {
    let s = labels.first().map_or(0, |l| l.len());
    let mut c = vec![0.0f64; s * s];
    for run in labels {
        for i in 0..s {
            let row = &mut c[i * s..(i + 1) * s];
            for (j, v) in row.iter_mut().enumerate() {
                if run[i] == run[j] {
                    *v += 1.0;
                }
            }
        }
    }
    let r = labels.len().max(1) as f64;
    c.iter_mut().for_each(|v| *v /= r);
    c
}

/// Dispersion `ρ = (1/s²) Σ_ij 4 (C̄_ij − ½)²` of a consensus matrix: 1 when every pair is always
/// or never together (a perfectly reproducible clustering), lower when runs disagree.
pub(crate) fn dispersion(c: &[f64]) -> f64 {
    if c.is_empty() {
        return 1.0;
    }
    c.iter().map(|v| 4.0 * (v - 0.5) * (v - 0.5)).sum::<f64>() / c.len() as f64
}

/// The cophenetic correlation of the distances `D = 1 − C̄` (`s × s`, row-major): the Pearson
/// correlation over the pairs `i < j` between `D_ij` and the height at which average linkage
/// first joins `i` and `j`. When `D` is constant over the pairs (every pair always together, or
/// one sample) the dendrogram reproduces it exactly and the correlation is defined as 1.
pub(crate) fn cophenetic_correlation(c: &[f64]) -> f64 {
    let s = (c.len() as f64).sqrt() as usize;
    if s < 2 {
        return 1.0;
    }
    let d: Vec<f64> = c.iter().map(|v| 1.0 - v).collect();
    let coph = average_linkage_cophenetic(&d, s);
    let pairs = s * (s - 1) / 2;
    let (mut md, mut mc) = (0.0, 0.0);
    for i in 0..s {
        for j in i + 1..s {
            md += d[i * s + j];
            mc += coph[i * s + j];
        }
    }
    md /= pairs as f64;
    mc /= pairs as f64;
    let (mut sdc, mut sdd, mut scc) = (0.0, 0.0, 0.0);
    for i in 0..s {
        for j in i + 1..s {
            let (a, b) = (d[i * s + j] - md, coph[i * s + j] - mc);
            sdc += a * b;
            sdd += a * a;
            scc += b * b;
        }
    }
    if sdd <= 1e-24 * pairs as f64 || scc <= 1e-24 * pairs as f64 {
        return 1.0;
    }
    (sdc / (sdd.sqrt() * scc.sqrt())).clamp(-1.0, 1.0)
}

/// Cophenetic distances (`s × s`, row-major) of average linkage (UPGMA) on the distances `d`,
/// by the nearest-neighbour chain algorithm (`O(s²)` time and memory; exact for average linkage,
/// which is reducible). Ties go to the previous cluster of the chain, then to the lowest index,
/// so the dendrogram does not depend on anything but `d`.
pub(crate) fn average_linkage_cophenetic(d: &[f64], s: usize) -> Vec<f64> {
    let mut dist = d.to_vec();
    let mut size = vec![1usize; s];
    let mut members: Vec<Vec<usize>> = (0..s).map(|i| vec![i]).collect();
    let mut active = vec![true; s];
    let mut coph = vec![0.0f64; s * s];
    let mut chain: Vec<usize> = Vec::with_capacity(s);
    let mut left = s;
    while left > 1 {
        if chain.is_empty() {
            // The lowest active cluster starts a chain (one always exists while left > 1).
            if let Some(first) = (0..s).find(|&i| active[i]) {
                chain.push(first);
            }
        }
        let a = chain[chain.len() - 1];
        let prev = (chain.len() >= 2).then(|| chain[chain.len() - 2]);
        let mut best = prev;
        let mut best_d = prev.map_or(f64::INFINITY, |p| dist[a * s + p]);
        for k in 0..s {
            if active[k] && k != a && dist[a * s + k] < best_d {
                best = Some(k);
                best_d = dist[a * s + k];
            }
        }
        let Some(b) = best else { break };
        if Some(b) != prev {
            chain.push(b);
            continue;
        }
        // a and b are reciprocal nearest neighbours: merge them into the lower index.
        chain.truncate(chain.len() - 2);
        let (keep, gone) = (a.min(b), a.max(b));
        for &x in &members[keep] {
            for &y in &members[gone] {
                coph[x * s + y] = best_d;
                coph[y * s + x] = best_d;
            }
        }
        let (na, nb) = (size[keep] as f64, size[gone] as f64);
        for k in 0..s {
            if active[k] && k != keep && k != gone {
                let v = (na * dist[keep * s + k] + nb * dist[gone * s + k]) / (na + nb);
                dist[keep * s + k] = v;
                dist[k * s + keep] = v;
            }
        }
        let moved = std::mem::take(&mut members[gone]);
        members[keep].extend(moved);
        size[keep] += size[gone];
        active[gone] = false;
        left -= 1;
    }
    coph
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UPGMA by the textbook O(s³) loop: merge the closest pair of clusters, average distances.
    fn naive(d: &[f64], s: usize) -> Vec<f64> {
        let mut clusters: Vec<Vec<usize>> = (0..s).map(|i| vec![i]).collect();
        let mut coph = vec![0.0; s * s];
        let between = |a: &Vec<usize>, b: &Vec<usize>| {
            a.iter()
                .flat_map(|&x| b.iter().map(move |&y| d[x * s + y]))
                .sum::<f64>()
                / (a.len() * b.len()) as f64
        };
        while clusters.len() > 1 {
            let (mut bi, mut bj, mut bd) = (0, 1, f64::INFINITY);
            for i in 0..clusters.len() {
                for j in i + 1..clusters.len() {
                    let v = between(&clusters[i], &clusters[j]);
                    if v < bd {
                        (bi, bj, bd) = (i, j, v);
                    }
                }
            }
            for &x in &clusters[bi] {
                for &y in &clusters[bj] {
                    coph[x * s + y] = bd;
                    coph[y * s + x] = bd;
                }
            }
            let moved = clusters.remove(bj);
            clusters[bi].extend(moved);
        }
        coph
    }

    #[test]
    fn the_chain_gives_the_textbook_dendrogram() {
        let mut rng = crate::rng::Rng::new(3);
        for s in [2, 3, 7, 30] {
            // Points on a line plus noise: distinct distances, so the dendrogram is unique.
            let p: Vec<f64> = (0..s).map(|_| rng.uniform() * 10.0).collect();
            let d: Vec<f64> = (0..s * s).map(|ij| (p[ij / s] - p[ij % s]).abs()).collect();
            let fast = average_linkage_cophenetic(&d, s);
            let slow = naive(&d, s);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-12, "s = {s}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn a_reproducible_clustering_has_correlation_and_dispersion_one() {
        let run = vec![0, 0, 1, 1, 2, 2, 2];
        let c = consensus(&[run.clone(), run.clone(), run]);
        assert_eq!(dispersion(&c), 1.0);
        assert!((cophenetic_correlation(&c) - 1.0).abs() < 1e-12);
        // Runs that disagree lower both.
        let c = consensus(&[
            vec![0, 0, 1, 1, 2, 2, 2],
            vec![0, 1, 1, 2, 2, 0, 0],
            vec![1, 0, 0, 1, 2, 2, 1],
        ]);
        assert!(dispersion(&c) < 0.9);
        assert!(cophenetic_correlation(&c) < 0.99);
        // One cluster in every run: constant distances, defined as 1.
        assert_eq!(cophenetic_correlation(&consensus(&[vec![0; 5], vec![0; 5]])), 1.0);
    }
}
