"""Benchmark: export the report (PDF + JSON + CSV) of a synthetic 500-probe audit.

Target on the 2-core development machine: under 15 s for all three files.
Run: `python benchmarks/report.py [--probes 500] [--keep report.pdf]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from auditdesk.core.report import ReportMeta, build_report, write_csv, write_json
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the synthetic findings live with the tests
from report_sample import sample_answers, sample_findings  # noqa: E402

TARGET_S = 15.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="also keep the PDF here")
    args = parser.parse_args()
    findings = sample_findings(args.probes)
    answers = sample_answers(findings, samples=args.samples, hostile="<b>x</b> \u202e 中文 " + "w" * 3000)
    meta = ReportMeta(organisation="Benchmark Ltd", auditor="Bench Marker")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        result = build_report(findings, answers, out / "report.pdf", meta=meta)
        t1 = time.perf_counter()
        write_json(findings, out / "findings.json")
        t2 = time.perf_counter()
        rows = write_csv(answers, out / "answers.csv")
        t3 = time.perf_counter()
        size = (out / "report.pdf").stat().st_size
        if args.keep:
            args.keep.write_bytes((out / "report.pdf").read_bytes())
    total = t3 - t0
    print(f"probes {args.probes}, answers {len(answers)}, pages {result.pages}, PDF {size / 1e6:.2f} MB")
    print(f"pdf  {t1 - t0:6.2f} s")
    print(f"json {t2 - t1:6.2f} s")
    print(f"csv  {t3 - t2:6.2f} s ({rows} rows)")
    print(f"total {total:5.2f} s  (target < {TARGET_S:.0f} s: {'met' if total < TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
