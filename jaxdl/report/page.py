"""report.html: one self-contained page (inline CSS, images as base64 data URIs, no script, no network)."""

from __future__ import annotations

import base64
import html
import json

import numpy as np

from jaxdl.models.summary import shape_text
from jaxdl.train.scores import NAMES as SCORE_NAMES

# Tabular inputs: the features shown as columns of a row (the rest are summarised in a note).
MAX_FEATURE_COLUMNS = 16

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       margin: 0 auto; max-width: 1150px; padding: 24px; background: #fafafa; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 32px 0 8px;
  border-bottom: 2px solid #ddd; padding-bottom: 4px; }
.sub { color: #666; margin-bottom: 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card b { display: block; font-size: 22px; } .card span { color: #666; font-size: 13px; }
.good { border-left: 6px solid #2ca02c; } .bad { border-left: 6px solid #d62728; }
.neutral { border-left: 6px solid #1f77b4; }
img { max-width: 100%; background: #fff; border: 1px solid #ddd; border-radius: 4px; }
table { border-collapse: collapse; background: #fff; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 10px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
pre { background: #fff; border: 1px solid #ddd; padding: 10px; overflow-x: auto; font-size: 12px; }
p.note { color: #555; max-width: 900px; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.row > div { flex: 1 1 320px; } .row > div.wide { flex: 2 1 520px; }
h3 { font-size: 16px; margin: 12px 0 4px; }
"""


def esc(value) -> str:
    return html.escape(str(value))


def image(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def feature_columns(features: np.ndarray) -> tuple[list[str], list[list[str]], str]:
    """Tabular inputs (n, F) -> (header, a row of formatted values per example, a note on hidden columns)."""
    features = np.asarray(features).reshape(len(features), -1)
    shown = min(features.shape[1], MAX_FEATURE_COLUMNS)
    header = [f"x[{j}]" for j in range(shown)]
    rows = [[f"{v:.4g}" for v in row[:shown]] for row in features]
    note = "" if shown == features.shape[1] else f"The first {shown} of {features.shape[1]} features are shown."
    return header, rows, note


def card(value: str, label: str, tone: str = "neutral") -> str:
    return f'<div class="card {tone}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def headline(summary: dict) -> str:
    """The cards at the top: test figures, baseline, target, overfitting, epochs, size."""
    test, cards = summary["test"], []
    main = "accuracy" if "accuracy" in test else "mse"
    cards.append(card(f"{test[main]:.4f}", f"test {main} ({test.get('count', '?')} examples)"))
    if test.get("loss") != test[main]:
        cards.append(card(f"{test['loss']:.4f}", "test loss"))
    cards += [card(f"{test[name]:.4f}", f"test {name} (eval.metrics)") for name in SCORE_NAMES if name in test]
    baseline = summary.get("baseline") or {}
    if "test" in baseline:
        ours, theirs = test[main], baseline["test"][main]
        better = ours > theirs if main == "accuracy" else ours < theirs
        cards.append(card(f"{theirs:.4f}", f"{baseline['model']} baseline {main} ({ours - theirs:+.4f}): depth "
                          + ("paid off" if better else "did not pay off"), "good" if better else "bad"))
    elif baseline.get("diverged"):
        cards.append(card("diverged", f"{baseline['model']} baseline: non-finite loss in epoch {baseline['epoch']}, "
                          "no test figures", "bad"))
    target = summary.get("target")
    if target:
        cards.append(card("met" if target["met"] else "not met", f"target {target['metric']} {target['target']:g}",
                          "good" if target["met"] else "bad"))
    if "overfitting" in summary:
        cards.append(card("overfitting" if summary["overfitting"] else "no overfitting",
                          "validation loss against training loss", "bad" if summary["overfitting"] else "good"))
    stopped = ", stopped early" if summary.get("stopped_early") else ""
    cards.append(card(f"{summary['epochs_run']}", f"epochs (best {summary['best_epoch']}{stopped})"))
    cards.append(card(f"{summary.get('num_params', 0):,}", "parameters"))
    cards.append(card(f"{summary.get('train_seconds', 0):.1f} s", "training time"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def curves_section(summary: dict, images: dict[str, bytes]) -> str:
    evidence = summary.get("overfitting_evidence", {})
    note = ""
    if evidence and evidence["best_epoch"] == summary["epochs_run"]:
        note = (f"Validation loss was still at its lowest ({evidence['val_loss_best']:.4f}) in the last epoch: "
                "more epochs might help.")
    elif evidence:
        note = (f"Validation loss was lowest at epoch {evidence['best_epoch']} ({evidence['val_loss_best']:.4f}) "
                f"and ended at {evidence['val_loss_last']:.4f}; training loss went from "
                f"{evidence['train_loss_at_best']:.4f} to {evidence['train_loss_last']:.4f} over the same epochs.")
    return ("<h2>Learning curves</h2>" + image(images["learning_curves.png"], "learning curves")
            + f'<p class="note">{esc(note)}</p>')


def classification_sections(summary: dict, images: dict[str, bytes], features: dict | None = None) -> str:
    pairs = summary.get("most_confused", [])
    confused = table(["true", "predicted as", "examples"], [[p["true"], p["predicted"], p["count"]] for p in pairs]) \
        if pairs else "<p>No test errors.</p>"
    rows = [[r["class"], f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}", r["support"]]
            for r in summary["per_class"]]
    macro = summary["macro_average"]
    rows.append(["macro average", f"{macro['precision']:.3f}", f"{macro['recall']:.3f}", f"{macro['f1']:.3f}",
                 sum(r["support"] for r in summary["per_class"])])
    parts = ["<h2>Test set: where the model goes wrong</h2>", '<div class="row"><div class="wide">',
             "<h3>Confusion matrix</h3>", image(images["confusion_matrix.png"], "confusion matrix"),
             "<h3>Most confused pairs</h3>", confused, "</div><div>",
             "<h3>Per-class figures</h3>", table(["class", "precision", "recall", "F1", "support"], rows),
             "</div></div>"]
    worst = summary.get("worst_errors", [])
    parts.append("<h2>Worst errors (highest test loss)</h2>")
    if "worst_errors.png" in images:
        parts.append(image(images["worst_errors.png"], "worst errors"))
    header = ["test index", "true", "predicted", "p(predicted)", "p(true)", "loss"]
    rows = [[w["index"], w["true"], w["predicted"], f"{w['probability']:.3f}", f"{w['true_probability']:.3f}",
             f"{w['loss']:.3f}"] for w in worst]
    note = ""
    if features is not None and worst:  # tabular data: each example's features on its row
        names, values, note = feature_columns(features["worst_errors"])
        header += names
        rows = [row + more for row, more in zip(rows, values, strict=True)]
    parts.append(table(header, rows))
    if note:
        parts.append(f'<p class="note">{esc(note)}</p>')
    return "".join(parts)


def regression_sections(summary: dict, images: dict[str, bytes]) -> str:
    stats = summary["residuals"]
    return ("<h2>Predicted against true (test)</h2>" + image(images["predicted_vs_true.png"], "predicted vs true")
            + "<h2>Residuals (test)</h2>" + image(images["residuals.png"], "residuals")
            + table(["mean", "std", "MAE", "max |residual|", "R²"],
                    [[f"{stats[k]:.4f}" for k in ("mean", "std", "mae", "max_abs", "r2")]]))


def activation_section(summary: dict, images: dict[str, bytes], features: dict | None = None) -> str:
    layers = summary.get("activations", {})
    if not layers:
        return ""
    rows = "one test example per class (rows, in class order)" if summary["task"] == "classification" \
        else "the first test examples (rows)"
    parts = ["<h2>Activations</h2>", f'<p class="note">What each hidden layer does with {rows}: per-unit values '
             "for dense layers, the most active channels for convolutional feature maps. A unit that is zero for "
             "every example is dead for these inputs.</p>",
             table(["layer", "shape", "mean", "zero fraction"],
                   [[name, "x".join(map(str, s["shape"][1:])), f"{s['mean']:.4f}", f"{s['zero_fraction']:.3f}"]
                    for name, s in layers.items()])]
    if features is not None:  # tabular data: the examples' features, one row each, in the figures' order
        names, values, note = feature_columns(features["activations"])
        indices = summary.get("activation_examples", [])
        parts += ["<h3>Inputs (the rows of the figures below)</h3>",
                  table(["test index", *names], [[i, *row] for i, row in zip(indices, values, strict=False)])]
        if note:
            parts.append(f'<p class="note">{esc(note)}</p>')
    for name in layers:
        key = activation_file(name)
        if key in images:
            parts.append(image(images[key], f"activations of {name}"))
    return "".join(parts)


def activation_file(layer: str) -> str:
    """The PNG name for a layer's activations, e.g. "activations_hidden_0_out.png"."""
    safe = "".join(c if c.isalnum() or c in "_-" else "-" for c in layer)
    return f"activations_{safe}.png"


def sweep_section(summary: dict, images: dict[str, bytes]) -> str:
    """A sweep: every member's setting, epochs and figures, and the validation curves of all; the rest of
    the page is the best member's report."""
    members = summary.get("members")
    if not members:
        return ""
    best = summary["best_member"]
    names = [k for k in members[best].get("test", {}) if k != "count"]
    rows = [[m["member"], m.get("label", ""), f"{m.get('seed', '')}", m.get("epochs_run", ""), m.get("best_epoch", ""),
             *(f"{m['validation'].get(k, float('nan')):.4f}" for k in names),
             *(f"{m['test'].get(k, float('nan')):.4f}" for k in names),
             "diverged" if m.get("diverged") else ("best" if m["member"] == best else "")] for m in members]
    header = ["member", "setting", "seed", "epochs", "best epoch", *(f"val {k}" for k in names),
              *(f"test {k}" for k in names), ""]
    parts = [f"<h2>Sweep: {len(members)} members trained as one program</h2>",
             f'<p class="note">The rest of this page is the report of the best member, member {best} '
             f'({esc(members[best].get("label", ""))}), chosen on the validation split.</p>', table(header, rows)]
    if "validation_curves.png" in images:
        parts.append(image(images["validation_curves.png"], "validation curves of every member"))
    return "".join(parts)


def model_section(summary: dict) -> str:
    """The model's layers: output shape (for one input) and parameter count of each (`jaxdl.models.summary`)."""
    rows = summary.get("model_summary")
    if not rows:
        return ""
    return (f"<h2>Model: {summary.get('num_params', rows[0]['params']):,} parameters</h2>"
            + table(["layer", "module", "output shape", "parameters"],
                    [[r["layer"], r["module"], shape_text(r["output"]), f"{r['params']:,}"] for r in rows]))


def render(summary: dict, config: dict, images: dict[str, bytes], *, features: dict | None = None,
           sections: tuple[str, ...] = ()) -> str:
    """The whole page. `images` maps file names (learning_curves.png, ...) to PNG bytes. For tabular
    data, `features` holds the inputs of the worst errors and of the activation examples,
    {"worst_errors": (k, F), "activations": (n, F)}, shown as table rows. `sections`: more HTML
    sections, placed after the activations (e.g. `jaxdl.report.why_page`)."""
    title = f"{summary.get('experiment') or 'run'} report: {summary.get('model', '')} on {summary['data']['name']}"
    data = summary["data"]
    devices = summary.get("devices", {})
    body = [f"<h1>{esc(title)}</h1>",
            f'<div class="sub">{esc(summary.get("workdir", ""))} · {summary["task"]} · train {data["train"]}, '
            f'validation {data["validation"]}, test {data["test"]} examples · {devices.get("count", "?")} × '
            f'{esc(devices.get("kind", "?"))}</div>',
            headline(summary), sweep_section(summary, images), curves_section(summary, images)]
    if summary["task"] == "classification":
        body.append(classification_sections(summary, images, features))
    else:
        body.append(regression_sections(summary, images))
    body.append(activation_section(summary, images, features))
    body.append(model_section(summary))
    body.extend(sections)
    body.append("<h2>Config</h2><pre>" + esc(json.dumps(config, indent=2)) + "</pre>")
    body.append("<h2>summary.json</h2><details><summary>show</summary><pre>"
                + esc(json.dumps(summary, indent=2)) + "</pre></details>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
