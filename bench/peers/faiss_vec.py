#!/usr/bin/python3
"""faiss_vec.py -- the Faiss side of bench/vec-peers.sh: build an IVF-PQ index with Faiss on
.fvecs data, then measure recall@k and queries/s per thread count and nprobe.

  /usr/bin/python3 bench/peers/faiss_vec.py --base F --query F --gt F [--nlist 1024] [--m 32]
      [--nbits 8|4] [--fastscan] [--nprobe 1,2,4,8,16,32,64] [--refine 0|R[,R...]] [--k 10]
      [--threads 1,2] [--runs 3] [--metric l2|ip] [--train-n N] [--single]
      [--build-threads T]

Index (faiss.index_factory): nbits 8 -> "IVF{nlist},PQ{m}"; nbits 4 -> "IVF{nlist},PQ{m}x4",
or "IVF{nlist},PQ{m}x4fs" (IVFPQFastScan) with --fastscan. Polysemous training is off
(do_polysemous_training = False: it only adds build time). --refine R > 0 wraps the index in
faiss.IndexRefineFlat with k_factor = R: the best k x R PQ results are re-ranked with the exact
vectors (which the refine index stores: bytes_per_vector includes them). A list (--refine 0,4)
measures each factor on ONE build (the refine index wraps the same trained IVF-PQ index; a
factor of 0 searches that index directly): one build line per factor, with the same train_s
and add_s.

Training: with --train-n N the first N base vectors are passed to train(); by default all base
vectors are passed and Faiss samples what it uses itself: nlist x max_points_per_centroid
(256) random vectors for the coarse k-means, then ksub x 256 of them for the PQ codebooks
(its own seeded subsampling). The build line says how many points and k-means iterations
were used. Build (train + add) runs with --build-threads threads (default: the largest
--threads value).

Search: for each --threads t (faiss.omp_set_num_threads(t), which also bounds OpenBLAS) and
each nprobe, the whole query set goes to ONE index.search() call (Faiss's batch mode): one
untimed warm-up call, then --runs timed calls; qps = queries / seconds, the median of the
runs with min and max. With --single, each point is also measured one query per call
(latency-bound, like an agent memory API): qps = queries / total seconds, plus p50/p99 of the
per-call latency. recall = |top-k result ∩ top-k of gt| / k averaged over the queries.

Output, one JSON object per line on stdout (progress on stderr):
  {"engine":"faiss","version":"1.7.3","event":"build","n":..,"dim":..,"nlist":..,"m":..,
   "nbits":..,"refine":..,"train_s":..,"add_s":..,"bytes_per_vector":..,"train_niter":..,
   "train_points":..,...}
  {"engine":"faiss","event":"search","mode":"batch"|"single","threads":t,"nprobe":p,
   "refine":R,"k":10,"recall":..,"qps":..,"qps_min":..,"qps_max":..,"runs":3,...}
bytes_per_vector = len(faiss.serialize_index(index)) / n (codes, ids, centroids, codebooks).
"""
import argparse
import ctypes
import json
import os
import re
import statistics
import sys
import tempfile
import time

import numpy as np

try:
    import faiss
except ImportError as e:  # pragma: no cover - depends on the machine
    sys.exit("faiss_vec.py: cannot import faiss (%s): apt-get install python3-faiss "
             "libopenblas0-openmp, and run it with /usr/bin/python3" % e)


def say(msg):
    print("faiss_vec.py: " + msg, file=sys.stderr, flush=True)


def fail(msg):
    say(msg)
    sys.exit(2)


def read_vecs(path, dtype, what):
    """An .fvecs/.ivecs file as a C-contiguous (rows, d) array: per row an int32 LE d, then d
    4-byte values."""
    try:
        raw = np.fromfile(path, dtype="<i4")
    except OSError as e:
        fail("%s %s: %s" % (what, path, e.strerror or e))
    if raw.size == 0:
        fail("%s %s: empty file" % (what, path))
    d = int(raw[0])
    if d <= 0 or raw.size % (d + 1) != 0:
        fail("%s %s: first header says d=%d, which does not divide the file (%d bytes)"
             % (what, path, d, raw.size * 4))
    rows = raw.reshape(-1, d + 1)
    bad = np.nonzero(rows[:, 0] != d)[0]
    if bad.size:
        fail("%s %s: row %d has header %d, expected %d" % (what, path, bad[0], rows[bad[0], 0], d))
    return np.ascontiguousarray(rows[:, 1:]).view(dtype)


def captured(fn):
    """Run fn() with the C-level stdout (where Faiss's verbose output goes) sent to a temporary
    file, so that stdout keeps only our JSON lines. Returns (fn's result, the captured text)."""
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        try:
            result = fn()
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    return result, text


# "Clustering 262144 points in 128D to 1024 clusters, redo 1 times, 10 iterations"
CLUSTERING = re.compile(r"Clustering (\d+) points in (\d+)D to (\d+) clusters, redo (\d+) times, "
                        r"(\d+) iterations")


