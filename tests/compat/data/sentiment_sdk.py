"""A sentiment classifier in the current SDK's style: label_interface, webhook-driven fit.

Written like the models of Label Studio's ML backend repository: it reads its tags through
``self.label_interface``, answers a ``ModelResponse`` of label-studio-sdk ``PredictionValue``
objects, and learns from each ``ANNOTATION_CREATED`` / ``ANNOTATION_UPDATED`` webhook payload
(``data['annotation']``, ``data['task']``, ``data['project']``).

<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>
"""

import json
import logging
import os
import pickle
from typing import Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_ml.utils import DATA_UNDEFINED_NAME, get_env
from label_studio_sdk.label_interface.objects import PredictionValue
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

logger = logging.getLogger(__name__)


class SentimentClassifier(LabelStudioMLBase):
    """Naive Bayes over word counts, retrained on every annotation."""

    MODEL_DIR = os.getenv("MODEL_DIR", ".")
    MIN_EXAMPLES = int(get_env("MIN_EXAMPLES", 2))

    def setup(self):
        self.set("model_version", f"{self.__class__.__name__}-v0.0.1")

    def _params(self) -> Dict:
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Choices", "Text")
        labels = sorted(self.label_interface.get_control(from_name).labels)
        return {"from_name": from_name, "to_name": to_name, "value": value, "labels": labels}

    def _model_path(self) -> str:
        return os.path.join(self.MODEL_DIR, f"sentiment-{self.project_id}.pkl")

    def _load(self):
        path = self._model_path()
        if not os.path.exists(path):
            return None
        with open(path, "rb") as f:
            return pickle.load(f)

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        params = self._params()
        model = self._load()
        predictions = []
        for task in tasks:
            text = task["data"].get(params["value"]) or task["data"].get(DATA_UNDEFINED_NAME) or ""
            if model is None:
                label, score = params["labels"][0], 0.0
            else:
                probabilities = model.predict_proba([text])[0]
                best = int(probabilities.argmax())
                label, score = model.classes_[best], float(probabilities[best])
            region = self.label_interface.get_control(params["from_name"]).label([label])
            predictions.append(
                PredictionValue(result=[region], score=score, model_version=self.get("model_version"))
            )
        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))

    def fit(self, event, data, **kwargs):
        if event not in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "START_TRAINING"):
            logger.info("Skip training: event %s is not supported", event)
            return
        params = self._params()
        examples = json.loads(self.get("examples") or "{}")
        if event != "START_TRAINING":
            annotation, task, project = data["annotation"], data["task"], data["project"]
            logger.info(
                "annotation %s of task %s in project %s",
                annotation["id"],
                task["id"],
                project["id"],
            )
            text = task["data"].get(params["value"]) or task["data"].get(DATA_UNDEFINED_NAME)
            for region in annotation["result"]:
                if region["from_name"] == params["from_name"] and not annotation.get("was_cancelled"):
                    examples[str(task["id"])] = [text, region["value"]["choices"][0]]
            self.set("examples", json.dumps(examples))
        labels = {label for _, label in examples.values()}
        if len(examples) < self.MIN_EXAMPLES or len(labels) < 2:
            logger.info("Not training yet: %d examples, %d labels", len(examples), len(labels))
            return
        texts, targets = zip(*examples.values())
        model = make_pipeline(CountVectorizer(), MultinomialNB())
        model.fit(list(texts), list(targets))
        os.makedirs(self.MODEL_DIR, exist_ok=True)
        with open(self._model_path(), "wb") as f:
            pickle.dump(model, f)
        self.set("trained_on", str(len(examples)))
