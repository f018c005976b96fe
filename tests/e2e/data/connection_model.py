"""An e2e model that says which process answered and what /setup's connection it holds.

<View>
  <Text name="text" value="$text"/>
  <Choices name="label" toName="text">
    <Choice value="pos"/>
    <Choice value="neg"/>
  </Choices>
</View>
"""

import os

from label_studio_ml.model import LabelStudioMLBase


class ConnectionModel(LabelStudioMLBase):
    """``score`` is the serving process id; the choices are ``[hostname, token?]`` (never the token)."""

    def predict(self, tasks, context=None, **kwargs):
        seen = [self.hostname or "-", "token" if self.access_token else "-"]
        region = {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": seen}}
        return [{"result": [region], "score": os.getpid()} for _ in tasks]

    def fit(self, annotations, workdir=None, **kwargs):
        return {"n": len(annotations)}
