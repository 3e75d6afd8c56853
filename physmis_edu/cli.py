"""The ``physmis`` command line (the practitioner's audit; README, "Auditing your own model").

Subcommands:

* ``physmis audit``: audit a model's samples against its training set
  (:func:`physmis_edu.audit.audit`), print a summary, write ``audit.json`` and ``audit.png``.
* ``physmis reproduce``: regenerate the book's headline table of drift, kernel agreement and
  mitigation effect (:func:`physmis_edu.reproduce.reproduce`), resumable, through joblib
  (``--backend dask`` or ``ray`` sends the cells to a cluster).

Also runs as ``python -m physmis_edu.cli``. Bad input exits with status 2 and a message naming
the option (argparse's convention); nothing is written then. Only the standard library is
imported until a subcommand runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]

# Python argument of physmis_edu.audit.audit -> the option that sets it.
_OPTIONS = {"train": "--train", "samples": "--samples", "task": "--task", "measure": "--measure",
            "prior": "--prior", "control_range": "--range", "bins": "--bins", "seed": "--seed",
            "out": "--out", "n_boot": "--n-boot", "n_null": "--n-null", "kernel": "--no-kernel"}


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``physmis`` and its subcommands (the practitioner's audit; README)."""
    parser = argparse.ArgumentParser(
        prog="physmis",
        description="Practitioner's tools of physmis_edu (physical misgeneralization).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    a = sub.add_parser(
        "audit", help="audit a model's samples: recovered distribution, checks, kernel",
        description="Compare the distribution of a physical quantity recovered from a model's "
                    "samples with the training set's (or a named prior), against the "
                    "finite-sample null; run the c-free sample checks, a kernel calibrated "
                    "without c, and the recovery's local sensitivity. Writes OUT/audit.json "
                    "and OUT/audit.png.")
    a.add_argument("--train", required=True, metavar="FILE",
                   help="training trajectories, .npy or .npz (FILE.npz:KEY), shape (n, L, d)")
    a.add_argument("--samples", required=True, metavar="FILE",
                   help="the model's samples, .npy or .npz, shape (n, L, d)")
    how = a.add_mutually_exclusive_group(required=True)
    how.add_argument("--task", metavar="KEY",
                     help="a task key of the store (physmis_edu.zoo.catalog.TASKS, e.g. "
                          "logistic-chaotic, sine, pendulum) whose recovery is the measurement")
    how.add_argument("--measure", metavar="MODULE:FUNCTION",
                     help="a function (n, L, d) -> (n,) with NaN for failed recoveries "
                          "(module:function, or path/to/file.py:function)")
    a.add_argument("--prior", default="data", metavar="SPEC",
                   help="'data' (default: the training set's recovered distribution), "
                        "'task' (the task's own prior) or 'uniform:LO:HI'")
    a.add_argument("--range", dest="control_range", metavar="LO:HI",
                   help="histogram range for --prior data (default: the task's range, or the "
                        "training values' min and max); write --range=-1:1 when LO < 0")
    a.add_argument("--bins", type=int, default=20, help="equal bins on the range (default 20)")
    a.add_argument("--seed", type=int, default=0, help="seed of every random step (default 0)")
    a.add_argument("--no-kernel", dest="kernel", action="store_false",
                   help="skip the kernel calibration and prediction")
    a.add_argument("--out", default="physmis-audit", metavar="DIR",
                   help="output folder (default ./physmis-audit)")
    a.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples (default 200)")
    a.add_argument("--n-null", type=int, default=500, help="null draws (default 500)")
    a.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   default=None, help="no progress bars (default: on when stderr is a terminal)")
    a.add_argument("--quiet", action="store_true", help="print only the paths written")
    a.set_defaults(handler=_audit, subparser=a)
    r = sub.add_parser(
        "reproduce", help="regenerate the book's headline results (resumable)",
        description="Train (or, with --profile store, read) the runs of the book's store and "
                    "score each: drift against the finite-sample null, c-free checks, the "
                    "white-noise kernel's agreement, and each mitigation's drift relative to "
                    "its baseline. Writes OUT/reproduce.json, reproduce.md and reproduce.png; "
                    "trained runs and cell scores under OUT are reused when run again.")
    r.add_argument("--profile", default="ci", metavar="NAME",
                   help="store (score the shipped book-grade runs, no training), ci (minutes "
                        "on 2 cores), cpu or gpu (the book's budgets); default ci")
    r.add_argument("--seeds", metavar="LIST",
                   help="comma-separated seeds (default: 0 for ci, else 0,1,2)")
    r.add_argument("--only", metavar="PATTERNS",
                   help="comma-separated patterns of run names, e.g. 'pendulum.*' (default: "
                        "every run but the Transformer's data-size variants)")
    r.add_argument("--jobs", type=int, default=1, help="cells at once (joblib n_jobs; default 1)")
    r.add_argument("--out", default="physmis-reproduce", metavar="DIR",
                   help="output folder (default ./physmis-reproduce)")
    r.add_argument("--device", help="torch device for training (default: CUDA if available)")
    r.add_argument("--backend", default="loky", choices=("loky", "threading", "dask", "ray"),
                   help="joblib backend (default loky: processes on this machine)")
    r.add_argument("--scheduler", metavar="ADDRESS",
                   help="cluster to join with --backend dask (scheduler address) or ray "
                        "(ray address); default: a local cluster")
    r.add_argument("--no-progress", dest="progress", action="store_const", const=False,
                   default=None, help="no progress bars (default: on when stderr is a terminal)")
    r.add_argument("--quiet", action="store_true", help="print only the paths written")
    r.set_defaults(handler=_reproduce, subparser=r)
    return parser


