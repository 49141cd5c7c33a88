"""Retrieval results out: a printed table, a JSON record, and a figure of queries and results."""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np

from tfcmvp.retrieval.protocols import check_protocol

HIT_COLOR = "#1a9641"  # green border: the result has the query's class
MISS_COLOR = "#d7191c"  # red border: it does not
QUERY_COLOR = "#404040"


def model_name(model_dir) -> str:
    """What the user called a model: its export folder's name, or ``<name>`` for the
    TF Serving layout ``saved_models/<name>/<version>`` (a numeric folder name).

    ``".."`` and ``"."`` are resolved first (symlinks are not: their names are
    what the user chose).
    """
    path = pathlib.Path(os.path.abspath(model_dir))
    if path.name.isdigit() and path.parent.name:
        return path.parent.name
    return path.name or str(path)


def model_source_line(model_dir) -> str:
    """``model NAME: pretrained in WORKDIR (epoch E)``: which model made a printed result.

    From the export's description (``source``, see
    :func:`tfcmvp.export.describe.source_text`), so that a result printed by
    ``retrieval`` or ``evaluate`` names the run and epoch of its weights.
    """
    from tfcmvp.export import read_export_info
    from tfcmvp.export.describe import source_text

    try:
        source = source_text(read_export_info(model_dir)["source"])
    except (OSError, ValueError) as error:  # the evaluation has read it: not expected
        source = f"{model_dir} (description unreadable: {error})"
    return f"model {model_name(model_dir)}: {source}"


def _recall_columns(results_by_model: dict) -> list[str]:
    keys = {key for result in results_by_model.values() for key in result if key.startswith("R@")}
    return sorted(keys, key=lambda key: int(key[2:]))


def format_table(results_by_model: dict) -> str:
    """Plain-text table: one row per model, one column per R@k (percent, 1 decimal).

    A ``protocol`` column is added when any result carries a ``"protocol"``
    key, because numbers from the VCOP and CoCLR protocols are not comparable.
    A cut-off a model lacks is shown as ``-``.

    Args:
      results_by_model: ``{model_name: {"R@1": 12.5, ..., ["protocol": "vcop"]}}``.
    """
    if not results_by_model:
        raise ValueError("no results to tabulate")
    columns = _recall_columns(results_by_model)
    with_protocol = any("protocol" in result for result in results_by_model.values())
    header = ["model"] + (["protocol"] if with_protocol else []) + columns
    rows = []
    for model, result in results_by_model.items():
        row = [str(model)] + ([str(result.get("protocol", "-"))] if with_protocol else [])
        row += [f"{result[key]:.1f}" if key in result else "-" for key in columns]
        rows.append(row)
    widths = [max(len(line[i]) for line in [header] + rows) for i in range(len(header))]
    # Text columns left-aligned, numbers right-aligned.
    num_text = 2 if with_protocol else 1

    def fmt(line):
        return "  ".join(
            cell.ljust(w) if i < num_text else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule] + [fmt(row) for row in rows])


def write_json(
    path,
    results: dict,
    protocol: str,
    model: str,
    data,
    num_queries: int,
    num_gallery: int,
    *,
    name: str | None = None,
) -> dict:
    """Write one retrieval result as JSON and return the written record.

    Keys: the ``"R@k"`` entries of ``results`` (percent), then ``"protocol"``,
    ``"model"``, (``"name"``,) ``"data"``, ``"num_queries"``, ``"num_gallery"``.

    Args:
      path: output file; parent folders are created.
      results: output of ``recall_at_k``; only its ``"R@k"`` keys are written.
      protocol: ``"vcop"`` or ``"coclr"`` (says which protocol gave the numbers).
      model: name or path of the evaluated model.
      name: optional short name of the model (:func:`model_name`), as tables show it.
      data: description of the data (e.g. ``"ucf101 split 1"``); any JSON value.
      num_queries: number of query (test) videos.
      num_gallery: number of gallery (train) videos.
    """
    check_protocol(protocol)
    recalls = {key: float(results[key]) for key in _recall_columns({model: results})}
    if not recalls:
        raise ValueError(f"results hold no 'R@k' entries: {sorted(results)}")
    record = dict(
        recalls,
        protocol=protocol,
        model=str(model),
        **({} if name is None else {"name": str(name)}),
        data=data,
        num_queries=int(num_queries),
        num_gallery=int(num_gallery),
    )
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so an interrupted run never leaves half a file.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return record


