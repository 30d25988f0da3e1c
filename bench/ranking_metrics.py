"""Top-k ranking metrics for the HTTP benchmarks, with the definitions of the model crate's
`metrics.rs` (binary relevance; a recommended id repeated in a list counts once)."""

import math

K = 10


def ndcg(recommended, relevant, k=K):
    """NDCG@k: DCG over the first k distinct ids, divided by a perfect list's."""
    relevant = set(relevant)
    ideal = min(k, len(relevant))
    if ideal == 0:
        return 0.0
    seen, dcg = set(), 0.0
    for pos, x in enumerate(recommended[:k]):
        if x in seen:
            continue
        seen.add(x)
        if x in relevant:
            dcg += 1.0 / math.log2(pos + 2)
    return dcg / sum(1.0 / math.log2(p + 2) for p in range(ideal))


def recall(recommended, relevant, k=K):
    """Recall@k: the share of relevant ids among the first k recommended."""
    relevant = set(relevant)
    return len(relevant & set(recommended[:k])) / len(relevant) if relevant else 0.0
