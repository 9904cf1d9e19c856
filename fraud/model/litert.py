"""The promoted model's runtime: a TFLite flatbuffer run by LiteRT, as the batch scorer, the real-time path and the
quality gate all score (no TensorFlow needed at run time)."""

from __future__ import annotations

import threading

import numpy as np
from ai_edge_litert.interpreter import Interpreter


class TFLiteScorer:
    """One LiteRT interpreter. Thread-safe: calls are serialised (an interpreter holds its tensors)."""

    def __init__(self, model_content: bytes):
        self._interpreter = Interpreter(model_content=model_content)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None
        self._lock = threading.Lock()
        self.n_features = int(self._input["shape"][-1])

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
