"""The live playground's update rate, measured in a real browser (headless Chromium) against a real server.

    python benchmarks/playground_rate.py [--seconds 20] [--hash 'dataset=spiral&hidden=8,8,8,8,8,8']
                                         [--screenshot docs/playground.png]

Starts `python -m jaxdl.playground --port 0` as a subprocess, opens the page with the settings of
--hash (default: spiral, features x1 and x2, 6 hidden layers of 8 tanh neurons), presses play and
after --seconds prints what the page measured: views drawn per second over the whole play and
over its last 20 updates (`#rate`), epochs per update, and the epoch reached. An update is one
round trip: a compiled chunk of epochs trained, the surfaces of the output and all 55 tiles
drawn, the weights redrawn. With --screenshot, the page as it is then is saved there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hash", default="dataset=spiral&features=x1,x2&hidden=8,8,8,8,8,8&activation=tanh")
    parser.add_argument("--screenshot", default="")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "-m", "jaxdl.playground", "--port", "0", "--runs_dir",
                               os.path.join(REPO, "runs")], cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": REPO})
    try:
        line = server.stdout.readline()
        url = line.split()[1]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            page.goto(f"{url}/#{args.hash}")
            page.wait_for_function("document.body.dataset.pending === '0'", timeout=60000)
            page.click("#play")
            page.wait_for_function("Number(document.getElementById('updates').textContent) >= 2", timeout=60000)
            first, started = int(page.inner_text("#updates")), time.perf_counter()
            time.sleep(args.seconds)
            updates, elapsed = int(page.inner_text("#updates")) - first, time.perf_counter() - started
            last = page.inner_text("#rate")
            per_update, epoch = page.inner_text("#per_update"), page.inner_text("#epoch")
            if args.screenshot:
                page.click("#play")
                page.wait_for_timeout(500)
                page.screenshot(path=args.screenshot)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"settings        {args.hash}")
    print(f"updates/s       {updates / elapsed:.1f} over {elapsed:.0f} s ({updates} updates); last 20: {last}/s")
    print(f"epochs/update   {per_update} (epoch {epoch} reached)")
    print(f"load average    {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
