"""Plots of one run: the tree, the data coloured by leaf, log-likelihood by round.

Simulation layer. Figures are drawn with matplotlib's object API (a
``Figure`` saved by the Agg canvas), never through ``pyplot``: no window, no
global state, safe in any thread. Leaf ``j`` has the same colour in every plot
and is labelled ``Lj``; ``j`` indexes ``model.means_``.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from scipy.cluster.hierarchy import dendrogram

from fedgmmtree import GMMTree
from fedgmmtree._protocol import apply_transform

DPI = 120

# Legends list at most this many leaves or classes, then say how many more.
_LEGEND_ENTRIES = 20


def leaf_colours(n_leaves: int) -> np.ndarray:
    """RGBA colour of each leaf, of shape (n_leaves, 4); never grey.

    Grey is kept for the split nodes of the tree plot.
    """
    tab20 = colormaps["tab20"](np.arange(20))
    # tab20 pairs a dark and a light shade; pair 7 is grey
    palette = np.vstack([tab20[0:14:2], tab20[16::2], tab20[1:14:2], tab20[17::2]])
    if n_leaves <= len(palette):
        return palette[:n_leaves]
    return colormaps["turbo"](np.linspace(0.05, 0.95, n_leaves))


def plot_tree(model: GMMTree, path: str | Path, title: str = "") -> Path:
    """Draw the grown tree and the bottom-up merge of its leaves.

    Left: every node of the tree at its depth, internal nodes grey, leaves in
    their colours, marker area proportional to the points routed to the node.
    Right: the dendrogram of the leaves' merge (``model.linkage_``), with the
    cut into ``n_clusters`` clusters.

    Parameters
    ----------
    model : GMMTree
        A fitted model.
    path : str or Path
        PNG file to write.
    title : str, default=""
        Figure title (a default one when empty).

    Returns
    -------
    path : Path
    """
    colours = leaf_colours(model.n_leaves_)
    fig = Figure(figsize=(13, 5.5), layout="constrained")
    ax_tree, ax_merge = fig.subplots(1, 2, width_ratios=[1.2, 1.0])
    _draw_grown_tree(ax_tree, model, colours)
    _draw_merge(ax_merge, model, colours)
    fig.suptitle(title or "Tree of Gaussians", fontsize=13)
    return _save(fig, path)


def plot_projection(
    model: GMMTree,
    X: np.ndarray,
    path: str | Path,
    y: np.ndarray | None = None,
    title: str = "",
    max_points: int = 5000,
    random_state: int = 0,
) -> Path:
    """Scatter the data on its first two principal components, coloured by leaf.

    The data are taken into the space the tree's Gaussians live in (after the
    model's standardisation or PCA, where it has one) and projected on their
    own first two principal components; every leaf's Gaussian is drawn as its
    2-sigma ellipse in that plane. With labels, a second panel colours the
    same points by label.

    Parameters
    ----------
    model : GMMTree
        A fitted model.
    X : ndarray of shape (n_samples, n_features)
        Data in the model's input space.
    path : str or Path
        PNG file to write.
    y : ndarray of shape (n_samples,), optional
        True labels.
    title : str, default=""
        Figure title (a default one when empty).
    max_points : int, default=5000
        At most this many points are drawn, a seeded random subset.
    random_state : int, default=0
        Seed of the subset.

    Returns
    -------
    path : Path
    """
    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] > max_points:
        rows = np.sort(
            np.random.default_rng(random_state).choice(
                X.shape[0], max_points, replace=False
            )
        )
        X = X[rows]
        y = None if y is None else np.asarray(y)[rows]
    leaf = model.predict_leaf(X)
    Z, means, covariances = _model_space(model, X)
    basis, explained = _principal_plane(Z)
    centre = Z.mean(axis=0)
    points = (Z - centre) @ basis
    means2 = (means - centre) @ basis
    covs2 = np.einsum("di,kde,ej->kij", basis, covariances, basis)
    colours = leaf_colours(model.n_leaves_)

    panels = 1 if y is None else 2
    fig = Figure(figsize=(6.2 * panels + 0.8, 6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels, sharex=True, sharey=True))
    axes[0].scatter(points[:, 0], points[:, 1], c=colours[leaf], s=6, alpha=0.6)
    _draw_ellipses(axes[0], means2, covs2, colours, labelled=True)
    axes[0].set_title("Coloured by leaf; ellipses: 2σ of each leaf's Gaussian")
    handles = [
        Line2D([], [], ls="", marker="o", color=colours[j], label=f"L{j}")
        for j in range(model.n_leaves_)
    ]
    _legend(axes[0], handles, "leaf")
    if y is not None:
        classes, codes = np.unique(y, return_inverse=True)
        class_colours = leaf_colours(len(classes))
        axes[1].scatter(
            points[:, 0], points[:, 1], c=class_colours[codes], s=6, alpha=0.6
        )
        _draw_ellipses(axes[1], means2, covs2, np.full((len(means2), 4), 0.3))
        axes[1].set_title("Coloured by true label; ellipses: leaves")
        handles = [
            Line2D([], [], ls="", marker="o", color=class_colours[i], label=str(c))
            for i, c in enumerate(classes)
        ]
        _legend(axes[1], handles, "label")
    for ax in axes:
        ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of variance)")
        ax.set_ylabel(f"principal component 2 ({explained[1]:.0%} of variance)")
    fig.suptitle(
        title or f"Data on its first two principal components ({len(X)} points)",
        fontsize=13,
    )
    return _save(fig, path)


def plot_loglik(
    history: Sequence[dict],
    path: str | Path,
    heldout_mean_loglik: float | None = None,
    title: str = "",
) -> Path:
    """Mean log-likelihood, leaves and active nodes by round.

    Parameters
    ----------
    history : sequence of dict
        One record per round with ``round``, ``mean_loglik``, ``leaves`` and
        ``active`` (``strategy.grower.history`` or ``results["history"]``).
    path : str or Path
        PNG file to write.
    heldout_mean_loglik : float, optional
        The final model's mean log-likelihood of the held-out rows, drawn as a
        horizontal line.
    title : str, default=""
        Figure title (a default one when empty).

    Returns
    -------
    path : Path
    """
    rounds = np.array([r["round"] for r in history])
    loglik = np.array([r["mean_loglik"] for r in history], dtype=float)
    fig = Figure(figsize=(9, 5.5), layout="constrained")
    ax = fig.subplots()
    lines = ax.plot(
        rounds,
        loglik,
        color="tab:blue",
        marker="." if len(rounds) < 60 else None,
        label="mean log-likelihood, training rows",
    )
    if heldout_mean_loglik is not None and np.isfinite(heldout_mean_loglik):
        lines.append(
            ax.axhline(
                heldout_mean_loglik,
                color="tab:blue",
                ls="--",
                lw=1,
                label="mean log-likelihood, held-out rows (final tree)",
            )
        )
    ax.set_xlabel("round")
    ax.set_ylabel("mean log-likelihood per point")
    counts = ax.twinx()
    for key, colour in (("leaves", "tab:green"), ("active", "tab:orange")):
        values = [r[key] for r in history]
        label = "leaves" if key == "leaves" else "active nodes (being refined)"
        lines += counts.step(rounds, values, where="post", color=colour, label=label)
    counts.set_ylabel("nodes")
    counts.set_ylim(bottom=0)
    counts.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(handles=lines, loc="outside lower center", ncol=2, fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_title(title or f"Growth of the tree ({len(rounds)} rounds)")
    return _save(fig, path)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=DPI)
    return path


def _legend(ax: Axes, handles: list, title: str) -> None:
    extra = len(handles) - _LEGEND_ENTRIES
    if extra > 0:
        handles = handles[:_LEGEND_ENTRIES]
        handles.append(Line2D([], [], ls="", label=f"... {extra} more"))
    ax.legend(
        handles=handles,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        ncol=1 if len(handles) <= 12 else 2,
    )


def _model_space(model: GMMTree, X: np.ndarray):
    """Data, leaf means and full covariances in one space.

    With a PCA transform the leaves live in the projected space, so the data
    are projected too; otherwise ``means_`` are in the input units of ``X``.
    """
    if "transform.components" in model.transform_:
        X = apply_transform(X, model.transform_)
    covariances = model.covariances_
    if covariances.ndim == 2:
        covariances = np.stack([np.diag(c) for c in covariances])
    return X, model.means_, covariances


def _principal_plane(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two leading principal axes of ``Z`` and their shares of the variance."""
    centred = Z - Z.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2
    share = variance / variance.sum() if variance.sum() > 0 else variance
    basis = np.zeros((Z.shape[1], 2))
    explained = np.zeros(2)
    k = min(2, vt.shape[0])
    basis[:, :k] = vt[:k].T
    explained[:k] = share[:k]
    return basis, explained


