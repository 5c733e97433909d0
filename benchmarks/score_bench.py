"""Benchmark of the scoring stage (issue 3): exact CorrEmbed against the bare similarity product.

Synthetic catalogue per n: d=2048 float32 embeddings, t=300 tag slots in 8 categories (one value
per category with skewed frequencies, so 8 non-zeros per row), embeddings partly driven by tags.

Columns of the printed Markdown table (seconds unless said otherwise):

- ``bare``: the bound, X[rows] @ X^T over all anchor blocks in float32 (unit rows, block size
  the scoring code's Pearson block), i.e. the n x n similarity matrix computed and discarded.
- ``exact``: exact all-anchors CorrEmbed + all-pairs Pearson (:func:`corrembed.score.pearson_scores`,
  automatic strategy), including input normalization; ``ratio`` = exact / bare.
- ``blockwise``: the same forced through (b, n) similarity blocks (``strategy="blockwise"``).
- ``float64``: the same on the embeddings cast to float64 (not in the table: the script prints
  max |exact - float64| over (CorrEmbed, all-pairs r) as an HTML comment, the precision of the
  float32 route).
- ``per-row``: the paper's way, one anchor at a time: similarity row by a float32 matrix-vector
  product, tag row by a sparse product, ``scipy.stats.pearsonr``; the one-off setup (row
  normalization) timed once, plus 100 anchors timed and scaled to n; ``speedup`` = per-row / exact.
- ``sampled``: CorrEmbed over 1000 seeded anchors (:func:`corrembed.score.corrembed`).
- ``report``: the score stage's call: :func:`corrembed.score.score_report` with the workflow's
  default settings (1000 anchors, Pearson and Spearman, bootstrap, controls, all-pairs Pearson,
  all-pairs Spearman exact up to 10^7 pairs, else from 10^6 sampled pairs with its standard
  error), embeddings normalized in place as the stage does; run once.
- ``report_exact`` (not run by default): the same with the exact all-pairs Spearman at any n
  (8 bytes per pair).
- ``mem`` columns: peak resident memory above the inputs (MiB): every case runs in a fresh
  subprocess that loads the inputs from .npy/.npz files, notes its resident memory once they are
  loaded (``VmRSS``), runs, and reports its peak (``ru_maxrss``) minus that.

The machine may be shared: each timing is the best of ``--repeat`` runs (report: one run).

    .venv/bin/python benchmarks/score_bench.py [--sizes 2000 5000 10000 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

CASES = ("bare", "exact", "blockwise", "float64", "per_row", "sampled", "report", "report_exact")
DEFAULT_CASES = ("bare", "exact", "blockwise", "float64", "per_row", "sampled", "report")


def workflow_default_options():
    """ScoreOptions of the workflow's ``scoring`` defaults (from the config schema)."""
    import yaml

    from corrembed.score import ScoreOptions

    schema = Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"
    spec = yaml.safe_load(schema.read_text())["properties"]["scoring"]["properties"]
    return ScoreOptions.from_config({k: v["default"] for k, v in spec.items() if "default" in v})


