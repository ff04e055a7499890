"""The page in headless Chromium (playwright) against a real server on a free localhost port: one
page load drives the checks of the issue. Slow (a browser and three compiled programs).

It holds the one timing of the suite, asked for by the issue: the update rate the page measures
must be at least 10 per second. It is generous (about 20 a second on 2 loaded cores), and the
test is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chromium_path, run_cli
from playground_server import serving

# python -m experiments.playground --config configs/playground.py:spiral --config.model.hidden_sizes='(8,8)'
# (features x1, x2, tanh, Adam with cosine decay, 300 epochs): test loss 0.5203, accuracy 0.648.
STATIC_SPIRAL_8X8_TEST_LOSS = 0.5203




def settle(page) -> None:
    """Waits until no change of the settings is on its way."""
    page.wait_for_function("document.body.dataset.pending === '0'", timeout=60000)


def neurons(page) -> int:
    return page.locator("#network .neuron").count()


def surface(page, selector: str = "#output") -> str:
    return page.evaluate(f"document.querySelector({selector!r}).toDataURL()")


def number(page, selector: str) -> float:
    return float(page.inner_text(selector))


def play_until(page, condition: str, timeout_ms: int = 30000) -> None:
    page.click("#play")
    page.wait_for_function(condition, timeout=timeout_ms)


def pause(page) -> None:
    page.click("#play")
    page.wait_for_function("document.getElementById('play').textContent === '\u25b6'", timeout=30000)


@pytest.mark.slow
def test_the_page_trains_compares_and_saves_in_headless_chromium(tmp_path):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    runs = tmp_path / "runs"
    with serving(runs_dir=str(runs)) as (host, port), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://{host}:{port}/")
            settle(page)
            # Spiral, features x1 and x2 only (the default), 2 hidden layers of 8 built with + and -, tanh.
            page.click("button[data-dataset='spiral']")
            settle(page)
            assert neurons(page) == 6  # the playground's default 4, 2
            page.click("#add_layer")
            settle(page)
            assert neurons(page) == 8 and page.inner_text("#layer_count") == "3"
            page.click("#remove_layer")
            settle(page)
            for layer, clicks in ((0, 4), (1, 7)):
                for _ in range(clicks):
                    page.click(f".add_neuron[data-layer='{layer}']")
                    settle(page)
            assert neurons(page) == 16  # 8 is the most a layer holds: the 7th click on layer 1 changed nothing
            page.click(".remove_neuron[data-layer='1']")
            settle(page)
            assert neurons(page) == 15
            page.click(".add_neuron[data-layer='1']")
            settle(page)
            page.select_option("#activation", "tanh")
            settle(page)
            assert page.locator(".feature.active").count() == 2 and neurons(page) == 16
            link = page.url
            assert "dataset=spiral" in link and "hidden=8%2C8" in link and "features=x1%2Cx2" in link
            before = surface(page)

            # Play: within 30 s the test loss is below the static experiment's figure, at >= 10 updates a second.
            below = f"Number(document.getElementById('test_loss').textContent) < {STATIC_SPIRAL_8X8_TEST_LOSS}"
            play_until(page, below)
            page.wait_for_function("Number(document.getElementById('updates').textContent) >= 30", timeout=30000)
            rate = number(page, "#rate")
            pause(page)
            assert surface(page) != before
            assert rate >= 10, rate

            # The link reproduces the setup (same points, same initial weights) in a second tab.
            second = browser.new_page(viewport={"width": 1400, "height": 900})
            second.goto(link)
            settle(second)
            assert neurons(second) == 16 and second.inner_text("#epoch") == "0"
            assert second.locator("button[data-dataset='spiral'].active").count() == 1
            assert second.input_value("#activation") == "tanh" and surface(second) == before

            # Two tabs train independently: one plays while the other stays; then both play.
            paused_at = number(page, "#epoch")
            play_until(second, "Number(document.getElementById('epoch').textContent) >= 200")
            assert number(page, "#epoch") == paused_at
            play_until(page, f"Number(document.getElementById('epoch').textContent) >= {paused_at + 200}")
            second_epoch = number(second, "#epoch")
            second.wait_for_function(f"Number(document.getElementById('epoch').textContent) > {second_epoch}")
            pause(page)
            pause(second)

            # Compare 4 learning rates: 4 surfaces, trained side by side.
            second.select_option("#compare_vary", "learning_rate")
            second.fill("#compare_values", "0.003,0.01,0.03,0.1")
            second.click("#compare")
            settle(second)
            play_until(second, "Number(document.getElementById('epoch').textContent) >= 100", timeout_ms=60000)
            pause(second)
            members = second.locator("#members .member")
            assert members.count() == 4
            shown = {surface(second, f"#members .member:nth-child({i + 1}) canvas") for i in range(4)}
            losses = {members.nth(i).locator(".loss").inner_text() for i in range(4)}
            assert len(shown) == 4 and len(losses) == 4
            assert "learning_rate 0.1" in members.nth(3).inner_text()

            # Save as run: a complete jaxdl run that `python -m jaxdl.predict` answers on.
            page.fill("#run_name", "spiral-8x8")
            page.click("#save")
            page.wait_for_function("document.getElementById('save_status').textContent.startsWith('saved')",
                                   timeout=180000)
            errors = page.inner_text("#error") + second.inner_text("#error")
        finally:
            browser.close()
    assert errors == ""
    points = np.array([[0.5, 0.5], [-3.0, 2.0], [4.0, -4.0]], np.float32)
    np.savez(tmp_path / "new.npz", x=points)
    result = run_cli("jaxdl.predict", "--workdir", str(runs / "spiral-8x8"), str(tmp_path / "new.npz"))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "new.npz[" in line]
    assert len(rows) == 3 and all(("positive" in row) != ("negative" in row) for row in rows)
