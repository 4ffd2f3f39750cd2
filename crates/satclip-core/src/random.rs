//! Seeded permutations shared by evaluation, the probes and training.

use rand::Rng;

/// Shuffles in place: Durstenfeld's Fisher–Yates from the last element, each swap partner drawn
/// with rand's `random_range(0..=i)`. rand's own `SliceRandom::shuffle` draws a different (equally
/// uniform) permutation from the same stream; every published split (the evaluation tables, the
/// built-in model's validation rows) was drawn with this one, so it stays.
pub fn shuffle<T>(items: &mut [T], rng: &mut impl Rng) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.random_range(0..=i));
    }
}

/// `0..n` in a seeded random order.
pub fn permutation(n: usize, rng: &mut impl Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut order, rng);
    order
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// The published splits depend on this exact order: it must never change silently.
    #[test]
    fn the_permutation_of_a_seed_is_fixed() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
        assert_eq!(permutation(10, &mut rng), PERMUTATION_OF_SEED_0);
        let mut order = permutation(1000, &mut rng);
        order.sort_unstable();
        assert!(order.iter().enumerate().all(|(i, &v)| i == v), "a permutation");
    }

    const PERMUTATION_OF_SEED_0: [usize; 10] = [3, 5, 2, 9, 7, 6, 4, 0, 1, 8];
}