def _audit(parser: argparse.ArgumentParser, args) -> int:
    from .audit import AuditInputError, audit

    try:
        result = audit(args.train, args.samples, task=args.task, measure=args.measure,
                       prior=args.prior, control_range=args.control_range, bins=args.bins,
                       seed=args.seed, kernel=args.kernel, out=args.out, n_boot=args.n_boot,
                       n_null=args.n_null, progress=args.progress)
    except AuditInputError as err:
        parser.error(f"argument {_OPTIONS.get(err.argument, err.argument)}: {err.detail}")
    except ValueError as err:
        parser.error(str(err))
    if not args.quiet:
        print(result.summary())
    print("wrote " + ", ".join(str(path) for path in result.paths))
    return 0


def _backend(parser, args, stack) -> None:
    """Enter the joblib backend of ``--backend`` (and its cluster) on ``stack``."""
    import joblib

    if args.scheduler and args.backend not in ("dask", "ray"):
        parser.error(f"argument --scheduler: needs --backend dask or ray; got --backend "
                     f"{args.backend}")
    if args.backend == "dask":
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            parser.error("argument --backend: dask needs dask[distributed]: "
                         "pip install 'dask[distributed]'")
        if args.scheduler:
            stack.enter_context(Client(args.scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(n_workers=args.jobs, threads_per_worker=1,
                                                       dashboard_address=None))
            stack.enter_context(Client(cluster))
    elif args.backend == "ray":
        try:
            import ray
            from ray.util.joblib import register_ray
        except ImportError:
            parser.error("argument --backend: ray needs ray: pip install 'ray[default]'")
        register_ray()
        ray.init(address=args.scheduler)
        stack.callback(ray.shutdown)
    if args.backend != "loky":
        stack.enter_context(joblib.parallel_config(backend=args.backend))


def _reproduce(parser: argparse.ArgumentParser, args) -> int:
    import contextlib

    from .reproduce import PROFILES, ReproduceInputError, reproduce

    # Checked here too (reproduce() checks it), so that a bad profile fails before --backend
    # starts a cluster.
    if args.profile not in PROFILES:
        parser.error(f"argument --profile: expected one of {', '.join(PROFILES)}; got "
                     f"{args.profile!r}")
    with contextlib.ExitStack() as stack:
        _backend(parser, args, stack)
        try:
            result = reproduce(profile=args.profile, seeds=args.seeds, only=args.only,
                               jobs=args.jobs, out=args.out, device=args.device,
                               progress=args.progress)
        except ReproduceInputError as err:
            parser.error(f"argument --{err.argument}: {err.detail}")
    if not args.quiet:
        print(result.summary())
        print(f"{result.report['n_cells']} cells ({result.report['n_scored_now']} scored now) in "
              f"{result.report['seconds']:.0f} s")
    print("wrote " + ", ".join(str(path) for path in result.paths))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``physmis`` console script (the practitioner's audit; README)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args.subparser, args)


if __name__ == "__main__":
    sys.exit(main())
