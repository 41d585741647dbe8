"""`embedbeam report`: one self-contained HTML page about a committed table.

Per modality: rows per cluster, quality (5-NN leave-one-out accuracy and
cluster purity where rows have labels), an interactive 3-D scatter of the
embeddings coloured by label (PCA to 3-D where d > 3), and for images the
nearest neighbours of a few items as thumbnails. Plus the run's counts and
dead-letter reasons; for a joint model's table (one space), the cross-modal
matrix, purity over all modalities and one scatter of every modality, coloured
by label, each modality its own marker. Plotly's JavaScript and the thumbnails are inlined, so
the file opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import time

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from sklearn.decomposition import PCA

from embedbeam.pipeline.queries.cross_modal import cross_modal_matrix, one_space, purity_over_all
from embedbeam.pipeline.queries.neighbours import nearest
from embedbeam.pipeline.queries.summary import summarize
from embedbeam.pipeline.queries.table import (
    EmbeddingTable,
    dead_letters,
    load_table,
    read_run_record,
)
from embedbeam.pipeline.queries.thumbnails import png_bytes, thumbnail

SCATTER_POINTS = 5_000  # per modality; a browser stays responsive
NEIGHBOUR_QUERIES = 6
NEIGHBOURS = 5


def write_report(output_dir: str, report_path: str) -> None:
    """Writes the page to `report_path` (UserError if `output_dir` holds no committed table)."""
    manifest = read_run_record(output_dir)
    summary = summarize(output_dir)
    sections = [_run_section(output_dir, manifest, summary)]
    plotly_js: bool | str = True  # inline Plotly once, with the first plot
    for modality in sorted(manifest["models"]):
        table = load_table(output_dir, modality)
        if not len(table):
            sections.append(f"<h2>{html.escape(modality)}</h2><p>No rows.</p>")
            continue
        sections.append(_modality_section(table, summary[modality], plotly_js))
        plotly_js = False
    joint = one_space(output_dir)
    if joint:
        sections.append(_one_space_section(joint, plotly_js))
    with open(report_path, "w", encoding="utf-8") as handle:
        handle.write(_PAGE.format(title=html.escape(output_dir), body="\n".join(sections)))


def _run_section(output_dir: str, manifest: dict, summary: dict) -> str:
    facts = {
        "output": summary["output"],
        "committed run": manifest["run_id"],
        "inputs seen": manifest["inputs_seen"],
        "rows written": manifest["rows_written"],
        "dead letters": manifest["dead_letters"],
        "wall time": f"{manifest['wall_time_s']} s ({summary['items_per_s']} items/s)",
        "report made": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    reasons = (
        dead_letters(output_dir)
        .group_by(["stage", "error"])
        .aggregate([("uri", "count")])
        .sort_by([("stage", "ascending"), ("error", "ascending")])
    )
    dead_letter_rows = [tuple(row.values()) for row in reasons.to_pylist()] or [("", "none", 0)]
    return (
        "<h1>embedbeam report</h1><div class='row'>"
        + _facts(facts, "run")
        + "<div><h3>Dead letters by reason</h3>"
        + _table(["stage", "reason", "inputs"], dead_letter_rows, "dead-letters")
        + "</div></div>"
    )


def _modality_section(table: EmbeddingTable, quality: dict, plotly_js: bool | str) -> str:
    name = html.escape(table.modality)
    measures = {
        "rows": len(table),
        "embedding width d": table.embeddings.shape[1],
        "model version": table.model_version,
        "5-NN accuracy (leave-one-out)": quality.get("knn5_accuracy", "no labels"),
        "cluster purity": quality.get("cluster_purity", "no labels"),
    }
    parts = [
        f"<section id='modality-{name}'><h2>{name}</h2><div class='row'>",
        _facts(measures, "quality"),
        "<div><h3>Rows per cluster</h3>",
        _table(
            ["cluster_id", "rows", "most common label", "its share"], _clusters(table), "clusters"
        ),
        "</div></div><h3>Embeddings in 3-D</h3>",
        pio.to_html(
            _scatter(table),
            include_plotlyjs=plotly_js,
            full_html=False,
            div_id=f"scatter-{name}",
            config={"responsive": True},
        ),
    ]
    if table.modality == "image":
        parts += ["<h3>Nearest neighbours</h3>", _neighbour_gallery(table)]
    parts.append("</section>")
    return "\n".join(parts)


_MARKERS = ("circle", "diamond", "square", "cross", "x", "circle-open")


def _one_space_section(tables: dict[str, EmbeddingTable], plotly_js: bool | str) -> str:
    """The modalities of one joint model together: how often the nearest row of another
    modality has the query's label, and one scatter of all of them."""
    matrix = cross_modal_matrix(tables)
    names = sorted(tables)
    rows = [
        (query, *(f"{matrix[(query, g)]:.3f}" if g != query else "-" for g in names))
        for query in names
    ]
    samples = {name: table.first_by_id(SCATTER_POINTS) for name, table in tables.items()}
    points, axes = _three_d(np.concatenate([sample.embeddings for sample in samples.values()]))
    labels = sorted({str(label) for sample in samples.values() for label in sample.labels})
    figure, start = go.Figure(), 0
    for marker, (name, sample) in zip(_MARKERS, samples.items(), strict=False):
        chosen = points[start : start + len(sample)]
        start += len(sample)
        sample_labels = np.array([str(label) for label in sample.labels])
        for colour, label in enumerate(labels):
            rows_of_label = sample_labels == label
            figure.add_trace(
                go.Scatter3d(
                    x=chosen[rows_of_label, 0], y=chosen[rows_of_label, 1],
                    z=chosen[rows_of_label, 2], mode="markers", name=f"{label} ({name})",
                    legendgroup=label, text=np.asarray(sample.uris)[rows_of_label],
                    marker={"size": 3, "symbol": marker, "color": _COLOURS[colour % 10]},
                    hoverinfo="text+name",
                )
            )  # fmt: skip
    figure.update_layout(
        height=640,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title="every modality in one space: colour = label, marker = modality",
        scene={"xaxis_title": axes[0], "yaxis_title": axes[1], "zaxis_title": axes[2]},
    )
    return "\n".join(
        [
            "<section id='one-space'><h2>One space</h2><div class='row'>",
            _facts({"cluster purity, all modalities": f"{purity_over_all(tables):.3f}"}, "quality"),
            "<div><h3>Label accuracy of the nearest row of another modality</h3>",
            _table(["query \\ gallery", *names], rows, "cross-modal"),
            "</div></div>",
            pio.to_html(figure, include_plotlyjs=plotly_js, full_html=False,
                        div_id="scatter-one-space", config={"responsive": True}),
            "</section>",
        ]
    )  # fmt: skip


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf")  # fmt: skip


