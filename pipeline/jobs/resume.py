"""`embed --resume`: the rows earlier runs already wrote into OUT, and which of them to keep.

Whole embeddings files live in two places: the table (`OUT/embeddings/`,
each file renamed into place whole, committed or left by a commit that died)
and the staging folders of runs that never committed
(`OUT/_staging/<run>/embeddings/`, shards renamed to `part-*.parquet` only
when complete). A file is kept whole or not at all: files are taken in that
order, and one whose ids are not disjoint from those already kept is left out
(a retried bundle's shard, or two interrupted runs over the same inputs), so
every id is kept once. The files of an old table that a commit moved aside
(`OUT/_staging/<run>/_replaced/`, layout.REPLACED) are not staged shards and
are never kept. The plan is made under OUT's claim (embed holds it from
launch), so no other run changes OUT meanwhile. A staged shard of another model version is ignored; a
table of another model version refuses to resume.

Rows of a `--recluster` run carry cluster ids of centroids fitted in that run,
not the model's, so they are never mixed with a resumed run's: a table
committed by one refuses to resume, and the staged shards of an interrupted one
(its staging folder holds `unassigned/`) are ignored.
"""

from __future__ import annotations

import collections
import logging
import posixpath
from collections.abc import Mapping

from apache_beam.io.filesystems import FileSystems

from embedbeam.pipeline.errors import UserError
from embedbeam.pipeline.queries.table import read_run_record
from embedbeam.transforms.table.files import read_parquet
from embedbeam.transforms.table.layout import (
    EMBEDDINGS,
    STAGING,
    SUCCESS,
    UNASSIGNED,
    modality_of,
    staged_run,
)
from embedbeam.transforms.table.shards import complete_shards
from embedbeam.transforms.write_embeddings import ClusterSize, ResumePlan

_LOG = logging.getLogger(__name__)
_COLUMNS = ["id", "cluster_id", "model_version"]


def plan_resume(output_dir: str, model_versions: Mapping[str, str]) -> ResumePlan:
    """The files of OUT whose rows a `--resume` run keeps, given this run's model per modality."""
    output_dir = output_dir.rstrip("/")
    _refuse_a_reclustered_table(output_dir)
    table_files = complete_shards(posixpath.join(output_dir, EMBEDDINGS, "*", "*"))
    staging = posixpath.join(output_dir, STAGING)
    # A --recluster run stages its rows under `unassigned/` before it stages any shard with
    # cluster ids; files are matched, not folders, since object stores have no folders.
    reclustered_runs = {
        staged_run(path, output_dir)
        for path in complete_shards(posixpath.join(staging, "*", UNASSIGNED, "*", "*"))
    }
    staged_files = [
        path
        for path in complete_shards(posixpath.join(staging, "*", EMBEDDINGS, "*", "*"))
        if staged_run(path, output_dir) not in reclustered_runs
    ]
    kept_ids: set[str] = set()
    keep, drop, sizes = [], [], collections.Counter()
    for path in table_files + staged_files:
        in_table = path in table_files
        modality = modality_of(path)
        try:
            table = read_parquet(path, _COLUMNS)
        except Exception as error:  # noqa: BLE001 - any unreadable file is reported the same way
            if in_table:
                raise UserError(
                    f"cannot resume: {path} is unreadable ({error}); use --overwrite"
                ) from error
            _LOG.warning("not reusing unreadable staged shard %s: %s", path, error)
            continue
        versions = set(table.column("model_version").to_pylist())
        wanted = model_versions.get(modality)
        if versions - {wanted}:
            if in_table:
                raise UserError(
                    f"cannot resume: {output_dir} holds {modality} rows of model version "
                    f"{', '.join(sorted(map(str, versions)))}, and this run embeds {modality} "
                    f"with {wanted or 'no model'}; use that model, or --overwrite"
                )
            continue
        ids = table.column("id").to_pylist()
        if len(set(ids)) != len(ids) or not kept_ids.isdisjoint(ids):
            _LOG.info("not reusing %s: some of its ids are already kept", path)
            if in_table:
                drop.append(path)
            continue
        kept_ids.update(ids)
        keep.append(path)
        sizes.update((modality, int(c)) for c in table.column("cluster_id").to_pylist())
    _LOG.info("resuming: keeping %d rows from %d files", len(kept_ids), len(keep))
    return ResumePlan(
        keep=tuple(keep),
        drop=tuple(drop),
        cluster_sizes=tuple(ClusterSize(m, c, n) for (m, c), n in sorted(sizes.items())),
    )


def _refuse_a_reclustered_table(output_dir: str) -> None:
    if not FileSystems.exists(posixpath.join(output_dir, SUCCESS)):
        return
    reclustered = sorted(
        modality
        for modality, model in read_run_record(output_dir)["models"].items()
        if "recluster" in model
    )
    if reclustered:
        raise UserError(
            f"cannot resume: {output_dir} was clustered with --recluster "
            f"({', '.join(reclustered)}), so its cluster ids are not the model's; use --overwrite"
        )
