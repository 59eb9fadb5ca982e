"""Catalog, weights and heads: real offline weights, safe loading, clear errors."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file
from skimage import data as skdata

from conftest import tlcore_in_process
from tlcore.models import (
    DEFAULT_MODEL, RECOMMENDED, HeadSpec, ModelNotFoundError, ModelSpec, WeightsError, build_model, model_card, search,
)

IMAGENET_ESPRESSO = 967
IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def imagenet_input(picture: np.ndarray, built) -> torch.Tensor:
    """Resize the short side to size/crop_pct, centre-crop, normalise: exactly the model's own config."""
    p = built.preprocessing
    size = p.input_size[-1]
    img = Image.fromarray(picture)
    scale = (size / p.crop_pct) / min(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling[p.interpolation.upper()])
    left, top = (img.width - size) // 2, (img.height - size) // 2
    x = torch.from_numpy(np.asarray(img.crop((left, top, left + size, top + size))).copy()).permute(2, 0, 1).float() / 255
    return ((x - torch.tensor(p.mean).view(3, 1, 1)) / torch.tensor(p.std).view(3, 1, 1))[None]


@pytest.fixture(scope="module")
def imagenet_lite0():
    return build_model(ModelSpec(), num_classes=None)


def test_offline_default_weights_are_real_imagenet_weights(imagenet_lite0) -> None:
    built = imagenet_lite0
    assert built.arch == DEFAULT_MODEL and built.weights.kind == "package" and built.weights.pretrained
    built.model.eval()
    with torch.no_grad():
        cat = built.model(imagenet_input(skdata.chelsea(), built)).softmax(-1)[0]
        coffee = built.model(imagenet_input(skdata.coffee(), built)).softmax(-1)[0]
    assert int(cat.argmax()) in IMAGENET_CATS and float(cat[list(IMAGENET_CATS)].sum()) > 0.8
    assert int(coffee.argmax()) == IMAGENET_ESPRESSO and float(coffee.max()) > 0.5


@pytest.mark.parametrize("name, size", [("tf_efficientnet_lite1", 240), ("tf_efficientnet_lite2", 260)])
def test_lite1_and_lite2_are_real_offline_imagenet_weights_with_their_own_preprocessing(name: str, size: int) -> None:
    """Issue 39: three real backbones offline, each with its own input size and [-1, 1] inputs (measured ImageNet
    top-1 on the hymenoptera photos: Lite0 0.850, Lite1 0.889, Lite2 0.882)."""
    built = build_model(ModelSpec(name=name), num_classes=None)
    assert built.weights.kind == "package" and built.weights.pretrained
    assert built.preprocessing.input_size == (3, size, size) and built.preprocessing.mean == (0.498, 0.498, 0.498)
    built.model.eval()
    with torch.no_grad():
        cat = built.model(imagenet_input(skdata.chelsea(), built)).softmax(-1)[0]
        coffee = built.model(imagenet_input(skdata.coffee(), built)).softmax(-1)[0]
    assert int(cat.argmax()) in IMAGENET_CATS and float(cat[list(IMAGENET_CATS)].sum()) > 0.7
    assert int(coffee.argmax()) == IMAGENET_ESPRESSO
    assert model_card(name).offline_weights and [g.name for g in built.groups][-1] == "head"


def test_default_model_keeps_its_weights_under_a_new_head(imagenet_lite0) -> None:
    built = build_model(ModelSpec(), num_classes=4)
    reference = imagenet_lite0.model.state_dict()
    own = built.model.state_dict()
    assert torch.equal(own["conv_stem.weight"], reference["conv_stem.weight"])
    assert own["classifier.weight"].shape == (4, 1280)
    assert built.preprocessing.mean == (0.498, 0.498, 0.498)  # what these weights were trained with


def test_catalog_lists_recommended_first_with_facts() -> None:
    cards = search("")
    assert [c.name for c in cards] == list(RECOMMENDED)
    lite0 = model_card(DEFAULT_MODEL)
    assert lite0.offline_weights and lite0.params == 4_652_008
    assert model_card("inception_v3").input_size == (3, 299, 299)
    assert model_card("resnet50").params == 25_557_032
    found = [c.name for c in search("convnext", limit=10)]
    assert found[0] == "convnext_tiny" and all("convnext" in n for n in found)
    said = []
    vits = search("vit_small_patch16", limit=3, on_card=lambda done, total: said.append((done, total)))
    assert said == [(0, 3), (1, 3), (2, 3)]  # the Model page's progress while the cards are read
    assert vits[0].name == "vit_small_patch16_224" and vits[0].family == "vision_transformer"
    assert all(c.name.startswith("vit_small_patch16") for c in vits)


def test_parameter_counts_are_cached_on_disk(tl_home: Path) -> None:
    model_card("resnet18")
    caches = list((tl_home / "cache").glob("param_counts_*.json"))
    assert len(caches) == 1 and '"resnet18": 11689512' in caches[0].read_text()


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown model 'resnet5'.*resnet50"):
        build_model(ModelSpec(name="resnet5"), 2)


def test_missing_weights_say_how_to_get_them() -> None:
    with pytest.raises(WeightsError) as info:
        build_model(ModelSpec(name="resnet50"), 2)
    text = str(info.value)
    assert "no pretrained weights for 'resnet50'" in text and "huggingface.co/timm/resnet50" in text


