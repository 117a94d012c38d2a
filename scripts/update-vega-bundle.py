"""Regenerate opsctl/assets/vega.js: Vega, Vega-Lite and vega-embed in one script, so the HTML
`opsctl plots show --html` writes draws offline (no CDN).

The bundle comes from vl-convert-python (the same Vega that renders `--svg`); building it
takes a few seconds, which is why it is kept in the package rather than made per command.
Run after upgrading vl-convert-python:  .venv/bin/python scripts/update-vega-bundle.py
"""

from pathlib import Path

import vl_convert

VL_VERSION = "5.21"  # DVC's templates declare Vega-Lite v5 (opsctl.core.plots.VL_VERSION)

HEADER = (
    "/* Vega, Vega-Lite {vl} and vega-embed, bundled by vl-convert-python {vlc}\n"
    " * (scripts/update-vega-bundle.py). Vega, Vega-Lite and vega-embed: BSD-3-Clause,\n"
    " * Copyright (c) the University of Washington Interactive Data Lab. */\n"
)

if __name__ == "__main__":
    bundle = vl_convert.javascript_bundle(vl_version=VL_VERSION)
    target = Path(__file__).resolve().parent.parent / "opsctl" / "assets" / "vega.js"
    target.write_text(HEADER.format(vl=VL_VERSION, vlc=vl_convert.__version__) + bundle, encoding="utf-8")
    print(f"{target}: {target.stat().st_size:,} bytes")
