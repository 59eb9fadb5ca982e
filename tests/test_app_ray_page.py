"""The Compare page sends a comparison to Ray and follows it like a local one (Ray is optional: skipped without)."""

from __future__ import annotations

import time

import pytest

from conftest import ray_or_skip  # noqa: E402

ray_or_skip()

from app_fixtures import page, saved_experiment  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402


@pytest.mark.slow("starts a Ray instance")
def test_compare_page_runs_a_comparison_on_a_ray_instance_it_starts(tl_home, tmp_path) -> None:
    from train_fixtures import make_colour_classes

    colours = make_colour_classes(tmp_path / "colours")
    app = page("7_compare.py", data__source=str(colours), data__kind="Folder on this computer",
               data__folder=str(colours), model__name="test_efficientnet", model__weights="random", train__epochs=1,
               train__batch_size=8, compare__strategies=["feature_extraction", "full"])
    app.run()
    app.radio(key="compare:app.compare_run_on").set_value("Ray").run()
    assert not app.exception and not app.error
    app.button(key="compare.start").click().run()
    assert not app.exception and not app.error
    sweep = saved_experiment(app).sweeps[-1]
    store = RunStore()
    runs = store.list(sweep=sweep)
    assert len(runs) == 2 and {r.runner for r in runs} == {"ray"}
    deadline = time.monotonic() + 300
    while any(r.status in ("queued", "running") for r in store.list(sweep=sweep)):
        assert time.monotonic() < deadline, (tl_home / f"ray-driver-{sweep}.log").read_text()[-2000:]
        time.sleep(1)
    assert {r.status for r in store.list(sweep=sweep)} == {"succeeded"}, [r.error for r in store.list(sweep=sweep)]
    assert all(any(e["message"].startswith("started on Ray node") for e in store.events(r.id)) for r in runs)
    app.run()
    assert not app.exception and any("won with" in i.value or "tied at the top" in i.value for i in app.info)


def test_only_the_ray_module_imports_ray() -> None:
    import re

    from conftest import ROOT

    importers = [p.relative_to(ROOT).as_posix() for p in (ROOT / "tlcore").rglob("*.py")
                 if re.search(r"^\s*(import ray|from ray)", p.read_text(), re.M)]
    assert importers == ["tlcore/running/on_ray.py"]
