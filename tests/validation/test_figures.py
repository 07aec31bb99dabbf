"""Figures: PNG + PDF with TrueType fonts, palette colours, style fonts, and no collisions.

Each figure is drawn from a small real result (a few seconds in all) and laid out with the
Agg renderer; the checks then read the positions of the drawn texts, so a label that runs
into its neighbour or off the page fails here instead of in a reviewer's PDF viewer.
"""

import itertools
import math

import matplotlib.image
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from validation.experiments.compress_compare import CompareResult
from validation.experiments.compression import compression_spectra
from validation.experiments.llc import loss_neighbourhood
from validation.experiments.realdata import prepare_vectors, random_features_experiment
from validation.experiments.spectra import convergence_experiment, spectrum_experiment
from validation.report import figures
from validation.report.style import ONE_COLUMN, PALETTE, STYLE, TWO_COLUMN, paper_style

# --- small real results --------------------------------------------------------------------


@pytest.fixture(scope="module")
def spectrum():
    return spectrum_experiment(["relu", "relu"], n=120, kernel="ck")


@pytest.fixture(scope="module")
def convergence():
    """Three seeds (a band) and one seed (no band), on the same n grid."""
    return [convergence_experiment(["relu"], (50, 100, 200), kernel="ck", seeds=3),
            convergence_experiment(["tanh"] * 2, (50, 100, 200), kernel="ntk", seeds=1)]


@pytest.fixture(scope="module")
def spectra():
    return compression_spectra(["relu"], n=60, eps_values=(0.0, 0.5, 0.9), width=40,
                               draws=3)


@pytest.fixture(scope="module")
def realdata():
    """Random features on 10 Gaussian blobs in 20 dimensions (memory of a few kB)."""
    rng = np.random.default_rng(0)
    centres = 2 * rng.standard_normal((10, 20))
    y_train, y_test = rng.integers(0, 10, 300), rng.integers(0, 10, 100)
    X_train = centres[y_train] + rng.standard_normal((300, 20))
    X_test = centres[y_test] + rng.standard_normal((100, 20))
    F_train, F_test = prepare_vectors(X_train, X_test)
    return random_features_experiment("blobs", F_train, y_train, F_test, y_test, 10,
                                      widths=(32, 32, 16), eps_values=(0.5, 0.9, 0.99),
                                      bits=(1, 4))


@pytest.fixture(scope="module")
def neighbourhood(tiny):
    model, X, y = tiny
    return loss_neighbourhood(model, X[:200], y[:200], draws=2)


@pytest.fixture(scope="module")
def compare(neighbourhood):
    """A comparison with every method of compress-compare, one unknown method and points
    below the accuracy floor (the full run needs MNIST and minutes; the figure only reads
    the rows)."""
    rows = [("dense", 1_077_288, 0.9155), ("pruning", 573_352, 0.8885),
            ("pruning", 241_444, 0.748), ("pruning", 65_532, 0.2015),
            ("uniform", 23_997, 0.3735), ("uniform", 71_554, 0.864),
            ("uniform", 110_825, 0.913), ("uniform", 252_304, 0.916),
            ("llc", 138_171, 0.925), ("cet", 38_109, 0.812), ("cet", 100_888, 0.9125),
            ("cet-plain", 38_117, 0.81), ("cet-plain", 100_888, 0.914),
            ("l2", 78_338, 0.9315), ("rf-dense", 1_075_248, 0.8589),
            ("ntk-lc", 29_312, 0.8554), ("ntk-lc", 13_540, 0.8513),
            ("something-new", 50_000, 0.88)]
    dense = rows[0][1]
    return CompareResult(
        data="mnist", model="mlp", dense_accuracy=rows[0][2], dense_bytes=dense,
        rows=tuple({"method": m, "setting": "s", "accuracy": a, "bytes": b,
                    "ratio": dense / b, "calibration_loss": None, "bits": None,
                    "round_trip": None} for m, b, a in rows),
        neighbourhood=neighbourhood.as_dict())


# --- helpers -------------------------------------------------------------------------------


def _draw(fig):
    """Lay the figure out as ``save_figure`` does (inside the style: ticks made at draw time
    read the rc parameters)."""
    FigureCanvasAgg(fig)
    with paper_style():
        fig.canvas.draw()
    return fig.canvas.get_renderer()


def _tick_labels(ax, renderer):
    """(axis name, text, window box) of every drawn, non-empty tick label of ``ax``."""
    out = []
    for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
        lo, hi = sorted(axis.get_view_interval())
        slack = 1e-9 * max(abs(lo), abs(hi))
        for ticks in (axis.get_major_ticks(len(axis.get_majorticklocs())),
                      axis.get_minor_ticks(len(axis.get_minorticklocs()))):
            for tick in ticks:
                label = tick.label1
                # Ticks outside the view keep stale labels but are not drawn.
                inside = lo - slack <= tick.get_loc() <= hi + slack
                if inside and label.get_visible() and label.get_text().strip():
                    out.append((name, label.get_text(), label.get_window_extent(renderer)))
    return out