def _draw_ellipses(
    ax: Axes,
    means: np.ndarray,
    covariances: np.ndarray,
    colours: np.ndarray,
    labelled: bool = False,
) -> None:
    for j, (mean, cov) in enumerate(zip(means, covariances, strict=True)):
        values, vectors = np.linalg.eigh(cov)
        values = np.clip(values, 0.0, None)
        angle = np.degrees(np.arctan2(vectors[1, 1], vectors[0, 1]))
        ax.add_patch(
            Ellipse(
                mean,
                width=4 * np.sqrt(values[1]),
                height=4 * np.sqrt(values[0]),
                angle=angle,
                fill=False,
                lw=1.5,
                color=colours[j],
            )
        )
        ax.plot(*mean, marker="x", color="black", ms=6)
        if labelled:
            ax.annotate(
                f"L{j}",
                mean,
                xytext=(4, 4),
                textcoords="offset points",
                fontsize=8,
                fontweight="bold",
            )


def _draw_grown_tree(ax: Axes, model: GMMTree, colours: np.ndarray) -> None:
    tree = model.tree_
    position = {int(node): j for j, node in enumerate(model.leaves_)}

    # Leaves side by side in depth-first order; a parent above its children.
    x = np.zeros(tree.n_nodes)
    order: list[int] = []

    def place(node: int) -> float:
        children = tree.children(node)
        if children.size == 0:
            x[node] = len(order)
            order.append(node)
        else:
            x[node] = np.mean([place(int(c)) for c in children])
        return x[node]

    place(0)
    depth = tree.depth
    size = 30 + 400 * tree.n_samples / max(tree.n_samples[0], 1.0)
    for node in range(1, tree.n_nodes):
        parent = tree.parent[node]
        ax.plot(
            [x[parent], x[node], x[node]],
            [depth[parent], depth[parent], depth[node]],
            color="0.6",
            lw=1,
            zorder=1,
        )
    inner = np.array([n for n in range(tree.n_nodes) if n not in position])
    if inner.size:
        ax.scatter(x[inner], depth[inner], s=size[inner], color="0.45", zorder=2)
    leaves = np.array(order)
    leaf_colour = colours[[position[int(n)] for n in leaves]]
    ax.scatter(
        x[leaves],
        depth[leaves],
        s=size[leaves],
        color=leaf_colour,
        marker="s",
        edgecolor="black",
        linewidth=0.5,
        zorder=3,
    )
    ax.set_xticks(
        x[leaves],
        [f"L{position[int(n)]}\n{tree.n_samples[n]:.0f}" for n in leaves],
        fontsize=8 if len(leaves) <= 25 else 6,
    )
    ax.set_ylim(depth.max() + 0.6, -0.6)
    ax.set_yticks(np.arange(depth.max() + 1))
    ax.set_xlabel("leaves, depth first (label and points routed to it)")
    ax.set_ylabel("depth")
    ax.set_title("Grown tree: each node a Gaussian")
    ax.legend(
        handles=[
            Line2D([], [], ls="", marker="o", color="0.45", label="split node"),
            Line2D(
                [], [], ls="", marker="s", color=colours[0], mec="black", label="leaf"
            ),
            Line2D([], [], ls="", label="marker area ∝ points"),
        ],
        loc="upper right",
        fontsize=8,
    )


