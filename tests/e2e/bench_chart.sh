#!/bin/sh
# make bench's bar chart (tools/bench_report.py: chart): % of peak per phase and MAR-B row,
# each against the peak its table quotes, drawn by gnuplot with its script kept beside it.
set -eu
. tests/e2e/lib.inc
python3 - "$T" <<'PY' || fail "bench_report.chart"
import os, sys
sys.path.insert(0, "tools")
import bench_report as b
out = {"blas_core": "Haswell", "peak_gflops": 100.0,
       "mar_base": {"batch_1": {"gflops_transformer": 50, "gflops_head": 30, "end_to_end_pct_peak": 35,
                                "local_peak_gflops": 100},
                    "batch_1_threads_1": {"gflops_transformer": 40, "gflops_head": 20, "end_to_end_pct_peak": 25,
                                          "local_peak_gflops": 50}}}
rows = b.chart_rows(out)
assert rows == [("b1", 50.0, 30.0, 35), ("b1 1t", 80.0, 40.0, 25)], rows
png = os.path.join(sys.argv[1], "bench.png")
assert b.chart(out, png), "gnuplot did not draw the chart"
assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
gp = open(os.path.join(sys.argv[1], "bench.gp")).read()
assert '"b1 1t" 80.00 40.00 25.00' in gp, gp
assert not b.chart({"mar_base": {}}, png + "2"), "an empty report drew a chart"
PY
echo "ok: bench chart"
