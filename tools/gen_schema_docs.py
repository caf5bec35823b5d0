"""Write docs/schemas/<lang>.md: every payload field with its meaning and codes, per language.

Run after changing a schema, a field doc or a translation catalog:
``python tools/gen_schema_docs.py``. A test fails while a page is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.codec import default_registry
from node.codes import LANGUAGES
from node.schema_docs import markdown


def main() -> None:
    target = Path(__file__).resolve().parent.parent / "docs" / "schemas"
    target.mkdir(exist_ok=True)
    registry = default_registry()
    for language in LANGUAGES:
        path = target / f"{language}.md"
        path.write_text(markdown(registry, language), "utf-8")
        print(f"wrote {path.relative_to(target.parent.parent)}")


if __name__ == "__main__":
    main()
