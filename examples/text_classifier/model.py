"""A text classifier that learns from your annotations: TF-IDF features + logistic regression.

Seed style: ``fit(annotations, workdir)`` trains on the annotated tasks, saves the fitted
pipeline into ``workdir`` (the new model version's directory) and returns
``{"model_file": ..., "labels": [...]}``. The runtime stores that dict as the version's
``train_output`` and builds the next model with it; ``self.workdir`` is then that version's
directory, so ``predict`` loads ``self.workdir / train_output["model_file"]``.

Before the first training there is no model: ``predict`` answers an empty result with score 0.

Labeling config (also in label_config.xml next to this file):

<View>
  <Text name="text" value="$text"/>
  <Choices name="topic" toName="text" choice="single" showInLine="true">
    <Choice value="Sports"/>
    <Choice value="Technology"/>
    <Choice value="Food"/>
  </Choices>
</View>
"""

from __future__ import annotations

import logging
import os

import joblib
from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.utils import get_single_tag_keys
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"


class TextClassifier(LabelStudioMLBase):
    """Classifies the text of ``<Text>`` into the choices of one ``<Choices>`` tag."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # One Choices control reading one Text object (asserts if the config differs).
        self.from_name, self.to_name, self.value, self.labels = get_single_tag_keys(
            self.parsed_label_config, "Choices", "Text"
        )
        self.model = None
        model_file = self.train_output.get("model_file")
        if model_file and self.workdir:
            # Load once per version: the runtime keeps this instance for every request.
            self.model = joblib.load(os.path.join(self.workdir, model_file))

    def predict(self, tasks, **kwargs):
        if self.model is None:
            return [{"result": [], "score": 0.0} for _ in tasks]
        texts = [str(task["data"].get(self.value, "")) for task in tasks]
        probabilities = self.model.predict_proba(texts)
        predictions = []
        for row in probabilities:
            best = int(row.argmax())
            label, score = str(self.model.classes_[best]), float(row[best])
            predictions.append(
                {
                    "result": [
                        {
                            "from_name": self.from_name,
                            "to_name": self.to_name,
                            "type": "choices",
                            "value": {"choices": [label]},
                            "score": score,
                        }
                    ],
                    "score": score,
                }
            )
        return predictions

    def fit(self, annotations, workdir=None, **kwargs):
        texts, labels = [], []
        for task in annotations:
            for annotation in task.get("annotations") or []:
                if annotation.get("was_cancelled"):
                    continue
                for region in annotation.get("result") or []:
                    choices = (region.get("value") or {}).get("choices")
                    if region.get("from_name") == self.from_name and choices:
                        texts.append(str(task["data"].get(self.value, "")))
                        labels.append(choices[0])
        if not texts:
            raise ValueError("no annotated tasks with a choice to train on")
        if len(set(labels)) > 1:
            model = make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                LogisticRegression(C=10, max_iter=1000),
            )
        else:  # one class only: logistic regression cannot fit, predict that class
            model = make_pipeline(TfidfVectorizer(), DummyClassifier(strategy="most_frequent"))
        model.fit(texts, labels)
        joblib.dump(model, os.path.join(workdir, MODEL_FILE))
        logger.info("trained on %d examples of %d classes", len(texts), len(set(labels)))
        return {"model_file": MODEL_FILE, "labels": sorted(set(labels)), "examples": len(texts)}
