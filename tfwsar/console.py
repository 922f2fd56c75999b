"""A quiet terminal for tfwsar's commands: no TensorFlow C++ log lines, no INFO logging, by default.

Imported, TensorFlow prints C++ log lines (`E ... Unable to register cuFFT factory`, `I ...
cpu_feature_guard`, `W ... Could not find TensorRT`), and under absl's `app.run` its checkpoint and
SavedModel code logs at INFO (`Sharding callback duration`, `Assets written to`). None of it is
about the user's run. Every command calls `quiet_terminal()` (the tools, at the top, before their
imports load TensorFlow) or `run(main)` (the recipes, in place of `absl.app.run`):

- `TF_CPP_MIN_LOG_LEVEL=3` (C++ messages below FATAL off) unless the environment already sets it;
  it must be set before TensorFlow is imported, which is why this runs first;
- under `run`, Python logging (absl, TensorFlow, matplotlib) at WARNING instead of absl's INFO.

`TFWSAR_VERBOSE=1`, or a recipe's `--verbosity N` / `-v N`, brings everything back. Importing
this module does nothing.
"""

import logging
import os
import sys

VERBOSE_VARIABLE = "TFWSAR_VERBOSE"


def verbose_requested(argv=()):
    """True when TFWSAR_VERBOSE is set (not 0/false/no) or `argv` sets absl's --verbosity / -v."""
    if os.environ.get(VERBOSE_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return any(arg in ("-v", "--v", "--verbosity") or arg.startswith(("-v=", "--v=", "--verbosity="))
               for arg in argv)


def quiet_terminal(argv=None):
    """Silences TensorFlow's C++ logging unless verbose output was asked for; returns that request.

    Call before anything imports TensorFlow.
    """
    verbose = verbose_requested(sys.argv[1:] if argv is None else argv)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return verbose


def run(main):
    """`absl.app.run(main)` with a quiet terminal: the entry point of `python -m tfwsar.recipes.*`.

    absl raises Python logging to INFO once it has parsed the flags when `--verbosity` is not
    given; `main` then runs with WARNING instead.
    """
    verbose = quiet_terminal()
    from absl import app  # pylint: disable=import-outside-toplevel
    from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel

    def quiet_main(argv):
        if not verbose:
            absl_logging.set_verbosity(absl_logging.WARNING)
            logging.getLogger().setLevel(logging.WARNING)
        return main(argv)

    app.run(quiet_main)