def synthetic(n: int, d: int, slots: int, categories: int, seed: int = 0, chunk: int = 65536):
    """(x (n, d) float32, tags (n, slots) CSR float64 with ``categories`` non-zeros per row).

    x is built ``chunk`` rows at a time (no n x d temporaries beside it: n = 10^6 fits)."""
    rng = np.random.default_rng(seed)
    sizes = np.full(categories, slots // categories)
    sizes[: slots - sizes.sum()] += 1
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    # Skewed value frequencies within a category, as in real catalogues.
    cols = np.stack([off + rng.zipf(1.6, n) % size for off, size in zip(offsets, sizes)], axis=1)
    tags = sp.csr_matrix(
        (np.ones(n * categories), cols.ravel(), np.arange(0, n * categories + 1, categories)),
        shape=(n, slots),
    )
    mixing = rng.standard_normal((slots, d)).astype(np.float32)
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        x[start:stop] = tags[start:stop] @ mixing
        x[start:stop] += 6.0 * rng.standard_normal((stop - start, d), dtype=np.float32)
    return x, tags


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def _current_rss_bytes() -> int:
    """Resident memory now (not the peak, which may include transient copies made while loading)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return _peak_rss_bytes()  # pragma: no cover - not Linux


def _run_case(case: str, data_dir: Path, repeat: int, device: str = "cpu") -> dict:
    """Run one case in this process (the subprocess side); returns seconds, value, memory.

    ``device`` other than "cpu" runs the bare product and the scoring cases through torch on it
    (a GPU: "cuda"); the per-row baseline stays the CPU one."""
    from scipy.stats import pearsonr

    from corrembed import score
    from corrembed.score.prepare import block_sizes, normalize_dense_rows

    x = np.load(data_dir / "x.npy")
    tags = sp.load_npz(data_dir / "tags.npz").tocsr()
    n = x.shape[0]
    base = _current_rss_bytes()  # the inputs are resident; memory above them is what a case adds

    sync = lambda: None  # noqa: E731 - CPU work is synchronous
    if device != "cpu":
        import torch

        torch_device = torch.device("cpu" if device == "torch-cpu" else device)
        if torch_device.type == "cuda":
            sync = torch.cuda.synchronize

    if case == "bare":
        block = block_sizes(None, n).pearson
        xn = normalize_dense_rows(x)
        if device != "cpu":
            xn = torch.from_numpy(xn).to(torch_device)

        def fn():
            for s in range(0, n, block):
                xn[s : s + block] @ xn.T
            sync()
            return float("nan")

    elif case in ("exact", "blockwise", "float64"):
        strategy = "blockwise" if case == "blockwise" else "auto"
        data = x.astype(np.float64) if case == "float64" else x

        def fn():
            result, allpairs = score.pearson_scores(data, tags, anchors="all", strategy=strategy, device=device)
            return [result.mean, allpairs]

    elif case == "per_row":
        k = min(100, n)
        per_row_setup = []

        def fn():
            # Setup once (not extrapolated), then one anchor at a time (scaled to n anchors).
            start = time.perf_counter()
            xn = normalize_dense_rows(x)
            norms = np.sqrt(np.asarray(tags.multiply(tags).sum(axis=1)).ravel())
            tn = sp.csr_matrix(sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ tags)
            keep = np.ones(n, dtype=bool)
            per_row_setup.append(time.perf_counter() - start)
            rs = []
            for a in np.random.default_rng(42).choice(n, size=k, replace=False):
                emb_row = xn @ xn[a]
                tag_row = (tn @ tn[a].T).toarray().ravel()
                keep[a] = False
                rs.append(pearsonr(emb_row[keep], tag_row[keep])[0])
                keep[a] = True
            return float(np.mean(rs))

    elif case == "sampled":

        def fn():
            return score.corrembed(x, tags, anchors=1000, seed=42, device=device).mean

    elif case in ("report", "report_exact"):
        # The score stage's call: the workflow's default settings, embeddings normalized in place.
        repeat = 1
        options = workflow_default_options().with_overrides(device=device, normalize_in_place=True)
        if case == "report_exact":
            options = options.with_overrides(max_exact_pairs=n * (n - 1) // 2)

        def fn():
            rep = score.score_report(x, tags, options)
            return [rep.corrembed, rep.allpairs_spearman, rep.allpairs_spearman_se, rep.anchor_spearman]

    else:
        raise SystemExit(f"unknown case {case!r}")

    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
        if case == "per_row":
            setup = per_row_setup.pop()
            seconds = setup + (seconds - setup) * n / min(100, n)  # 100 anchors -> all n
        best = min(best, seconds)
    return {"case": case, "seconds": best, "value": value, "mem_mib": (_peak_rss_bytes() - base) / 2**20}


def _subprocess_case(case: str, data_dir: Path, repeat: int, device: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--case",
            case,
            "--data",
            str(data_dir),
            "--repeat",
            str(repeat),
            "--device",
            device,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    blas = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")
        info = cfg["Build Dependencies"]["blas"]
        blas = f"{info['name']} {info['version']}"
    except Exception:  # noqa: BLE001 - informational only
        pass
    return f"{cpu}, {os.cpu_count()} cores, numpy {np.__version__} with {blas}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--slots", type=int, default=300)
    parser.add_argument("--categories", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs per timing")
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=CASES)
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (numpy), or a torch device for the product and scoring cases (cuda, torch-cpu)",
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)  # subprocess side
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.case:
        print(json.dumps(_run_case(args.case, Path(args.data), args.repeat, args.device)))
        return

    if args.device != "cpu":
        import torch

        gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else "torch on the CPU"
        print(f"Device for bare/exact/sampled/report: {args.device} ({gpu}, torch {torch.__version__})")
    print(
        f"Machine: {machine()}; d={args.dim}, t={args.slots} slots, {args.categories} non-zeros per row; "
        f"best of {args.repeat} (report: 1 run)\n",
        flush=True,
    )
    header = (
        "| n | bare s | exact s | ratio | blockwise s (ratio) | per-row s (extrap.) | speedup "
        "| sampled 1000 s | report s | mem exact MiB | mem sampled MiB | mem report MiB |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for n in args.sizes:
        x, tags = synthetic(n, args.dim, args.slots, args.categories)
        with tempfile.TemporaryDirectory() as tmp:
            np.save(Path(tmp) / "x.npy", x)
            sp.save_npz(Path(tmp) / "tags.npz", tags)
            del x, tags
            res = {c: _subprocess_case(c, Path(tmp), args.repeat, args.device) for c in args.cases}

        def cell(c, key="seconds", fmt="{:.2f}", res=res):
            return fmt.format(res[c][key]) if c in res else "-"

        def ratio(c, res=res):
            return f"{res[c]['seconds'] / res['bare']['seconds']:.2f}" if c in res and "bare" in res else "-"

        speedup = (
            f"{res['per_row']['seconds'] / res['exact']['seconds']:.0f}x"
            if "per_row" in res and "exact" in res
            else "-"
        )
        memory = " | ".join(cell(c, "mem_mib", "{:.0f}") for c in ("exact", "sampled", "report"))
        print(
            f"| {n} | {cell('bare')} | {cell('exact')} | {ratio('exact')} | {cell('blockwise')} ({ratio('blockwise')}) "
            f"| {cell('per_row', fmt='{:.1f}')} | {speedup} | {cell('sampled')} | {cell('report')} | {memory} |",
            flush=True,
        )
        for case in ("report", "report_exact"):
            if case in res:
                print(
                    f"<!-- n={n}: {case} (CorrEmbed, all-pairs Spearman, its SE, anchor Spearman) = "
                    f"{res[case]['value']}, {res[case]['seconds']:.2f} s, {res[case]['mem_mib']:.0f} MiB -->",
                    flush=True,
                )
        for other in ("blockwise", "float64"):
            if "exact" in res and other in res:
                diff = np.max(np.abs(np.subtract(res["exact"]["value"], res[other]["value"])))
                print(
                    f"<!-- n={n}: exact (CorrEmbed, all-pairs) = {res['exact']['value']}, "
                    f"|exact - {other}| = {diff:.1e} -->",
                    flush=True,
                )


if __name__ == "__main__":
    main()
