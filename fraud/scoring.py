"""Scoring with LiteRT: runs the exported `.tflite` file; never imports TensorFlow."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class TFLiteScorer:
    def __init__(self, model_content: bytes):
        self._interpreter = Interpreter(model_content=model_content)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self.n_features = int(self._input["shape"][-1])

    def predict(self, features: np.ndarray) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"expected features of shape (n, {self.n_features}), got {features.shape}")
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        if self._batch != len(features):
            self._interpreter.resize_tensor_input(self._input["index"], list(features.shape))
            self._interpreter.allocate_tensors()
            self._batch = len(features)
        self._interpreter.set_tensor(self._input["index"], features)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"]).reshape(-1).copy()


@dataclass(frozen=True)
class Scored:
    trans_num: str
    score: float
    flagged: bool


def flag(trans_nums: list[str], scores: np.ndarray, threshold: float) -> list[Scored]:
    return [Scored(t, float(s), bool(s >= threshold)) for t, s in zip(trans_nums, scores)]
