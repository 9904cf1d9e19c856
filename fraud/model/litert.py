"""The promoted model's runtime: a TFLite flatbuffer run by LiteRT, as the batch scorer, the real-time path and the
quality gate all score (no TensorFlow needed at run time)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from ai_edge_litert.interpreter import Interpreter

log = logging.getLogger(__name__)


class TFLiteScorer:
    """One LiteRT interpreter. Thread-safe: calls are serialised (an interpreter holds its tensors)."""

    def __init__(self, model_content: bytes):
        self._interpreter = Interpreter(model_content=model_content)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self._lock = threading.Lock()
        self.n_features = int(self._input["shape"][-1])
        self._content = model_content

    @cached_property
    def network(self) -> Network | None:
        """The same model as NumPy arithmetic with a linear first layer (`Network`), for the top reasons' occluded
        copies; None when the graph is not one `Network` reads, or when it does not give the interpreter's scores on
        probe rows (then the copies go through the interpreter)."""
        try:
            network = Network(self._content)
        except UnsupportedGraph as why:
            log.info("occlusion through the interpreter: %s", why)
            return None
        probe = np.random.default_rng(0).normal(0.0, 3.0, (64, self.n_features)).astype(np.float32)
        probe[::2] = np.abs(probe[::2]).round()  # counts, flags and zeros as well
        none = np.zeros(0, dtype=np.intp)
        own, _ = network.occluded(probe, probe[0], none, none)
        if not np.allclose(own, self.predict(probe), rtol=1e-4, atol=1e-5):
            log.warning("the model's graph read as NumPy does not give its scores: occlusion through the interpreter")
            return None
        return network

    def predict(self, features: np.ndarray) -> np.ndarray:
        features = np.ascontiguousarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (n, {self.n_features}), got {features.shape}")
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            if self._batch != len(features):
                self._interpreter.resize_tensor_input(self._input["index"], list(features.shape))
                self._interpreter.allocate_tensors()
                self._batch = len(features)
            self._interpreter.set_tensor(self._input["index"], features)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"]).reshape(-1).copy()


# --- the same network in NumPy, for occluded copies ----------------------------------------------------------------

# ops that act on each feature column on its own (with constants that broadcast per column): what the model does to
# its inputs before the first dense layer (log transform, normalisation)
_COLUMNWISE = {
    "ABS": np.abs,
    "LOG": np.log,
    "SIGN": np.sign,
    "EXP": np.exp,
    "SQRT": np.sqrt,
    "RSQRT": lambda v: 1.0 / np.sqrt(v),
    "NEG": np.negative,
    "SQUARE": np.square,
    "ADD": np.add,
    "SUB": np.subtract,
    "MUL": np.multiply,
    "DIV": np.divide,
    "MAXIMUM": np.maximum,
    "MINIMUM": np.minimum,
    "SQUARED_DIFFERENCE": lambda a, b: np.square(a - b),
    "SELECT_V2": np.where,
    "RELU": lambda v: np.maximum(v, 0.0),
    "TANH": np.tanh,
    "LOGISTIC": lambda v: 1.0 / (1.0 + np.exp(-v)),
}
_ACTIVATIONS = {
    0: lambda v: v,  # NONE
    1: lambda v: np.maximum(v, 0.0),  # RELU
    2: lambda v: np.clip(v, -1.0, 1.0),  # RELU_N1_TO_1
    3: lambda v: np.clip(v, 0.0, 6.0),  # RELU6
    4: np.tanh,  # TANH
}
# OpenBLAS runs a matrix product of m·n·k below this on the calling thread (its GEMM_MULTITHREAD_THRESHOLD 4 ×
# 65,536); above it, on all cores, and on 2 busy cores each product then waits for a descheduled thread: 1024 rows
# × 64 × 32 took 10 ms threaded against 0.1 ms on the calling thread. So the rows go through in blocks under it.
_SINGLE_THREAD_PRODUCT = 262_144
_DTYPES = {0: np.float32, 2: np.int32, 4: np.int64, 6: np.bool_, 10: np.float64}


class UnsupportedGraph(ValueError):
    pass


@dataclass(frozen=True)
class _Op:
    name: str
    inputs: tuple[int, ...]
    output: int
    activation: int = 0  # fused activation (ActivationFunctionType)
    axis: int = -1  # CONCATENATION
    columnwise: bool = False  # a column-wise op on the inputs, before the first dense layer
    first_layer: bool = False  # a FULLY_CONNECTED on the (column-wise transformed) inputs


class Network:
    """The `.tflite` graph of a feed-forward model as NumPy arithmetic (float32, as the interpreter computes), for
    the occluded copies of the top reasons (fraud.model.attribution). Its first dense layers (one per ensemble
    member) are linear in the column-wise transformed inputs t(x) (log transform, normalisation), so a copy that
    differs from its transaction in feature j has the pre-activation pre(x) + W[:, j] * (t(b)_j - t(x)_j): one
    multiply-add per unit instead of a row of the matrix product; only the layers after them run on the copies.

    Reads the weights from the flatbuffer; `UnsupportedGraph` for an op or a shape this does not know (the caller
    then runs the copies through the interpreter)."""

    def __init__(self, model_content: bytes):
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAs(model_content, 0)
        if model.SubgraphsLength() != 1:
            raise UnsupportedGraph("more than one subgraph")
        graph = model.Subgraphs(0)
        names = {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
        if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
            raise UnsupportedGraph("not one input and one output")
        self._input, self._output = int(graph.Inputs(0)), int(graph.Outputs(0))
        self.constants: dict[int, np.ndarray] = {}
        for index in range(graph.TensorsLength()):
            tensor = graph.Tensors(index)
            buffer = model.Buffers(tensor.Buffer())
            data = buffer.DataAsNumpy() if buffer is not None else 0
            if buffer is not None and buffer.Offset() > 1:
                raise UnsupportedGraph("weights outside the flatbuffer")
            if isinstance(data, np.ndarray) and data.size:
                if tensor.Type() not in _DTYPES:
                    raise UnsupportedGraph(f"constant of tensor type {tensor.Type()}")
                shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else ()
                value = np.frombuffer(data.tobytes(), dtype=_DTYPES[tensor.Type()]).reshape(shape)
                self.constants[index] = value.astype(np.float32) if value.dtype.kind == "f" else value
        columnwise = {self._input}  # tensors computed column by column from the inputs
        self._ops: list[_Op] = []
        for position in range(graph.OperatorsLength()):
            op = graph.Operators(position)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
            inputs = tuple(int(i) for i in op.InputsAsNumpy())
            if op.OutputsLength() != 1:
                raise UnsupportedGraph(f"{name} with {op.OutputsLength()} outputs")
            output = int(op.Outputs(0))
            activation, axis = 0, -1
            options = op.BuiltinOptions()
            if name in ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "DIV", "CONCATENATION") and options is not None:
                kind = {
                    "FULLY_CONNECTED": schema.FullyConnectedOptions,
                    "ADD": schema.AddOptions,
                    "SUB": schema.SubOptions,
                    "MUL": schema.MulOptions,
                    "DIV": schema.DivOptions,
                    "CONCATENATION": schema.ConcatenationOptions,
                }[name]()
                kind.Init(options.Bytes, options.Pos)
                activation = kind.FusedActivationFunction()
                if name == "CONCATENATION":
                    axis = kind.Axis()
                if name == "FULLY_CONNECTED" and (kind.WeightsFormat() != 0 or kind.KeepNumDims()):
                    raise UnsupportedGraph("a FULLY_CONNECTED with packed weights or kept dimensions")
            if activation not in _ACTIVATIONS:
                raise UnsupportedGraph(f"fused activation {activation}")
            variables = [i for i in inputs if i >= 0 and i not in self.constants]
            if name == "FULLY_CONNECTED" and variables != [inputs[0]]:
                raise UnsupportedGraph("a FULLY_CONNECTED whose weights are not constants")
            from_columns = [i in columnwise for i in variables]
            first = prefix = False
            if all(from_columns) and variables:
                if name in _COLUMNWISE and all(self._per_column(i) for i in inputs if i in self.constants):
                    columnwise.add(output)
                    prefix = True
                elif name == "FULLY_CONNECTED":
                    first = True
                else:
                    raise UnsupportedGraph(f"{name} on the inputs before the first dense layer")
            elif any(from_columns):
                raise UnsupportedGraph(f"{name} mixes the inputs with a later layer")
            elif name not in _COLUMNWISE and name not in ("FULLY_CONNECTED", "CONCATENATION", "RESHAPE"):
                raise UnsupportedGraph(f"op {name}")
            self._ops.append(_Op(name, inputs, output, activation, axis, prefix, first))
        if not any(op.first_layer for op in self._ops) or self._output in columnwise:
            raise UnsupportedGraph("no dense layer on the inputs")
        # per first layer, its weights by input feature (d, units): what one occluded feature adds to each unit
        self._columns = {
            op.output: np.ascontiguousarray(self.constants[op.inputs[1]].T) for op in self._ops if op.first_layer
        }
        largest = max(self.constants[op.inputs[1]].size for op in self._ops if op.name == "FULLY_CONNECTED")
        self._block = max(1, (_SINGLE_THREAD_PRODUCT - 1) // largest)  # rows per matrix product

    @staticmethod
    def _per_column_shape(shape: tuple[int, ...]) -> bool:
        return len(shape) <= 1 or (len(shape) == 2 and shape[0] == 1)

    def _per_column(self, index: int) -> bool:
        return self._per_column_shape(self.constants[index].shape)

    def _value(self, values: dict[int, np.ndarray], index: int) -> np.ndarray:
        return self.constants[index] if index in self.constants else values[index]

    def occluded(
        self, x: np.ndarray, baseline: np.ndarray, transactions: np.ndarray, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The scores of the rows of `x` (n, d) and of their occluded copies (copy i: row transactions[i] with
        feature features[i] set to baseline[features[i]]; `transactions` in ascending order, as np.nonzero gives
        them), both from this arithmetic, so a contribution (their difference) compares like with like."""
        own = np.empty(len(x), dtype=np.float32)
        copies = np.empty(len(transactions), dtype=np.float32)
        ends = np.searchsorted(transactions, np.arange(0, len(x) + self._block, self._block)[1:], side="left")
        starts = np.concatenate([[0], ends[:-1]])
        for block, (first, last) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            rows = slice(block * self._block, (block + 1) * self._block)
            own[rows], copies[first:last] = self._block_scores(
                x[rows], baseline, transactions[first:last] - block * self._block, features[first:last]
            )
        return own, copies

    def _block_scores(
        self, x: np.ndarray, baseline: np.ndarray, transactions: np.ndarray, features: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """`occluded` on a block of rows; their copies go through the layers after the first in blocks too."""
        n = len(x)
        rows = np.concatenate([np.asarray(x, dtype=np.float32), np.asarray(baseline, dtype=np.float32)[None, :]])
        values: dict[int, np.ndarray] = {self._input: rows}
        first: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # per first layer: pre(x), t(b), t(x)
        with np.errstate(all="ignore"):  # log of 0 and the like, as the interpreter computes them
            for op in self._ops:
                if op.columnwise:
                    values[op.output] = _ACTIVATIONS[op.activation](
                        _COLUMNWISE[op.name](*(self._value(values, i) for i in op.inputs if i >= 0))
                    )
                elif op.first_layer:
                    inputs, weights, *bias = (self._value(values, i) for i in op.inputs if i >= 0)
                    first[op.output] = (inputs[:n] @ weights.T + (bias[0] if bias else 0.0), inputs[n], inputs[:n])
            own = self._rest(values, {t: pre for t, (pre, _, _) in first.items()})
            copies = np.empty(len(transactions), dtype=np.float32)
            for start in range(0, len(transactions), self._block):
                rows_, columns = transactions[start : start + self._block], features[start : start + self._block]
                pre = {}
                for op in self._ops:
                    if op.first_layer:
                        own_pre, at_baseline, inputs = first[op.output]
                        step = at_baseline[columns] - inputs[rows_, columns]
                        pre[op.output] = own_pre[rows_] + step[:, None] * self._columns[op.output][columns]
                copies[start : start + self._block] = self._rest(values, pre)
        return own, copies

    def _rest(self, values: dict[int, np.ndarray], first: dict[int, np.ndarray]) -> np.ndarray:
        """The network from the first dense layers' pre-activations (`first`, by output tensor) to the scores."""
        values = dict(values)
        for op in self._ops:
            if op.output in values:
                continue
            if op.first_layer:
                out = first[op.output]
            else:
                args = [self._value(values, i) for i in op.inputs if i >= 0]
                if op.name == "FULLY_CONNECTED":
                    out = args[0].reshape(len(args[0]), -1) @ args[1].T + (args[2] if len(args) > 2 else 0.0)
                elif op.name == "CONCATENATION":
                    out = np.concatenate(args, axis=op.axis)
                elif op.name == "RESHAPE":
                    out = args[0].reshape(len(args[0]), -1)
                else:
                    out = _COLUMNWISE[op.name](*args)
            values[op.output] = _ACTIVATIONS[op.activation](out)
        return values[self._output].reshape(-1)
