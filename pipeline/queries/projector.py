"""`embedbeam projector`: a committed table as TensorBoard projector files.

    LOGDIR/projector_config.pbtxt          one embedding per modality
    LOGDIR/<modality>/tensors.tsv          the vectors, one row per line
    LOGDIR/<modality>/metadata.tsv         label, modality, cluster_id, id, uri (a header)
    LOGDIR/<modality>/sprite.png           image modality: thumbnails in row order
    LOGDIR/all/...                         a joint model's table: every modality in one
                                           view, its modality column marking each row

`tensorboard --logdir LOGDIR` then shows them in its Projector tab (PCA, t-SNE,
UMAP, coloured by label or cluster). The projector is a browser view, so a
large table is cut to `max_rows` rows: those with the smallest ids, which are
hashes or given ids, so the cut is the same on every run.
"""

from __future__ import annotations

import os
import posixpath

import numpy as np
from google.protobuf import text_format
from tensorboard.plugins.projector import projector_config_pb2

from embedbeam.pipeline.queries.cross_modal import one_space
from embedbeam.pipeline.queries.table import EmbeddingTable, load_table, modalities
from embedbeam.pipeline.queries.thumbnails import png_bytes, sprite_sheet, thumbnail
from embedbeam.transforms.sparse.image import DEFAULT_GRID

CONFIG_FILE = "projector_config.pbtxt"  # the name TensorBoard's projector plugin looks for
DEFAULT_MAX_ROWS = 10_000
METADATA_COLUMNS = ("label", "modality", "cluster_id", "id", "uri")
ALL_MODALITIES = "all"  # the view of a joint model's modalities together
_SEPARATORS = str.maketrans("\t\r\n", "   ")  # would split a metadata cell


def write_projector(
    output_dir: str,
    logdir: str,
    modality: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> list[str]:
    """Writes the projector files for one modality (or all); returns the modalities written."""
    chosen = [modality] if modality else modalities(output_dir)
    config = projector_config_pb2.ProjectorConfig()
    tables = [load_table(output_dir, name).first_by_id(max_rows) for name in chosen]
    joint = one_space(output_dir) if modality is None else {}
    views = [(table.modality, [table]) for table in tables]
    if joint:
        views.append((ALL_MODALITIES, [table.first_by_id(max_rows) for table in joint.values()]))
    for name, parts in views:
        folder = os.path.join(logdir, name)
        os.makedirs(folder, exist_ok=True)
        embedding = config.embeddings.add()
        embedding.tensor_name = name
        embedding.tensor_path = posixpath.join(name, "tensors.tsv")
        embedding.metadata_path = posixpath.join(name, "metadata.tsv")
        np.savetxt(
            os.path.join(folder, "tensors.tsv"),
            np.concatenate([table.embeddings for table in parts]),
            delimiter="\t",
            fmt="%.7g",
        )
        _write_metadata(os.path.join(folder, "metadata.tsv"), parts)
        if name == "image":
            table = parts[0]
            sheet = sprite_sheet([thumbnail(uri) for uri in table.uris])
            with open(os.path.join(folder, "sprite.png"), "wb") as handle:
                handle.write(png_bytes(sheet))
            embedding.sprite.image_path = posixpath.join(name, "sprite.png")
            embedding.sprite.single_image_dim.extend([DEFAULT_GRID, DEFAULT_GRID])
    with open(os.path.join(logdir, CONFIG_FILE), "w") as handle:
        handle.write(text_format.MessageToString(config))
    return [name for name, _ in views]


def _write_metadata(path: str, tables: list[EmbeddingTable]) -> None:
    """Tab-separated with a header row, no quoting: TensorBoard splits lines on tabs."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\t".join(METADATA_COLUMNS) + "\n")
        for table in tables:
            rows = zip(table.labels, table.cluster_ids, table.ids, table.uris, strict=True)
            for label, cluster, id_, uri in rows:
                cells = (label or "", table.modality, str(cluster), id_, uri)
                handle.write("\t".join(cell.translate(_SEPARATORS) for cell in cells) + "\n")
