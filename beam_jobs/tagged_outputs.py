"""DoFns with tagged outputs, chained in one step and split apart with plain ParDos.

``beam.ParDo(fn).with_outputs(*tags, main=...)`` relies on the runner to route
each ``TaggedOutput`` to its own PCollection. Beam 2.77's Dask runner does
not: it hands every output of the ParDo, main and tagged alike, to each
consumer (a consumer of the main output also gets the failures). That
runner also runs each ParDo over a whole partition (a bundle) and keeps all
its outputs in memory before the next ParDo starts, so a chain of ParDos
passing decoded videos holds every decoded video of a partition at once.
Tests of both behaviours are in ``tests/test_beam_dask.py``.

:class:`ParDoWithOutputs` gives the result of ``with_outputs`` with what
every runner supports, for one DoFn or a chain of them: the DoFns run in one
step, each main output of one going straight into the next (so only the
last one's outputs are kept), wrapped so that each output of the step
becomes a ``(tag, value)`` element of one PCollection (tag None for the
main output), and one ``FlatMap`` per tag picks its elements. On the local
runner and Dataflow, which fuse such steps anyway, this costs a tuple per
element. The DoFns themselves are unchanged and still usable with
``with_outputs``.
"""

from __future__ import annotations

from typing import Sequence, Tuple, Union

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput


class _ChainAsElements(beam.DoFn):
    """Runs ``fns`` as a chain; emits each output as ``(tag, value)`` on the main output.

    Only for DoFns whose ``process`` takes the element alone (no side inputs
    or DoFn parameters) and whose ``finish_bundle`` emits nothing, as the
    extraction job's do. ``ValueError`` for a tag that was not declared.
    """

    def __init__(self, fns: Sequence[beam.DoFn], tags: Tuple[str, ...]):
        super().__init__()
        self._fns = list(fns)
        self._tags = frozenset(tags)

    def default_label(self) -> str:
        return "+".join(fn.default_label() for fn in self._fns)

    def setup(self):
        for fn in self._fns:
            fn.setup()

    def start_bundle(self):
        for fn in self._fns:
            fn.start_bundle()

    def process(self, element):  # -> (tag or None, value); no hint: Beam would use it
        return self._run(0, element)

    def _run(self, position: int, element):
        fn = self._fns[position]
        for output in fn.process(element) or ():
            if isinstance(output, TaggedOutput):
                if output.tag not in self._tags:
                    raise ValueError(
                        f"{type(fn).__name__} emitted the undeclared tag "
                        f"{output.tag!r} (declared: {sorted(self._tags)})"
                    )
                yield output.tag, output.value
            elif position + 1 < len(self._fns):
                yield from self._run(position + 1, output)
            else:
                yield None, output

    def finish_bundle(self):
        for fn in self._fns:
            if fn.finish_bundle() is not None:
                raise ValueError(
                    f"{type(fn).__name__}.finish_bundle emits elements, which "
                    "ParDoWithOutputs does not pass on"
                )

    def teardown(self):
        for fn in self._fns:
            fn.teardown()


def _select(element, tag):
    """The value of a ``(tag, value)`` element with the wanted tag."""
    if element[0] == tag:
        yield element[1]


class _Outputs(dict):
    """tag -> PCollection, also readable as attributes (``outputs.videos``), as Beam's
    ``DoOutputsTuple``."""

    def __getattr__(self, tag: str):
        try:
            return self[tag]
        except KeyError:
            raise AttributeError(tag) from None


class ParDoWithOutputs(beam.PTransform):
    """``ParDo(fn).with_outputs(*tags, main=main)`` made of single-output ParDos.

    ``fns``: one DoFn, or a chain of them run in one step (each one's main
    outputs are the next one's input; the last one's are the step's main
    output; a tagged output of any of them goes to its tag). Returns the
    PCollections by tag (``result[tag]`` or ``result.<tag>``; the main output
    under ``main``), each made by a step labelled ``Select<Tag>`` after the
    DoFns' step ``Run``. See the module docstring for why.
    """

    def __init__(self, fns: Union[beam.DoFn, Sequence[beam.DoFn]], *tags: str, main: str):
        super().__init__()
        if main in tags:
            raise ValueError(f"the main output's name {main!r} is also a tag")
        self._fns = [fns] if isinstance(fns, beam.DoFn) else list(fns)
        if not self._fns:
            raise ValueError("ParDoWithOutputs needs at least one DoFn")
        self._tags = tuple(tags)
        self._main = main

    def expand(self, pcoll):  # -> {name: PCollection}
        tagged = pcoll | "Run" >> beam.ParDo(_ChainAsElements(self._fns, self._tags))
        outputs = _Outputs()
        for name, tag in ((self._main, None), *((t, t) for t in self._tags)):
            outputs[name] = tagged | f"Select{name[:1].upper()}{name[1:]}" >> beam.FlatMap(
                _select, tag
            )
        return outputs
