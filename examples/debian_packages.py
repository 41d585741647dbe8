"""Debian package metadata as categorical-id rows: a package's ids are what it needs.

Every Debian machine has the package index after `apt-get update`; `apt-cache
dumpavail` prints it as deb822 paragraphs. Each package is a row: its id is its
name, its ids are the packages in its Depends and Recommends (every
alternative, without versions or architecture qualifiers), its label is its
Section (without the archive area, `contrib/games` -> `games`). Written as a
Parquet manifest (`id`, `label`, `modality`, `ids`) that `embedbeam` reads.

    python -m examples.debian_packages OUT.parquet [--sections 10]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import subprocess
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

_RELATION_FIELDS = ("Depends", "Recommends")
_NAME = re.compile(r"^\s*([a-z0-9][a-z0-9+.\-]*)")


@dataclasses.dataclass(frozen=True)
class Package:
    name: str
    section: str
    ids: tuple[str, ...]


def dumpavail() -> str:
    """The machine's package index, as `apt-cache dumpavail` prints it."""
    return subprocess.run(
        ["apt-cache", "dumpavail"], check=True, capture_output=True, text=True
    ).stdout


def parse_packages(index: str) -> Iterator[Package]:
    """Packages of a deb822 index with a section; a name listed twice counts once."""
    seen = set()
    for paragraph in index.split("\n\n"):
        fields = _fields(paragraph)
        name, section = fields.get("Package"), fields.get("Section")
        if not name or not section or name in seen:
            continue
        seen.add(name)
        ids = []
        for field in _RELATION_FIELDS:
            for alternative in re.split(r"[,|]", fields.get(field, "")):
                match = _NAME.match(alternative)
                if match and match.group(1) not in ids:
                    ids.append(match.group(1))
        yield Package(name, section.rsplit("/", 1)[-1], tuple(ids))


def write_manifest(path: str, packages: list[Package]) -> None:
    table = pa.table(
        {
            "id": [p.name for p in packages],
            "label": [p.section for p in packages],
            "modality": ["ids"] * len(packages),
            "ids": pa.array([list(p.ids) for p in packages], pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)


def top_sections(packages: list[Package], count: int) -> list[Package]:
    """The packages of the `count` most common sections."""
    common = {s for s, _ in collections.Counter(p.section for p in packages).most_common(count)}
    return [p for p in packages if p.section in common]


def _fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = None
    for line in paragraph.splitlines():
        if line.startswith((" ", "\t")) and key:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="Parquet manifest to write.")
    parser.add_argument("--sections", type=int, default=10, help="Keep the N largest sections.")
    args = parser.parse_args()
    packages = top_sections(list(parse_packages(dumpavail())), args.sections)
    write_manifest(args.output, packages)
    print(f"wrote {len(packages)} packages of {args.sections} sections to {args.output}")


if __name__ == "__main__":
    main()
