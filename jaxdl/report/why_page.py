"""report.html's section for "Do you need insight into why it made a specific decision?".

Plain words first (summary.json's `questions.why.answer`), then the attribution maps
(why_attributions.png) or, for tabular inputs, each example's sentence and its top features with
signed contributions.
"""

from __future__ import annotations

from jaxdl.report.page import esc, image, table

FIGURE = "why_attributions.png"


def why_answer(summary: dict) -> dict:
    """summary.json's answer to the question ({} when the run has none)."""
    return (summary.get("questions") or {}).get("why") or {}


def example_heading(row: dict) -> str:
    number = f"{row['probability']:.2f}" if isinstance(row.get("probability"), float) else ""
    answer = f"predicted {row['predicted']}" + (f" ({number})" if number else "")
    role = "worst error" if row["role"] == "error" else "right answer"
    return f"test #{row['index']} ({role}): true {row['true']}, {answer}"


def why_section(summary: dict, images: dict[str, bytes]) -> str:
    """The section's HTML; "" when the run did not answer the question."""
    why = why_answer(summary)
    if not why:
        return ""
    parts = [f"<h2>Why did it decide so? ({esc(why.get('question', ''))})</h2>"]
    if "skipped" in why:
        return parts[0] + f'<p class="note">Not answered: {esc(why["skipped"])}.</p>'
    parts.append(f'<p class="note">{esc(why["answer"])}</p>')
    parts.append(f'<p class="note">Baseline: {esc(why["baseline"])}; {why["steps"]} trapezoid steps. Red: the input '
                 "pushed the answer up; blue: down.</p>")
    if FIGURE in images:
        parts.append(image(images[FIGURE], "attribution maps of the explained test examples"))
    for row in why["examples"]:
        if "top_features" not in row:
            continue
        parts.append(f"<h3>{esc(example_heading(row))}</h3><p>{esc(row['sentence'])}</p>")
        parts.append(table(["feature", "value", "contribution"],
                           [[f["feature"], f["value"], f"{f['contribution']:+.4f}"] for f in row["top_features"]]))
    gaps = [[row["index"], row["role"], f"{row['output_at_input']:.4f}", f"{row['output_at_baseline']:.4f}",
             f"{row['attribution_sum']:.4f}", f"{100 * row['relative_gap']:.2f}%"] for row in why["examples"]]
    parts.append("<h3>Completeness check</h3>" + table(
        ["test index", "role", "f(x)", "f(baseline)", "sum of attributions", "gap"], gaps))
    return "".join(parts)