def _draw_merge(ax: Axes, model: GMMTree, colours: np.ndarray) -> None:
    ax.set_title("Bottom-up merge of the leaves")
    ax.set_xlabel("leaf")
    if model.n_leaves_ < 2:
        ax.text(0.5, 0.5, "one leaf: nothing to merge", ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    linkage = np.array(model.linkage_, dtype=float)
    # Greedy merge costs need not grow; their running maximum draws a tree.
    linkage[:, 2] = np.maximum.accumulate(np.maximum(linkage[:, 2], 0.0))
    tree = dendrogram(
        linkage,
        ax=ax,
        labels=[f"L{j}" for j in range(model.n_leaves_)],
        color_threshold=0,
        above_threshold_color="0.4",
        leaf_font_size=8,
    )
    for label, leaf in zip(ax.get_xticklabels(), tree["leaves"], strict=True):
        label.set_color(colours[leaf])
        label.set_fontweight("bold")
    ax.set_ylabel("log-likelihood lost by the merge (running max)")
    n_clusters = int(model.leaf_cluster_.max()) + 1
    if 1 < n_clusters < model.n_leaves_:
        heights = linkage[:, 2]
        step = model.n_leaves_ - n_clusters
        cut = 0.5 * (heights[step - 1] + heights[step])
        ax.axhline(
            cut, color="tab:red", ls="--", lw=1, label=f"cut: {n_clusters} clusters"
        )
        ax.legend(loc="upper left", fontsize=8)
