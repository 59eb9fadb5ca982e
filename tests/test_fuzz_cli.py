"""Every text and path option of every CLI command, fuzzed (issue 28): each command line gives success, a usage
error, or one line of our own error; never the "unexpected ... (a bug in Transfer Lab)" catch-all, never a
traceback. Numeric options are fuzzed in test_cli_numbers.py; config fields in test_fuzz_config.py.

The other arguments of each command line are real (a trained run, a data folder, a picture, a config), so the
fuzzed value reaches the code that reads it. Commands run in this process, from an empty folder (a fuzzed
relative path never names a project file); a value naming an existing path is left out (".", "/" or "~" would
scan or overwrite real folders, which is not what is tested here)."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from PIL import Image

from conftest import CliResult, cli_actions
from tlcore.cli import main
from tlcore.results.evaluate import evaluate_run
from tlcore.training.train import train
from train_fixtures import make_colour_classes, tiny_config

# Each slot: a command line with one {} where the fuzzed value goes. D: a data folder, IMG: a picture,
# CFG: a valid run config, RUN: a trained run's folder, T: a CSV of labelled texts.
SLOTS = [
    "data scan {}", "data split {}", "data split D --out {}", "data cache {} --model test_efficientnet",
    "data cache D --model {}", "data scan T --text-column {}", "data scan T --label-column {}",
    "data split T --text-column {}", "data split T --label-column {}",
    "models list --search {}", "models rank --data D --models {} --input-size 32", "models rank --config {}",
    "models rank --data {} --models test_efficientnet@random --input-size 32",
    "models show {}", "models show test_efficientnet --weights {}",
    "augment preview {}", "augment preview IMG --preset {}", "augment preview IMG --spec {}",
    "augment preview IMG --model {}", "augment preview IMG --n 1 --out {}",
    "augment text-preview {}", "augment text-preview hello --preset {}",
    "train {}", "train {} --background",
    "runs show {}", "runs cancel {}", "runs resume {}", "runs list --status {}",
    "evaluate {}", "evaluate RUN --data {}",
    "lr-find {}", "estimate {}",
    "compare {}", "compare CFG --vary {} --background", "compare CFG --strategies {} --background",
    "compare CFG --methods {} --background", "compare --resume {}", "compare --report {}",
    "export {} out", "predict {} IMG", "predict RUN {}", "predict RUN IMG --csv {}", "predict RUN IMG --cam {}",
    "freeze show {}", "freeze show test_efficientnet --weights {}", "freeze show test_efficientnet --strategy {}",
    "data label {} --as red --into labelled", "data label IMG --as {} --into labelled --data D",
    "data label IMG --as red --into {}", "data label IMG --as red --into labelled --data {}",
    "data label IMG --as a --into labelled --data T --text-column {}",
    "data label IMG --as a --into labelled --data T --label-column {}",
]
# Given as a value, these could do real work (export a model, write a picture) rather than be refused: fuzzed by
# the fixed list only, which holds names that cannot be written.
WRITES = {"export {} out", "augment preview IMG --n 1 --out {}", "data split D --out {}",
          "predict RUN IMG --csv {}", "predict RUN IMG --cam {}", "data label IMG --as red --into {}",
          "data label {} --as red --into labelled"}

NASTY = ["", " ", "-", "--", "x" * 5000, "\udc80\udcff", "a\nb", "ｆｏｏ", "e\u0301", "\u202e", "..\\..\\x",
         "nope/../../x", "C:\\x", "*", "%s%n", "${HOME}", "' OR 1=1 --", "20261201-000000-abcdef",
         "20261201-000000-abcdeg", "x.zip", "x.png", "x.xyz", "resnet50,", ",", "epochs=", "optimizer.lr=[",
         "=1", "a=b=c", "full,nope", "dann,", "0" * 400, "\t", "\x7f", "[" * 50_000, "lr=" + "[" * 50_000]
SECONDS = 60  # the time bound of one command line (a busy 2-core machine; most take well under a second)


def every_slot_option() -> set[tuple[str, str]]:
    """(command, option or positional) pairs of the parser that take text: the slots must cover them all."""
    found = set()
    for command, action in cli_actions():
        if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction, argparse._StoreConstAction)):
            continue
        if action.type in (None, str, Path) or getattr(action.type, "__name__", "") == "Path":
            found.add((command, (action.option_strings or [action.dest])[0]))
    return found


LEFT_OUT = {  # (command, option): why no slot fuzzes it here
    ("worker", "worker"): "",
    ("train", "--ray"): "a Ray address: tests/test_hardening.py (closed port, bad names) and test_ray.py",
    ("runs resume", "--ray"): "a Ray address, as above",
    ("compare", "--ray"): "a Ray address, as above",
    ("compare", "--evaluate-on"): "with a valid config the comparison would train: test_adapt's folder tests",
    ("compare", "--out"): "written only after a comparison trained: test_compare",
    ("compare", "config"): "",  # the slot "compare {}" fuzzes it
    ("lr-find", "--out"): "written only after the test ran: test_train's lr-find tests",
    ("lr-find", "--progress"): "as --out",
    ("evaluate", "--progress"): "written only while evaluating: test_app_train_evaluate_pages",
    ("estimate", "--progress"): "written only while measuring: test_estimate (the phases, counted)",
}


def test_the_slots_cover_every_text_option() -> None:
    options = every_slot_option()
    commands = {command for command, _ in options}
    covered = set()
    for slot in SLOTS:
        words = slot.split()
        command = max((" ".join(words[:n]) for n in (1, 2) if " ".join(words[:n]) in commands), key=len)
        before = words[words.index("{}") - 1]
        covered.add((command, before if before.startswith("--") else "positional"))
    missing = sorted((c, o) for c, o in options if (c, o) not in LEFT_OUT
                     and (c, o if o.startswith("--") else "positional") not in covered)
    assert missing == []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz")
    data = make_colour_classes(root / "colours", per_class=8)
    picture = root / "picture.png"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(picture)
    config = tiny_config(data, epochs=1)
    config_path = root / "run.json"
    config_path.write_text(config.to_json())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_HOME", str(root / "home"))
        train(config, root / "run")
        evaluate_run(root / "run")
    empty = root / "cwd"
    empty.mkdir()
    texts = root / "tickets.csv"
    texts.write_text("text,label\n" + "".join(f"ticket {i} about {y},{y}\n" for i in range(5) for y in ("a", "b")))
    return {"D": str(data), "IMG": str(picture), "CFG": str(config_path), "RUN": str(root / "run"), "T": str(texts),
            "cwd": str(empty)}


def run(slot: str, value: str, world: dict[str, str]) -> CliResult:
    import io

    argv = [world.get(word, word) for word in slot.split()]
    argv[argv.index("{}")] = value
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.chdir(world["cwd"]), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    seconds = time.monotonic() - started
    assert seconds < SECONDS, f"{slot!r} with {value[:60]!r} took {seconds:.0f} s"
    return CliResult(code, out.getvalue(), err.getvalue())


def one_answer(result: CliResult, slot: str, value: str) -> None:
    shown = f"{slot!r} with {value[:60]!r}: rc {result.returncode}\n{result.stderr[-1500:]}"
    assert result.returncode in (0, 1, 2), shown
    assert "unexpected" not in result.stderr and "Traceback" not in result.stderr, shown
    if result.returncode == 1:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, shown


def usable(value: str, world: dict[str, str]) -> bool:
    """A value that names nothing existing (from the empty folder the commands run in)."""
    try:
        with contextlib.chdir(world["cwd"]):
            return not Path(os.path.expanduser(value)).exists() and not value.strip(" .") == ""
    except (OSError, ValueError):
        return True


@pytest.mark.parametrize("slot", SLOTS)
def test_nasty_values_get_one_answer(slot: str, world: dict[str, str], tl_home: Path) -> None:
    for value in NASTY:
        if usable(value, world) or value in ("", " "):
            one_answer(run(slot, value, world), slot, value)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slot=st.sampled_from([s for s in SLOTS if s not in WRITES]),
       value=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
       | st.text(st.sampled_from("/.\\~-_=,[]{}:\"' \n\udc80aZ9"), max_size=12))
def test_any_text_gets_one_answer(slot: str, value: str, world: dict[str, str], tl_home: Path) -> None:
    assume(usable(value, world))
    one_answer(run(slot, value, world), slot, value)
