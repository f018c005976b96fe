"""A seed-style model that really trains: it predicts the most frequent annotated label.

``fit`` counts the choices in the annotations it gets and returns the counts; ``predict``
reads them back from ``self.train_output``. Before any training it predicts the first label
of the config with score 0. An interactive request whose ``context`` carries a ``result``
gets that result back unchanged, so a test can see the user's context reach ``predict``.
"""

import json
import os
from collections import Counter

from label_studio_ml.model import LabelStudioMLBase


class MajorityModel(LabelStudioMLBase):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        from_name, schema = list(self.parsed_label_config.items())[0]
        self.from_name = from_name
        self.to_name = schema["to_name"][0]
        self.labels = schema["labels"]

    def _majority(self):
        counts = (self.train_output or {}).get("counts") or {}
        total = sum(counts.values())
        if not total:
            return self.labels[0], 0.0
        # most frequent; ties go to the label that comes first in the config
        order = {label: i for i, label in enumerate(self.labels)}
        label = max(counts, key=lambda name: (counts[name], -order.get(name, len(order))))
        return label, counts[label] / total

    def predict(self, tasks, **kwargs):
        context = kwargs.get("context")
        if isinstance(context, dict) and context.get("result"):
            return [{"result": context["result"], "score": 1.0} for _ in tasks]
        label, score = self._majority()
        return [
            {
                "score": score,
                "result": [
                    {
                        "from_name": self.from_name,
                        "to_name": self.to_name,
                        "type": "choices",
                        "value": {"choices": [label]},
                    }
                ],
            }
            for _ in tasks
        ]

    def fit(self, annotations, workdir=None, **kwargs):
        counts = Counter()
        tasks = 0
        for task in annotations:
            tasks += 1
            for annotation in task.get("annotations") or []:
                if annotation.get("was_cancelled"):
                    continue
                for region in annotation.get("result") or []:
                    if region.get("from_name") != self.from_name:
                        continue
                    for choice in (region.get("value") or {}).get("choices") or []:
                        counts[choice] += 1
        output = {"counts": dict(counts), "tasks": tasks, "event": kwargs.get("event")}
        if workdir:
            with open(os.path.join(workdir, "counts.json"), "w") as fh:
                json.dump(output, fh)
        return output
