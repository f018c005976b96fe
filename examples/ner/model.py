"""A named-entity model that learns a dictionary of spans from your annotations.

Current style: ``setup()``, ``predict(tasks, context=None, **kwargs)`` returning a
``ModelResponse``, and ``fit(event, data, **kwargs)`` called for Label Studio's webhook events.

* ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED``: the payload carries the task and the
  annotation; every labelled span (``"Alice"`` → ``PER``) goes into the dictionary.
* ``START_TRAINING`` and the other training events: when Label Studio is reachable
  (``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY``, or what ``/setup`` sent) the dictionary is
  rebuilt from every annotated task of the project; otherwise the learned one is kept.

The dictionary (span text → label counts) is stored per project with ``self.set("dictionary",
json)``. ``predict`` finds every whole-word occurrence of every known span and answers one
``labels`` region per occurrence, with the character offsets Label Studio expects.

Labeling config (also in label_config.xml next to this file):

<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/>
    <Label value="ORG" background="blue"/>
    <Label value="LOC" background="green"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter

from label_studio_ml.lsclient import LabelStudioError, make_client
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse, PredictionValue

logger = logging.getLogger(__name__)

ANNOTATION_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


class DictionaryNER(LabelStudioMLBase):
    """Labels every occurrence of the spans annotators labelled before."""

    def setup(self):
        # The version served before any training (afterwards the runtime serves v1-..., v2-...).
        if not self.has("model_version"):
            self.set("model_version", "ner-dictionary-0")
        self.from_name, self.to_name, self.value = self.get_first_tag_occurence("Labels", "Text")
        self.dictionary = json.loads(self.get("dictionary") or "{}")  # span -> {label: count}
        self.pattern = self._compile(self.dictionary)

    @staticmethod
    def _compile(dictionary):
        if not dictionary:
            return None
        spans = sorted(dictionary, key=len, reverse=True)  # longest match wins
        return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(s) for s in spans) + r")(?!\w)")

    # ------------------------------------------------------------------ inference
    def predict(self, tasks, context=None, **kwargs):
        predictions = []
        for task in tasks:
            text = str(task["data"].get(self.value, ""))
            regions = []
            for n, match in enumerate(self.pattern.finditer(text) if self.pattern else ()):
                counts = self.dictionary[match.group(0)]
                label, votes = max(counts.items(), key=lambda item: item[1])
                regions.append(
                    {
                        "id": f"{task.get('id', 't')}-{n}",
                        "from_name": self.from_name,
                        "to_name": self.to_name,
                        "type": "labels",
                        "value": {
                            "start": match.start(),
                            "end": match.end(),
                            "text": match.group(0),
                            "labels": [label],
                        },
                        "score": votes / sum(counts.values()),
                    }
                )
            score = sum(r["score"] for r in regions) / len(regions) if regions else 0.0
            predictions.append(PredictionValue(result=regions, score=score))
        return ModelResponse(predictions=predictions)

    # ------------------------------------------------------------------ training
    def fit(self, event, data, **kwargs):
        if event in ANNOTATION_EVENTS and isinstance(data.get("annotation"), dict):
            dictionary = {k: Counter(v) for k, v in self.dictionary.items()}
            self._learn(dictionary, data.get("task") or {}, data["annotation"])
        else:
            dictionary = self._rebuild(data)
            if dictionary is None:
                return {"entities": len(self.dictionary), "source": "kept"}
        plain = {span: dict(counts) for span, counts in dictionary.items() if counts}
        self.set("dictionary", json.dumps(plain, sort_keys=True))
        logger.info("project %s: %d entities after %s", self.project_id, len(plain), event)
        return {"entities": len(plain), "source": event}

    def _learn(self, dictionary, task, annotation):
        """Add the labelled spans of one annotation to ``dictionary``."""
        text = str((task.get("data") or {}).get(self.value, ""))
        for region in annotation.get("result") or []:
            value = region.get("value") or {}
            if region.get("from_name") != self.from_name or not value.get("labels"):
                continue
            span = value.get("text")
            if not span and text and "start" in value and "end" in value:
                span = text[value["start"] : value["end"]]
            span = (span or "").strip()
            if span:
                dictionary.setdefault(span, Counter())[value["labels"][0]] += 1

    def _rebuild(self, data):
        """The dictionary of every annotated task in Label Studio, or None if unreachable."""
        project = data.get("project")
        project_id = project.get("id") if isinstance(project, dict) else None
        try:
            client = make_client(
                os.environ.get("LABEL_STUDIO_URL"),
                os.environ.get("LABEL_STUDIO_API_KEY"),
                hostname=self.hostname,
                access_token=self.access_token,
            )
            tasks = client.get_annotated_tasks(project_id or self.project_id)
        except LabelStudioError as exc:
            logger.warning("keeping the learned dictionary: cannot fetch annotations (%s)", exc)
            return None
        dictionary = {}
        for task in tasks:
            for annotation in task.get("annotations") or []:
                if not annotation.get("was_cancelled"):
                    self._learn(dictionary, task, annotation)
        return dictionary
