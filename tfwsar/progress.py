"""Progress bars for long work (conversion, extraction, evaluation over many videos)."""

import sys

import tqdm


def progress(iterable, total=None, desc=None, enabled=None):
    """Wraps `iterable` in a tqdm progress bar written to stderr.

    Args:
      iterable: what to iterate over.
      total: number of items, when `iterable` has no len().
      desc: the label printed before the bar.
      enabled: True/False to force; None shows the bar only when stderr is a terminal.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm.tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr,
                     dynamic_ncols=True, mininterval=0.5)
