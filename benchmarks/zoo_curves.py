"""Print the store's convergence curves and build figures (the data behind the chosen budgets).

    python benchmarks/zoo_curves.py [--out DIR]

For every task and class of the store: at each checkpoint along training, the
drift (TV to the prior, its null, the mass outside the range) and the three c-free sample checks,
per seed; then the first checkpoint from which every seed passes every check, the training time of
each run and the store's size on disk.
"""

from __future__ import annotations

import argparse
import json

from physmis_edu.zoo import catalog, store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="store folder (default: the package's data folder)")
    args = ap.parse_args()
    root = store.root_dir(args.out)
    manifest = store.read_manifest(root)
    by_class: dict[str, list[dict]] = {}
    for name in sorted(manifest["runs"]):
        meta = json.loads((root / f"{name}.json").read_text())
        task, model = name.split(".")[:2]
        by_class.setdefault(f"{task}: {model}", []).append(meta)
    for model, metas in by_class.items():
        print(f"\n{model}  ({metas[0]['n_parameters']:,} parameters, "
              f"{metas[0]['spec']['n_train']:,} training trajectories)")
        print(f"{'seed':>4s} {'step':>7s} {'train s':>8s} {'TV':>6s} {'null99':>7s} {'out':>6s} "
              f"{'residual':>9s} {'NN ratio':>9s}  checks")
        for meta in metas:
            for c in meta["curve"]:
                print(f"{meta['spec']['seed']:4d} {c['step']:7d} {c['train_seconds']:8.0f} "
                      f"{c['tv']:6.3f} {c['null_tv99']:7.3f} {c['out_of_support']:6.1%} "
                      f"{c['residual']:9.2%} {c['nn_ratio']:9.2f}  "
                      f"{'pass' if c['passed'] else 'fail'}")
            d, k = meta["drift"], meta["checks"]
            print(f"{meta['spec']['seed']:4d} {'final':>7s} {meta['train_seconds']:8.0f} "
                  f"{d['tv']:6.3f} {d['null_tv99']:7.3f} {d['out_of_support']:6.1%} "
                  f"{k['residual']:9.2%} {k['nn_ratio']:9.2f}  "
                  f"{'pass' if k['passed'] else 'fail'}  ({meta['spec']['n_samples']} samples, "
                  f"{meta['device']}, {meta['threads']} thread(s))")
    size = sum(p.stat().st_size for p in root.iterdir() if p.is_file())
    print(f"\nstore: {len(manifest['runs'])} runs, {size / 2**20:.1f} MiB at {root}")
    print(f"catalog: {len(catalog.SPECS)} runs")


if __name__ == "__main__":
    main()
