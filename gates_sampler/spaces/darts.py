"""DARTS / NAS-Bench-301 search space."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from gates_sampler.spaces.base import EdgeArch, EdgeCell, short_repr
from gates_sampler.spaces.cell import EdgeCellSpace

DARTS_OPS = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


@dataclass(frozen=True)
class DartsArch(EdgeArch):
    """A DARTS architecture (normal and reduce cell); ``str`` gives the usual ``Genotype(...)`` text."""

    @property
    def normal(self) -> list[tuple[str, int]]:
        return [e for node in self.cells[0] for e in node]

    @property
    def reduce(self) -> list[tuple[str, int]]:
        return [e for node in self.cells[1] for e in node]

    def __str__(self) -> str:
        concat = list(range(2, 2 + len(self.cells[0])))
        return (
            f"Genotype(normal={self.normal!r}, normal_concat={concat!r}, "
            f"reduce={self.reduce!r}, reduce_concat={concat!r})"
        )


#: a genotype string is about 400 characters; longer input is refused before any parsing
MAX_GENOTYPE_LENGTH = 4096

# One token at a time, each pattern free of nested repetition: tokenising is linear in the input.
_TOKEN_RE = re.compile(
    r"""\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<int>[0-9]+)"""
    r"""|'(?P<sq>[^'\\\n]*)'|"(?P<dq>[^"\\\n]*)"|(?P<punct>[()\[\],=]))"""
)
_GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