def _clusters(table: EmbeddingTable) -> list[tuple]:
    """Per cluster: its size, and its most common label with that label's share of it."""
    labels = np.array([str(label) for label in table.labels])
    rows = []
    for cluster in np.unique(table.cluster_ids):
        members = labels[table.cluster_ids == cluster]
        values, counts = np.unique(members, return_counts=True)
        top = int(np.argmax(counts))
        rows.append((int(cluster), len(members), values[top], f"{counts[top] / len(members):.0%}"))
    return rows


def _scatter(table: EmbeddingTable) -> go.Figure:
    """Up to SCATTER_POINTS rows (smallest ids: the same cut every time) in 3-D, by label."""
    sample = table.first_by_id(SCATTER_POINTS)
    points, axes = _three_d(sample.embeddings)
    labels = np.array([label if label is not None else "(none)" for label in sample.labels])
    figure = go.Figure()
    for label in sorted(set(labels.tolist())):
        chosen = labels == label
        figure.add_trace(
            go.Scatter3d(
                x=points[chosen, 0],
                y=points[chosen, 1],
                z=points[chosen, 2],
                mode="markers",
                name=label,
                marker={"size": 2},
                text=[
                    f"{id_} (cluster {c})"
                    for id_, c in zip(
                        np.asarray(sample.ids)[chosen], sample.cluster_ids[chosen], strict=True
                    )
                ],  # fmt: skip
                hoverinfo="text+name",
            )
        )
    figure.update_layout(
        height=640,
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title=f"{len(sample)} of {len(table)} rows, coloured by label",
        scene={"xaxis_title": axes[0], "yaxis_title": axes[1], "zaxis_title": axes[2]},
        legend={"itemsizing": "constant"},
    )
    return figure


