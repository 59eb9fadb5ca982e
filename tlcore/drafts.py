"""The experiment a user is building in the app, kept as a file: a reload, a second tab or a restarted
server shows the same choices.

A draft is plain data: the app's choices (each page's widgets, by name) and, whenever those make a
valid run, the run config they make (the same JSON `python -m tlcore train` replays). It lives in
`<data folder>/experiments/<id>.json`, written whole or not at all; the id sits in the app's URL.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tlcore.errors import TransferLabError
from tlcore.files import atomic_write
from tlcore.paths import data_home
from tlcore.typed import check_plain

__all__ = ["Draft", "DraftStore", "DraftError"]

_ID = re.compile(r"[0-9a-f]{12}")
MAX_DRAFT_BYTES = 1_000_000


class DraftError(TransferLabError):
    """An experiment id that is malformed, unknown, or whose file cannot be read."""


@dataclass
class Draft:
    id: str
    choices: dict = field(default_factory=dict)  # widget name -> value, e.g. "train.epochs": 5
    config: dict | None = None  # the run config the choices make, when they make a valid one
    created: float = 0.0
    updated: float = 0.0


class DraftStore:
    """Drafts of one data folder."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root else data_home() / "experiments"

    def path(self, draft_id: str) -> Path:
        if not isinstance(draft_id, str) or not _ID.fullmatch(draft_id):
            raise DraftError(f"'{str(draft_id)[:40]}' is not an experiment id", "start a new experiment")
        return self.root / f"{draft_id}.json"

    def new(self, choices: dict, config: dict | None = None) -> Draft:
        now = time.time()
        draft = Draft(uuid.uuid4().hex[:12], dict(choices), config, now, now)
        self.save(draft)
        return draft

    def save(self, draft: Draft) -> None:
        check_plain(draft.choices, "the experiment's choices", DraftError)
        draft.updated = time.time()
        text = json.dumps(asdict(draft), indent=1)
        if len(text) > MAX_DRAFT_BYTES:
            raise DraftError("the experiment's settings are too large to keep", "shorten the longest text you entered")
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(draft.id), lambda tmp: tmp.write_text(text))

    def load(self, draft_id: str) -> Draft:
        """The saved draft; `DraftError` when the id is malformed or unknown, or its file is damaged."""
        path = self.path(draft_id)
        try:
            data = json.loads(path.read_text())
            draft = Draft(**{k: data[k] for k in ("id", "choices", "config", "created", "updated")})
        except FileNotFoundError:
            raise DraftError(f"no experiment {draft_id} in this data folder", "start a new experiment") from None
        except (OSError, ValueError, KeyError, TypeError):
            raise DraftError(f"the experiment file {path.name} is damaged", "start a new experiment") from None
        if draft.id != draft_id or not isinstance(draft.choices, dict):
            raise DraftError(f"the experiment file {path.name} is damaged", "start a new experiment")
        return draft
