"""The project's single pipeline stage. Replace it with your own code.

Reads:  params.yaml (message)
Writes: output/result.txt
"""
from pathlib import Path

import yaml

OUT = Path("output/result.txt")


def main() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(params["message"] + "\n")
    print(f"main: wrote {OUT}")


if __name__ == "__main__":
    main()
