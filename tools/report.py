"""Writes the offline HTML report of finished runs (what every recipe run writes at its end).

  python tools/report.py WORKDIR                          # → WORKDIR/report.html
  python tools/report.py RUN_A RUN_B ... --out compare.html   # several runs on one page

The page holds the tables beside the paper's, per-class AP, timelines of test videos, training
curves, config and command (tfwsar/run_report.py); its images are embedded, so the one file opens
anywhere offline. Runs made before report_data.json existed get everything but the timelines and
the per-class chart (re-run the recipe on the workdir: it resumes and writes them).
"""

import argparse
import sys

from tfwsar import console

console.quiet_terminal()  # before TensorFlow loads

from tfwsar import run_report  # noqa: E402  pylint: disable=wrong-import-position


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+", help="run directories (each with metrics.json)")
    parser.add_argument("--out", default=None,
                        help="the HTML file (default: WORKDIR/report.html for one run, "
                             "report.html here for several)")
    args = parser.parse_args(argv)
    out = args.out or (None if len(args.workdirs) == 1 else "report.html")
    try:
        path = run_report.write_report(args.workdirs, out=out)
    except (FileNotFoundError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
