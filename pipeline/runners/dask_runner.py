"""Beam's DaskRunner with each output of a ParDo kept apart, written as a patch to send
upstream (apache_beam/runners/dask).

Beam 2.77's translation keys the Dask bags by the transform that made them, so every
consumer of any output of a multi-output ParDo reads one bag holding all of that
ParDo's outputs, untagged; a Flatten of two outputs of one ParDo reads that bag twice.
Its bundle function also returns the outputs before `finish_bundle` runs, so what a
DoFn emits there is lost, and it hands side inputs a bag that a worker would have to
compute from inside a task. Here:

- the ParDo's bag holds `(tag, value)` pairs, and each output PCollection gets its own
  bag, filtered on its tag; bags are keyed by PCollection, not by producer;
- a bundle collects its outputs into fresh receivers after `finish_bundle`;
- a side input is its PCollection's bag materialized as a Dask dependency of the
  consuming ParDo, handed to each bundle as a list, in tasks written out rather than
  through `map_partitions` with a Delayed argument (`_bag_with_side_inputs` says why);
- every leaf PCollection (one no transform consumes) is computed, not only the last,
  and its elements are not sent back to the client;
- a Reshuffle splits a bag of few partitions over the worker threads (Beam's is an
  identity, so a listing made in one task stayed in one task);
- a GroupByKey hands GroupAlsoByWindow its values still windowed.

The runner is chosen with `--runner=DaskRunner` (see `pipeline/runners/__init__.py`);
Beam and Dask are imported only when this module is.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import itertools
import typing as t

import dask
import dask.bag as db
from apache_beam import pvalue
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor
from apache_beam.runners.common import (
    DoFnContext,
    DoFnInvoker,
    DoFnSignature,
    Receiver,
    _OutputHandler,
)
from apache_beam.runners.dask import dask_runner as beam_dask_runner
from apache_beam.runners.dask import transform_evaluator
from apache_beam.runners.dask.overrides import _GroupByKeyOnly, _Reshuffle, dask_overrides
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.core import DoFn, ParDo
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.utils.windowed_value import WindowedValue
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

DaskOptions = beam_dask_runner.DaskOptions


@dataclasses.dataclass
class _CollectingReceiver(Receiver):
    """Appends what one output tag receives to a bundle's outputs, as `(tag, value)`."""

    tag: str | None
    outputs: list[tuple[str | None, t.Any]]

    def receive(self, windowed_value: WindowedValue) -> None:
        self.outputs.append((self.tag, windowed_value.value))


class _Receivers(dict):
    """One receiver per output tag, made on first use, all feeding the same list."""

    def __init__(self, outputs: list[tuple[str | None, t.Any]]):
        super().__init__()
        self._outputs = outputs

    def __missing__(self, tag: str | None) -> _CollectingReceiver:
        receiver = self[tag] = _CollectingReceiver(tag, self._outputs)
        return receiver


@dataclasses.dataclass(frozen=True)
class _SideInputSpec:
    """What a bundle needs to rebuild a side input's view from its materialized values."""

    view_class: type
    view_options: dict
    window_mapping_fn: t.Any


def _run_bundle(
    items: t.Iterable[t.Any],
    fn: DoFn,
    label: str,
    window_fn: t.Any,
    args: list,
    kwargs: dict,
    side_input_specs: tuple[_SideInputSpec, ...],
    side_input_values: tuple[list, ...] = (),
) -> list[tuple[str | None, t.Any]]:
    """Runs `fn` over one Dask partition as one bundle: its `(tag, value)` outputs,
    including those emitted by `finish_bundle`."""
    outputs: list[tuple[str | None, t.Any]] = []
    receivers = _Receivers(outputs)
    side_inputs = [
        SideInputMap(
            spec.view_class,
            spec.view_options,
            [transform_evaluator.get_windowed_value(v, spec.window_mapping_fn) for v in values],
        )
        for spec, values in zip(side_input_specs, side_input_values, strict=True)
    ]
    invoker = DoFnInvoker.create_invoker(
        DoFnSignature(fn),
        _OutputHandler(
            window_fn=window_fn,
            main_receivers=receivers[None],
            tagged_receivers=receivers,
            per_element_output_counter=None,
            output_batch_converter=None,
            process_yields_batches=False,
            process_batch_yields_elements=False,
        ),
        context=DoFnContext(label, state=None),
        side_inputs=side_inputs,
        input_args=args,
        input_kwargs=kwargs,
        user_state_context=None,
        bundle_finalizer_param=DoFn.BundleFinalizerParam(),
    )
    invoker.invoke_setup()
    invoker.invoke_start_bundle()
    for item in items:
        invoker.invoke_process(transform_evaluator.get_windowed_value(item, window_fn))
    invoker.invoke_finish_bundle()
    invoker.invoke_teardown()
    return outputs


