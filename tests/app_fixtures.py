"""Experiments for AppTest: the app's choices live in a draft file named by the URL, as in a browser."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from conftest import ROOT


def page(name: str, **choices) -> AppTest:
    """A page of the app opened on a new experiment with these choices (keys as `train.epochs` or `train__epochs`)."""
    from pages.common import DEFAULTS
    from tlcore.drafts import DraftStore

    app = AppTest.from_file(str(ROOT / "pages" / name), default_timeout=180)
    if choices:
        draft = DraftStore().new({**DEFAULTS, **{k.replace("__", "."): v for k, v in choices.items()}})
        app.query_params["exp"] = draft.id
    return app


def choices_of(app: AppTest) -> dict:
    """The experiment's choices as the page left them (what its draft file now holds)."""
    from tlcore.drafts import DraftStore

    draft = app.session_state["_experiment"]
    assert DraftStore().load(draft.id).choices == draft.choices  # saved, not only in this session
    return draft.choices