def int_list(s, name, least=1):
    what = "positive" if least >= 1 else "non-negative"
    try:
        v = [int(x) for x in s.split(",") if x != ""]
    except ValueError:
        fail("--%s '%s': expected a comma-separated list of %s integers" % (name, s, what))
    if not v or min(v) < least:
        fail("--%s '%s': expected a comma-separated list of %s integers" % (name, s, what))
    return v


def summary(vals):
    med = statistics.median(vals)
    lo, hi = min(vals), max(vals)
    spread = (hi - lo) / med if med > 0 else 0.0
    return med, lo, hi, spread


def recall_at(found, gt, k):
    hits = (found[:, :k, None] == gt[:, None, :k]).any(axis=2).sum(axis=1)
    return float(hits.mean()) / k


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--base", required=True, help="base vectors (.fvecs)")
    ap.add_argument("--query", required=True, help="query vectors (.fvecs)")
    ap.add_argument("--gt", required=True, help="ground truth (.ivecs, 0-based base rows)")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--m", type=int, default=32, help="PQ sub-quantizers")
    ap.add_argument("--nbits", type=int, default=8, choices=(4, 8))
    ap.add_argument("--fastscan", action="store_true", help="PQ{m}x4fs (needs --nbits 4)")
    ap.add_argument("--nprobe", default="1,2,4,8,16,32,64")
    ap.add_argument("--refine", default="0",
                    help="0 = none, R = re-rank k x R exactly; a list measures each on one build")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--metric", default="l2", choices=("l2", "ip"))
    ap.add_argument("--train-n", type=int, default=0,
                    help="train on the first N base vectors (default: all, Faiss samples)")
    ap.add_argument("--single", action="store_true",
                    help="also measure one query per search() call")
    ap.add_argument("--build-threads", type=int, default=0,
                    help="threads for train + add (default: the largest --threads value)")
    a = ap.parse_args()

    nprobes = int_list(a.nprobe, "nprobe")
    threads = int_list(a.threads, "threads")
    refines = int_list(a.refine, "refine", least=0)
    if a.nlist < 1:
        fail("--nlist %d: must be >= 1" % a.nlist)
    if a.k < 1:
        fail("--k %d: must be >= 1" % a.k)
    if a.runs < 1:
        fail("--runs %d: must be >= 1" % a.runs)
    if a.build_threads < 0:
        fail("--build-threads %d: must be >= 1 (0 = the largest --threads)" % a.build_threads)
    if a.fastscan and a.nbits != 4:
        fail("--fastscan needs --nbits 4 (Faiss's fast-scan PQ has 4-bit codes)")
    if a.runs < 3:
        say("warning: %d run(s); medians need >= 3" % a.runs)

    xb = read_vecs(a.base, np.float32, "--base")
    xq = read_vecs(a.query, np.float32, "--query")
    gt = read_vecs(a.gt, np.int32, "--gt")
    n, d = xb.shape
    nq = xq.shape[0]
    if xq.shape[1] != d:
        fail("--query has d=%d but --base has d=%d" % (xq.shape[1], d))
    if gt.shape[0] != nq:
        fail("--gt has %d rows but --query has %d" % (gt.shape[0], nq))
    if gt.shape[1] < a.k:
        fail("--gt holds %d neighbours per query, fewer than --k %d" % (gt.shape[1], a.k))
    if d % a.m != 0:
        fail("--m %d does not divide the dimension %d" % (a.m, d))
    if a.train_n < 0 or a.train_n > n:
        fail("--train-n %d: must be 1..%d (the base size)" % (a.train_n, n))
    if (a.train_n or n) < a.nlist:
        fail("%d training vectors are fewer than --nlist %d (Faiss's k-means needs at least one "
             "per list)" % (a.train_n or n, a.nlist))
    if a.metric == "ip":
        say("note: --metric ip; --gt must then hold inner-product neighbours")
    say("faiss %s, base %d x %d, %d queries, gt k=%d" % (faiss.__version__, n, d, nq,
                                                          gt.shape[1]))

    key = "IVF%d,PQ%d" % (a.nlist, a.m)
    if a.nbits == 4:
        key += "x4fs" if a.fastscan else "x4"
    metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    build_threads = a.build_threads or max(threads)
    faiss.omp_set_num_threads(build_threads)
    ivf = faiss.index_factory(d, key, metric)
    if hasattr(ivf, "do_polysemous_training"):
        ivf.do_polysemous_training = False
    index = ivf  # what train() and add() go through
    refined = None
    if max(refines) > 0:
        refined = faiss.IndexRefineFlat(ivf)  # `ivf` stays alive through our reference
        index = refined

    xt = xb[:a.train_n] if a.train_n else xb
    say("training %s on %s, %d threads" % (
        key, "the first %d base vectors" % a.train_n if a.train_n else
        "all %d base vectors (Faiss subsamples them itself)" % n, build_threads))
    # Verbose, Faiss prints each k-means it runs (points, dimension, clusters, iterations):
    # parsed, not shown.
    ivf.verbose = True
    ivf.cp.verbose = True
    t0 = time.perf_counter()
    _, log = captured(lambda: index.train(xt))
    train_s = time.perf_counter() - t0
    ivf.verbose = False
    ivf.cp.verbose = False
    runs = [tuple(int(g) for g in m.groups()) for m in CLUSTERING.finditer(log)]
    coarse = [r for r in runs if r[2] == a.nlist and r[1] == d]
    subq = [r for r in runs if r not in coarse[:1]]
    coarse_pts, coarse_iter = (coarse[0][0], coarse[0][4]) if coarse else (None, None)
    pq_pts, pq_iter = (subq[0][0], subq[0][4]) if subq else (None, None)
    for r in runs[:2]:
        say("faiss k-means: %d points in %dD to %d clusters, %d iterations" % (r[0], r[1], r[2],
                                                                               r[4]))
    if len(runs) > 2:
        say("faiss k-means: ... %d k-means runs in all (1 coarse + %d PQ sub-quantizers)"
            % (len(runs), len(subq)))
    say("trained in %.1f s; adding %d vectors" % (train_s, n))
    t0 = time.perf_counter()
    index.add(xb)
    add_s = time.perf_counter() - t0
    sizes = {}  # serialized bytes: False -> the IVF-PQ index alone, True -> with refine
    for r in refines:
        if (r > 0) not in sizes:
            sizes[r > 0] = faiss.serialize_index(refined if r > 0 else ivf).size
    for r in refines:
        size = sizes[r > 0]
        build = {"engine": "faiss", "version": faiss.__version__, "event": "build", "n": n,
                 "dim": d, "nlist": a.nlist, "m": a.m, "nbits": a.nbits, "refine": r,
                 "fastscan": a.fastscan, "metric": a.metric, "index": key,
                 "train_s": round(train_s, 3), "add_s": round(add_s, 3),
                 "bytes_per_vector": round(size / n, 3), "train_niter": coarse_iter,
                 "train_points": coarse_pts, "pq_train_niter": pq_iter,
                 "pq_train_points": pq_pts, "pq_kmeans_runs": len(subq),
                 "train_sample": "first %d" % a.train_n if a.train_n else "faiss",
                 "build_threads": build_threads,
                 "imbalance": round(ivf.invlists.imbalance_factor(), 3)}
        print(json.dumps(build), flush=True)
        say("added in %.1f s; refine %d: %.1f bytes/vector" % (add_s, r, size / n))

    modes = ["batch", "single"] if a.single else ["batch"]
    for t in threads:
        faiss.omp_set_num_threads(t)
        for p in nprobes:
            ivf.nprobe = p
            for r, mode in [(r, mode) for r in refines for mode in modes]:
                index = refined if r > 0 else ivf
                if r > 0:
                    refined.k_factor = float(r)
                secs, lat = [], []
                found = None
                if mode == "batch":
                    index.search(xq, a.k)  # warm-up
                    for _ in range(a.runs):
                        t0 = time.perf_counter()
                        _, found = index.search(xq, a.k)
                        secs.append(time.perf_counter() - t0)
                else:
                    for i in range(min(nq, 100)):  # warm-up
                        index.search(xq[i:i + 1], a.k)
                    found = np.empty((nq, a.k), dtype=np.int64)
                    for _ in range(a.runs):
                        run_lat = []
                        t0 = time.perf_counter()
                        for i in range(nq):
                            s = time.perf_counter()
                            _, found[i:i + 1] = index.search(xq[i:i + 1], a.k)
                            run_lat.append(time.perf_counter() - s)
                        secs.append(time.perf_counter() - t0)
                        lat.extend(run_lat)
                qps = [nq / s for s in secs]
                med, lo, hi, spread = summary(qps)
                line = {"engine": "faiss", "event": "search", "mode": mode, "threads": t,
                        "nprobe": p, "refine": r, "k": a.k,
                        "recall": round(recall_at(found, gt, a.k), 5), "qps": round(med, 1),
                        "qps_min": round(lo, 1), "qps_max": round(hi, 1), "runs": a.runs,
                        "spread": round(spread, 4), "noisy": spread > 0.30}
                if lat:
                    lat.sort()
                    line["p50_us"] = round(1e6 * lat[len(lat) // 2], 1)
                    line["p99_us"] = round(1e6 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
                                           1)
                print(json.dumps(line), flush=True)
                say("%s threads=%d nprobe=%d refine=%d: recall@%d %.4f, %.0f q/s (%.0f..%.0f)%s"
                    % (mode, t, p, r, a.k, line["recall"], med, lo, hi,
                       "  NOISY (spread > 30%)" if spread > 0.30 else ""))


if __name__ == "__main__":
    main()