def test_random_init_only_when_asked_and_labelled() -> None:
    built = build_model(ModelSpec(name="resnet18", weights="random"), 2, input_size=(3, 32, 32))
    assert not built.weights.pretrained and "RANDOM INIT" in built.label


def _resnet18_state(num_classes: int = 1000) -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(1)
    return timm.create_model("resnet18", num_classes=num_classes).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_file_loads_exactly(tmp_path: Path, suffix: str) -> None:
    state = _resnet18_state()
    path = tmp_path / f"resnet18{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    built = build_model(ModelSpec(name="resnet18", weights=str(path)), 3, input_size=(3, 32, 32))
    assert built.weights.kind == "file"
    assert torch.equal(built.model.state_dict()["layer3.0.conv1.weight"], state["layer3.0.conv1.weight"])


def test_weights_of_a_fine_tuned_model_transfer_without_its_head(tmp_path: Path) -> None:
    state = _resnet18_state(num_classes=7)
    path = tmp_path / "finetuned.safetensors"
    save_file(state, str(path))
    built = build_model(ModelSpec(name="resnet18", weights=str(path)), 3, input_size=(3, 32, 32))
    assert torch.equal(built.model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_weights_for_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.safetensors"
    save_file(_resnet18_state(), str(path))
    with pytest.raises(WeightsError, match="does not fit 'resnet34'.*differ in shape|does not fit 'resnet34'.*missing"):
        build_model(ModelSpec(name="resnet34", weights=str(path)), 2)


def test_corrupt_and_unsafe_weight_files_are_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(WeightsError, match="cannot read weights file broken.safetensors"):
        build_model(ModelSpec(name="resnet18", weights=str(corrupt)), 2)
    truncated = tmp_path / "half.pth"
    buffer = io.BytesIO()
    torch.save(_resnet18_state(), buffer)
    truncated.write_bytes(buffer.getvalue()[:5000])
    with pytest.raises(WeightsError, match="cannot read weights file half.pth"):
        build_model(ModelSpec(name="resnet18", weights=str(truncated)), 2)
    unsafe = tmp_path / "unsafe.pth"
    unsafe.write_bytes(pickle.dumps({"state_dict": _Payload()}))
    with pytest.raises(WeightsError, match="refusing to load unsafe.pth") as refused:
        build_model(ModelSpec(name="resnet18", weights=str(unsafe)), 2)
    assert not (tmp_path / "pwned").exists()
    assert "weights_only" not in str(refused.value) and "False" not in str(refused.value)  # never that advice
    assert "\n" not in str(refused.value)
    with pytest.raises(WeightsError, match="no such weights file"):
        build_model(ModelSpec(name="resnet18", weights=str(tmp_path / "nope.pth")), 2)


class _Payload:
    """Unpickling this would run code; weights_only loading must refuse it."""

    def __reduce__(self):
        return (Path("pwned").touch, ())


def test_custom_head_with_hidden_layer_and_dropout() -> None:
    built = build_model(ModelSpec(name="resnet18", weights="random", head=HeadSpec(hidden=32, dropout=0.2)), 4,
                        input_size=(3, 32, 32))
    assert isinstance(built.model.fc, torch.nn.Sequential)
    assert built.groups[-1].name == "head" and len(built.groups[-1].param_names) == 4
    built.model.eval()
    assert built.model(torch.zeros(2, 3, 32, 32)).shape == (2, 4)
    with pytest.raises(Exception, match="dropout"):
        HeadSpec(dropout=1.5)


def tlcore(*args: str, home: Path):
    """The command in this process, with `home` as the data folder."""
    return tlcore_in_process(*args, home=home)


def test_cli_models_and_freeze(tl_home: Path, tmp_path: Path) -> None:
    listing = tlcore("models", "list", home=tl_home)
    assert listing.returncode == 0 and "efficientnet_lite0" in listing.stdout and "vgg16" in listing.stdout
    show = tlcore("models", "show", "tf_efficientnet_lite0", home=tl_home)
    assert show.returncode == 0, show.stderr
    assert "layer groups, stem to head (9)" in show.stdout and "blocks.3" in show.stdout
    plan = tlcore("freeze", "show", "resnet18", "--random-init", "--strategy", "gradual", "--epochs", "3", home=tl_home)
    assert plan.returncode == 0 and "from epoch 2:" in plan.stdout and "RANDOM INIT" in plan.stdout
    for args, message in ((("models", "show", "resnet5"), "unknown model 'resnet5'"),
                          (("freeze", "show", "resnet18", "--weights", str(tmp_path / "x.pth")), "no such weights file")):
        bad = tlcore(*args, home=tl_home)
        assert bad.returncode == 1 and bad.stderr.startswith("error: ") and message in bad.stderr
        assert "Traceback" not in bad.stderr


def test_freeze_show_speaks_of_a_text_encoders_own_layers(tl_home: Path) -> None:
    """Issue 35: `freeze show` of a text encoder spoke of "generic edges and textures" and "ImageNet statistics"."""
    text = tlcore_in_process("freeze", "show", "all-MiniLM-L6-v2", "--strategy", "freeze_first_k", "--k", "2",
                             home=tl_home)
    assert text.returncode == 0, text.stderr
    assert "word meanings" in text.stdout and "edges" not in text.stdout and "BatchNorm" not in text.stdout
    picture = tlcore_in_process("freeze", "show", "tf_efficientnet_lite0", "--strategy", "gradual", home=tl_home)
    assert "head to stem" in picture.stdout and "kept at ImageNet's BatchNorm statistics" in picture.stdout