def _materialize(*bags_as_lists: list) -> tuple[list, ...]:
    """The computed side-input bags, as one Dask dependency."""
    return tuple(bags_as_lists)


def _has_tag(tag: str | None, output: tuple[str | None, t.Any]) -> bool:
    return output[0] == tag


def _value(output: tuple[str | None, t.Any]) -> t.Any:
    return output[1]


def _discard(partition: t.Iterable[t.Any]) -> list:
    """Nothing of a leaf's partition, once it has been run: a job's results are what
    its transforms wrote, not elements sent back to the client."""
    for _ in partition:
        pass
    return []


def _key(item: tuple[t.Any, WindowedValue]) -> t.Any:
    return item[0]


def _grouped(group: tuple[t.Any, list]) -> tuple[t.Any, list[WindowedValue]]:
    """A key and its values, still windowed: GroupAlsoByWindow, next, reads the windows."""
    key, items = group
    return key, [windowed for _, windowed in items]


def tagged_pardo_bag(
    applied: AppliedPTransform, input_bag: db.Bag, side_input_bags: list[db.Bag]
) -> db.Bag:
    """The bag of `(tag, value)` pairs a ParDo emits over `input_bag`."""
    transform = t.cast(ParDo, applied.transform)
    args, kwargs = transform.raw_side_inputs
    main_input = next(iter(applied.main_inputs.values()))
    window_fn = main_input.windowing.windowfn if hasattr(main_input, "windowing") else None
    specs = tuple(
        _SideInputSpec(type(si), si._view_options(), si._window_mapping_fn)
        for si in applied.side_inputs
    )
    run = functools.partial(
        _run_bundle,
        fn=transform.fn,
        label=transform.label,
        window_fn=window_fn,
        args=list(args),
        kwargs=kwargs,
        side_input_specs=specs,
    )
    if not side_input_bags:
        return input_bag.map_partitions(run)
    return _bag_with_side_inputs(run, input_bag, side_input_bags, applied.full_label)


def _bag_with_side_inputs(
    run: t.Callable, input_bag: db.Bag, side_input_bags: list[db.Bag], label: str
) -> db.Bag:
    """`run` over each partition of `input_bag`, given every side-input bag as a list.

    The tasks are written out (one task gathers the side inputs, one task a partition)
    instead of `map_partitions(run, side_input_values=dask.delayed(...))`: Dask fuses
    such blockwise tasks into their consumers, and two ParDos over the same input bag,
    each with a side input, then ran one ParDo's DoFn with the other's side input
    (TFT's two `_RunMetaGraphDoFn` ParDos, phase 0 and the final transform, in `train`).
    """
    token = tokenize(label, input_bag.name, *(bag.name for bag in side_input_bags))
    sides, name = f"side-inputs-{token}", f"run-bundle-{token}"
    layer: dict[t.Any, t.Any] = {
        sides: (
            _materialize,
            *[
                (_concatenated, [(b.name, i) for i in range(b.npartitions)])
                for b in side_input_bags
            ],
        )
    }
    for index in range(input_bag.npartitions):
        layer[(name, index)] = (_run_with_side_inputs, run, (input_bag.name, index), sides)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[input_bag, *side_input_bags])
    return db.Bag(graph, name, input_bag.npartitions)


def _concatenated(partitions: list[t.Iterable[t.Any]]) -> list[t.Any]:
    return list(itertools.chain.from_iterable(partitions))


def _run_with_side_inputs(run: t.Callable, items: t.Iterable[t.Any], side_values: tuple) -> list:
    return run(items, side_input_values=side_values)


