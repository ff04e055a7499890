"""report.html's section "Before trusting this network": one part per question of summary.json's
`questions`, the answer in plain words first, its figure second, the figures behind it last."""

from __future__ import annotations

from jaxdl.report.page import esc, image, table

TITLES = {
    "simpler_methods": "Have you ruled out simpler machine-learning methods?",
    "why": "Do you need insight into why it made a specific decision?",
    "good_enough": "How will you evaluate it? When is it good enough?",
    "data": "Do you have plenty of varied training data?",
    "compute": "Do you have the processing power and storage?",
}
FIGURES = {"simpler_methods": "simpler_methods.png", "why": "why.png", "good_enough": "good_enough.png",
           "data": "data.png", "compute": "compute.png"}


def interval(score: dict) -> str:
    return f"{score['value']:.4g} [{score['low']:.4g}, {score['high']:.4g}]"


def simpler_details(answer: dict) -> str:
    rows = [["this run's model", interval(answer["deep"]), "", ""]]
    rows += [[m["name"], interval(m["test"]), m["vs_deep"], "" if m["seconds"] is None else f"{m['seconds']:.2f} s"]
             for m in answer["methods"]]
    rows += [[s["name"], "skipped", s["reason"], ""] for s in answer.get("skipped", [])]
    note = (f"Fitted on {answer['train_rows']} training rows (flattened inputs), scored on {answer['test_rows']} "
            f"test rows; time budget {answer['budget_seconds']:g} s.")
    return table(["method", f"test {answer['deep']['metric']} (95% interval)", "against this run", "time"], rows) \
        + f'<p class="note">{esc(note)}</p>'


def good_enough_details(answer: dict) -> str:
    if "coverage" not in answer:
        return ""
    rows = [[f"{r['threshold']:g}", f"{100 * r['coverage']:.1f}%", r["answered"],
             "-" if r["accuracy"] is None else f"{r['accuracy']:.4f} [{r['low']:.3f}, {r['high']:.3f}]"]
            for r in answer["coverage"]]
    return table(["confidence at least", "answered", "examples", "accuracy (95% interval)"], rows)


def data_details(answer: dict) -> str:
    parts = []
    found = answer.get("duplicates")
    if found:
        parts.append(table(["test examples also in train", "count", "first test indices"],
                           [["exactly", found["exact"], ", ".join(map(str, found["exact_indices"]))],
                            ["nearly (coarsened)", found["near"], ", ".join(map(str, found["near_indices"]))]]))
    features = answer.get("features")
    if features:
        parts.append(table(["input features", "count", "first of them"],
                           [["constant in train", features["constant"], ", ".join(features["constant_names"])],
                            ["missing in every train example", features["all_missing"],
                             ", ".join(features["all_missing_names"])]]))
    curve = answer.get("learning_curve")
    if curve and not curve.get("run", True):
        parts.append(f'<p class="note">Learning curve not run: {esc(curve["reason"])}</p>')
    return "".join(parts)


def compute_details(answer: dict) -> str:
    memory = answer.get("device_memory", {})
    rows = [["FLOPs per step (XLA cost analysis)", f"{answer['flops_per_step']:,.0f}"
             if answer["flops_per_step"] is not None else "unknown"]]
    rows += [[f"device memory: {name}", f"{value:,} B"] for name, value in memory.items()]
    rows += [[f"data in memory: {name}", f"{value:,} B"] for name, value in answer["data_bytes"].items()]
    rows.append(["data on disk", "unknown" if answer["disk_bytes"] is None else f"{answer['disk_bytes']:,} B"])
    return table(["quantity", "value"], rows)


DETAILS = {"simpler_methods": simpler_details, "good_enough": good_enough_details, "data": data_details,
           "compute": compute_details}


def questions_section(summary: dict, images: dict[str, bytes]) -> str:
    """The section; "" for a summary without `questions`."""
    questions = summary.get("questions")
    if not questions:
        return ""
    parts = ["<h2>Before trusting this network: the questions to ask</h2>"]
    for name, title in TITLES.items():
        answer = questions.get(name)
        if answer is None:
            continue
        parts.append(f"<h3>{esc(title)}</h3>")
        if not answer.get("run"):
            parts.append(f'<p class="note">Not answered: {esc(answer.get("reason", "not run"))}.</p>')
            continue
        parts.append(f"<p>{esc(answer.get('answer', ''))}</p>")
        if name == "why":
            parts.append('<p class="note">The attributions themselves are in the section above.</p>')
            continue
        if FIGURES.get(name) in images:
            parts.append(image(images[FIGURES[name]], title))
        if name in DETAILS:
            parts.append(DETAILS[name](answer))
    return "".join(parts)