def _three_d(embeddings: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The embeddings as 3 coordinates: as they are when d <= 3, else their top 3 PCA axes."""
    width = embeddings.shape[1]
    if width > 3:
        pca = PCA(n_components=3, random_state=0).fit(embeddings)
        shares = pca.explained_variance_ratio_
        return pca.transform(embeddings), [f"PC{i + 1} ({shares[i]:.0%})" for i in range(3)]
    padded = np.pad(embeddings, ((0, 0), (0, 3 - width)))
    return padded, [f"e{i}" if i < width else "" for i in range(3)]


def _neighbour_gallery(table: EmbeddingTable) -> str:
    """A few items (one per label where labels exist) and their nearest neighbours."""
    queries = _gallery_queries(table)
    rows = []
    for query in queries:
        order, distances = nearest(table.embeddings, table.embeddings[query], NEIGHBOURS + 1)
        cells = [_figure(table, query, "query")]
        cells += [
            _figure(table, row, f"{distance:.3f}")
            for row, distance in zip(order, distances, strict=True)
            if row != query
        ][:NEIGHBOURS]
        rows.append(f"<div class='gallery-row'>{''.join(cells)}</div>")
    return "".join(rows)


def _gallery_queries(table: EmbeddingTable) -> list[int]:
    first_of_label: dict[str | None, int] = {}
    for row in table.rows_by_id().tolist():
        first_of_label.setdefault(table.labels[row], row)
    return sorted(first_of_label.values(), key=lambda row: str(table.labels[row]))[
        :NEIGHBOUR_QUERIES
    ]


def _figure(table: EmbeddingTable, row: int, caption: str) -> str:
    picture = thumbnail(table.uris[row])
    image = (
        f"<img alt='{html.escape(table.ids[row])}' src='data:image/png;base64,"
        f"{base64.b64encode(png_bytes(picture)).decode('ascii')}'>"
        if picture is not None
        else "<div class='missing'>file gone</div>"
    )
    label = html.escape(str(table.labels[row]))
    return (
        f"<figure title='{html.escape(table.uris[row])}'>{image}"
        f"<figcaption>{label} · {html.escape(caption)}</figcaption></figure>"
    )


def _facts(facts: dict, css_class: str) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(name))}</th><td>{html.escape(str(value))}</td></tr>"
        for name, value in facts.items()
    )
    return f"<table class='{css_class}'><tbody>{body}</tbody></table>"


def _table(header: list[str], rows, css_class: str) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table class='{css_class}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>embedbeam report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }}
.row {{ display: flex; gap: 2em; align-items: flex-start; flex-wrap: wrap; }}
h3 {{ margin: 0.3em 0; }}
th {{ background: #f4f4f4; }}
.gallery-row {{ display: flex; gap: 0.5em; margin-bottom: 0.5em; }}
figure {{ margin: 0; text-align: center; font-size: 0.8em; }}
figure img {{ width: 56px; height: 56px; image-rendering: pixelated; display: block; }}
figure:first-child img {{ outline: 2px solid #c33; }}
.missing {{ width: 56px; height: 56px; background: #eee; font-size: 0.7em; }}
</style></head>
<body>
{body}
</body></html>
"""
