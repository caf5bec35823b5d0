"""Write schemas/codes/<list>.avsc from schemas/codes/<list>.json for lists carried as enums.

Run after editing a code list: ``python tools/gen_code_enums.py``. Remember the evolution rules
(schemas/README.md): codes are only ever added, never removed or renamed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.codes import load_code_lists


def main() -> None:
    directory = Path(__file__).resolve().parent.parent / "schemas" / "codes"
    for name, code_list in load_code_lists(directory).items():
        if code_list.avro_enum is None:
            continue
        target = directory / f"{name}.avsc"
        target.write_text(json.dumps(code_list.enum_schema(), ensure_ascii=False, indent=2) + "\n")
        print(f"wrote {target.relative_to(directory.parent.parent)}")


if __name__ == "__main__":
    main()