@dataclasses.dataclass
class DaskBagVisitor(PipelineVisitor):
    """Translates each leaf transform into Dask bags, one bag per output PCollection."""

    bag_kwargs: dict = dataclasses.field(default_factory=dict)
    bags: dict[pvalue.PValue, db.Bag] = dataclasses.field(default_factory=collections.OrderedDict)
    consumed: set[pvalue.PValue] = dataclasses.field(default_factory=set)
    # A Reshuffle splits a bag of fewer partitions into this many, so that what was
    # made in one task (a listing) spreads over the workers.
    spread_to: int = 1

    def visit_transform(self, transform_node: AppliedPTransform) -> None:
        inputs = [i for i in transform_node.inputs if not isinstance(i, pvalue.PBegin)]
        side_pcolls = [si.pvalue for si in transform_node.side_inputs]
        self.consumed.update(inputs, side_pcolls)
        input_bags = [self.bags[i] for i in inputs]

        if isinstance(transform_node.transform, ParDo):
            (input_bag,) = input_bags
            tagged = tagged_pardo_bag(
                transform_node, input_bag, [self.bags[pc] for pc in side_pcolls]
            )
            for tag, pcoll in transform_node.outputs.items():
                self.bags[pcoll] = tagged.filter(functools.partial(_has_tag, tag)).map(_value)
            return

        if isinstance(transform_node.transform, _GroupByKeyOnly):
            (input_bag,) = input_bags
            self.bags[transform_node.outputs[None]] = input_bag.groupby(_key).map(_grouped)
            return

        if isinstance(transform_node.transform, _Reshuffle):
            (input_bag,) = input_bags
            spread = input_bag
            if input_bag.npartitions < self.spread_to:
                spread = input_bag.repartition(npartitions=self.spread_to)
            self.bags[transform_node.outputs[None]] = spread
            return

        op_class = transform_evaluator.TRANSLATIONS.get(
            transform_node.transform.__class__, transform_evaluator.NoOp
        )
        op = op_class(transform_node, bag_kwargs=self.bag_kwargs)
        if isinstance(op, transform_evaluator.Flatten):
            bag = op.apply(input_bags)
        elif isinstance(op, transform_evaluator.Create):
            bag = op.apply(None)
        elif not input_bags:
            raise NotImplementedError(
                f"DaskRunner cannot start a pipeline with {transform_node.full_label} "
                f"({type(transform_node.transform).__name__}): only beam.Create is translated"
            )
        else:
            (input_bag,) = input_bags
            bag = op.apply(input_bag)
        for pcoll in transform_node.outputs.values():
            self.bags[pcoll] = bag

    def leaves(self) -> list[db.Bag]:
        """The bags of the PCollections no transform consumes: computing them runs
        the whole graph."""
        return [bag for pcoll, bag in self.bags.items() if pcoll not in self.consumed]


class DaskRunnerResult(beam_dask_runner.DaskRunnerResult):
    """Beam's result, closing its client once the job has ended: a finished job's
    client would otherwise stay connected to the scheduler until the process exits."""

    def wait_until_finish(self, duration=None) -> str:
        if PipelineState.is_terminal(self._state):
            return self._state
        try:
            return super().wait_until_finish(duration)
        finally:
            if PipelineState.is_terminal(self._state):
                self.client.close()


class DaskRunner(beam_dask_runner.DaskRunner):
    """Executes a pipeline on a Dask distributed client, each ParDo output kept apart."""

    def run_pipeline(self, pipeline, options) -> PipelineResult:
        import dask.distributed as ddist

        dask_options = options.view_as(DaskOptions).get_all_options(
            drop_default=True, current_only=True
        )
        bag_kwargs = DaskOptions._extract_bag_kwargs(dask_options)
        client = ddist.Client(**dask_options)

        pipeline.replace_all(dask_overrides())
        spread_to = bag_kwargs.get("npartitions") or sum(client.nthreads().values())
        visitor = DaskBagVisitor(bag_kwargs=bag_kwargs, spread_to=max(1, spread_to))
        pipeline.visit(visitor)
        # Leaves are computed for their effects; their elements stay on the workers.
        ends = [leaf.map_partitions(_discard) for leaf in visitor.leaves()]
        futures = client.compute(list(dask.optimize(*ends)))
        return DaskRunnerResult(client, futures)