class _GenotypeReader:
    """A recursive-descent reader of ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)``
    over a token list; the grammar has a fixed depth, so no input can make it recurse or backtrack."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str | int]] = []
        pos, end = 0, len(text.rstrip())
        while pos < end:
            m = _TOKEN_RE.match(text, pos)
            if m is None or m.end() == pos:
                raise self.error(f"unexpected character {text[pos : pos + 1]!r} at position {pos}")
            kind = m.lastgroup
            assert kind is not None
            if kind == "int":
                digits = m.group("int")
                if len(digits) > 6:
                    raise self.error(f"number {digits[:12]}... at position {pos} is too large for a node index")
                self.tokens.append(("int", int(digits)))
            elif kind in ("sq", "dq"):
                self.tokens.append(("str", m.group(kind)))
            else:
                self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def error(self, what: str) -> ValueError:
        return ValueError(
            f"cannot parse {self.text[:80]!r}: {what}; expected "
            "'Genotype(normal=[(op, input), ...], normal_concat=[2, 3, 4, 5], reduce=[...], "
            "reduce_concat=[2, 3, 4, 5])'"
        )

    def peek(self) -> tuple[str, str | int] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, kind: str, value: str | None = None) -> str | int:
        tok = self.peek()
        if tok is None or tok[0] != kind or (value is not None and tok[1] != value):
            found = "the end of the text" if tok is None else repr(tok[1])
            raise self.error(f"expected {value or kind} at token {self.i}, found {found}")
        self.i += 1
        return tok[1]

    def accept(self, value: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "punct" and tok[1] == value:
            self.i += 1
            return True
        return False

    def pairs(self) -> list[tuple[str, int]]:
        self.take("punct", "[")
        out: list[tuple[str, int]] = []
        while not self.accept("]"):
            close = ")" if self.accept("(") else "]" if self.accept("[") else None
            tok = self.peek()
            if close is None or tok is None or tok[0] != "str":
                raise self.error("the genotype lists must hold ('op', input) pairs, the op quoted, the input an int")
            op = self.take("str")
            self.take("punct", ",")
            if (self.peek() or ("",))[0] != "int":
                raise self.error(f"the genotype lists must hold ('op', input) pairs; the input of {op!r} is not an int")
            src = self.take("int")
            self.take("punct", close)
            out.append((str(op), int(src)))
            if not self.accept(","):
                self.take("punct", "]")
                break
        return out

    def concat(self) -> list[int]:
        if self.accept("["):
            out: list[int] = []
            while not self.accept("]"):
                out.append(int(self.take("int")))
                if not self.accept(","):
                    self.take("punct", "]")
                    break
            return out
        self.take("name", "range")
        self.take("punct", "(")
        lo = int(self.take("int"))
        self.take("punct", ",")
        hi = int(self.take("int"))
        self.take("punct", ")")
        return list(range(lo, hi))

    def genotype(self) -> dict[str, list]:
        self.take("name", "Genotype")
        self.take("punct", "(")
        out: dict[str, list] = {}
        for k, field in enumerate(_GENOTYPE_FIELDS):
            if k:
                self.take("punct", ",")
            self.take("name", field)
            self.take("punct", "=")
            out[field] = self.concat() if field.endswith("_concat") else self.pairs()
        self.accept(",")
        self.take("punct", ")")
        if self.peek() is not None:
            raise self.error("unexpected text after the closing parenthesis")
        return out


class DartsSpace(EdgeCellSpace):
    """The DARTS space of NAS-Bench-301: a normal and a reduce cell, each with 2 input nodes and
    4 intermediate nodes; every intermediate node takes exactly 2 distinct earlier nodes as inputs,
    with one of the 7 DARTS operations on each incoming edge. The cell output concatenates nodes 2..5.

    Parameters: ``{cell}_node{k}_inputs`` (the sorted input pair, e.g. ``"0,3"``) and
    ``{cell}_node{k}_op0`` / ``_op1`` (the ops on the edges from the smaller / larger input).
    """

    def __init__(self) -> None:
        super().__init__(
            ops=DARTS_OPS,
            n_nodes=4,
            n_inputs=2,
            inputs_per_node=2,
            distinct_inputs=True,
            cell_names=("normal", "reduce"),
            readout="mean",
            none_op=None,
            name="darts",
        )

    arch_type = DartsArch

    def _make(self, cells: tuple[EdgeCell, ...]) -> DartsArch:
        return DartsArch(cells)

    def from_genotype(self, normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> DartsArch:
        """Build from DARTS genotype lists: 8 ``(op, input)`` pairs per cell, two per node.

        Every op must be a ``str`` and every input an ``int`` (not a bool, float or string); anything
        else raises ``ValueError`` naming the cell and the position.
        """
        cells = []
        for cname, lst in (("normal", normal), ("reduce", reduce)):
            if not isinstance(lst, (list, tuple)):
                raise ValueError(f"{cname}: expected a list of (op, input) pairs, got {short_repr(lst)}")
            if len(lst) != 2 * self.n_nodes:
                raise ValueError(f"{cname}: a DARTS cell has {2 * self.n_nodes} (op, input) pairs, got {len(lst)}")
            pairs = [self._genotype_pair(cname, k, item) for k, item in enumerate(lst)]
            cells.append(tuple(tuple(pairs[2 * k : 2 * k + 2]) for k in range(self.n_nodes)))
        return self.validate(DartsArch(tuple(cells)))  # type: ignore[return-value]

    def _genotype_pair(self, cname: str, k: int, item: Any) -> tuple[str, int]:
        where = f"{cname}[{k}]"
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ValueError(f"{where}: expected an (op, input) pair, got {short_repr(item)}")
        op, src = item
        if not isinstance(op, str):
            raise ValueError(
                f"{where}: the operation must be a str, one of {list(self.op_names)}; got {short_repr(op)}"
            )
        if isinstance(src, bool) or not isinstance(src, (int, np.integer)):
            raise ValueError(f"{where}: the input node must be an int, got {short_repr(src)} ({type(src).__name__})")
        return op, int(src)

    def parse(self, text: str) -> DartsArch:
        """Parse ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...],
        reduce_concat=...)``.

        Strings longer than :data:`MAX_GENOTYPE_LENGTH` are refused; parsing is linear in the length.
        """
        if not isinstance(text, str):
            raise ValueError(f"expected a Genotype string, got {type(text).__name__}")
        if len(text) > MAX_GENOTYPE_LENGTH:
            raise ValueError(f"a Genotype string of {len(text)} characters is too long: at most {MAX_GENOTYPE_LENGTH}")
        fields = _GenotypeReader(text).genotype()
        for name in ("normal_concat", "reduce_concat"):
            if fields[name] != [2, 3, 4, 5]:
                raise ValueError(f"{name} must be [2, 3, 4, 5] (all intermediate nodes), got {fields[name]}")
        return self.from_genotype(fields["normal"], fields["reduce"])

    def __repr__(self) -> str:
        return "DartsSpace()"
