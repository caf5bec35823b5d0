"""Record the current message schemas as a released version in schemas/history/.

Run when a release changes a message schema: ``python tools/snapshot_schemas.py``. Each
message schema (payloads, envelope, node descriptors) whose standalone form differs from its
latest released version (by fingerprint: a doc-only edit is no release) is written as
``history/<full name>/v<N+1>.avsc``. The test suite then
holds every later change to full transitive compatibility with all of them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.codec import SchemaRegistry, history_versions, released_info
from node.payloads import all_payloads

MESSAGE_SCHEMAS = (
    "xnode.envelope.Envelope",
    "xnode.trust.NodeDescriptor",
    "xnode.trust.SignedNodeDescriptor",
)


def main() -> None:
    directory = Path(__file__).resolve().parent.parent / "schemas"
    registry = SchemaRegistry.from_directory(directory)
    for name in (*MESSAGE_SCHEMAS, *all_payloads()):
        current = registry.schema(name).standalone
        released = history_versions(directory, name)
        # a release is a change of the canonical form (fields, types, symbols); a new doc or
        # an edited one is not, and is read from the current files anyway
        if released and released_info(registry, released[-1]).fingerprint == (
            registry.schema(name).fingerprint
        ):
            continue
        target = directory / "history" / name / f"v{len(released) + 1}.avsc"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(current, ensure_ascii=False, indent=2) + "\n")
        print(f"released {target.relative_to(directory)}")


if __name__ == "__main__":
    main()
