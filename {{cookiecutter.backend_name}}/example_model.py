"""The model this backend serves: a small classifier to replace with your own.

It answers the first <Choices> tag of the labeling config (for example the config in
tests/label_config.xml). Before any training it predicts the first label with a uniform score;
``fit`` counts how often annotators chose each label, and the next model version predicts the
most frequent one, scored by its share of the annotations.

The runtime builds one instance per project (in the background, so a slow ``setup`` never
delays Label Studio). Load what does not depend on the project once per process with
``self.shared(key, load)``: ten projects then hold one copy of the weights, not ten.
"""

from collections import Counter

from label_studio_ml.model import LabelStudioMLBase


def load_weights():
    """Stands for loading a network (``torch.load``, ``from_pretrained``): slow, big, read-only."""
    return {"uniform_prior": True}


class {{ cookiecutter.model_class or "NewModel" }}(LabelStudioMLBase):
    """Predicts the label annotators chose most often."""

    def setup(self):
        """Once per instance: the shared weights (loaded at most once per process)."""
        self.weights = self.shared("example-weights", load_weights)

    def _choices(self):
        """(from_name, to_name, labels) of the first <Choices> tag, or None."""
        for from_name, tag in self.parsed_label_config.items():
            if tag.get("type", "").lower() == "choices" and tag.get("labels"):
                return from_name, tag["to_name"][0], list(tag["labels"])
        return None

    def predict(self, tasks, **kwargs):
        """One prediction per task: the most frequent trained label, or the first one."""
        choices = self._choices()
        if choices is None:
            return [{"result": [], "score": 0.0} for _ in tasks]
        from_name, to_name, labels = choices
        counts = self.train_output.get("label_counts", {})
        total = sum(counts.get(label, 0) for label in labels)
        if total:
            label = max(labels, key=lambda name: counts.get(name, 0))
            score = counts[label] / total
        elif self.weights["uniform_prior"]:
            label, score = labels[0], 1 / len(labels)
        else:
            label, score = labels[0], 1.0
        region = {
            "from_name": from_name,
            "to_name": to_name,
            "type": "choices",
            "value": {"choices": [label]},
            "score": score,
        }
        return [{"result": [region], "score": score} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        """Count the chosen labels in the annotated tasks; the counts become train_output."""
        choices = self._choices()
        counts = Counter()
        used = 0
        for task in annotations:
            for annotation in task.get("annotations", []):
                if annotation.get("was_cancelled") or choices is None:
                    continue
                used += 1
                for region in annotation.get("result", []):
                    if region.get("from_name") == choices[0]:
                        counts.update(region.get("value", {}).get("choices", []))
        return {"label_counts": dict(counts), "annotations": used}