def _overlap(a, b, tol=0.5) -> bool:
    """Boxes overlap by more than ``tol`` pixels in both directions."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > tol
            and min(a.y1, b.y1) - max(a.y0, b.y0) > tol)


def _texts(fig):
    """Every visible non-tick text: titles, axis labels, legends, annotations."""
    out = []
    for ax in fig.axes:
        out += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if legend is not None:
            out += [*legend.get_texts(), legend.get_title()]
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def check_layout(fig):
    """No tick labels collide (on one axis, or across axes), no text leaves the figure, and
    no legend covers a tick or axis label."""
    renderer = _draw(fig)
    labels = [(f"panel {i} {name}", text, box) for i, ax in enumerate(fig.axes)
              for name, text, box in _tick_labels(ax, renderer)]
    assert labels, "no tick labels drawn"
    for (w1, t1, b1), (w2, t2, b2) in itertools.combinations(labels, 2):
        assert not _overlap(b1, b2), f"tick labels {t1!r} ({w1}) and {t2!r} ({w2}) overlap"
    page = fig.bbox
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(fig)]
    for name, box in boxes + [(text, box) for _, text, box in labels]:
        assert (box.x0 >= page.x0 - 1 and box.x1 <= page.x1 + 1 and box.y0 >= page.y0 - 1
                and box.y1 <= page.y1 + 1), f"{name!r} runs off the figure"
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if lg]
    fixed = [box for *_, box in labels] + [t.get_window_extent(renderer) for ax in fig.axes
                                       for t in (ax.xaxis.label, ax.yaxis.label, ax.title)
                                       if t.get_text()]
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert not any(_overlap(box, b) for b in fixed), "a legend covers a label"
    return renderer


def check_style(fig):
    """Fonts are the style's sizes; colours are the palette's, or grey or black."""
    sizes = {STYLE[k] for k in ("font.size", "axes.labelsize", "xtick.labelsize",
                                "legend.fontsize")}
    _draw(fig)
    texts = _texts(fig) + [t for ax in fig.axes for t in ax.get_xticklabels()
                           + ax.get_yticklabels() if t.get_text()]
    for text in texts:
        assert text.get_fontsize() in sizes, (text.get_text(), text.get_fontsize())
    palette = {to_rgb(c) for c in PALETTE}
    for ax in fig.axes:
        colours = [line.get_color() for line in ax.lines]
        colours += [p.get_facecolor() for p in ax.patches if isinstance(p, Patch)
                    and p.get_fill()]
        colours += [p.get_edgecolor() for p in ax.patches if p.get_linewidth() > 0]
        colours += [c for coll in ax.collections for c in coll.get_facecolor()]
        for c in colours:
            rgb = to_rgb(c)
            grey = max(rgb) - min(rgb) < 1e-6
            assert rgb in palette or grey, f"colour {c} is neither palette nor grey"


def check_files(png, pdf_expected_width, command=None):
    """PNG and PDF both written, PNG at 300 dpi for the column width, PDF with TrueType
    (Type 42) fonts and the command in its metadata."""
    assert png.suffix == ".png" and png.is_file()
    pdf = png.with_suffix(".pdf")
    assert pdf.is_file()
    width = matplotlib.image.imread(png).shape[1]
    assert width == round(300 * pdf_expected_width)
    data = pdf.read_bytes()
    assert b"/FontFile2" in data
    assert b"/Subtype /Type3" not in data
    if command is not None:
        assert command.encode() in data


# --- one test per figure -------------------------------------------------------------------


def test_spectrum(spectrum, tmp_path):
    png = figures.plot_spectrum(spectrum, tmp_path / "spectrum.png", command="ntklc spectrum")
    check_files(png, TWO_COLUMN, "ntklc spectrum")
    with paper_style():
        fig = figures._draw_spectrum(spectrum)
    renderer = check_layout(fig)
    check_style(fig)
    # The eigenvector panel: few enough labels to be read at print size.
    ax_v = fig.axes[1]
    ticks = _tick_labels(ax_v, renderer)
    assert 3 <= sum(name == "x" for name, *_ in ticks) <= 6
    assert 3 <= sum(name == "y" for name, *_ in ticks) <= 6


def test_convergence(convergence, tmp_path):
    png = figures.plot_convergence(convergence, tmp_path / "convergence.png")
    check_files(png, ONE_COLUMN)
    with paper_style():
        fig = figures._draw_convergence(convergence)
    check_layout(fig)
    check_style(fig)
    (ax,) = fig.axes
    # One band, for the three-seed result only.
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    (legend,) = fig.legends
    texts = [t.get_text() for t in legend.get_texts()]
    assert "±" in texts[0] and texts[0].startswith("relu CK: slope")
    assert any("n^{-1/2}" in t for t in texts)
    # The legend sits below the axes, off the data.
    renderer = fig.canvas.get_renderer()
    assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    # Log-log, labels on the data's own n grid.
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert set(ax.xaxis.get_majorticklocs()) == {50, 100, 200}


def test_convergence_single_seed_draws_no_band(convergence, tmp_path):
    with paper_style():
        fig = figures._draw_convergence(convergence[1:])
    assert not [c for c in fig.axes[0].collections if isinstance(c, PolyCollection)]
    check_layout(fig)


def test_compression_spectra(spectra, tmp_path):
    png = figures.plot_compression_spectra(spectra, tmp_path / "compression.png")
    check_files(png, TWO_COLUMN)
    with paper_style():
        fig = figures._draw_compression_spectra(spectra)
    check_layout(fig)
    check_style(fig)


def test_accuracy_memory(realdata, tmp_path):
    png = figures.plot_accuracy_memory(realdata, tmp_path / "accuracy_memory.png")
    check_files(png, TWO_COLUMN)
    with paper_style():
        fig = figures._draw_accuracy_memory(realdata)
    check_layout(fig)
    check_style(fig)
    # Sizes of a few kB: the unit follows, so labels stay short.
    assert fig.axes[0].get_xlabel() == "hidden-layer memory (kB)"


def test_compress_compare(compare, tmp_path):
    png = figures.plot_compress_compare(compare, tmp_path / "compress_compare.png",
                                        command="ntklc experiment compress-compare --quick")
    check_files(png, ONE_COLUMN, "ntklc experiment compress-compare --quick")
    with paper_style():
        fig = figures._draw_compress_compare(compare)
    check_layout(fig)
    check_style(fig)
    (ax,) = fig.axes
    # Points under the accuracy floor are marked on the bottom edge, and said so.
    floor = ax.get_ylim()[0]
    assert math.isclose(floor, 100 * compare.dense_accuracy - 10)
    edge = [line for line in ax.lines if not line.get_clip_on()]
    assert edge and all(np.allclose(line.get_ydata(), floor) for line in edge)
    (legend,) = fig.legends
    assert f"below {floor:.0f} %" in [t.get_text() for t in legend.get_texts()]
    # Every method, the unknown one included, has its own legend entry.
    names = {t.get_text() for t in legend.get_texts()}
    assert {r["method"] for r in compare.rows} <= names


@pytest.mark.parametrize("as_dict", [True, False])
def test_neighbourhood(neighbourhood, tmp_path, as_dict):
    source = neighbourhood.as_dict() if as_dict else neighbourhood
    png = figures.plot_neighbourhood(source, tmp_path / "neighbourhood")
    check_files(png, ONE_COLUMN)
    with paper_style():
        fig = figures._draw_neighbourhood(source)
    check_layout(fig)
    check_style(fig)
    (ax,) = fig.axes
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len([line for line in ax.lines if isinstance(line, Line2D)]) >= 3


def test_plot_functions_keep_their_positional_signature(spectrum, tmp_path):
    """``plot_x(result, path)``, as the command line and the demo call them."""
    png = figures.plot_spectrum(spectrum, str(tmp_path / "sub" / "s.png"))
    assert png == tmp_path / "sub" / "s.png" and png.with_suffix(".pdf").is_file()


def _activations_result(acts):
    """Rows shaped like ``ntklc experiment activations``'s, one activation infeasible (the
    full run needs MNIST and minutes; the figure only reads the rows)."""
    from validation.report.activations import ActivationsResult

    rows = []
    for i, act in enumerate(acts):
        feasible = act != "swish"
        for eps, factor, drop in ((0.0, 31.6, 0.01), (0.9, 55.7, 0.02), (0.99, 313.6, 0.05)):
            rows.append({"act": act, "eps": eps, "seed": 0, "dense_accuracy": 0.93 - i / 100,
                         "ntklc_accuracy": 0.93 - drop if feasible else None,
                         "pruned_accuracy": 0.93 - 8 * drop if feasible else None,
                         "memory_factor": factor if feasible else None,
                         "feasible": feasible})
    return ActivationsResult(data="mnist", widths=(2000, 2000, 1000), n_train=60000,
                             n_test=10000, acts=tuple(acts), eps_values=(0.0, 0.9, 0.99),
                             rows=tuple(rows), rule="", seconds=0.0, sweep={})


@pytest.mark.parametrize("acts", [("relu", "tanh", "erf", "gelu", "swish", "abs"), ("relu",)])
def test_activations(tmp_path, acts):
    result = _activations_result(acts)
    png = figures.plot_activations(result, tmp_path / "activations.png",
                                   command="ntklc experiment activations")
    check_files(png, TWO_COLUMN if len(acts) > 1 else ONE_COLUMN,
                "ntklc experiment activations")
    with paper_style():
        fig = figures._draw_activations(result)
    check_layout(fig)
    check_style(fig)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(acts)
    # The memory factor sits under each sparsity; the infeasible panel says why it has none.
    assert panels[0].get_xticklabels()[2].get_text() == "0.99\n314\N{MULTIPLICATION SIGN}"
    if "swish" in acts:
        swish = panels[acts.index("swish")]
        assert [t.get_text() for t in swish.texts] == ["NTK-LC infeasible\nat L = 3"]
        assert len(swish.lines) == 1  # the dense reference only
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == [
        "dense (float32)", "NTK-LC", "pruned to NTK-LC's memory"]
