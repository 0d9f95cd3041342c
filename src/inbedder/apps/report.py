"""A self-contained HTML report of a clustering (and a PNG of its plot).

The page holds a 2-D projection scatter as inline SVG (no external assets, no JavaScript), coloured and
labelled by cluster, the cluster table and the command that produced it. The projection is PCA
(scikit-learn) or, with ``projection="umap"``, UMAP (``pip install umap-learn``). The PNG needs matplotlib
(``pip install "inbedder[report]"``).

>>> write_report(result, "report.html", command="inbedder cluster ...")   # doctest: +SKIP
>>> write_png(result, "clusters.png")                                      # doctest: +SKIP
"""

from __future__ import annotations

import html
import os
import shlex
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, did_you_mean, require
from .clustering import ClusterResult

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
           "#dbdb8d", "#9edae5"]
MAX_POINTS = 20_000  # points drawn; larger corpora are sampled for the plot only
MAX_NAMED = 20  # clusters named on the plot (the largest ones); the table lists them all


class Projection(str, Enum):
    PCA = "pca"
    UMAP = "umap"


def color(cluster_id: int) -> str:
    return PALETTE[cluster_id % len(PALETTE)]


def parse_projection(projection: str | Projection) -> Projection:
    """The projection named, or an :class:`InputError` listing the valid ones; UMAP must be installed."""
    try:
        how = Projection(projection)
    except ValueError:
        valid = [p.value for p in Projection]
        raise InputError(f"projection={projection!r} is not valid; choose one of {valid}."
                         f"{did_you_mean(str(projection), valid)}") from None
    if how is Projection.UMAP:
        require("umap", "umap")
    return how


def project_2d(vectors: np.ndarray, projection: str | Projection = "pca", seed: int = 0) -> np.ndarray:
    """An ``(n, 2)`` projection of the vectors: PCA, or UMAP (cosine) when asked for."""
    how = parse_projection(projection)
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) < 3 or x.shape[1] < 2:
        return np.column_stack([np.arange(len(x), dtype=np.float32), np.zeros(len(x), dtype=np.float32)])
    if how is Projection.UMAP:
        import umap

        reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_neighbors=min(15, len(x) - 1))
        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": expected, we want a seed
            warnings.simplefilter("ignore", UserWarning)
            return np.asarray(reducer.fit_transform(x), dtype=np.float32)
    require("sklearn", "cluster")
    from sklearn.decomposition import PCA

    return np.asarray(PCA(n_components=2, random_state=seed).fit_transform(x), dtype=np.float32)


