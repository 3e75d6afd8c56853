"""The confound sweep of Chapter 11: drift, null, out-of-range mass, checks and the white-noise
kernel's agreement against the seed-to-seed ceiling, for every arm of every confound.

    python -m physmis_edu.zoo build --jobs 2 --only 'logistic-chaotic.*-long.*,\
*DiffusionMLP-hidden*,*DiffusionMLP-data2k.*,*DiffusionMLP-data40k.*,*-diffsteps*,\
logistic-peaked.*,logistic-skewed.*'
    python benchmarks/confounds.py [--jobs 2] [--confounds 'training length,prior shape']

The first command trains the sweep's runs into the store (see ``physmis_edu.zoo.catalog``,
``CONFOUND_VARIANTS``); the second scores them from the store (no training) and writes
``physmis_edu/data/confounds/confounds.json`` (package data, read by Chapter 11), then prints
one table per confound and the time it took. An arm already in the file is not rescored while
its runs in the store are unchanged (same spec hashes); with ``--confounds``, only those
confounds are scored and the other confounds' rows in the file are kept.
"""

from __future__ import annotations

import argparse
import time

from physmis_edu import confounds as cf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1, help="arms scored at once (joblib)")
    parser.add_argument("--confounds", default=None,
                        help=f"comma-separated subset of {list(cf.CONFOUNDS)}")
    args = parser.parse_args(argv)
    names = None if args.confounds is None else [n.strip() for n in args.confounds.split(",")]
    tick = time.perf_counter()
    previous = cf.load_scores() if cf.SCORES_PATH.exists() else None
    document = cf.score_all(names, jobs=args.jobs, reuse=previous)
    seconds = time.perf_counter() - tick
    if names is not None and previous is not None:
        document = cf.merge_scores(previous, document)
    path = cf.write_scores(document)
    for name in document["confounds"]:
        print(f"\n## {name}\n")
        print(cf.markdown_confound(cf.rows_for(document, name)))
    print(f"\nscored {len(document['rows'])} arms in {seconds:.0f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
