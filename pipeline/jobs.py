"""What every job checks before it builds a graph: inputs exist, output is free."""

from __future__ import annotations

import posixpath

from apache_beam.io.filesystems import FileSystems

from pipeline.options import JobOptions, UserError
from transforms.list_inputs import INLINE_COLUMNS, InputSource, manifest_columns, manifest_format


def input_source(options: JobOptions) -> InputSource:
    """The job's InputSource, after checking that it names some inputs."""
    if options.input:
        if not FileSystems.match([options.input])[0].metadata_list:
            raise UserError(f"--input {options.input!r} matches no files")
        return InputSource(
            pattern=options.input,
            labels_from_folder=options.label_from == "folder",
            text_field=options.text_field,
        )
    if options.manifest:
        if not FileSystems.exists(options.manifest):
            raise UserError(f"--manifest {options.manifest} does not exist")
        try:
            manifest_format(options.manifest)
            columns = manifest_columns(options.manifest)
        except ValueError as error:
            raise UserError(f"cannot read manifest {options.manifest}: {error}") from error
        if not {"uri", *INLINE_COLUMNS} & set(columns):
            raise UserError(
                f"manifest {options.manifest} has no `uri` column, nor inline `text` or `ids` "
                f"(columns: {', '.join(columns) or 'none'})"
            )
        return InputSource(manifest=options.manifest)
    raise UserError("say what to read: --input 'GLOB' or --manifest FILE")


def check_output_dir(output: str | None, marker: str, overwrite: bool) -> None:
    """Refuses to touch a finished output (one holding `marker`) unless --overwrite."""
    if not output:
        raise UserError("say where to write: --output DIR")
    if FileSystems.exists(posixpath.join(output, marker)) and not overwrite:
        raise UserError(f"{output} already holds a finished result; pass --overwrite to replace it")