def _show(ax, image, border: str | None, caption: str | None) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    frame_panel(ax, border, caption, linewidth=4, fontsize=7)


def frame_panel(ax, border: str | None, caption: str | None, linewidth: float, fontsize: float):
    """A picture panel of a results grid (also ``tfcmvp search --png``'s): no ticks, a
    frame of colour ``border`` (none for None), ``caption`` above."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_color(border)
            spine.set_linewidth(linewidth)
    if caption:
        ax.set_title(caption, fontsize=fontsize)


def _check_grid(num_rows: int, topk_indices: np.ndarray, hits: np.ndarray, num_results: int):
    if num_rows == 0:
        raise ValueError("no queries to plot")
    if topk_indices.ndim != 2 or topk_indices.shape[0] != num_rows:
        raise ValueError(f"topk_indices must be [{num_rows}, K], got {topk_indices.shape}")
    if hits.shape != topk_indices.shape:
        raise ValueError(f"hits shape {hits.shape} != topk_indices shape {topk_indices.shape}")
    if num_results < 1:
        raise ValueError(f"num_results must be >= 1, got {num_results}")


def _result_caption(rank: int, index: int, row: int, gallery_labels, scores) -> str:
    """``#rank label (score)``, with what is known."""
    parts = [f"#{rank + 1}"]
    if gallery_labels is not None:
        parts.append(str(gallery_labels[index]))
    if scores is not None:
        parts.append(f"({float(np.asarray(scores)[row, rank]):.2f})")
    return " ".join(parts)


def plot_retrieval(
    png,
    query_thumbs,
    gallery_thumbs,
    topk_indices,
    hits,
    *,
    query_labels=None,
    gallery_labels=None,
    scores=None,
    num_results: int = 5,
    title: str | None = None,
    panel_inches: float = 1.5,
    dpi: int = 100,
):
    """Save a grid figure: one row per query, the query then its top results.

    Column 0 shows the query thumbnail (grey border); columns 1..num_results
    show its best results in rank order with a green border for a hit (same
    class) and a red one for a miss. When the gallery has fewer than
    ``num_results`` videos the missing panels are left blank, so the grid is
    always ``len(query_thumbs) x (1 + num_results)``.

    Args:
      png: output path (parent folders are created).
      query_thumbs: ``[n, H, W, 3]`` array or a sequence of n images
        (``[H, W]``, ``[H, W, 1]`` or ``[H, W, 3]``; uint8 or float in [0, 1]).
      gallery_thumbs: images indexable by gallery index (``[G, H, W, 3]``
        array, list, or a dict holding only the indices shown).
      topk_indices: ``[n, K]`` gallery indices of these queries, best first.
      hits: ``[n, K]`` bool from ``hit_matrix``.
      query_labels, gallery_labels: optional class names/ids for captions.
      scores: optional ``[n, K]`` similarities for captions.
      num_results: result columns per row.
      title: optional figure title (e.g. model and protocol).
      panel_inches, dpi: size of one panel and the resolution.

    Returns:
      The matplotlib Figure (Agg canvas; no pyplot state is touched).
    """
    # Figure + FigureCanvasAgg directly: no global backend switch, no pyplot
    # registry to leak figures from library code.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    topk_indices = np.asarray(topk_indices)
    hits = np.asarray(hits, bool)
    num_rows = len(query_thumbs)
    _check_grid(num_rows, topk_indices, hits, num_results)

    num_cols = 1 + num_results
    fig = Figure(
        figsize=(panel_inches * num_cols, panel_inches * num_rows + (0.4 if title else 0)), dpi=dpi
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(num_rows, num_cols, squeeze=False)  # [n, 1 + num_results]
    for row in range(num_rows):
        caption = "query" if query_labels is None else f"query: {query_labels[row]}"
        _show(axes[row, 0], query_thumbs[row], QUERY_COLOR, caption)
        for rank in range(num_results):
            ax = axes[row, 1 + rank]
            if rank >= topk_indices.shape[1]:
                ax.axis("off")
                continue
            index = int(topk_indices[row, rank])
            caption = _result_caption(rank, index, row, gallery_labels, scores)
            _show(ax, gallery_thumbs[index], HIT_COLOR if hits[row, rank] else MISS_COLOR, caption)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    png = pathlib.Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, format="png", dpi=dpi)
    return fig
