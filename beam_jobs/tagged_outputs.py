"""A DoFn's tagged outputs, split apart with plain ParDos, so that every runner keeps them apart.

``beam.ParDo(fn).with_outputs(*tags, main=...)`` relies on the runner to route
each ``TaggedOutput`` to its own PCollection. Beam 2.77's Dask runner does
not: it hands every output of the ParDo, main and tagged alike, to each
consumer (a consumer of the main output also gets the failures). A test of
that runner's behaviour is in ``tests/test_beam_dask.py``.

:class:`ParDoWithOutputs` gives the same result with what every runner
supports: the DoFn runs once, wrapped so that each output becomes a
``(tag, value)`` element of one PCollection (tag None for the main output),
and one ``FlatMap`` per tag picks its elements. On the local runner and
Dataflow the selections fuse with the DoFn's stage, so the split costs a
tuple per element. The DoFn itself is unchanged and is still usable with
``with_outputs``.
"""

from __future__ import annotations

from typing import Tuple

import apache_beam as beam
from apache_beam.pvalue import TaggedOutput


class _OutputsAsElements(beam.DoFn):
    """Runs ``fn``; emits each of its outputs as ``(tag, value)`` on the main output.

    Only for DoFns whose ``process`` takes the element alone (no side inputs
    or DoFn parameters) and whose ``finish_bundle`` emits nothing, as the
    extraction job's do. ``ValueError`` for a tag that was not declared.
    """

    def __init__(self, fn: beam.DoFn, tags: Tuple[str, ...]):
        super().__init__()
        self._fn = fn
        self._tags = frozenset(tags)

    def default_label(self) -> str:
        return self._fn.default_label()

    def setup(self):
        self._fn.setup()

    def start_bundle(self):
        self._fn.start_bundle()

    def process(self, element):  # -> (tag or None, value); no hint: Beam would use it
        for output in self._fn.process(element) or ():
            if isinstance(output, TaggedOutput):
                if output.tag not in self._tags:
                    raise ValueError(f"{type(self._fn).__name__} emitted the undeclared tag "
                                     f"{output.tag!r} (declared: {sorted(self._tags)})")
                yield output.tag, output.value
            else:
                yield None, output

    def finish_bundle(self):
        if self._fn.finish_bundle() is not None:
            raise ValueError(f"{type(self._fn).__name__}.finish_bundle emits elements, which "
                             "ParDoWithOutputs does not pass on")

    def teardown(self):
        self._fn.teardown()


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

    Returns the PCollections by tag (``result[tag]`` or ``result.<tag>``; the
    main output under ``main``), each made by a step labelled ``Select<tag>``
    after the DoFn's step ``Run``. See the module docstring for why.
    """

    def __init__(self, fn: beam.DoFn, *tags: str, main: str):
        super().__init__()
        if main in tags:
            raise ValueError(f"the main output's name {main!r} is also a tag")
        self._fn = fn
        self._tags = tuple(tags)
        self._main = main

    def expand(self, pcoll):  # -> {name: PCollection}
        tagged = pcoll | "Run" >> beam.ParDo(_OutputsAsElements(self._fn, self._tags))
        outputs = _Outputs()
        for name, tag in ((self._main, None), *((t, t) for t in self._tags)):
            outputs[name] = tagged | f"Select{name[:1].upper()}{name[1:]}" >> beam.FlatMap(
                _select, tag)
        return outputs
