//! A sparse user × item matrix of confidence weights, stored both user-major
//! (CSR) and item-major (the transpose, i.e. CSC of the same matrix).
//!
//! ALS alternates between solving every user against the item factors and every
//! item against the user factors, so it needs fast row access on both sides.
//! Building the transpose once up front costs one extra copy of the data and
//! avoids any per-iteration work.

use crate::error::{ModelError, Result};

/// One observation: `(user, item, weight)`.
pub type Triplet = (u32, u32, f32);

/// One compressed row (or column) of an [`Interactions`] matrix: parallel
/// slices of ids (sorted ascending, unique) and their weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    pub ids: &'a [u32],
    pub weights: &'a [f32],
}

impl<'a> Row<'a> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// `(id, weight)` pairs in ascending id order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + Clone + use<'a> {
        self.ids.iter().copied().zip(self.weights.iter().copied())
    }

    /// Whether `id` is present; ids are sorted so this is a binary search.
    pub fn contains(&self, id: u32) -> bool {
        self.ids.binary_search(&id).is_ok()
    }
}

/// Compressed sparse rows: `ptr[r]..ptr[r + 1]` indexes `ids`/`weights`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Csr {
    ptr: Vec<usize>,
    ids: Vec<u32>,
    weights: Vec<f32>,
}

impl Csr {
    /// Heap bytes of its arrays.
    pub(crate) fn heap_bytes(&self) -> usize {
        vec_bytes(&self.ptr) + vec_bytes(&self.ids) + vec_bytes(&self.weights)
    }

    /// The raw arrays, for saving (see [`crate::snapshot`]).
    pub(crate) fn raw(&self) -> (&[usize], &[u32], &[f32]) {
        (&self.ptr, &self.ids, &self.weights)
    }

    /// Rebuilds rows from saved arrays, checking what [`Csr::row`] relies on (a saved file
    /// passed its checksum, but a reader must not panic on a writer's bug): `ptr` starts at
    /// 0, never decreases and ends at the length of `ids` and `weights`; every id is below
    /// `n_cols`.
    pub(crate) fn from_raw(
        ptr: Vec<usize>,
        ids: Vec<u32>,
        weights: Vec<f32>,
        n_cols: usize,
    ) -> std::result::Result<Csr, String> {
        if ptr.first() != Some(&0)
            || ptr.windows(2).any(|w| w[0] > w[1])
            || ptr.last() != Some(&ids.len())
            || ids.len() != weights.len()
        {
            return Err("inconsistent sparse rows".to_string());
        }
        if let Some(id) = ids.iter().find(|&&id| id as usize >= n_cols) {
            return Err(format!("column {id} out of range ({n_cols} columns)"));
        }
        Ok(Csr { ptr, ids, weights })
    }

    pub(crate) fn into_parts(self) -> (Vec<usize>, Vec<u32>, Vec<f32>) {
        (self.ptr, self.ids, self.weights)
    }

    /// Number of rows.
    pub(crate) fn len(&self) -> usize {
        self.ptr.len() - 1
    }

    pub(crate) fn row(&self, r: usize) -> Row<'_> {
        let (start, end) = (self.ptr[r], self.ptr[r + 1]);
        Row {
            ids: &self.ids[start..end],
            weights: &self.weights[start..end],
        }
    }

    /// Counting-sort `entries` (row, col, weight) into CSR with `n_rows` rows.
    /// Within a row, entries keep their input order, which the caller relies on
    /// (sorted input stays sorted, and duplicate sums are order-deterministic).
    pub(crate) fn from_sorted_by_row(
        n_rows: usize,
        nnz: usize,
        entries: impl Iterator<Item = (u32, u32, f32)> + Clone,
    ) -> Csr {
        let mut ptr = vec![0usize; n_rows + 1];
        for (r, _, _) in entries.clone() {
            ptr[r as usize + 1] += 1;
        }
        for r in 0..n_rows {
            ptr[r + 1] += ptr[r];
        }
        let mut next = ptr.clone();
        let mut ids = vec![0u32; nnz];
        let mut weights = vec![0f32; nnz];
        for (r, c, w) in entries {
            let slot = &mut next[r as usize];
            ids[*slot] = c;
            weights[*slot] = w;
            *slot += 1;
        }
        Csr { ptr, ids, weights }
    }
}

/// A sparse `n_users × n_items` matrix of `f32` weights with both orientations.
///
/// Invariants: in every row, ids are strictly ascending; no stored weight is zero
/// or non-finite; the two orientations hold exactly the same entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Interactions {
    n_users: usize,
    n_items: usize,
    by_user: Csr,
    by_item: Csr,
}

