"""EASE (Steck 2019), the baseline the HTTP benchmarks fit beside the product on the same data."""

import numpy as np


def ease_fit(histories, index, n_items, lam):
    """Fits EASE with penalty `lam` on binary user histories (`{user: [item, ...]}`, items
    mapped to columns by `index`). Returns the user-item matrix, each user's row and the
    scores (one row per user, in sorted user order)."""
    x = np.zeros((len(histories), n_items))
    rows_of = {}
    for r, (u, h) in enumerate(sorted(histories.items())):
        rows_of[u] = r
        x[r, [index[i] for i in h]] = 1.0
    gram = x.T @ x + lam * np.eye(n_items)
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return x, rows_of, x @ b
