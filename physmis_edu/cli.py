"""The ``physmis`` command line (the practitioner's audit; README, "Auditing your own model").

Subcommands:

* ``physmis audit``: audit a model's samples against its training set
  (:func:`physmis_edu.audit.audit`), print a summary, write ``audit.json`` and ``audit.png``.

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
    # A future `physmis reproduce` subcommand registers here with its own handler.
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


def main(argv=None) -> int:
    """Entry point of the ``physmis`` console script (the practitioner's audit; README)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.handler(args.subparser, args)


if __name__ == "__main__":
    sys.exit(main())
