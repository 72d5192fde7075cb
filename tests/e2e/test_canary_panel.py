"""The chat page's canary controls, in headless Chromium: a person makes the canary worse
from the side panel and the simulated pool's knobs (and so its metrics) change."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from sandbox.kube import KubeEmulator
from sandbox.serving import ServingWorld
from sandbox.slack import SlackEmulator
from tests.e2e.browser import Page, chromium

CANARY = "llm-pool-version-2"


@pytest.fixture
def world() -> Iterator[tuple[SlackEmulator, ServingWorld]]:
    kube = KubeEmulator(seed="demo")
    kube.start()
    slack = SlackEmulator(signing_secret="s")
    serving = ServingWorld(kube_url=kube.url, prometheus=False)
    try:
        slack.start()
        serving.start()
        yield slack, serving
    finally:
        serving.stop()
        slack.stop()
        kube.stop()


def test_the_side_panel_makes_the_canary_worse(
        world: tuple[SlackEmulator, ServingWorld]) -> None:
    binary = chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): browser test skipped")
    slack, serving = world
    page = Page(binary, f"{slack.url}/?user=U0ALICE&channel=C0ROLLOUT"
                        f"&serving={quote(serving.url, safe='')}")
    try:
        page.wait_for("document.querySelectorAll('#channels li').length > 0")  # page is up
        page.wait_for("!document.getElementById('canary').hidden && "
                      "document.getElementById('knob-state').textContent === 'all healthy'")
        page.evaluate("""(() => { const s = document.getElementById('knob-error_rate');
            s.value = '0.2'; s.dispatchEvent(new Event('change')); })()""")
        page.wait_for("document.getElementById('knob-state').textContent"
                      ".includes('llm-pool-version-2: errors 20%')")
        assert serving.knobs.behaviour(CANARY).error_rate == 0.2
        page.evaluate("""(() => { const c = document.getElementById('knob-ignore');
            c.checked = true; c.dispatchEvent(new Event('change')); })()""")
        page.wait_for("document.getElementById('knob-state').textContent"
                      ".includes('gateway ignores weights')")
        assert serving.knobs.ignore_weights
        page.evaluate("document.getElementById('knob-reset').click()")
        page.wait_for("document.getElementById('knob-state').textContent === 'all healthy'")
        assert serving.knobs.behaviour(CANARY).error_rate == 0.0
        assert "serving=" in page.evaluate("location.search")  # kept across redraws
    finally:
        page.close()
