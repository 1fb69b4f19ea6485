"""NAS-Bench-301 look-ups (DARTS space, CIFAR-10) through a surrogate model.

NAS-Bench-301 has no table: the ~10^18 DARTS cells are scored by a model trained on ~60k real
training runs. Two backends are supported.

``backend="yahpo"`` (default)
    The YAHPO Gym ``nb301`` surrogate, an ONNX network run with ``onnxruntime``
    (``pip install 'gates-sampler[nb301]'``). ``path`` is the folder holding ``new_model.onnx``
    (or ``model.onnx``) and ``encoding.json`` from the ``nb301/`` folder of the
    ``slds-lmu/yahpo_data`` repository. The network reads 34 integer codes (``x_cat``, order fixed
    by :data:`YAHPO_CAT_NAMES`) plus the epoch (``x_cont``, 1..98) and returns the validation
    accuracy (%) and the training runtime (s) at that epoch.

``backend="nasbench301"``
    The official ``nasbench301`` package with its downloaded surrogate ensemble (``model_dir``, e.g.
    ``nb_models_1.0/xgb_v1.0`` for accuracy or ``lgb_runtime_v1.0`` for runtime). Architectures are
    handed over as the package's ``Genotype`` named tuple (:func:`to_genotype`). Only that conversion
    is tested in this project: the ensemble files are a separate download that our test machines lack.

Mapping a DARTS genotype to the NB301 configuration (the auto-pytorch convention NB301 was trained
with): intermediate nodes are 2..5; node 2 owns edges 0-1 (from nodes 0, 1), node 3 edges 2-4 (from
0..2), node 4 edges 5-8 (from 0..3), node 5 edges 9-13 (from 0..4). For node ``k`` in 3..5 the
parameter ``inputs_node_<cell>_<k>`` is ``"a_b"`` (``a < b`` its two inputs) and the two used edges
``edge_<cell>_<first_edge(k) + input>`` carry the ops; every other edge is inactive.
"""

from __future__ import annotations

import ast
import collections
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gates_sampler.spaces.base import Arch
from gates_sampler.spaces.darts import DARTS_OPS, DartsArch, DartsSpace

logger = logging.getLogger("gates_sampler")

BACKENDS = ("yahpo", "nasbench301")
METRICS = ("val_acc", "runtime")
_DIRECTIONS = {"val_acc": "maximize", "runtime": "minimize"}
MAX_EPOCH = 98  # the YAHPO surrogate's fidelity range is 1..98; 98 is the final NB301 result
_CELLS = ("normal", "reduce")
_FIRST_EDGE = {2: 0, 3: 2, 4: 5, 5: 9}  # first edge index of each intermediate node
_PREFIX = "NetworkSelectorDatasetInfo_COLON_darts_COLON_"
_INACTIVE = "#na#"

#: The 34 categorical inputs of the YAHPO nb301 network, in the order it reads them (without prefix).
YAHPO_CAT_NAMES: tuple[str, ...] = tuple(
    [f"edge_{c}_{i}" for c in _CELLS for i in range(14)] + [f"inputs_node_{c}_{k}" for c in _CELLS for k in (3, 4, 5)]
)

#: The ``Genotype`` named tuple the DARTS / NB301 code bases use.
Genotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")

#: DARTS-V2 (Liu et al., 2019), the usual reference cell.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)

_DOWNLOAD_HINT = (
    "download the 'nb301' folder of the YAHPO Gym data repository "
    "(https://github.com/slds-lmu/yahpo_data, files new_model.onnx or model.onnx plus encoding.json) "
    "and pass that folder as path= (or set the GATES_NB301_PATH environment variable)"
)


def arch_to_config(arch: DartsArch) -> dict[str, str]:
    """The NB301 configuration of a DARTS architecture: active parameter name -> value.

    Names are those of NB301's config space without the ``NetworkSelectorDatasetInfo:darts:`` prefix,
    e.g. ``{"edge_normal_0": "sep_conv_3x3", ..., "inputs_node_normal_3": "0_1", ...}``.
    Inactive parameters are left out.
    """
    config: dict[str, str] = {}
    for cname, cell in zip(_CELLS, arch.cells):
        for j, node in enumerate(cell):
            k = j + 2
            srcs = sorted(src for _, src in node)
            if k > 2:
                config[f"inputs_node_{cname}_{k}"] = f"{srcs[0]}_{srcs[1]}"
            for op, src in node:
                config[f"edge_{cname}_{_FIRST_EDGE[k] + src}"] = op
    return config


