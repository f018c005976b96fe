"""Several predictions per task, built with label-studio-sdk regions.

For every task the model answers two candidate predictions, a confident one and its
alternative, so annotators can compare them. Regions come from the SDK's control tags
(``self.label_interface.get_control(name).label(...)``), predictions are ``PredictionValue``
objects, and the answer is a ``ModelResponse`` holding one list of predictions per task.

<View>
  <Image name="image" value="$image"/>
  <Choices name="aircraft" toName="image">
    <Choice value="Airbus"/>
    <Choice value="Boeing"/>
    <Choice value="Embraer"/>
  </Choices>
</View>
"""

import hashlib
from typing import Dict, List, Optional

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse
from label_studio_sdk.label_interface.objects import PredictionValue


class TwoGuesses(LabelStudioMLBase):
    """Ranks the labels by a stable hash of the image URL and answers the top two."""

    def predict(self, tasks: List[Dict], context: Optional[Dict] = None, **kwargs) -> ModelResponse:
        from_name, to_name, value = self.get_first_tag_occurence("Choices", "Image")
        control = self.label_interface.get_control(from_name)
        predictions = []
        for task in tasks:
            url = str(task["data"].get(value))
            ranked = sorted(
                control.labels, key=lambda label: hashlib.sha256((url + label).encode()).hexdigest()
            )
            predictions.append(
                [
                    PredictionValue(result=[control.label([ranked[0]])], score=0.8),
                    PredictionValue(result=[control.label([ranked[1]])], score=0.2),
                ]
            )
        return ModelResponse(predictions=predictions)
