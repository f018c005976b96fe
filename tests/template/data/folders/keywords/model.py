"""Marks known keywords in a text: a model spread over several files, label-studio-ml-backend style.

It imports a helper module (helpers.py) and a package with relative imports (matching/), and
reads its keyword list from data/ through os.path.dirname(__file__).
"""

import json
import os

from helpers import normalise
from label_studio_ml.model import LabelStudioMLBase
from matching import find_spans

LABEL_CONFIG = """
<View>
  <Labels name="label" toName="text">
    <Label value="ORG"/>
    <Label value="LOC"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""

KEYWORDS_FILE = os.path.join(os.path.dirname(__file__), "data", "keywords.txt")


def load_keywords():
    keywords = {}
    with open(KEYWORDS_FILE, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                word, label = line.split()
                keywords[normalise(word)] = label
    return keywords


class KeywordSpotter(LabelStudioMLBase):
    def setup(self):
        self.set("model_version", "keywords-1")

    def predict(self, tasks, context=None, **kwargs):
        keywords = {**load_keywords(), **json.loads(self.get("learned") or "{}")}
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
                for start, end, label in find_spans(text, keywords)
            ]
            predictions.append({"result": result, "score": 1.0 if result else 0.0})
        return predictions

    def fit(self, event, data, **kwargs):
        """Learns the words annotators label (runs in the RQ worker in production mode)."""
        learned = json.loads(self.get("learned") or "{}")
        for region in (data.get("annotation") or {}).get("result", []):
            value = region.get("value", {})
            if value.get("text") and value.get("labels"):
                learned[normalise(value["text"])] = value["labels"][0]
        self.set("learned", json.dumps(learned))
        return {"learned": len(learned)}