def to_genotype(arch: DartsArch) -> Genotype:
    """The architecture as the ``Genotype(normal, normal_concat, reduce, reduce_concat)`` named tuple
    that ``nasbench301``'s ``predict(config=..., representation="genotype")`` reads."""
    concat = list(range(2, 2 + len(arch.cells[0])))
    return Genotype(normal=list(arch.normal), normal_concat=concat, reduce=list(arch.reduce), reduce_concat=concat)


def from_naslib_compact(compact: str | Sequence[Sequence[Sequence[int]]], space: DartsSpace | None = None) -> DartsArch:
    """Convert NASLib's compact DARTS genotype to a :class:`DartsArch`.

    The compact form is ``[[(input, op_index), ... 8 pairs], [... 8 pairs]]`` (normal, reduce), two
    pairs per intermediate node in genotype order; ``op_index`` indexes :data:`DARTS_OPS`
    (max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5, dil_conv_3x3, dil_conv_5x5).
    A string is parsed as a Python literal (the form NASLib uses as JSON keys).
    """
    space = space or DartsSpace()
    parsed: Sequence[Sequence[Sequence[int]]]
    if isinstance(compact, str):
        try:
            parsed = ast.literal_eval(compact)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"cannot parse the NASLib compact genotype {compact[:80]!r}: {exc}") from None
    else:
        parsed = compact
    if len(parsed) != 2:
        raise ValueError(f"a NASLib compact genotype has 2 cells (normal, reduce), got {len(parsed)}")
    cells = []
    for cname, pairs in zip(_CELLS, parsed):
        genotype = []
        for pair in pairs:
            src, op = int(pair[0]), int(pair[1])
            if not 0 <= op < len(DARTS_OPS):
                raise ValueError(f"{cname}: op index {op} out of range 0..{len(DARTS_OPS) - 1}")
            genotype.append((DARTS_OPS[op], src))
        cells.append(genotype)
    return space.from_genotype(cells[0], cells[1])


