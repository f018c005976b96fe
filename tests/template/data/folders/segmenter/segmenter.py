"""Labels the runs of high values in a series of numbers: the model file is not called model.py.

Its helper module (nets.py) needs a third-party package (tabulate stands in for torch here),
and its weights come from MODEL_ROOT, loaded once per process with self.shared().
"""

import json
import os

from label_studio_ml.model import LabelStudioMLBase
from nets import RunDetector

LABEL_CONFIG = """
<View>
  <Labels name="label" toName="text">
    <Label value="High"/>
    <Label value="Spike"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""

# Defaults when MODEL_ROOT holds no weights (a fresh checkout: its tests still run).
DEFAULT_WEIGHTS = {"threshold": 5.0, "label": "High"}


def model_root():
    return os.environ.get("MODEL_ROOT") or os.path.join(os.path.dirname(__file__), "weights")


def load_detector():
    path = os.path.join(model_root(), "segmenter.json")
    weights = dict(DEFAULT_WEIGHTS)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            weights.update(json.load(handle))
    return RunDetector(weights["threshold"], weights["label"])


class Segmenter(LabelStudioMLBase):
    def setup(self):
        self.set("model_version", "segmenter-1")

    def predict(self, tasks, context=None, **kwargs):
        detector = self.shared(("segmenter", model_root()), load_detector)
        predictions = []
        for task in tasks:
            text = task["data"].get("text", "")
            result = [
                {
                    "from_name": "label",
                    "to_name": "text",
                    "type": "labels",
                    "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]},
                }
                for start, end, label in detector.runs(text)
            ]
            predictions.append({"result": result, "score": detector.threshold})
        return predictions
