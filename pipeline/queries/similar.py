"""`embedbeam similar`: nearest neighbours of one item in a committed embeddings table.

The query is an id or uri already in the table, or a path to a raw file, which
is featurized and embedded with the model that wrote the table (its version
must match). Euclidean distance (the measure the encoder was trained for) or
cosine distance; exact with numpy, or for large tables through a cached HNSW
index whose candidates are then measured exactly.

A table written by a joint model holds its modalities in one space, so the
query may be of another modality than the rows searched (`--modality image`
with a sound): a raw file is featurized as the joint model featurizes its
modality, an id of another partition brings that row's embedding. Partitions
written by different models are different spaces, and such a query is refused.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.queries.neighbours import search
from embedbeam.pipeline.queries.table import (
    EmbeddingTable,
    index_path,
    load_table,
    modalities,
    read_run_record,
)
from embedbeam.transforms.sparse import InvalidInput, SparseRows
from embedbeam.transforms.sparse.modalities import make_featurizer, modality_for_uri


@dataclasses.dataclass(frozen=True)
class Neighbour:
    id: str
    uri: str
    label: str | None
    distance: float


def similar(
    output_dir: str,
    query: str,
    k: int = 10,
    modality: str | None = None,
    metric: str = "euclidean",
    use_index: str = "auto",
) -> list[Neighbour]:
    """The k nearest neighbours of `query` (an id, a uri in the table, or a raw file).

    Large tables are searched through an HNSW index kept beside the table
    (`use_index`: auto, always, never; see pipeline/queries/neighbours.py).
    """
    table = load_table(output_dir, modality)
    query_row = _row_of(table, query)
    if query_row is not None:
        vector = table.embeddings[query_row]
    else:
        vector = _row_elsewhere(output_dir, table, query)
        if vector is None:
            vector = _embed_file(output_dir, table, query)
    order, distances = search(
        table.embeddings,
        vector,
        k + (query_row is not None),
        metric,
        index_path(output_dir, table, metric),
        use_index,
    )
    neighbours = [
        Neighbour(table.ids[i], table.uris[i], table.labels[i], float(d))
        for i, d in zip(order, distances, strict=True)
        if i != query_row
    ]
    return neighbours[:k]


def format_neighbours(neighbours: list[Neighbour]) -> str:
    lines = [f"{'rank':>4}  {'distance':>9}  {'label':<10}  {'id':<32}  uri"]
    for rank, n in enumerate(neighbours, start=1):
        lines.append(f"{rank:>4}  {n.distance:>9.4f}  {str(n.label):<10}  {n.id:<32}  {n.uri}")
    return "\n".join(lines)


def _row_of(table: EmbeddingTable, query: str) -> int | None:
    row = table.row_of(query)
    return row if row is not None else table.row_of(os.path.abspath(query))


def _row_elsewhere(output_dir: str, table: EmbeddingTable, query: str) -> np.ndarray | None:
    """The embedding of the row `query` names in another modality partition of the same
    space (same model version), if there is one."""
    for other in modalities(output_dir):
        if other == table.modality:
            continue
        partition = load_table(output_dir, other)
        row = _row_of(partition, query)
        if row is not None:
            _check_one_space(partition.modality, partition.model_version, table)
            return partition.embeddings[row]
    return None


def _check_one_space(modality: str, model_version: str, table: EmbeddingTable) -> None:
    """A query of `modality` embedded by `model_version` may search `table` only if the
    same model wrote it: only a joint model's modalities share one space."""
    if model_version == table.model_version:
        return
    if modality == table.modality:
        raise UserError(
            f"the {modality} model is now version {model_version}, but the table was "
            f"written by {table.model_version}; re-embed or restore that model"
        )
    raise UserError(
        f"the {table.modality} rows were embedded by another model ({table.model_version}) "
        f"than {modality} inputs ({model_version}): only the modalities of one joint model "
        "share a space"
    )


def _embed_file(output_dir: str, table: EmbeddingTable, path: str) -> np.ndarray:
    """Featurizes and embeds a raw file with the table's model of the file's modality."""
    if not os.path.isfile(path):
        raise UserError(f"{path!r} is neither an id or uri in the table nor a readable file")
    modality = modality_for_uri(path)
    model_dirs = read_run_record(output_dir)["options"]["models"]
    if modality not in model_dirs:
        raise UserError(
            f"{path} is {modality or 'of unknown modality'}; the table has {', '.join(model_dirs)}"
        )
    model_dir = model_dirs[modality]
    from embedbeam.pipeline.model.model_dir import modality_models, read_model_info

    try:
        model = modality_models(read_model_info(model_dir))[modality]
    except (ValueError, KeyError) as error:
        raise UserError(f"cannot embed {path}: the table's model is gone ({error})") from error
    _check_one_space(modality, model.info.model_version, table)
    with open(path, "rb") as handle:
        try:
            featurize = make_featurizer(modality, model.info.featurizer, model_dir)
            features = featurize(handle.read())
        except InvalidInput as error:
            raise UserError(f"cannot embed {path}: {error.reason}: {error}") from error
    import tensorflow as tf

    from embedbeam.pipeline.model.encoder import embed_rows

    loaded = tf.saved_model.load(model_dir)  # keep: its signature needs its variables alive
    return embed_rows(loaded.signatures[model.signature], SparseRows.stack([features]))[0]
