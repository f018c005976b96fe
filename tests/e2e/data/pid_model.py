"""An e2e model that takes a moment to load and says which process answered (``score`` = pid).

<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>
"""

import os
import time

from label_studio_ml.model import LabelStudioMLBase


class PidModel(LabelStudioMLBase):
    """Loads for ``LOAD_SECONDS`` (0.3 s); every prediction's score is the serving process id."""

    def setup(self):
        time.sleep(float(os.environ.get("LOAD_SECONDS", "0.3")))

    def predict(self, tasks, context=None, **kwargs):
        region = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["pos"]}}
        return [{"result": [region], "score": os.getpid()} for _ in tasks]
