"""Experiments for AppTest: the app's state is one `Experiment` kept in a file named by the URL, as in a browser."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import ROOT


def page(name: str, runs: tuple[str, ...] = (), **values) -> AppTest:
    """A page of the app opened on a new experiment with these settings (`optimizer.lr` written `optimizer__lr`)
    and these runs as its own. Names of older versions (`train__epochs`) are read as the app reads an older file.
    """
    from pages.common import SAMPLE_DATA
    from pages.experiment import LEGACY_NAMES, ExperimentStore

    app = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=180)
    if values or runs:
        settings = {"data.source": str(SAMPLE_DATA)}
        for key, value in values.items():
            path = key.replace("__", ".")
            settings[LEGACY_NAMES.get(path, path)] = value
        experiment = ExperimentStore().new(settings)
        experiment.runs.extend(runs)
        ExperimentStore().save(experiment)
        app.query_params["exp"] = experiment.id
    return app


def saved_experiment(app: AppTest):
    """The experiment as the page left it, checked to be the same in its file (saved, not only in this session)."""
    from pages.experiment import ExperimentStore

    experiment = app.session_state["_experiment"]
    saved = ExperimentStore().load(experiment.id)
    assert (saved.values, saved.runs, saved.sweeps, saved.results) == \
        (experiment.values, experiment.runs, experiment.sweeps, experiment.results)
    return experiment


def choices_of(app: AppTest) -> dict:
    """Every setting of the page's experiment, by path, as saved in its file."""
    return saved_experiment(app).all_values()