def _resolve_model_files(path: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    if path is None:
        path = os.environ.get("GATES_NB301_PATH")
        if not path:
            raise ValueError(f"NB301Benchmark(backend='yahpo') needs the surrogate files: {_DOWNLOAD_HINT}")
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".onnx":
        model, folder = p, p.parent
    else:
        folder = p
        if not folder.is_dir():
            raise FileNotFoundError(f"NB301 surrogate folder {str(folder)!r} does not exist; {_DOWNLOAD_HINT}")
        # new_model.onnx is the model the encoding below was verified with; model.onnx is the later name.
        candidates = [folder / "new_model.onnx", folder / "model.onnx"]
        model = next((c for c in candidates if c.is_file()), candidates[0])
        if not model.is_file():
            raise FileNotFoundError(f"no new_model.onnx or model.onnx in {str(folder)!r}; {_DOWNLOAD_HINT}")
    encoding = folder / "encoding.json"
    if not encoding.is_file():
        raise FileNotFoundError(f"no encoding.json next to {str(model)!r}; {_DOWNLOAD_HINT}")
    return model, encoding


class _YahpoSurrogate:
    """One ``onnxruntime`` session plus reusable input buffers (the network's batch size is fixed to 1)."""

    def __init__(self, path: str | os.PathLike[str] | None, threads: int | None) -> None:
        model_path, encoding_path = _resolve_model_files(path)
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("the NB301 surrogate needs onnxruntime: pip install 'gates-sampler[nb301]'") from exc
        with open(encoding_path) as f:
            encoding: dict[str, dict[str, int]] = json.load(f)
        missing = [n for n in YAHPO_CAT_NAMES if _PREFIX + n not in encoding]
        if missing:
            raise ValueError(
                f"{encoding_path} lacks the NB301 parameters {missing[:3]}...; is it the nb301 encoding.json?"
            )
        self.codes = [encoding[_PREFIX + n] for n in YAHPO_CAT_NAMES]
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"x_cat", "x_cont"} or list(inputs["x_cat"].shape)[-1] != len(YAHPO_CAT_NAMES):
            shapes = {n: i.shape for n, i in inputs.items()}
            raise ValueError(
                f"{model_path} has inputs {shapes}; expected x_cat [1, {len(YAHPO_CAT_NAMES)}] and x_cont [1, 1] "
                "(the YAHPO nb301 model of slds-lmu/yahpo_data)"
            )
        self.output = self.session.get_outputs()[0].name
        self.x_cat = np.zeros((1, len(YAHPO_CAT_NAMES)), dtype=np.int32)
        self.x_cont = np.zeros((1, 1), dtype=np.float32)
        self.feeds = {"x_cat": self.x_cat, "x_cont": self.x_cont}

    def encode(self, config: Mapping[str, str]) -> np.ndarray:
        """The 34 integer codes of a configuration (inactive parameters -> the ``#na#`` code)."""
        out = np.empty(len(YAHPO_CAT_NAMES), dtype=np.int32)
        for i, (name, codes) in enumerate(zip(YAHPO_CAT_NAMES, self.codes)):
            out[i] = codes[config.get(name, _INACTIVE)]
        return out

    def run(self, codes: np.ndarray, epochs: np.ndarray) -> np.ndarray:
        """``[N, 2]`` (val acc %, runtime s) for ``N`` encoded cells, one session call each."""
        out = np.empty((len(codes), 2), dtype=np.float64)
        for i in range(len(codes)):
            # Filling the same buffers in place avoids an allocation per call.
            self.x_cat[0] = codes[i]
            self.x_cont[0, 0] = epochs[i]
            out[i] = self.session.run([self.output], self.feeds)[0][0, :2]
        return out


