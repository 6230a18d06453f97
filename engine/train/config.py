"""Training configuration of the redirector, and JSON (de)serialisation of nested config dataclasses.

Every run writes its :class:`TrainConfig` next to its checkpoints and inside them, so a result can always be
traced back to the exact settings (synthetic distribution and architecture included) that produced it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from engine.data.synth.sampler import SynthConfig
from engine.model.config import RedirectorConfig
from engine.train.precision import Precision, check_precision

T = TypeVar("T")


# --- generic dataclass <-> JSON -----------------------------------------------------------------------------


def to_json_dict(obj: Any) -> Any:
    """A JSON-ready value of a (nested) config dataclass: dicts, lists, numbers, strings, booleans and None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [to_json_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_json_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot serialise a {type(obj).__name__} to JSON")


def from_json_dict(cls: type[T], data: Any) -> T:
    """Rebuild a config dataclass ``cls`` from :func:`to_json_dict` output.

    Missing keys take the dataclass defaults (old configs keep loading when a field is added); unknown keys
    raise, so a typo in a hand-written config cannot be silently ignored.
    """
    value: T = _convert(cls, data, cls.__name__)
    return value


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` converted to the annotated type ``tp`` (``where`` names the field for error messages)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError(f"{where}: {value!r} matches none of {tp}: {'; '.join(errors)}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ValueError(f"{where}: {value!r} is not one of {typing.get_args(tp)}")
        return value
    if origin is tuple:
        return _convert_tuple(typing.get_args(tp), value, where)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list, got {value!r}")
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _convert_dataclass(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    return _convert_scalar(tp, value, where)


def _convert_tuple(args: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError(f"{where}: expected a list, got {value!r}")
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if len(args) != len(value):
        raise ValueError(f"{where}: expected {len(args)} items, got {len(value)}")
    return tuple(_convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _convert_dataclass(tp: type[Any], value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"{where}: expected an object, got {value!r}")
    hints = typing.get_type_hints(tp)
    names = {f.name for f in dataclasses.fields(tp) if f.init}
    unknown = sorted(set(value) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}")
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}") for k, v in value.items()}
    return tp(**kwargs)


def _convert_scalar(tp: Any, value: Any, where: str) -> Any:
    # bool is a subclass of int in Python: check it first so that `true` never becomes a step count.
    if tp is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{where}: expected a boolean, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise TypeError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is type(None):
        if value is not None:
            raise TypeError(f"{where}: expected null, got {value!r}")
        return None
    raise TypeError(f"{where}: unsupported field type {tp}")


# --- the training configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms (defaults from STED, Zheng et al. 2020, and GHT/SG, Park et al. 2023)."""

    reconstruction: float = 200.0  # L1 of the redirected source against the target render
    perceptual: float = 200.0  # estimator-feature distance of the same (STED's "redirection feature" loss)
    pseudo_label: float = 5.0  # the encoder's gaze and head estimates against the true labels
    embedding_consistency: float = 2.0  # source and target embeddings agree once rotated to a common label
    disentanglement: float = 2.0  # moving only gaze leaves the head estimate, and vice versa
    redirection: float = 5.0  # the frozen estimator's gaze and head of the output match the target labels
    ght: float = 1.0  # GHT gaze-consistency
    sg: float = 1.0  # structured-gaze metric loss
    # L1 of the source warped by the output's flow alone (no residual) against the target render: what the
    # corrector pastes on real frames. Without it run 3's warp moved the pupils about half way (docs/MODEL.md, "What
    # the corrector pastes"). Off by default, because no run from scratch has been measured with it; the shipped
    # model was fine-tuned with it (200) and the pupil term (5), docs/model/session16/pupil_ft_config.json.
    warp: float = 0.0
    # Strip pixels by which the flow misses the source's pupil at the target's (engine.train.losses.pupil_flow_loss):
    # a direct, long-range signal for the warp to move the pupils, which the renderer knows. Needs pairs with
    # pupil positions (the live sampler, or a pair cache written since session 16). Off by default, as above.
    pupil: float = 0.0
    # Mean hinge below a Jacobian determinant of 0.2 of the flow's sampling map (engine.train.losses.fold_loss):
    # keeps the warp from folding (showing a stretch of skin or iris twice), which the pupil term makes it do on
    # large moves (docs/MODEL.md, "Folds"). Off by default, as above.
    fold: float = 0.0
    # The same hinge counted only at the eyes (engine.train.losses.eye_cells: the target's visible eyeball and 4 px
    # around it, where a fold doubles an iris or lid edge), on top of ``fold``, which weighs every pixel square
    # alike and left folds beside a pupil on large moves. Off by default: the one run with it (session 18) took
    # those folds away, but the judge read its gaze worse, so it was not shipped (docs/MODEL.md, "Folds at the eyes").
    eye_fold: float = 0.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"loss weight {f.name} must be non-negative, got {getattr(self, f.name)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a redirector training run depends on (saved as JSON with the run and in its checkpoints).

    ``ght`` and ``sg`` select the variant of the ablation (both False: the STED baseline). ``device`` is
    ``auto`` (CUDA if present), ``cpu``, ``cuda`` or ``cuda:N``; under ``torchrun`` each rank uses its local
    GPU. ``log_dir`` is the run directory: config, TensorBoard events and checkpoints go there.
    ``estimator_checkpoint`` is the frozen training estimator (A); ``judge_checkpoint`` the evaluation one (B).
    """

    ght: bool = True
    sg: bool = True
    steps: int = 200_000
    batch_size: int = 32
    # STED trains with Adam at 5e-5 per sample of the batch (1e-3 at its batch of 20) and decays it by 0.8
    # about once per epoch; our data is endless, so the decay interval is a fixed step count.
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay: float = 0.8
    lr_decay_steps: int = 30_000
    weights: LossWeights = field(default_factory=LossWeights)
    ght_alpha_init: float = 0.5
    # Samples are fresh every step, so α is a running mean of the per-sample updates (see the trainer).
    ght_alpha_momentum: float = 0.9
    sg_margin: float = 1.0
    seed: int = 0
    device: str = "auto"
    # A wall-clock budget: the run stops (and checkpoints) at the first step past it, even before ``steps``.
    max_seconds: float | None = None
    log_dir: str = "runs/redirector"
    log_every: int = 50
    checkpoint_every: int = 5_000
    synth: SynthConfig = field(default_factory=SynthConfig)
    cache: str | None = None  # a pre-rendered pair cache (mirada synth cache) to train from instead of rendering
    model: RedirectorConfig = field(default_factory=RedirectorConfig)
    estimator_checkpoint: str | None = None
    judge_checkpoint: str | None = None
    # Start from these redirector weights (any checkpoint load_redirector reads) instead of a random init.
    init_weights: str | None = None
    # "bf16": each step's forward and losses under bfloat16 autocast, weights and Adam in float32
    # (engine.train.precision); checkpoints and evaluation stay float32.
    precision: Precision = "fp32"

    def __post_init__(self) -> None:
        check_precision(self.precision)
        positive = {
            "steps": self.steps,
            "batch_size": self.batch_size,
            "lr_decay_steps": self.lr_decay_steps,
            "log_every": self.log_every,
            "checkpoint_every": self.checkpoint_every,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        if self.sg and self.batch_size < 2:
            raise ValueError("the structured-gaze loss needs batch_size >= 2")
        if self.lr <= 0 or not 0.0 < self.lr_decay <= 1.0:
            raise ValueError(f"need lr > 0 and lr_decay in (0, 1], got {self.lr} and {self.lr_decay}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"Adam betas must lie in [0, 1), got {self.betas}")
        if not 0.0 <= self.ght_alpha_init <= 1.0 or not 0.0 <= self.ght_alpha_momentum < 1.0:
            raise ValueError("ght_alpha_init must lie in [0, 1] and ght_alpha_momentum in [0, 1)")
        geo = self.synth.geometry
        if (geo.height, geo.width) != (self.model.height, self.model.width):
            raise ValueError(
                f"the model's strip size {self.model.height} x {self.model.width} differs from the synthetic "
                f"strips' {geo.height} x {geo.width}"
            )

    @property
    def variant(self) -> str:
        """The ablation variant's name: STED, +GHT, +SG or +GHT+SG."""
        if not (self.ght or self.sg):
            return "STED"
        return ("+GHT" if self.ght else "") + ("+SG" if self.sg else "")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (nested configs included)."""
        out: dict[str, Any] = to_json_dict(self)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """The config of :meth:`to_dict` output (missing keys take their defaults, unknown keys raise)."""
        return from_json_dict(cls, data)

    def to_json(self) -> str:
        """The config as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """The config of a JSON document."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("a training config must be a JSON object")
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the config as JSON to ``path`` (parent directories are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a config written by :meth:`save` (or by hand)."""
        return cls.from_json(Path(path).read_text())
