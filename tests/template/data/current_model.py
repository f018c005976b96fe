"""A current-style model (setup, predict with context, fit(event, data)) with its config.

<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text">
    <Choice value="Positive"/>
    <Choice value="Negative"/>
  </Choices>
</View>
"""

from label_studio_ml.model import LabelStudioMLBase
from label_studio_ml.response import ModelResponse


class Sentiment(LabelStudioMLBase):
    def setup(self):
        self.set("model_version", "s-0")

    def predict(self, tasks, context=None, **kwargs):
        region = {
            "from_name": "sentiment",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [self.get("label") or "Positive"]},
        }
        return ModelResponse(predictions=[{"result": [region]} for _ in tasks])

    def fit(self, event, data, **kwargs):
        self.set("label", "Negative")
        return {"seen": event}
