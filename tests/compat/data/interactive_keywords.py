"""An interactive keyword spotter in the current SDK's style.

Label one span in a text and ask for interactive pre-annotation: the model marks every other
occurrence of that span with the same label. Called without ``context`` (Retrieve Predictions,
opening a task) it has nothing to say and answers ``ModelResponse(predictions=[])``, as the
interactive models of Label Studio's ML backend repository do.

<View>
  <Labels name="label" toName="text">
    <Label value="PER" background="red"/>
    <Label value="ORG" background="darkorange"/>
    <Label value="LOC" background="orange"/>
  </Labels>
  <Text name="text" value="$text"/>
</View>
"""

import logging
import re
from typing import Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_sdk.label_interface.objects import PredictionValue

logger = logging.getLogger(__name__)


class InteractiveKeywords(LabelStudioMLBase):
    """Marks every occurrence of the span the user just labelled."""

    def setup(self):
        self.set("model_version", f"{self.__class__.__name__}-v0.0.1")

    def _spot(self, text, keyword, labels, from_name, to_name) -> PredictionValue:
        result = []
        for match in re.finditer(re.escape(keyword), text, flags=re.IGNORECASE):
            found = text[match.start() : match.end()]
            result.append(
                {
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "labels",
                    "value": {
                        "start": match.start(),
                        "end": match.end(),
                        "text": found,
                        "labels": labels,
                    },
                    "score": 1.0 if found == keyword else 0.5,
                }
            )
        score = sum(r["score"] for r in result) / max(len(result), 1)
        return PredictionValue(result=result, score=score, model_version=self.get("model_version"))

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        if not context or not context.get("result"):
            # nothing to go on without the user's region
            return ModelResponse(predictions=[])
        from_name, to_name, value = self.label_interface.get_first_tag_occurence("Labels", "Text")
        region = next((r for r in context["result"] if r["from_name"] == from_name), None)
        if region is None:
            logger.warning("No %s region in the context", from_name)
            return ModelResponse(predictions=[])
        predictions = []
        for task in tasks:
            text = self.preload_task_data(task, task["data"].get(value))
            if not text:
                continue
            keyword, labels = region["value"]["text"], region["value"]["labels"]
            predictions.append(self._spot(text, keyword, labels, from_name, to_name))
        return ModelResponse(predictions=predictions, model_version=self.get("model_version"))
