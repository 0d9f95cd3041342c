#!/usr/bin/env bash
# Render an `inbedder cluster --report` page in headless Chromium and check that the plot is drawn.
#
#   scripts/report_screenshot.sh REPORT.html [SHOT.png]
#
# Takes a screenshot (default: REPORT.png next to the report), then counts the pixels painted in the
# report's cluster colours (dots are drawn at 75% opacity on white, so the table's swatches do not count).
# Exits 0 and prints "plot drawn: ..." when there are dots of at least two clusters (one for k=1).
# Needs chromium (Debian: apt-get install -y chromium) and Pillow (installed with matplotlib).
set -euo pipefail

report=${1:?usage: $0 REPORT.html [SHOT.png]}
shot=${2:-${report%.*}.png}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
[ -x "$python" ] || python=python3
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "chromium not found: install it with apt-get install -y chromium" >&2
    exit 2
fi
[ -f "$report" ] || { echo "no such report: $report" >&2; exit 2; }
rm -f "$shot"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,1500 \
    --screenshot="$shot" "file://$(realpath "$report")" >/dev/null 2>&1 || true
[ -s "$shot" ] || { echo "chromium wrote no screenshot for $report" >&2; exit 1; }

"$python" - "$shot" "$report" <<'PY'
import re
import sys

import numpy as np
from PIL import Image

shot, report = sys.argv[1], sys.argv[2]
pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32).reshape(-1, 3)
page = open(report, encoding="utf-8").read()
colours = sorted(set(re.findall(r'<circle [^>]*fill="(#[0-9a-f]{6})"', page)))
colours = [c for c in colours if not c[1:3] == c[3:5] == c[5:7]]  # greys: text and borders have them too
found = {}
for colour in colours:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float32)
    dot = 0.75 * rgb + 0.25 * 255  # fill-opacity 0.75 on white
    n = int((np.abs(pixels - dot).max(axis=1) <= 12).sum())
    if n >= 10:
        found[colour] = n
if not colours or len(found) < min(2, len(colours)):
    sys.exit(f"plot not drawn in {shot}: {len(found)} of {len(colours)} cluster colours seen {found}")
print(f"plot drawn: {sum(found.values())} dot pixels in {len(found)} of {len(colours)} cluster colours; "
      f"screenshot {shot}")
PY
