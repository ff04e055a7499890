"""What a run leaves in its workdir and shows on the terminal.

log (config.json, metrics.jsonl, atomic JSON), console (progress bar, final table), build, figures
and page (report.html; matplotlib is imported only there), why_figures and why_page (the "why did it
decide so?" section), scalars (TensorBoard), curves,
compare (runs side by side), plane (the playground's decision planes).
"""
