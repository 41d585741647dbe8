"""Markdown tables of `python -m bench` results, as bench/README.md quotes them.

python -m bench.table bench/results/embed_bench.json [more.json ...]
"""

from __future__ import annotations

import json
import pathlib
import sys

COLUMNS = (
    "variant", "items/s", "ratio to loop", "wall s", "CPU s (tree)", "peak RSS (tree)",
    "model stage rows/s",
)  # fmt: skip


def table(results: dict) -> str:
    """One Markdown table per input set, variants in the order they ran."""
    parts = []
    for name, measured in results["sets"].items():
        first = next(iter(measured["variants"].values()))
        title = f"**{name}** ({first['items']:,} items"
        if "model_only" in measured:
            limit = measured["model_only"]
            title += (
                f"; model-only limit {limit['rows_per_s']:,.0f} rows/s at "
                f"{limit['max_batch_nnz']:,} non-zeros per call"
            )
        lines = [title + ")", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
        for variant, row in measured["variants"].items():
            stage = row.get("model_stage_rows_per_s")
            cells = (
                variant,
                f"{row['items_per_s']:,.0f}",
                f"{row['ratio_to_plain_loop']:.2f}",
                f"{row['wall_s']:.1f}",
                f"{row['cpu_s_tree']:.1f}",
                f"{row['peak_rss_tree_mb']:,} MB",
                f"{stage:,.0f}" if stage else "",
            )
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def main() -> None:
    for path in sys.argv[1:]:
        print(table(json.loads(pathlib.Path(path).read_text())))
        print()


if __name__ == "__main__":
    main()