class NB301Benchmark:
    """Look up NAS-Bench-301 (surrogate) results of a DARTS architecture on CIFAR-10.

    Args:
        path: folder of the YAHPO ``nb301`` surrogate (``new_model.onnx`` / ``model.onnx`` and
            ``encoding.json``), or the ``.onnx`` file; defaults to ``$GATES_NB301_PATH``.
            Backend ``"yahpo"`` only.
        metric: ``"val_acc"`` (validation accuracy in %, default, maximised) or ``"runtime"``
            (training time in seconds, minimised).
        epoch: training epoch the surrogate is asked about, 1..98 (default 98, the final result).
            ``"nasbench301"`` only knows the final result.
        backend: ``"yahpo"`` (ONNX, default) or ``"nasbench301"`` (the official package).
        model_dir: directory of a ``nasbench301`` surrogate ensemble (backend ``"nasbench301"``).
        with_noise: ``nasbench301`` only: sample the ensemble's noise instead of its mean.
        threads: ``onnxruntime`` intra-op threads. The default 1 is the fastest for this batch-size-1
            network (about twice the throughput of ``onnxruntime``'s own default on 2 cores);
            ``None`` leaves ``onnxruntime``'s default.

    Raises:
        ValueError: bad arguments; FileNotFoundError: missing surrogate files;
        ImportError: ``onnxruntime`` / ``nasbench301`` not installed.
    """

    space = DartsSpace()

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        metric: str = "val_acc",
        *,
        epoch: int = MAX_EPOCH,
        backend: str = "yahpo",
        model_dir: str | os.PathLike[str] | None = None,
        with_noise: bool = False,
        threads: int | None = 1,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.metric, self.backend = metric, backend
        self.epoch = self._check_epoch(epoch)
        self.direction = _DIRECTIONS[metric]
        self.with_noise = bool(with_noise)
        self._yahpo: _YahpoSurrogate | None = None
        self._ensemble: Any = None
        if backend == "yahpo":
            self._yahpo = _YahpoSurrogate(path, threads)
        else:
            if self.epoch != MAX_EPOCH:
                raise ValueError("backend='nasbench301' only predicts the final result; leave epoch at 98")
            self._ensemble = self._load_ensemble(model_dir)

    @staticmethod
    def _check_epoch(epoch: Any) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or not 1 <= int(epoch) <= MAX_EPOCH:
            raise ValueError(f"epoch must be an integer in 1..{MAX_EPOCH}, got {epoch!r}")
        return int(epoch)

    @staticmethod
    def _load_ensemble(model_dir: str | os.PathLike[str] | None) -> Any:
        if model_dir is None or not Path(model_dir).expanduser().is_dir():
            raise FileNotFoundError(
                f"backend='nasbench301' needs model_dir= pointing at a surrogate ensemble folder (got {model_dir!r}); "
                "download nb_models_1.0 from the NAS-Bench-301 project (github.com/automl/nasbench301) and pass e.g. "
                "'.../nb_models_1.0/xgb_v1.0' (accuracy) or '.../nb_models_1.0/lgb_runtime_v1.0' (runtime)"
            )
        try:
            import nasbench301
        except ImportError as exc:
            raise ImportError("backend='nasbench301' needs the nasbench301 package: pip install nasbench301") from exc
        return nasbench301.load_ensemble(str(Path(model_dir).expanduser()))

    def arch(self, arch: Arch | str) -> DartsArch:
        """Validate ``arch`` (a :class:`DartsArch` or its ``Genotype(...)`` string)."""
        return self.space.coerce(arch)  # type: ignore[return-value]

    def encode(self, arch: Arch | str) -> np.ndarray:
        """The 34 integer codes the YAHPO surrogate reads for ``arch``."""
        if self._yahpo is None:
            raise ValueError("encode() belongs to backend='yahpo'")
        return self._yahpo.encode(arch_to_config(self.arch(arch)))

    def query(self, arch: Arch | str, epoch: int | None = None) -> float:
        """The metric of one architecture (a :class:`DartsArch` or a ``Genotype(...)`` string), at
        ``epoch`` (default: the benchmark's epoch)."""
        return float(self.query_many([arch], epoch=epoch)[0])

    __call__ = query

    def query_many(self, archs: Sequence[Arch | str], epoch: int | None = None) -> np.ndarray:
        """The metric of many architectures, through one surrogate session."""
        epoch = self.epoch if epoch is None else self._check_epoch(epoch)
        if self._yahpo is None:
            if epoch != MAX_EPOCH:
                raise ValueError("backend='nasbench301' only predicts the final result (epoch 98)")
            return np.array(
                [
                    float(
                        self._ensemble.predict(
                            config=to_genotype(self.arch(a)), representation="genotype", with_noise=self.with_noise
                        )
                    )
                    for a in archs
                ]
            )
        codes = (
            np.stack([self._yahpo.encode(arch_to_config(self.arch(a))) for a in archs])
            if len(archs)
            else np.zeros((0, 34), np.int32)
        )
        out = self._yahpo.run(codes, np.full(len(archs), epoch, dtype=np.float32))
        return out[:, 0 if self.metric == "val_acc" else 1]

    def learning_curve(self, arch: Arch | str, epochs: Sequence[int] | None = None) -> np.ndarray:
        """The metric of one architecture at each of ``epochs`` (default 1..98); backend ``"yahpo"``."""
        if self._yahpo is None:
            raise ValueError("learning curves need backend='yahpo'")
        epochs = list(range(1, MAX_EPOCH + 1)) if epochs is None else [self._check_epoch(e) for e in epochs]
        codes = np.repeat(self.encode(arch)[None, :], len(epochs), axis=0)
        out = self._yahpo.run(codes, np.asarray(epochs, dtype=np.float32))
        return out[:, 0 if self.metric == "val_acc" else 1]

    def optimum(self) -> tuple[DartsArch, float]:
        """Not available: NAS-Bench-301 has no table, so its optimum is unknown."""
        raise NotImplementedError("NAS-Bench-301 is a surrogate over ~10^18 cells; its optimum is unknown")

    def __repr__(self) -> str:
        return f"NB301Benchmark(backend={self.backend!r}, metric={self.metric!r}, epoch={self.epoch})"