def _plot_rows(n: int, seed: int = 0) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def svg_scatter(xy: np.ndarray, labels: np.ndarray, names: list[str], texts: list[str] | None = None,
                width: int = 900, height: int = 640) -> str:
    """An inline SVG scatter: one dot per row coloured by cluster, each cluster's name at its centre."""
    pad = 30
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo == 0, 1, hi - lo)
    px = pad + (xy[:, 0] - lo[0]) / span[0] * (width - 2 * pad)
    py = height - pad - (xy[:, 1] - lo[1]) / span[1] * (height - 2 * pad)
    radius = 4 if len(xy) <= 500 else 3 if len(xy) <= 3000 else 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="2-D projection of the clusters">',
             f'<rect width="{width}" height="{height}" fill="#ffffff" stroke="#dddddd"/>']
    for i in _plot_rows(len(xy)):
        label = int(labels[i])
        tip = f"<title>{html.escape(_short(texts[i], 120))} [{label}]</title>" if texts is not None else ""
        parts.append(f'<circle cx="{px[i]:.1f}" cy="{py[i]:.1f}" r="{radius}" fill="{color(label)}" '
                     f'fill-opacity="0.75">{tip}</circle>')
    sizes = np.bincount(labels, minlength=len(names))
    for c in np.argsort(-sizes, kind="stable")[:MAX_NAMED]:
        members = labels == c
        if not members.any():
            continue
        cx, cy = float(np.median(px[members])), float(np.median(py[members])) - 8  # above the dots
        text = html.escape(f"{c}: {_short(names[c], 28)}")
        parts.append(f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="12" font-family="sans-serif" '
                     f'text-anchor="middle" fill="#111111" stroke="#ffffff" stroke-width="3" '
                     f'paint-order="stroke">{text}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def html_report(result: ClusterResult, command: str | None = None, title: str | None = None,
                projection: str | Projection = "pca", seed: int = 0, xy: np.ndarray | None = None) -> str:
    """The report as one HTML string (inline SVG plot, cluster table, settings and command).

    ``xy`` is a ready 2-D projection (from :func:`project_2d`); by default it is computed here.
    """
    xy = project_2d(result.vectors, projection, seed) if xy is None else xy
    names = [c.name for c in result.clusters]
    svg = svg_scatter(xy, result.labels, names, result.texts)
    command = command if command is not None else invocation()
    title = title or f"Clusters of {len(result.texts)} texts"
    facts = [("model", result.model or "?"), ("instruction", _instruction_text(result.instruction)),
             ("texts", str(len(result.texts))), ("method", result.method), ("k", str(result.k)),
             ("silhouette (cosine)", f"{result.silhouette:.3f}"),
             ("projection", Projection(projection).value.upper())]
    if result.k_scores:
        best = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(result.k_scores.items()))
        facts.append(("silhouette per k", best))
    if result.answers is not None:
        overall = result.summary().get("answers", [])
        facts.append(("answers (all texts)", ", ".join(f"{a['answer']!r} {a['share']:.0%}" for a in overall[:5])))
    against = result.label_name or "labels"
    for name, value in (result.metrics or {}).items():
        facts.append((f"{name.replace('_', '-')} vs {against}", f"{value:.3f}"))
    gold = any(c.gold_labels for c in result.clusters)
    rows = []
    for c in result.clusters:
        examples = "".join(f"<li>{html.escape(_short(t, 200))}</li>" for t in c.examples)
        labels = f"<td>{html.escape(c.gold_label_shares(5))}</td>" if gold else ""
        rows.append(f'<tr><td><span class="swatch" style="background:{color(c.id)}"></span>{c.id}</td>'
                    f"<td>{c.size}</td><td><b>{html.escape(c.name)}</b><br><small>"
                    f"{html.escape(c.explanation)}</small></td>{labels}<td><ul>{examples}</ul></td></tr>")
    gold_head = f"<th>{html.escape(against)} (gold labels)</th>" if gold else ""
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
th, td {{ border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }}
.facts th {{ background: #f5f5f5; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px; border-radius: 2px; }}
pre {{ background: #f5f5f5; padding: 8px; white-space: pre-wrap; }}
ul {{ margin: 0; padding-left: 18px; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<table class="facts">{fact_rows}</table>
<h2>Projection</h2>
{svg}
<h2>Clusters</h2>
<table class="clusters"><tr><th>id</th><th>size</th><th>name</th>{gold_head}<th>texts nearest the centre</th></tr>
{"".join(rows)}
</table>
<h2>Command</h2>
<pre>{html.escape(command)}</pre>
</body></html>
"""


def write_report(result: ClusterResult, path: str | os.PathLike[str], command: str | None = None,
                 title: str | None = None, projection: str | Projection = "pca", seed: int = 0,
                 xy: np.ndarray | None = None) -> Path:
    """Write :func:`html_report` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(html_report(result, command, title, projection, seed, xy), encoding="utf-8")
    return target


def write_png(result: ClusterResult, path: str | os.PathLike[str], projection: str | Projection = "pca",
              seed: int = 0, dpi: int = 120, xy: np.ndarray | None = None) -> Path:
    """The projection scatter as a PNG (matplotlib, Agg backend)."""
    require("matplotlib", "report")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    xy = project_2d(result.vectors, projection, seed) if xy is None else xy
    keep = _plot_rows(len(xy), seed)
    labels = result.labels
    fig, ax = plt.subplots(figsize=(9, 6.4), dpi=dpi)
    try:
        ax.scatter(xy[keep, 0], xy[keep, 1], c=[color(int(c)) for c in labels[keep]], s=8 if len(keep) > 2000 else 16,
                   alpha=0.75, linewidths=0)
        sizes = np.bincount(labels, minlength=result.k)
        for c in np.argsort(-sizes, kind="stable")[:MAX_NAMED]:
            members = labels == c
            if members.any():
                ax.annotate(f"{c}: {_short(result.clusters[c].name, 28)}", np.median(xy[members], axis=0),
                            xytext=(0, 8), textcoords="offset points", ha="center", fontsize=8,
                            bbox={"boxstyle": "round", "fc": "white", "alpha": 0.7, "lw": 0})
        ax.set_title(f"{len(labels)} texts, k={result.k} ({result.method}), {Projection(projection).value.upper()}")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return Path(path)


def command_line(ctx: Any) -> str:
    """The running click command as a shell line, rebuilt from its parsed parameters.

    Defaults are left out; values taken from environment variables are written out, except a cache file
    that ``--no-cache`` turned off."""
    import click
    from click.core import ParameterSource

    words = ["inbedder", *ctx.command_path.split()[1:]]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        value = ctx.params.get(param.name or "")
        if source in (None, ParameterSource.DEFAULT) or value is None:
            continue
        if param.name == "cache_path" and ctx.params.get("no_cache"):
            continue
        if isinstance(param, click.Argument):
            words += [str(v) for v in value]
            continue
        if not isinstance(param, click.Option):
            continue
        if param.is_flag:
            names = param.opts if value else param.secondary_opts
            if names:
                words.append(max(names, key=len))
        else:
            for one in value if param.multiple else [value]:  # a repeated option: once per value
                words += [max(param.opts, key=len), str(one)]
    return " ".join(shlex.quote(w) for w in words)


def invocation(argv: list[str] | None = None) -> str:
    """The command line that is running, quoted for a shell (``inbedder ...`` for the console script)."""
    args = list(sys.argv if argv is None else argv)
    if args and Path(args[0]).name in ("inbedder", "__main__.py", "cli.py"):
        args[0] = "inbedder"
    return " ".join(shlex.quote(a) for a in args)


def _instruction_text(instruction: Any) -> str:
    if instruction is None:
        return "(none)"
    if isinstance(instruction, str):
        return instruction
    distinct = sorted({str(i) for i in instruction})
    return f"per row ({len(distinct)} distinct): " + "; ".join(distinct[:3]) + (" ..." if len(distinct) > 3 else "")


def _short(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"
