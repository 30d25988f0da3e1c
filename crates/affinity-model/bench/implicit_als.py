"""Fit `implicit`'s CG ALS on the benchmark's train split and write its top-k.

Called by bench/als_vs_implicit.sh; prints one `RESULT implicit ...` line.
The data files are the ones the Rust side reads (records of little-endian
u32 user, u32 item, f32 weight), so both fit exactly the same matrix, and the
confidence is the same `alpha * weight` on both sides (implicit 0.7 multiplies
the matrix by `alpha` inside `fit`).

Recommendations are written as records of k+1 int32 (user, then k item ids)
for every user with at least one test interaction, excluding the user's
training items (`filter_already_liked_items=True`), and are scored by the Rust
metrics code so both models are measured by the same definitions.
"""

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

import implicit
from implicit.als import AlternatingLeastSquares


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def load(path, n_users, n_items):
    rec = np.fromfile(path, dtype=[("u", "<u4"), ("i", "<u4"), ("w", "<f4")])
    # COO -> CSR sums duplicates, like Interactions::from_triplets.
    m = sp.coo_matrix((rec["w"], (rec["u"], rec["i"])), shape=(n_users, n_items)).tocsr()
    m.sum_duplicates()
    m.eliminate_zeros()
    return m.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--regularization", type=float, default=0.01)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--recs-out", required=True)
    ap.add_argument("--eval-max-user", type=int, default=None)
    args = ap.parse_args()

    with open(os.path.join(args.data, "meta.txt")) as f:
        n_users, n_items = map(int, f.read().split())
    train = load(os.path.join(args.data, "train.bin"), n_users, n_items)
    test = load(os.path.join(args.data, "test.bin"), n_users, n_items)
    rss_before = status_kib("VmRSS")

    model = AlternatingLeastSquares(
        factors=args.factors,
        regularization=args.regularization,
        alpha=args.alpha,
        iterations=args.iterations,
        use_cg=True,
        use_native=True,
        use_gpu=False,
        calculate_training_loss=False,
        num_threads=args.threads,
        random_state=args.seed,
    )
    # OpenBLAS threads are also pinned by OPENBLAS_NUM_THREADS=1 in the shell
    # script (implicit warns otherwise); this covers any other BLAS.
    with threadpool_limits(limits=1, user_api="blas"):
        t0, cpu0 = time.perf_counter(), time.process_time()
        model.fit(train, show_progress=False)
        fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
    peak_fit = status_kib("VmHWM")

    users = np.flatnonzero(np.diff(test.indptr) > 0).astype(np.int32)
    if args.eval_max_user is not None:  # same sample rule as the Rust side
        users = users[users < args.eval_max_user]
    ids, _ = model.recommend(
        users, train[users], N=args.k, filter_already_liked_items=True
    )
    ids = np.asarray(ids, dtype=np.int64)
    if ids.shape[1] < args.k:  # pad short lists, as the reader expects k ids
        ids = np.pad(ids, ((0, 0), (0, args.k - ids.shape[1])), constant_values=-1)
    np.column_stack([users, ids]).astype("<i4").tofile(args.recs_out)

    print(
        f"RESULT implicit version={implicit.__version__} threads={args.threads} "
        f"factors={args.factors} iterations={args.iterations} "
        f"regularization={args.regularization} alpha={args.alpha} "
        f"fit_seconds={fit_s:.3f} cpu_seconds={cpu_s:.2f} rss_before_fit_mib={rss_before / 1024:.1f} "
        f"peak_rss_fit_mib={peak_fit / 1024:.1f} "
        f"peak_rss_mib={status_kib('VmHWM') / 1024:.1f}"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