impl Interactions {
    /// Builds the matrix from `(user, item, weight)` triplets.
    ///
    /// Duplicate `(user, item)` pairs are summed (in input order, so the result
    /// is deterministic). A pair whose weights sum to exactly zero is dropped:
    /// ALS would otherwise read it as an observed entry with a confidence of
    /// zero, which is not what "no signal" means. Negative sums are kept; ALS
    /// reads them as "disliked" like `implicit` does.
    ///
    /// Errors if an id is outside `n_users`/`n_items`, or a weight (or the sum
    /// of a duplicate pair's weights) is NaN/±inf.
    pub fn from_triplets(n_users: usize, n_items: usize, triplets: &[Triplet]) -> Result<Self> {
        // Ids are u32; larger dimensions could never be addressed.
        check_dim("n_users", n_users)?;
        check_dim("n_items", n_items)?;
        for &(user, item, weight) in triplets {
            if user as usize >= n_users {
                return Err(ModelError::UserOutOfRange { user, n_users });
            }
            if item as usize >= n_items {
                return Err(ModelError::ItemOutOfRange { item, n_items });
            }
            if !weight.is_finite() {
                return Err(ModelError::NonFiniteWeight { user, item, weight });
            }
        }

        // Bucket by user, then sort each user's bucket by item. The sort is
        // stable, so duplicates stay in input order and sum deterministically.
        let raw = Csr::from_sorted_by_row(n_users, triplets.len(), triplets.iter().copied());
        let mut ptr = Vec::with_capacity(n_users + 1);
        let mut ids = Vec::with_capacity(triplets.len());
        let mut weights = Vec::with_capacity(triplets.len());
        let mut scratch: Vec<(u32, f32)> = Vec::new();
        ptr.push(0);
        for u in 0..n_users {
            scratch.clear();
            scratch.extend(raw.row(u).iter());
            scratch.sort_by_key(|&(item, _)| item);
            let mut k = 0;
            while k < scratch.len() {
                let item = scratch[k].0;
                let mut sum = 0f32;
                while k < scratch.len() && scratch[k].0 == item {
                    sum += scratch[k].1;
                    k += 1;
                }
                if !sum.is_finite() {
                    // finite inputs whose sum overflowed f32
                    return Err(ModelError::NonFiniteWeight {
                        user: u as u32,
                        item,
                        weight: sum,
                    });
                }
                if sum != 0.0 {
                    ids.push(item);
                    weights.push(sum);
                }
            }
            ptr.push(ids.len());
        }
        drop(raw);
        let by_user = Csr { ptr, ids, weights };

        // Scanning users in ascending order makes every item's user list come
        // out sorted without a second sort.
        let entries = (0..n_users).flat_map(|u| {
            let row = by_user.row(u);
            row.iter().map(move |(i, w)| (i, u as u32, w))
        });
        let by_item = Csr::from_sorted_by_row(n_items, by_user.ids.len(), entries);

        Ok(Interactions {
            n_users,
            n_items,
            by_user,
            by_item,
        })
    }

    pub fn n_users(&self) -> usize {
        self.n_users
    }

    pub fn n_items(&self) -> usize {
        self.n_items
    }

    /// Number of stored (distinct, non-zero) entries.
    pub fn nnz(&self) -> usize {
        self.by_user.ids.len()
    }

    /// The items `user` interacted with, ascending, with their weights.
    pub fn user_items(&self, user: u32) -> Result<Row<'_>> {
        if user as usize >= self.n_users {
            return Err(ModelError::UserOutOfRange {
                user,
                n_users: self.n_users,
            });
        }
        Ok(self.by_user.row(user as usize))
    }

    /// The users who interacted with `item`, ascending, with their weights.
    pub fn item_users(&self, item: u32) -> Result<Row<'_>> {
        if item as usize >= self.n_items {
            return Err(ModelError::ItemOutOfRange {
                item,
                n_items: self.n_items,
            });
        }
        Ok(self.by_item.row(item as usize))
    }

    /// All entries as triplets, user-major, items ascending within a user.
    pub fn iter(&self) -> impl Iterator<Item = Triplet> + '_ {
        (0..self.n_users).flat_map(move |u| {
            self.by_user
                .row(u)
                .iter()
                .map(move |(i, w)| (u as u32, i, w))
        })
    }

    /// Row `u` of the user-major side without a bounds check on the id type;
    /// used by ALS, which iterates `0..n_users` itself.
    /// A copy of the user-major rows, for models that score from a user's history.
    pub(crate) fn user_rows(&self) -> Csr {
        self.by_user.clone()
    }

    pub(crate) fn user_row(&self, u: usize) -> Row<'_> {
        self.by_user.row(u)
    }

    pub(crate) fn item_row(&self, i: usize) -> Row<'_> {
        self.by_item.row(i)
    }
}

fn check_dim(name: &'static str, n: usize) -> Result<()> {
    // u32::MAX itself stays free so `n` always fits in u32 arithmetic.
    if n > u32::MAX as usize {
        return Err(ModelError::InvalidParameter {
            name,
            reason: format!("{n} exceeds the u32 id space"),
        });
    }
    Ok(())
}

/// Heap bytes a vector holds: its capacity, which a slice does not know.
#[allow(clippy::ptr_arg)]
pub(crate) fn vec_bytes<T>(v: &Vec<T>) -> usize {
    v.capacity() * std::mem::size_of::<T>()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn duplicates_sum_and_zero_sums_drop() {
        let m = Interactions::from_triplets(
            2,
            3,
            &[
                (0, 2, 1.0),
                (0, 0, 2.0),
                (0, 2, 0.5),
                (1, 1, 1.0),
                (1, 1, -1.0),
            ],
        )
        .unwrap();
        assert_eq!(m.nnz(), 2);
        let r = m.user_items(0).unwrap();
        assert_eq!(r.ids, &[0, 2]);
        assert_eq!(r.weights, &[2.0, 1.5]);
        assert!(m.user_items(1).unwrap().is_empty());
        assert_eq!(m.item_users(2).unwrap().weights, &[1.5]);
        assert!(m.item_users(1).unwrap().is_empty());
    }
}
