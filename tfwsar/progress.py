"""Progress of long work (conversion, extraction, evaluation over many videos) on stderr.

On a terminal, a tqdm bar. Elsewhere (CI logs, a file) a bar's carriage returns make one unreadable
line, so the same call writes plain periodic lines instead: `desc: 40/212 (19%) 3.1/s, 55 s
left`, at most one per `LINE_SECONDS` seconds and one per 10 % of the work, and a last one at the
end.
"""

import sys
import time

import tqdm

LINE_SECONDS = 30.0
LINE_FRACTION = 0.1


def progress(iterable, total=None, desc=None, enabled=None):
    """Wraps `iterable` in a progress display written to stderr.

    Args:
      iterable: what to iterate over.
      total: number of items, when `iterable` has no len().
      desc: the label printed before the bar.
      enabled: True forces the bar, False shows nothing; None shows the bar on a terminal and
        periodic lines elsewhere.

    Returns:
      An iterable over the same items with `set_postfix_str(text)` (tqdm's, or the lines' note).
    """
    if enabled is None and not sys.stderr.isatty():
        return _Lines(iterable, total, desc)
    return tqdm.tqdm(iterable, total=total, desc=desc, disable=not enabled, file=sys.stderr,
                     dynamic_ncols=True, mininterval=0.5)


class _Lines:
    """The non-terminal form of `progress`: a line now and then, not a redrawn bar."""

    def __init__(self, iterable, total, desc):
        self._iterable = iterable
        self.total = total if total is not None else (
            len(iterable) if hasattr(iterable, "__len__") else None)
        self.desc = desc or "progress"
        self.n = 0
        self._postfix = ""

    def set_postfix_str(self, text, refresh=False):
        del refresh
        self._postfix = text

    def __iter__(self):
        started = last_time = time.perf_counter()
        last_count = 0
        for item in self._iterable:
            yield item
            self.n += 1
            now = time.perf_counter()
            fraction_due = bool(self.total) and (self.n - last_count) >= LINE_FRACTION * self.total
            if self.n != self.total and (now - last_time >= LINE_SECONDS or (
                    fraction_due and now - last_time >= LINE_SECONDS / 6)):
                self._write(now - started)
                last_time, last_count = now, self.n
        self._write(time.perf_counter() - started)

    def _write(self, elapsed):
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if self.total:
            left = f", {(self.total - self.n) / rate:.0f} s left" if rate and self.n < self.total else ""
            line = f"{self.desc}: {self.n}/{self.total} ({100 * self.n / self.total:.0f}%) {rate:.3g}/s{left}"
        else:
            line = f"{self.desc}: {self.n} {rate:.3g}/s"
        if self.n == self.total or self.total is None:
            line += f", {elapsed:.0f} s"
        if self._postfix:
            line += f"  {self._postfix}"
        print(line, file=sys.stderr, flush=True)
